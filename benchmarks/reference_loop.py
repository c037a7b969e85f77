"""A reference training loop in the straightforward style of the public semi-supervised code.

This is the baseline of ``throughput.py``: the same U-Net, batch (labeled + unlabeled),
resolution and algorithm (the Co-DA step) as coda-edu, written the way the public
reference scripts are:

- a map-style ``Dataset`` whose ``__getitem__`` reads one slice (an ``.h5`` file for ACDC,
  as the reference does, or an in-memory array for the synthetic data) and augments it
  with scipy, one sample at a time: random rot90 + flip or a random rotation
  (``scipy.ndimage.rotate``), then ``scipy.ndimage.zoom`` to the training size;
- a ``DataLoader`` with worker processes and a two-stream batch sampler;
- float32 everywhere, contiguous (not channels-last) tensors, no mixed precision, no
  compilation, one optimiser per network;
- the losses and the Co-DA pieces written inline with plain loops over classes.

It is written for this benchmark (no code is taken from the public repositories) and is
kept numerically equivalent to coda-edu's step where it matters for the cost: the same
network, the same number of forward/backward passes and the same loss terms.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch.utils.data import DataLoader, Dataset, Sampler


class SliceDataset(Dataset):
    """Slices from h5 files (read on every access) or from in-memory arrays; scipy augmentation."""

    def __init__(
        self,
        size: tuple[int, int],
        h5_paths: list[Path] | None = None,
        arrays: tuple[np.ndarray, np.ndarray] | None = None,
        crop: float | None = None,
    ):
        self.size = size
        self.h5_paths = h5_paths
        self.arrays = arrays
        self.crop = crop

    def __len__(self) -> int:
        return len(self.h5_paths) if self.h5_paths is not None else len(self.arrays[0])

    def _read(self, index: int):
        if self.h5_paths is not None:
            import h5py

            with h5py.File(self.h5_paths[index], "r") as fh:
                return fh["image"][()], fh["label"][()]
        return self.arrays[0][index], self.arrays[1][index]

    def __getitem__(self, index: int):
        image, label = self._read(index)
        if self.crop:
            h, w = image.shape
            ch, cw = int(round(h * self.crop)), int(round(w * self.crop))
            top, left = (h - ch) // 2, (w - cw) // 2
            image, label = image[top : top + ch, left : left + cw], label[top : top + ch, left : left + cw]
        if np.random.random() > 0.5:
            k = np.random.randint(0, 4)
            image, label = np.rot90(image, k), np.rot90(label, k)
            axis = np.random.randint(0, 2)
            image, label = np.flip(image, axis).copy(), np.flip(label, axis).copy()
        elif np.random.random() > 0.5:
            angle = np.random.randint(-20, 20)
            image = ndimage.rotate(image, angle, order=0, reshape=False)
            label = ndimage.rotate(label, angle, order=0, reshape=False)
        x, y = image.shape
        image = ndimage.zoom(image, (self.size[0] / x, self.size[1] / y), order=0)
        label = ndimage.zoom(label, (self.size[0] / x, self.size[1] / y), order=0)
        return torch.from_numpy(image.astype(np.float32)).unsqueeze(0), torch.from_numpy(label.astype(np.int64))


class TwoStreamBatchSampler(Sampler):
    """Each batch: ``labeled_bs`` indices from the labeled set, the rest from the unlabeled set."""

    def __init__(self, labeled: list[int], unlabeled: list[int], batch_size: int, labeled_bs: int):
        self.labeled, self.unlabeled = labeled, unlabeled
        self.labeled_bs, self.unlabeled_bs = labeled_bs, batch_size - labeled_bs

    def _forever(self, indices):
        while True:
            yield from np.random.permutation(indices)

    def __iter__(self):
        lab, unl = self._forever(self.labeled), self._forever(self.unlabeled)
        while True:
            yield [
                int(i)
                for i in itertools.chain(
                    itertools.islice(lab, self.labeled_bs), itertools.islice(unl, self.unlabeled_bs)
                )
            ]

    def __len__(self) -> int:
        return 10**9


def dice_loss(probs: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Soft Dice averaged over classes, one class at a time (the reference style)."""
    loss = 0.0
    for c in range(num_classes):
        p = probs[:, c]
        g = (target == c).float()
        intersect = (p * g).sum()
        loss = loss + 1 - (2 * intersect + 1e-5) / (p.sum() + g.sum() + 1e-5)
    return loss / num_classes


class ReferenceCoDA:
    """The reference loop: DataLoader + scipy augmentation + inline Co-DA losses, float32."""

    def __init__(
        self,
        model_a,
        model_b,
        dataset: SliceDataset,
        labeled: list[int],
        unlabeled: list[int],
        batch_size: int,
        labeled_bs: int,
        num_classes: int,
        lr: float = 0.01,
        workers: int = 2,
        device: str = "cpu",
        momentum: float = 0.99,
        lambda_u: float = 1.0,
        seed: int = 0,
    ):
        self.model_a, self.model_b = model_a.to(device), model_b.to(device)
        self.opt_a = torch.optim.SGD(model_a.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
        self.opt_b = torch.optim.SGD(model_b.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
        sampler = TwoStreamBatchSampler(labeled, unlabeled, batch_size, labeled_bs)
        self.loader = DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=workers,
            pin_memory=device != "cpu",
            persistent_workers=workers > 0,
            worker_init_fn=lambda w: np.random.seed(seed + w),
        )
        self.batches = iter(self.loader)
        self.labeled_bs, self.num_classes, self.device = labeled_bs, num_classes, device
        self.momentum, self.lambda_u = momentum, lambda_u
        self.pi = {"A": [None, None], "B": [None, None]}

    def _pseudo(self, key: str, soft: torch.Tensor):
        lbs = self.labeled_bs
        with torch.no_grad():
            marg_l, marg_u = soft[:lbs].mean(dim=(0, 2, 3)), soft[lbs:].mean(dim=(0, 2, 3))
            pi_l, pi_u = self.pi[key]
            pi_l = marg_l if pi_l is None else self.momentum * pi_l + (1 - self.momentum) * marg_l
            pi_u = marg_u if pi_u is None else self.momentum * pi_u + (1 - self.momentum) * marg_u
            self.pi[key] = [pi_l, pi_u]
            aligned = soft[lbs:] * ((pi_l + 1e-6) / (pi_u + 1e-6)).view(1, -1, 1, 1)
            aligned = aligned / aligned.sum(dim=1, keepdim=True)
            conf, label = aligned.max(dim=1)
            mask = torch.zeros_like(conf, dtype=torch.bool)
            for c in range(self.num_classes):
                sel = label == c
                if sel.any():
                    mask |= sel & (conf >= conf[sel].mean() - 1e-6)
        return label, mask

    def step(self) -> float:
        images, labels = next(self.batches)
        images, labels = images.to(self.device), labels.to(self.device)
        lbs = self.labeled_bs
        out_a, out_b = self.model_a(images), self.model_b(images)
        soft_a, soft_b = torch.softmax(out_a, dim=1), torch.softmax(out_b, dim=1)
        sup_a = 0.5 * (
            F.cross_entropy(out_a[:lbs], labels[:lbs]) + dice_loss(soft_a[:lbs], labels[:lbs], self.num_classes)
        )
        sup_b = 0.5 * (
            F.cross_entropy(out_b[:lbs], labels[:lbs]) + dice_loss(soft_b[:lbs], labels[:lbs], self.num_classes)
        )
        label_a, mask_a = self._pseudo("A", soft_a.detach())
        label_b, mask_b = self._pseudo("B", soft_b.detach())
        oece_a = (F.cross_entropy(out_a[lbs:], label_b, reduction="none") * mask_b).mean()
        oece_b = (F.cross_entropy(out_b[lbs:], label_a, reduction="none") * mask_a).mean()
        loss = sup_a + sup_b + self.lambda_u * (oece_a + oece_b)
        self.opt_a.zero_grad()
        self.opt_b.zero_grad()
        loss.backward()
        self.opt_a.step()
        self.opt_b.step()
        return float(loss.item())
