"""What every dataset hands to the trainer and the evaluator.

A dataset is loaded once into memory as a :class:`SegmentationData`:

- ``labeled`` and ``unlabeled`` training pools at the training resolution, from which
  the trainer draws batches with tensor indexing only (no per-sample Python);
- ``val`` and ``test`` lists of :class:`Case` at their native resolution (a patient
  volume, or a video frame), evaluated as whole cases;
- the class names, the ignore index, and a ``protocol`` dict that records where the
  splits came from (file names and hashes) and which cases are labeled.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from ..errors import ConfigError, DataError


@dataclass
class Case:
    """One evaluation unit at native resolution.

    ``image``: ``(C, *spatial)`` float32; ``label``: ``(*spatial)`` integer; ``spacing``:
    physical voxel size per spatial axis in mm, or None when unknown (distances are
    then in voxels). ``spatial`` is ``(D, H, W)`` for volumes and ``(H, W)`` for frames.
    """

    case_id: str
    image: np.ndarray
    label: np.ndarray
    spacing: Optional[tuple[float, ...]] = None


def center_crop_box(h: int, w: int, fraction: Optional[float]) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the central ``fraction`` of an ``h x w`` image (whole image if None)."""
    if fraction is None or fraction >= 1.0:
        return 0, h, 0, w
    ch, cw = max(1, int(round(h * fraction))), max(1, int(round(w * fraction)))
    top, left = (h - ch) // 2, (w - cw) // 2
    return top, top + ch, left, left + cw


def resize_slices(
    items: Iterable[tuple[np.ndarray, Optional[np.ndarray]]],
    count: int,
    size: tuple[int, int],
    crop: Optional[float] = None,
    as_uint8: bool = False,
    labeled: bool = True,
):
    """Resize 2D items of any size to one training size (done once, when a dataset is opened).

    ``items`` yields ``(image (C, H, W), label (H, W))`` pairs and is consumed one at a
    time, so only the resized copies are held in memory. Images are resized bilinearly
    (antialiased when shrinking), labels with nearest neighbour; the aspect ratio is not
    kept (evaluation resizes predictions back to each slice's own size). Returns
    ``(images (N, C, *size), labels (N, *size) uint8 or None)``; images as float32, or as
    uint8 (values 0..255) with ``as_uint8``.
    """
    import torch.nn.functional as F

    out_x = out_y = None
    n = 0
    for i, (image, label) in enumerate(items):
        if out_x is None:
            out_x = torch.empty((count, image.shape[0], *size), dtype=torch.uint8 if as_uint8 else torch.float32)
            out_y = torch.empty((count, *size), dtype=torch.uint8) if labeled else None
        top, bottom, left, right = center_crop_box(image.shape[-2], image.shape[-1], crop)
        x = torch.from_numpy(np.ascontiguousarray(image[:, top:bottom, left:right])).float()[None]
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)[0]
        out_x[i] = x.round().clamp(0, 255).to(torch.uint8) if as_uint8 else x
        if out_y is not None:
            y = torch.from_numpy(np.ascontiguousarray(label[top:bottom, left:right]).astype(np.int64))[
                None, None
            ].float()
            out_y[i] = F.interpolate(y, size=size, mode="nearest")[0, 0].to(torch.uint8)
        n += 1
    if n != count:
        raise ValueError(f"expected {count} items, got {n}")
    return out_x, out_y


def indices_on(index: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Indices drawn on the CPU, on ``device``. To CUDA they go through pinned memory without
    blocking: a copy from ordinary (pageable) memory makes the host wait for the GPU's queue,
    a host synchronisation every step."""
    if index.device == device:
        return index
    if device.type == "cuda" and index.device.type == "cpu":  # GPU-only path (not run by the CPU tests)
        return index.pin_memory().to(device, non_blocking=True)
    return index.to(device)


class TrainPool:
    """Equal-sized training images ``(N, C, *size)`` with labels ``(N, *size)`` (or None).

    Images may be stored as uint8 (``scale`` = 1/255) to save memory; :meth:`batch`
    returns float32. :meth:`to` moves the whole pool to the training device once.
    """

    def __init__(self, images: torch.Tensor, labels: Optional[torch.Tensor], ids: list[str], scale: float = 1.0):
        if labels is not None and labels.shape[0] != images.shape[0]:
            raise ValueError("images and labels differ in length")
        self.images = images
        self.labels = labels
        self.ids = ids  # patient/case id of each item (for the protocol and the notebooks)
        self.scale = scale

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def size(self) -> tuple[int, ...]:
        return tuple(self.images.shape[2:])

    def to(self, device: torch.device) -> TrainPool:
        self.images = self.images.to(device)
        if self.labels is not None:
            self.labels = self.labels.to(device)
        return self

    def batch(self, index: torch.Tensor, generator: Optional[torch.Generator] = None):
        """Images (float32) and labels (int64, or None) of the items ``index``."""
        index = indices_on(index, self.images.device)
        x = self.images[index].float()
        if self.scale != 1.0:
            x = x * self.scale
        y = self.labels[index].long() if self.labels is not None else None
        return x, y


class PatchPool(TrainPool):
    """Volumes of different sizes, sampled as random patches of one size.

    The volumes are zero-padded to a common shape (at least the patch size) once; a
    batch picks, per item, a random corner inside that item's own (padded) extent and
    gathers all patches with one advanced-indexing call.
    """

    def __init__(
        self,
        volumes: list[np.ndarray],
        labels: Optional[list[np.ndarray]],
        ids: list[str],
        patch_size: tuple[int, int, int],
        ignore_value: int = 0,
        channels: int = 1,
    ):
        patch = np.array(patch_size)
        shapes = np.array([v.shape[1:] for v in volumes]).reshape(-1, 3)
        full = np.maximum(shapes.max(0), patch) if len(volumes) else patch
        channels = volumes[0].shape[0] if volumes else channels
        images = torch.zeros((len(volumes), channels, *full.tolist()), dtype=torch.float32)
        lab = None if labels is None else torch.full((len(volumes), *full.tolist()), ignore_value, dtype=torch.uint8)
        for i, v in enumerate(volumes):
            d, h, w = v.shape[1:]
            images[i, :, :d, :h, :w] = torch.from_numpy(v)
            if lab is not None:
                lab[i, :d, :h, :w] = torch.from_numpy(labels[i].astype(np.uint8))
        super().__init__(images, lab, ids)
        self.patch_size = tuple(int(p) for p in patch)
        self.extent = torch.from_numpy(np.maximum(shapes, patch))  # (N, 3) sampled region per volume
        self.corners = self.extent - torch.from_numpy(patch) + 1  # (N, 3) number of valid corners per axis

    @property
    def size(self) -> tuple[int, ...]:
        return self.patch_size

    def to(self, device):
        super().to(device)
        self.extent = self.extent.to(device)
        self.corners = self.corners.to(device)
        return self

    def batch(self, index, generator=None):
        device = self.images.device
        index = indices_on(index, device)
        room = self.corners[index]  # (B, 3) number of valid corners per axis
        corner = (torch.rand(room.shape, generator=generator, device=device) * room).long()
        ar = [torch.arange(p, device=device) for p in self.patch_size]
        zi = (corner[:, 0, None] + ar[0])[:, :, None, None]
        yi = (corner[:, 1, None] + ar[1])[:, None, :, None]
        xi = (corner[:, 2, None] + ar[2])[:, None, None, :]
        bi = index[:, None, None, None]
        x = self.images.permute(0, 2, 3, 4, 1)[bi, zi, yi, xi].permute(0, 4, 1, 2, 3).float()
        y = self.labels[bi, zi, yi, xi].long() if self.labels is not None else None
        return x, y


@dataclass
class SegmentationData:
    """A loaded dataset, ready for training and evaluation."""

    name: str
    class_names: list[str]
    in_channels: int
    spatial_dims: int  # 2: the network sees slices/frames; 3: volumes
    labeled: TrainPool
    unlabeled: TrainPool
    val: list[Case]
    test: list[Case]
    eval_mode: str  # "slices" (2D net, volume cases), "frames" (2D net, 2D cases), "volume" (3D)
    ignore_index: Optional[int] = None
    background: bool = True  # class 0 is background: not scored, not part of the "mean" (CaDIS has none)
    unit: str = "voxel"  # unit of HD95/ASD: "mm" when every case has a spacing
    crop: Optional[float] = None  # central fraction kept before resizing (2D slices)
    protocol: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def train_size(self) -> tuple[int, ...]:
        return self.labeled.size

    def summary(self) -> str:
        return (
            f"{self.name}: {len(self.labeled)} labeled + {len(self.unlabeled)} unlabeled training items "
            f"at {'x'.join(map(str, self.train_size))}, {len(self.val)} validation and {len(self.test)} test cases, "
            f"classes {', '.join(self.class_names)}"
        )

    def check_trainable(self, method: str, needs_unlabeled: bool, levels: int, val_hint: str = "") -> None:
        """Refuse, in one line, data that ``method`` cannot train on: an empty labeled set, no unlabeled
        images for a semi-supervised method, no validation case, or a size a U-Net of ``levels`` cannot halve."""
        if len(self.labeled) == 0:
            raise DataError(f"dataset '{self.name}': the labeled training set is empty (check data.labeled_patients)")
        if needs_unlabeled and len(self.unlabeled) == 0:
            raise DataError(
                f"dataset '{self.name}': method '{method}' needs unlabeled images but all training "
                f"patients are labeled (lower data.labeled_patients)"
            )
        if not self.val:
            raise DataError(
                f"dataset '{self.name}': the validation split is empty, so no checkpoint can be selected" + val_hint
            )
        divisor = 2 ** (levels - 1)
        if any(s % divisor for s in self.train_size):
            raise ConfigError(
                f"config key 'data.image_size': {list(self.train_size)} must be divisible by {divisor} "
                f"for a U-Net with {levels} levels"
            )
