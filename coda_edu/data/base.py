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

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch


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


class TrainPool:
    """Equal-sized training images ``(N, C, *size)`` with labels ``(N, *size)`` (or None).

    Images may be stored as uint8 (``scale`` = 1/255) to save memory; :meth:`batch`
    returns float32. :meth:`to` moves the whole pool to the training device once.
    """

    def __init__(self, images: torch.Tensor, labels: Optional[torch.Tensor], ids: list[str],
                 scale: float = 1.0):
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

    def to(self, device: torch.device) -> "TrainPool":
        self.images = self.images.to(device)
        if self.labels is not None:
            self.labels = self.labels.to(device)
        return self

    def batch(self, index: torch.Tensor, generator: Optional[torch.Generator] = None):
        """Images (float32) and labels (int64, or None) of the items ``index``."""
        index = index.to(self.images.device)
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

    def __init__(self, volumes: list[np.ndarray], labels: Optional[list[np.ndarray]], ids: list[str],
                 patch_size: tuple[int, int, int], ignore_value: int = 0):
        shapes = np.array([v.shape[1:] for v in volumes])
        patch = np.array(patch_size)
        full = np.maximum(shapes.max(0), patch)
        channels = volumes[0].shape[0]
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

    @property
    def size(self) -> tuple[int, ...]:
        return self.patch_size

    def to(self, device):
        super().to(device)
        self.extent = self.extent.to(device)
        return self

    def batch(self, index, generator=None):
        device = self.images.device
        index = index.to(device)
        patch = torch.tensor(self.patch_size, device=device)
        room = self.extent[index] - patch + 1  # (B, 3) number of valid corners per axis
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
    spatial_dims: int            # 2: the network sees slices/frames; 3: volumes
    labeled: TrainPool
    unlabeled: TrainPool
    val: list[Case]
    test: list[Case]
    eval_mode: str               # "slices" (2D net, volume cases), "frames" (2D net, 2D cases), "volume" (3D)
    ignore_index: Optional[int] = None
    unit: str = "voxel"          # unit of HD95/ASD: "mm" when every case has a spacing
    crop: Optional[float] = None  # central fraction kept before resizing (2D slices)
    protocol: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def train_size(self) -> tuple[int, ...]:
        return self.labeled.size

    def summary(self) -> str:
        return (f"{self.name}: {len(self.labeled)} labeled + {len(self.unlabeled)} unlabeled training items "
                f"at {'x'.join(map(str, self.train_size))}, {len(self.val)} validation and {len(self.test)} test cases, "
                f"classes {', '.join(self.class_names)}")
