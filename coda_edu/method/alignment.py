r"""Class marginals and distribution alignment.

Notation: :math:`p_i \in \Delta^{C-1}` is the softmax prediction of pixel i;
:math:`\pi_l` and :math:`\pi_u` are a network's class marginals (mean prediction)
on labeled and unlabeled pixels, tracked as exponential moving averages (EMA).
"""

from __future__ import annotations

import torch


@torch.no_grad()
def class_marginal(probs: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    r"""Mean prediction per class over all (valid) pixels: :math:`\bar p(c) = \frac{1}{|\Omega|}\sum_{i\in\Omega} p_i(c)`.

    ``probs``: ``(N, C, *spatial)``; ``valid``: optional boolean ``(N, *spatial)``.
    Returns a ``(C,)`` float32 tensor that sums to 1. Computed without gradient.
    """
    probs = probs.detach().float()
    c = probs.shape[1]
    flat = probs.movedim(1, -1).reshape(-1, c)
    if valid is not None:
        flat = flat[valid.reshape(-1)]
        if flat.shape[0] == 0:
            return torch.full((c,), 1.0 / c, device=probs.device)
    return flat.mean(0)


@torch.no_grad()
def label_marginal(labels: torch.Tensor, num_classes: int, ignore_index: int | None = None) -> torch.Tensor:
    r"""Class frequencies of integer labels: :math:`\pi(c) = \frac{1}{|\Omega|}\sum_i [y_i = c]` (ignored pixels excluded)."""
    flat = labels.reshape(-1).long()
    if ignore_index is not None:
        flat = flat[flat != ignore_index]
    counts = torch.bincount(flat, minlength=num_classes)[:num_classes].float()
    total = counts.sum()
    if total == 0:
        return torch.full((num_classes,), 1.0 / num_classes, device=labels.device)
    return counts / total


@torch.no_grad()
def ema_update(running: torch.Tensor | None, value: torch.Tensor, momentum: float) -> torch.Tensor:
    r"""Exponential moving average :math:`\pi \leftarrow m\,\pi + (1-m)\,\bar p`.

    The first call (``running is None``) starts the average at ``value``. The result
    is detached, so no gradient can flow into a marginal.
    """
    value = value.detach().float()
    if running is None:
        return value.clone()
    return momentum * running + (1.0 - momentum) * value


def align_distribution(probs_u: torch.Tensor, pi_l: torch.Tensor, pi_u: torch.Tensor,
                       alpha: float = 1.0, eps: float = 1e-6) -> torch.Tensor:
    r"""Distribution alignment of unlabeled predictions towards the labeled marginal.

    .. math:: \tilde p_i(c) = \frac{p_i(c)\,w(c)}{\sum_{c'} p_i(c')\,w(c')},\qquad
              w(c) = \left(\frac{\pi_l(c) + \epsilon}{\pi_u(c) + \epsilon}\right)^{\alpha}

    ``probs_u``: ``(N, C, *spatial)`` softmax probabilities; ``pi_l``, ``pi_u``: ``(C,)``.
    ``alpha = 0`` or ``pi_l == pi_u`` leave the probabilities unchanged; ``alpha = 1``
    rescales each class by the full ratio of marginals. The marginals are used
    detached (they are statistics, not parameters).
    """
    weight = ((pi_l.detach().float() + eps) / (pi_u.detach().float() + eps)) ** alpha
    shape = [1, -1] + [1] * (probs_u.ndim - 2)
    scaled = probs_u.float() * weight.view(shape)
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
