"""Batched augmentation on the training device.

All spatial transforms of one item (flip, rot90, small rotation, zoom) are composed
into one affine matrix, and the whole batch is resampled with a single
``grid_sample`` call: bilinear for images, nearest for labels. No per-sample Python
runs on the hot path. For 3D volumes ``(D, H, W)`` the transforms act in the
in-plane ``(H, W)`` axes, the slice axis ``D`` is left alone.

Pixels that a rotation or zoom brings in from outside the image get intensity 0 and
label ``fill_label`` (background, or the ignore index of datasets that have one).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..config import AugmentConfig


def _uniform(n: int, low: float, high: float, generator, device) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, device=device)


def random_inplane_matrices(n: int, cfg: AugmentConfig, generator, device) -> torch.Tensor:
    r"""``(n, 2, 2)`` in-plane matrices :math:`A = R(\theta)\,\mathrm{diag}(s f_x, s f_y)` with random
    flips :math:`f \in \{-1, 1\}`, angle :math:`\theta = k\pi/2 + \delta` and zoom :math:`s`."""
    angle = torch.zeros(n, device=device)
    if cfg.rot90:
        angle = angle + (torch.randint(0, 4, (n,), generator=generator, device=device).float() * (math.pi / 2))
    if cfg.rotate_degrees > 0:
        r = math.radians(cfg.rotate_degrees)
        angle = angle + _uniform(n, -r, r, generator, device)
    scale = (
        _uniform(n, 1 - cfg.scale, 1 + cfg.scale, generator, device) if cfg.scale > 0 else torch.ones(n, device=device)
    )
    if cfg.flip:
        flips = torch.randint(0, 2, (n, 2), generator=generator, device=device).float() * 2 - 1
    else:
        flips = torch.ones(n, 2, device=device)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    return rot * (scale[:, None] * flips)[:, None, :]


def affine_theta(inplane: torch.Tensor, spatial_dims: int) -> torch.Tensor:
    """Embed ``(n, 2, 2)`` in-plane matrices in ``affine_grid``'s ``(n, d, d+1)`` form.

    ``affine_grid`` orders coordinates (x=W, y=H[, z=D]), so the in-plane block is the top-left one.
    """
    n = inplane.shape[0]
    theta = torch.zeros(n, spatial_dims, spatial_dims + 1, device=inplane.device)
    theta[:, :2, :2] = inplane
    if spatial_dims == 3:
        theta[:, 2, 2] = 1.0
    return theta


def apply_affine(
    images: torch.Tensor, labels: torch.Tensor | None, theta: torch.Tensor, fill_label: int = 0
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Resample images (bilinear) and labels (nearest) with the same matrices."""
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if labels is None:
        return out, None
    # Shift labels by one so that the zero padding of grid_sample marks "outside".
    shifted = labels.unsqueeze(1).float() + 1.0
    warped = F.grid_sample(shifted, grid, mode="nearest", padding_mode="zeros", align_corners=False).squeeze(1)
    warped = warped.round().long() - 1
    return out, torch.where(warped < 0, torch.full_like(warped, fill_label), warped)


def intensity_jitter(images: torch.Tensor, strength: float, generator) -> torch.Tensor:
    r"""Per item contrast and brightness: :math:`x' = c\,x + b`,
    :math:`c \sim U(1-s, 1+s)`, :math:`b \sim U(-s/2, s/2)`."""
    n = images.shape[0]
    shape = (n,) + (1,) * (images.ndim - 1)
    contrast = _uniform(n, 1 - strength, 1 + strength, generator, images.device).view(shape)
    brightness = _uniform(n, -strength / 2, strength / 2, generator, images.device).view(shape)
    return images * contrast + brightness


def random_gamma(images: torch.Tensor, strength: float, generator) -> torch.Tensor:
    r"""Per item gamma change of the intensities within the item's range:
    :math:`x' = m + (M - m)\,u^{\gamma}`, :math:`u = (x - m)/(M - m)`, :math:`\log\gamma \sim U(-s, s)`
    (m, M: the item's minimum and maximum)."""
    n = images.shape[0]
    shape = (n,) + (1,) * (images.ndim - 1)
    flat = images.reshape(n, -1)
    low, high = flat.min(1).values.view(shape), flat.max(1).values.view(shape)
    span = (high - low).clamp_min(1e-6)
    gamma = torch.exp(_uniform(n, -strength, strength, generator, images.device)).view(shape)
    return low + span * ((images - low) / span).clamp(0, 1) ** gamma


class Augmenter:
    """Callable ``(images, labels, generator) -> (images, labels)`` for a whole batch."""

    def __init__(self, cfg: AugmentConfig, spatial_dims: int, fill_label: int = 0):
        self.cfg = cfg
        self.spatial_dims = spatial_dims
        self.fill_label = fill_label
        self.spatial = cfg.flip or cfg.rot90 or cfg.rotate_degrees > 0 or cfg.scale > 0

    def __call__(self, images: torch.Tensor, labels: torch.Tensor | None, generator: torch.Generator | None = None):
        if self.spatial:
            inplane = random_inplane_matrices(images.shape[0], self.cfg, generator, images.device)
            images, labels = apply_affine(images, labels, affine_theta(inplane, self.spatial_dims), self.fill_label)
        if self.cfg.gamma > 0:
            images = random_gamma(images, self.cfg.gamma, generator)
        if self.cfg.intensity > 0:
            images = intensity_jitter(images, self.cfg.intensity, generator)
        return images, labels
