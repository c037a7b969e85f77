r"""Class marginals and distribution alignment.

Notation: :math:`p_i \in \Delta^{C-1}` is the softmax prediction of pixel i;
:math:`\pi_l` and :math:`\pi_u` are a network's class marginals (mean prediction)
on labeled and unlabeled pixels, tracked as exponential moving averages (EMA).

Two readings of "align the unlabeled marginal to the labeled one" (``method.alignment``):

- ``predictions``: soft marginals, :math:`w(c) = \pi_l(c) / \pi_u(c)` with both
  the mean softmax of the same network (:func:`align_distribution`);
- ``labels``: the same with :math:`\pi_l` = labeled ground-truth class frequencies.

Two more, which read the *argmax* shares instead of the mean softmax (``hard_counts``,
``argmax_share``), are beyond the paper: :mod:`coda_edu.beyond.argmax_readings`.

Marginals and shares are sums divided by counts; when several processes each hold a shard
of the batch, both go through :func:`coda_edu.distributed.global_sum` (a no-op in one
process), so the statistics are those of the whole batch.
"""

from __future__ import annotations

import torch

from ..distributed import global_count, global_sum
from .dtypes import widen


@torch.no_grad()
def class_counts(labels: torch.Tensor, num_classes: int, valid: torch.Tensor | None = None) -> torch.Tensor:
    r"""Pixels per class, :math:`n_c = \sum_i [y_i = c]` over the pixels where ``valid`` (all if None),
    as an int64 ``(C,)`` tensor; labels must lie in 0..C-1 where valid.

    The same counts as ``torch.bincount(labels, minlength=C)``, but without a host synchronisation
    on CUDA (bincount reads the largest label back to size its output; this adds ones into C bins).
    """
    flat = labels.reshape(-1).long()
    if valid is None:
        ones = torch.ones_like(flat)
    else:
        valid = valid.reshape(-1)
        flat, ones = torch.where(valid, flat, torch.zeros_like(flat)), valid.long()
    return torch.zeros(num_classes, dtype=torch.long, device=flat.device).scatter_add_(0, flat, ones)


@torch.no_grad()
def class_marginal(probs: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    r"""Mean prediction per class over all (valid) pixels:
    :math:`\bar p(c) = \frac{1}{|\Omega|}\sum_{i\in\Omega} p_i(c)`.

    ``probs``: ``(N, C, *spatial)``; ``valid``: optional boolean ``(N, *spatial)``.
    Returns a ``(C,)`` float32 (float64 for float64 ``probs``) tensor that sums to 1. Computed without gradient.
    """
    probs = widen(probs.detach())
    c = probs.shape[1]
    flat = probs.movedim(1, -1).reshape(-1, c)
    uniform = torch.full((c,), 1.0 / c, dtype=flat.dtype, device=probs.device)  # no pixel: no information
    if valid is None:
        total, count = global_sum(flat.sum(0)), global_count(flat.shape[0], flat)
        if not isinstance(count, torch.Tensor):  # one process: the count is a Python int, no device read
            return total / count if count else uniform
    else:  # a weighted mean: boolean-mask indexing would make the host wait on CUDA
        weight = valid.reshape(-1, 1).to(flat.dtype)
        total, count = global_sum((flat * weight).sum(0)), global_sum(weight.sum())
    return torch.where(count > 0, total / count.clamp_min(1.0), uniform)  # (no host sync to test count)


@torch.no_grad()
def label_marginal(labels: torch.Tensor, num_classes: int, ignore_index: int | None = None) -> torch.Tensor:
    r"""Class frequencies of integer labels: :math:`\pi(c) = \frac{1}{|\Omega|}\sum_i [y_i = c]`
    (ignored pixels excluded)."""
    flat = labels.reshape(-1).long()
    valid = (flat >= 0) & (flat < num_classes)  # (an out-of-range label is no class)
    if ignore_index is not None:
        valid &= flat != ignore_index
    counts = global_sum(class_counts(flat, num_classes, valid).float())
    total = counts.sum()
    uniform = torch.full((num_classes,), 1.0 / num_classes, device=labels.device)
    return torch.where(total > 0, counts / total.clamp_min(1.0), uniform)  # (no host sync to test total)


@torch.no_grad()
def ema_update(running: torch.Tensor | None, value: torch.Tensor, momentum: float) -> torch.Tensor:
    r"""Exponential moving average :math:`\pi \leftarrow m\,\pi + (1-m)\,\bar p`.

    The first call (``running is None``) starts the average at ``value``. The result
    is detached, so no gradient can flow into a marginal.
    """
    value = widen(value.detach())
    if running is None:
        return value.clone()
    return momentum * running + (1.0 - momentum) * value


def align_distribution(
    probs_u: torch.Tensor, pi_l: torch.Tensor, pi_u: torch.Tensor, alpha: float = 1.0, eps: float = 1e-6
) -> torch.Tensor:
    r"""Distribution alignment of unlabeled predictions towards the labeled marginal.

    .. math:: \tilde p_i(c) = \frac{p_i(c)\,w(c)}{\sum_{c'} p_i(c')\,w(c')},\qquad
              w(c) = \left(\frac{\pi_l(c) + \epsilon}{\pi_u(c) + \epsilon}\right)^{\alpha}

    ``probs_u``: ``(N, C, *spatial)`` softmax probabilities; ``pi_l``, ``pi_u``: ``(C,)``.
    ``alpha = 0`` or ``pi_l == pi_u`` leave the probabilities unchanged; ``alpha = 1``
    rescales each class by the full ratio of marginals. The marginals are used
    detached (they are statistics, not parameters).
    """
    weight = ((widen(pi_l.detach()) + eps) / (widen(pi_u.detach()) + eps)) ** alpha
    shape = [1, -1] + [1] * (probs_u.ndim - 2)
    scaled = widen(probs_u) * weight.view(shape)
    return scaled / scaled.sum(dim=1, keepdim=True).clamp_min(1e-12)


@torch.no_grad()
def pseudo_labels(probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Hard pseudo-labels and their confidence: :math:`\hat y_i = \arg\max_c p_i(c)`, :math:`q_i = \max_c p_i(c)`.

    Returns ``(confidence, labels)`` with shapes ``(N, *spatial)``.
    """
    confidence, labels = probs.detach().max(dim=1)
    return confidence, labels


@torch.no_grad()
def class_shares(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    r"""Fraction of pixels assigned to each class: :math:`s(c) = \frac{1}{|\Omega|}\sum_i [\hat y_i = c]`."""
    return label_marginal(labels, num_classes)
