"""Pseudo-label filters: the over-expectation mask and a fixed threshold for comparison.

Per-class expectations are sums divided by counts; when several processes
each hold a shard of the batch, both go through :func:`coda_edu.distributed.global_sum` (a
no-op in one process), so they are those of the whole batch.
"""

from __future__ import annotations

import torch

from ..distributed import global_sum
from .alignment import class_counts
from .dtypes import widen


@torch.no_grad()
def class_expectations(confidence: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    r"""Expected (mean) confidence of the pixels assigned to each class.

    .. math:: e_k = \frac{\sum_i q_i\,[\hat y_i = k]}{\sum_i [\hat y_i = k]}

    Classes that no pixel is assigned to get ``NaN`` (they have no expectation; no
    pixel would be compared with it).
    """
    flat_labels = labels.reshape(-1).long()
    flat_conf = confidence.reshape(-1).double()
    sums = torch.zeros(num_classes, dtype=torch.float64, device=confidence.device)
    sums.index_add_(0, flat_labels, flat_conf)
    counts = class_counts(flat_labels, num_classes).double()
    expectation = global_sum(sums) / global_sum(counts)
    return expectation.to(widen(confidence).dtype)  # float32, or float64 under the fp64 precision


@torch.no_grad()
def image_class_expectations(confidence: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    r"""Per image n, the mean confidence of its pixels assigned to each class, ``(N, K)``:

    .. math:: e_{n,k} = \frac{\sum_{i \in n} q_i\,[\hat y_i = k]}{\sum_{i \in n} [\hat y_i = k]}

    (``NaN`` where image n has no pixel of class k). A reading beyond the paper: an image
    whose class k is faint (low confidence everywhere) keeps its better half of that class
    instead of losing all of it to the batch's mean.
    """
    n = labels.shape[0]
    flat_labels = labels.reshape(n, -1).long()
    flat_conf = confidence.reshape(n, -1).double()
    sums = torch.zeros(n, num_classes, dtype=torch.float64, device=confidence.device)
    counts = torch.zeros(n, num_classes, dtype=torch.float64, device=confidence.device)
    sums.scatter_add_(1, flat_labels, flat_conf)
    counts.scatter_add_(1, flat_labels, torch.ones_like(flat_conf))
    return (sums / counts).to(widen(confidence).dtype)


@torch.no_grad()
def over_expectation_mask(
    confidence: torch.Tensor, labels: torch.Tensor, expectations: torch.Tensor, tolerance: float = 1e-6
) -> torch.Tensor:
    r"""Keep a pixel when its confidence reaches the expectation of its pseudo-class.

    .. math:: m_i = \left[\, q_i \ge e_{\hat y_i} \,\right]

    ``expectations`` is ``(K,)`` (one value per class) or ``(N, K)`` (one row per image,
    :func:`image_class_expectations`). A pixel whose class has no expectation (``NaN``,
    e.g. an EMA not yet started) is kept. ``tolerance`` absorbs float rounding of the
    mean, so a class whose pixels all have the same confidence keeps all of them.
    Returns a boolean ``(N, *spatial)`` mask.
    """
    expectations = expectations.to(confidence.device)
    if expectations.dim() == 2:  # one row per image (image_class_expectations)
        index = labels.long().reshape(labels.shape[0], -1)
        expected = expectations.gather(1, index).reshape(labels.shape)
    else:
        expected = expectations[labels.long()]
    keep = confidence >= expected - tolerance
    return keep | torch.isnan(expected)


@torch.no_grad()
def restrict_to_classes(mask: torch.Tensor, labels: torch.Tensor, num_classes: int, classes: str) -> torch.Tensor:
    r"""A filter's mask applied to some pseudo-classes only (beyond the paper); the other pixels are kept.

    .. math:: m'_i = m_i \;\lor\; [\,\hat y_i \notin S\,], \qquad
              k^\ast = \arg\max_k \textstyle\sum_i [\hat y_i = k]

    with :math:`S = \{k^\ast\}` for ``classes="majority"`` and :math:`S = \{k \ne k^\ast\}` for
    ``"minority"`` (``"all"`` returns ``mask``). :math:`k^\ast` is the pseudo-class with the most
    pixels in the batch (the background in cardiac MRI). Returns a boolean mask of ``labels``' shape.
    """
    if classes == "all":
        return mask
    counts = global_sum(class_counts(labels.reshape(-1).long(), num_classes).double())
    is_majority = labels == torch.argmax(counts).to(labels.device)  # stays on the device: no host sync
    if classes == "majority":
        return mask | ~is_majority
    if classes == "minority":
        return mask | is_majority
    raise ValueError(f"classes must be 'all', 'majority' or 'minority', not {classes!r}")


@torch.no_grad()
def fixed_threshold_mask(confidence: torch.Tensor, threshold: float = 0.95) -> torch.Tensor:
    r"""The usual confidence filter, for comparison: :math:`m_i = [\, q_i \ge \tau \,]`."""
    return confidence >= threshold


@torch.no_grad()
def ema_expectations(running: torch.Tensor | None, value: torch.Tensor, momentum: float) -> torch.Tensor:
    r"""EMA of class expectations across steps, :math:`e \leftarrow m\,e + (1-m)\,e_{batch}`.

    Classes absent from the batch (``NaN`` in ``value``) keep their running value;
    classes never seen yet (``NaN`` in ``running``) start at the batch value.
    """
    value = widen(value.detach())
    if running is None:
        return value.clone()
    mixed = momentum * running + (1.0 - momentum) * value
    mixed = torch.where(torch.isnan(running), value, mixed)
    return torch.where(torch.isnan(value), running, mixed)
