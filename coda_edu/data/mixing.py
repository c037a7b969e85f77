r"""Perturbations of the unlabeled stream: copy-paste between images and strong intensity changes.

Beyond the Co-DA paper (which describes neither): the strongest semi-supervised methods on
ACDC train the networks on *mixed* images. This module holds the pure functions; the
two-view step (:class:`~coda_edu.beyond.two_view.TwoViewSteps`, ``method.mix``)
composes them:

- ``copy_paste`` (after BCP, Bai et al. 2023): a box of a labeled image is pasted into an
  unlabeled one, or a box of an unlabeled image into a labeled one (every other item each
  way). The mixed image's target is the ground truth where its pixels come from the
  labeled image and the other network's (aligned, filtered) pseudo-label elsewhere;
- ``cutmix`` (as in CPS, Chen et al. 2021): a box of one unlabeled image pasted into
  another; the target is the same mix of the two images' pseudo-labels.

The pseudo-labels are made on the unmixed images, so a network learns to predict on the
mixed image what the other network saw on the clean one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .augment import intensity_jitter, random_gamma


@torch.no_grad()
def random_boxes(
    n: int, size: tuple[int, ...], fraction: float, generator: torch.Generator | None = None, device=None
) -> torch.Tensor:
    r"""``n`` boolean masks of shape ``size``, each True inside one axis-aligned box.

    Along every spatial axis of length :math:`L` the box has length :math:`\lceil f L \rceil`
    and a uniformly random start in :math:`[0, L - \lceil f L \rceil]`, so it lies inside the image
    (box volume :math:`\approx f^{d}` of the image, :math:`f^2 = 0.44` for ``fraction = 2/3`` in 2D).
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    mask = torch.ones((n,) + tuple(size), dtype=torch.bool, device=device)
    for axis, length in enumerate(size):
        extent = min(length, max(1, math.ceil(fraction * length)))
        start = torch.randint(0, length - extent + 1, (n,), generator=generator, device=device)
        position = torch.arange(length, device=device)
        inside = (position[None, :] >= start[:, None]) & (position[None, :] < (start + extent)[:, None])
        view = [n] + [1] * len(size)
        view[axis + 1] = length
        mask = mask & inside.view(view)
    return mask


def paste(background: torch.Tensor, source: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    r"""Where ``region`` is True take ``source``, elsewhere ``background``:
    :math:`x = R \odot x_{src} + (1 - R) \odot x_{bg}`.

    ``region`` is ``(N, *spatial)``; images ``(N, C, *spatial)`` get it broadcast over channels,
    label maps ``(N, *spatial)`` take it as is.
    """
    if background.ndim == region.ndim + 1:
        region = region.unsqueeze(1)
    return torch.where(region, source, background)


def copy_paste_regions(boxes: torch.Tensor) -> torch.Tensor:
    r"""Which pixels of each mixed image come from the labeled image, for ``copy_paste``:
    item :math:`i` even pastes the labeled box into the unlabeled image (region = box),
    item :math:`i` odd pastes the unlabeled box into the labeled image (region = outside the box)."""
    inward = (torch.arange(boxes.shape[0], device=boxes.device) % 2 == 0).view([-1] + [1] * (boxes.ndim - 1))
    return torch.where(inward, boxes, ~boxes)


@torch.no_grad()
def strong_intensity(x: torch.Tensor, strength: float, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""A strong per-item intensity perturbation of images ``(N, C, *spatial)`` (no geometry):
    a gamma change with :math:`\log\gamma \sim U(-s, s)` (:func:`~coda_edu.data.augment.random_gamma`), then
    contrast and brightness of strength :math:`s/2` (:func:`~coda_edu.data.augment.intensity_jitter`:
    :math:`c \sim U(1 - s/2, 1 + s/2)`, :math:`b \sim U(-s/4, s/4)`), then Gaussian noise
    :math:`\sigma\,\xi` with :math:`\sigma \sim U(0, s/10)` per item; ``strength`` :math:`s = 0`
    returns ``x`` unchanged.
    """
    if strength <= 0:
        return x
    x = intensity_jitter(random_gamma(x, strength, generator), strength / 2, generator)
    n = x.shape[0]
    sigma = (strength / 10) * torch.rand(n, generator=generator, device=x.device, dtype=x.dtype)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + sigma.view((n,) + (1,) * (x.ndim - 1)) * noise


@dataclass(frozen=True)
class MixPlan:
    """The random choices of one mixed batch: which pixels of each unlabeled item are replaced
    (``region``, ``(n_u, *spatial)``) and by which image (``partner``: a labeled item for
    ``copy_paste``, another unlabeled item for ``cutmix``)."""

    kind: str  # "copy_paste" or "cutmix"
    region: torch.Tensor
    partner: torch.Tensor


@torch.no_grad()
def mix_plan(kind: str, fraction: float, n_l: int, x_u: torch.Tensor) -> MixPlan | None:
    """Draw the boxes of one mixed batch (``kind`` ``"none"``: no plan). Copy-paste pairs unlabeled
    item i with labeled item i mod n_l; cutmix with the previous unlabeled item."""
    if kind == "none":
        return None
    n_u = x_u.shape[0]
    boxes = random_boxes(n_u, tuple(x_u.shape[2:]), fraction, device=x_u.device)
    if kind == "copy_paste":
        return MixPlan(kind, copy_paste_regions(boxes), torch.arange(n_u, device=x_u.device) % n_l)
    return MixPlan(kind, boxes, torch.roll(torch.arange(n_u, device=x_u.device), 1))


def mixed_images(plan: MixPlan | None, x_l: torch.Tensor, x_u: torch.Tensor) -> torch.Tensor:
    """The unlabeled images with the plan's boxes pasted in (``x_u`` itself without a plan)."""
    if plan is None:
        return x_u
    source = x_l if plan.kind == "copy_paste" else x_u
    return paste(x_u, source[plan.partner], plan.region)


@torch.no_grad()
def mixed_targets(plan: MixPlan | None, labels: torch.Tensor, mask: torch.Tensor, y_l: torch.Tensor, ignore_index):
    r"""(target, kept pseudo-labelled pixels, labeled pixels or None) of the mixed images.

    ``labels``/``mask``: the other network's pseudo-labels and filter mask of the clean unlabeled
    images. Copy-paste: the target is the ground truth :math:`y_l` on the pasted labeled pixels
    (those are learned with the supervised loss, so they leave the mask) and the pseudo-label
    elsewhere; cutmix: the pseudo-labels and masks mixed like the images.
    """
    if plan is None:
        return labels, mask, None
    if plan.kind == "cutmix":
        return paste(labels, labels[plan.partner], plan.region), paste(mask, mask[plan.partner], plan.region), None
    truth = y_l[plan.partner]
    valid = torch.ones_like(plan.region) if ignore_index is None else truth != ignore_index
    truth = torch.where(valid, truth, torch.zeros_like(truth)).to(labels.dtype)
    return paste(labels, truth, plan.region), mask & ~plan.region, plan.region & valid
