r"""Two alignment readings beyond the paper that read the *argmax* shares (``method.alignment``).

The paper aligns soft marginals (the mean softmax, :mod:`coda_edu.method.alignment`). A
network trained with few labels gives a small class about the right soft mass but rarely
the largest probability, so the minority bias lives in the argmax shares :math:`s_u`, not
in the mean softmax (:mod:`coda_course.bias` measures it). These two readings act on that:

- ``hard_counts``: class weights :math:`w(c) = (\pi_{gt}(c) / s_u(c))^{\alpha(t)}`, clipped
  (:func:`hard_count_weights`, :func:`apply_class_weights`), :math:`s_u` the EMA of the
  argmax shares of the unlabeled pseudo-labels;
- ``argmax_share``: per-class log-offsets :math:`b` solved so that the argmax shares of
  :math:`\log p + b` match :math:`\pi_{gt}` (:func:`match_argmax_shares`, DARS-like).

Both register themselves like every reading (:mod:`coda_edu.method.readings`); they are
switches for the investigation in docs/benchmarks-acdc.md, not part of Co-DA. Shares are
sums divided by counts, summed over processes by :func:`coda_edu.distributed.global_sum`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import option
from ..distributed import global_count, global_sum
from ..method.alignment import class_counts, ema_update
from ..method.dtypes import widen
from ..registry import ALIGNMENTS, ReadingSpec


def hard_count_weights(
    target: torch.Tensor, hard_shares: torch.Tensor, alpha: float = 1.0, max_weight: float = 10.0, eps: float = 1e-4
) -> torch.Tensor:
    r"""Class weights of the hard-count reading.

    .. math:: w(c) = \operatorname{clip}\left(\left(\frac{\pi_{gt}(c) + \epsilon}{s_u(c) + \epsilon}\right)^{\alpha},
              \; \tfrac{1}{w_{max}},\; w_{max}\right)

    ``target``: labeled ground-truth class frequencies :math:`\pi_{gt}` ``(C,)``;
    ``hard_shares``: EMA of the argmax class shares :math:`s_u` of the unlabeled
    predictions ``(C,)``. A class whose pseudo-labels are rarer than its labeled
    frequency gets a weight above 1. The exponent :math:`\alpha` (the trainer ramps it
    with the unsupervised weight, :math:`\alpha(t) = \alpha\,r(t)`) and the clip at
    :math:`w_{max}` damp the correction: argmax shares react steeply to a weight, so the
    full ratio overshoots. Use with :func:`apply_class_weights`.
    """
    ratio = (widen(target.detach()) + eps) / (widen(hard_shares.detach()) + eps)
    return (ratio**alpha).clamp(1.0 / max_weight, max_weight)


def apply_class_weights(probs: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    r"""Reweight and renormalise: :math:`\tilde p_i(c) = p_i(c)\,w(c) / \sum_{c'} p_i(c')\,w(c')`.

    ``probs``: ``(N, C, *spatial)``; ``weight``: ``(C,)`` positive.
    """
    shape = [1, -1] + [1] * (probs.ndim - 2)
    scaled = widen(probs) * widen(weight.detach()).view(shape)
    return scaled / scaled.sum(dim=1, keepdim=True).clamp_min(1e-12)


@torch.no_grad()
def match_argmax_shares(
    probs: torch.Tensor,
    target: torch.Tensor,
    offsets: torch.Tensor | None = None,
    iterations: int = 10,
    step_size: float = 0.5,
    eps: float = 1e-4,
    max_offset: float = 5.0,
) -> torch.Tensor:
    r"""Per-class log-offsets that make the argmax shares match a target distribution (DARS-like).

    Starting from ``offsets`` (zeros if None: warm-start with the previous step's), repeat
    ``iterations`` times:

    .. math:: s(c) = \frac{1}{|\Omega|}\sum_i \left[\arg\max_{c'} (\log p_i(c') + b_{c'}) = c\right],\qquad
              b_c \leftarrow b_c + \eta\,\big(\log(\pi_{gt}(c) + \epsilon) - \log(s(c) + \epsilon)\big)

    then centre :math:`b` (only differences matter) and clip it to :math:`\pm b_{max}`.
    A class whose pseudo-labels are too rare gets a positive offset, i.e. a lower bar
    to win the argmax. ``probs``: ``(N, C, *spatial)``; ``target``: ``(C,)``. Returns
    ``(C,)``; the aligned probabilities are ``softmax(log p + b)``
    (:func:`apply_log_offsets`).
    """
    c = probs.shape[1]
    log_p = widen(probs.detach()).clamp_min(1e-12).log().movedim(1, -1).reshape(-1, c)
    b = torch.zeros(c, dtype=log_p.dtype, device=probs.device)
    if offsets is not None:
        b = offsets.detach().to(probs.device, log_p.dtype).clone()
    goal = (target.detach().to(probs.device, log_p.dtype) + eps).log()
    for _ in range(iterations):
        labels = (log_p + b).argmax(1)
        shares = global_sum(class_counts(labels, c).float()) / global_count(labels.numel(), labels)
        b = b + step_size * (goal - (shares + eps).log())
        b = (b - b.mean()).clamp(-max_offset, max_offset)
    return b


def apply_log_offsets(probs: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    r"""Shift log-probabilities by per-class offsets: :math:`\tilde p_i = \mathrm{softmax}(\log p_i + b)`.

    The same as :func:`apply_class_weights` with :math:`w = e^{b}`.
    """
    return apply_class_weights(probs, widen(offsets.detach()).exp())


@dataclass
class HardCountOptions:
    max_weight: float = option(
        10.0, help="hard_counts: class weights are clipped to [1/max_weight, max_weight]", min=1.0
    )


@ALIGNMENTS.register(
    ReadingSpec(
        "hard_counts",
        "weights (pi_gt / s_u)^alpha(t), clipped: the argmax shares move towards the labeled frequencies",
        ramped=True,
        hard_shares=True,
        options=HardCountOptions,
    )
)
def align_hard_counts(probs_u, tracker, state, m, alpha):
    r""":math:`\tilde p(c) \propto p(c)\,w(c)` with :math:`w` of
    :func:`hard_count_weights`."""
    return apply_class_weights(probs_u, hard_count_weights(tracker.pi_gt, tracker.hard_u, alpha, m.max_weight)), state


@dataclass
class ArgmaxShareOptions:
    share_iterations: int = option(
        10, help="argmax_share: offset updates per step (warm-started from the running offsets)", min=1
    )
    share_step: float = option(
        0.5, help="argmax_share: step size of the log-offset update", min=0.0, min_exclusive=True
    )
    share_momentum: float = option(
        0.9, help="argmax_share: EMA momentum of the per-class log-offsets across steps", min=0.0, max=1.0
    )


@ALIGNMENTS.register(
    ReadingSpec(
        "argmax_share",
        "log-offsets b solved so that the argmax shares match pi_gt: softmax(log p + alpha(t) b)",
        ramped=True,
        options=ArgmaxShareOptions,
    )
)
def align_argmax_shares(probs_u, tracker, offsets, m, alpha):
    r"""Offsets :math:`b` of :func:`match_argmax_shares` (warm-started), kept
    as an EMA across steps (the state); :math:`\tilde p = \mathrm{softmax}(\log p + \alpha b)`."""
    solved = match_argmax_shares(probs_u, tracker.pi_gt, offsets, m.share_iterations, m.share_step)
    offsets = ema_update(offsets, solved, m.share_momentum)
    return apply_log_offsets(probs_u, alpha * offsets), offsets
