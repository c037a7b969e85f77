r"""What the logs say about the pseudo-labels: statistics that measure a step and never train it.

On the steps the trainer writes to ``metrics.jsonl``, CPS and Co-DA log for each network m
(:func:`pseudo_label_logs`): its marginals :math:`\pi_l, \pi_u, \pi_{gt}`, the class shares
of its pseudo-labels before and after the alignment, the signed gap to the labeled class
frequencies, the filter's kept fraction overall and per class (:func:`mask_coverage`) and,
where the unlabeled images' hidden truth is known (the synthetic phantoms), the accuracy,
precision and recall of the pseudo-labels (:func:`pseudo_label_precision_recall`).
Notebooks 02-04 plot these columns.

Every statistic is a sum divided by a count; with several processes both go through
:func:`coda_edu.distributed.global_sum`, so it is that of the whole batch.
"""

from __future__ import annotations

import torch

from .distributed import global_mean, global_sum


def _counts(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Pixels per class, summed over the ranks (float32)."""
    return global_sum(torch.bincount(labels.reshape(-1).long(), minlength=num_classes)[:num_classes].float())


@torch.no_grad()
def mask_coverage(mask: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    r"""Per class, the fraction of pixels of pseudo-class k that the mask keeps:
    :math:`\frac{\sum_i m_i [\hat y_i = k]}{\sum_i [\hat y_i = k]}` (``NaN`` for classes with no pixel)."""
    return _counts(labels[mask], num_classes) / _counts(labels, num_classes)


@torch.no_grad()
def pseudo_label_precision_recall(labels: torch.Tensor, truth: torch.Tensor, num_classes: int):
    r"""Per class, precision :math:`|\hat Y_c \cap Y_c| / |\hat Y_c|` and recall :math:`|\hat Y_c \cap Y_c| / |Y_c|`
    of pseudo-labels against the hidden truth (a diagnostic: the truth never enters a loss).
    NaN where the denominator is 0."""
    labels, truth = labels.reshape(-1).long(), truth.reshape(-1).long()
    hits = _counts(labels[labels == truth], num_classes)
    return hits / _counts(labels, num_classes), hits / _counts(truth, num_classes)


@torch.no_grad()
def pseudo_label_logs(key, tracker, probs_u, labels, mask, truth, ignore_index) -> dict:
    """The logged columns of network ``key``: its ``tracker``'s marginals, and the shares, coverage
    and (with the hidden ``truth`` of the unlabeled images) accuracy of its pseudo-labels ``labels``
    with the filter's ``mask``, from its unaligned unlabeled probabilities ``probs_u``."""
    k = probs_u.shape[1]
    before, after = _counts(probs_u.max(dim=1).indices, k), _counts(labels, k)
    after = after / after.sum().clamp_min(1.0)
    logs = {
        f"pi_l_{key}": tracker.pi_l,
        f"pi_u_{key}": tracker.pi_u,
        f"pi_gt_{key}": tracker.pi_gt,
        f"shares_before_{key}": before / before.sum().clamp_min(1.0),
        f"shares_after_{key}": after,
        f"share_gap_{key}": after - tracker.pi_gt,  # signed: pseudo-label shares minus labeled frequencies
        f"coverage_{key}": mask_coverage(mask, labels, k),
        f"kept_{key}": global_mean(mask.float()),
    }
    if truth is not None:
        valid = torch.ones_like(mask) if ignore_index is None else truth != ignore_index
        correct = labels == truth
        logs[f"pl_acc_{key}"] = global_mean(correct[valid].float())
        kept = mask & valid  # accuracy of the kept pixels (NaN when none is kept: 0 / 0)
        logs[f"pl_acc_kept_{key}"] = global_sum((correct & kept).sum().float()) / global_sum(kept.sum().float())
        precision, recall = pseudo_label_precision_recall(labels[valid], truth[valid], k)
        logs[f"pl_precision_{key}"], logs[f"pl_recall_{key}"] = precision, recall
    return logs
