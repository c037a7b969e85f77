"""Loss functions.

Shapes: ``logits`` are ``(N, C, *spatial)``; integer targets are ``(N, *spatial)``.
Losses are computed in float32 even when the network runs in mixed precision (in float64 under
``train.precision: fp64``: :func:`~coda_edu.method.dtypes.widen`).

Each loss is a ratio of sums over the batch's pixels; when several processes each hold a
shard of the batch, the sums go through :func:`coda_edu.distributed.global_sum` (a no-op in
one process), so every rank computes the loss of the whole batch (sum-then-divide, exact
for uneven shards).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..distributed import global_count, global_sum
from .dtypes import widen


def _valid_one_hot(target: torch.Tensor, num_classes: int, ignore_index: int | None):
    """One-hot target ``(N, C, *spatial)`` and a ``(N, 1, *spatial)`` mask of non-ignored pixels."""
    if ignore_index is None:
        valid = torch.ones_like(target, dtype=torch.bool)
        safe = target
    else:
        valid = target != ignore_index
        safe = torch.where(valid, target, torch.zeros_like(target))
    one_hot = F.one_hot(safe.long(), num_classes).movedim(-1, 1).float()
    return one_hot, valid.unsqueeze(1).float()


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None = None) -> torch.Tensor:
    r"""Mean pixel-wise cross-entropy :math:`-\frac{1}{|\Omega|}\sum_i \log p_i(y_i)` over non-ignored pixels."""
    ignore = -100 if ignore_index is None else ignore_index
    total = F.cross_entropy(widen(logits), target.long(), ignore_index=ignore, reduction="sum")
    return global_sum(total) / global_sum((target != ignore).sum())


def soft_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None = None, smooth: float = 1e-5
) -> torch.Tensor:
    r"""Soft Dice loss averaged over all C classes (background included).

    .. math:: \mathcal{L}_{Dice} = \frac{1}{C}\sum_{c=1}^{C}\left(1 -
              \frac{2\sum_i p_{ic} g_{ic} + s}{\sum_i p_{ic} + \sum_i g_{ic} + s}\right)

    with softmax probabilities :math:`p`, one-hot target :math:`g`, sums over every
    pixel of the batch and smoothing :math:`s`. Ignored pixels are excluded from
    *both* :math:`p` and :math:`g` (an ignored pixel is no ground truth of any class,
    class 0 included).
    """
    num_classes = logits.shape[1]
    probs = torch.softmax(widen(logits), dim=1)
    one_hot, valid = _valid_one_hot(target, num_classes, ignore_index)
    probs = probs * valid
    one_hot = one_hot * valid
    dims = [0] + list(range(2, probs.ndim))
    intersection = global_sum((probs * one_hot).sum(dims))
    denominator = global_sum(probs.sum(dims) + one_hot.sum(dims))
    dice = (2 * intersection + smooth) / (denominator + smooth)
    return (1 - dice).mean()


SUPERVISED_LOSSES = ("ce_dice", "ce")


def supervised_loss(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None = None, kind: str = "ce_dice"
) -> torch.Tensor:
    r"""The supervised loss of each network (``method.supervised_loss``):

    - ``"ce_dice"`` (default): :math:`\mathcal{L}_{sup} = \tfrac12(\mathcal{L}_{CE} + \mathcal{L}_{Dice})`;
    - ``"ce"``: :math:`\mathcal{L}_{sup} = \mathcal{L}_{CE}`.

    The Dice term weighs every class equally however few its pixels, which pushes a small
    class's probability up; with cross-entropy alone each *pixel* weighs the same, the
    background dominates and the argmax tends to under-count a small class (the bias
    that distribution alignment corrects; docs/method.md#the-synthetic-minority-regime).
    """
    if kind == "ce":
        return cross_entropy(logits, target, ignore_index)
    if kind != "ce_dice":
        raise ValueError(f"supervised loss kind must be one of {SUPERVISED_LOSSES}, got {kind!r}")
    return 0.5 * (cross_entropy(logits, target, ignore_index) + soft_dice_loss(logits, target, ignore_index))


def masked_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, normalize: str = "all"
) -> torch.Tensor:
    r"""Cross-entropy on the kept pixels only: the over-expectation CE (OECE) when ``mask`` is the
    over-expectation mask.

    .. math:: \mathcal{L}_{OECE} = \frac{1}{Z}\sum_i m_i \left(-\log p_i(\hat y_i)\right)

    ``normalize="all"``: Z = number of unlabeled pixels (a pixel that is filtered out
    counts as zero loss, so the loss shrinks when few pixels pass). ``normalize="kept"``:
    Z = number of kept pixels (at least 1). With an all-ones mask both equal plain CE,
    which is the cross pseudo supervision (CPS) loss.
    """
    per_pixel = F.cross_entropy(widen(logits), target.long(), reduction="none")
    mask = mask.to(per_pixel.dtype)
    if normalize == "all":
        denom = global_count(mask.numel(), mask)
    elif normalize == "kept":
        denom = global_sum(mask.sum()).clamp_min(1.0)
    else:
        raise ValueError(f"normalize must be 'all' or 'kept', got {normalize!r}")
    return global_sum((per_pixel * mask).sum()) / denom
