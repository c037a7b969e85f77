"""A new dataset in one file: importing this module registers ``data.name: toy_discs``.

Small noisy 2D frames holding a bright disc (class 1) and a darker square (class 2), drawn
from the config's seed with the noise of its own key ``data.toy_noise``: enough for the
trainer, validation and the final evaluation to run on it. Nothing in the package is
edited to add it (tests/test_plugins.py installs it, with tests/toy_method.py, as entry
points of a package outside coda_edu and trains both through the ``coda-edu`` command).
"""

from dataclasses import dataclass

import numpy as np
import torch

from coda_edu.config import option
from coda_edu.data.base import Case, SegmentationData, TrainPool
from coda_edu.registry import DATASETS, DatasetSpec

SIZE = 32
CLASS_NAMES = ["background", "disc", "square"]


@dataclass
class ToyDiscsOptions:
    toy_noise: float = option(0.1, help="toy_discs: standard deviation of the frames' Gaussian noise", min=0.0)


def _frame(rng: np.random.Generator, noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """One ``(1, SIZE, SIZE)`` image and its ``(SIZE, SIZE)`` label."""
    yy, xx = np.mgrid[:SIZE, :SIZE]
    label = np.zeros((SIZE, SIZE), dtype=np.uint8)
    cy, cx, r = rng.uniform(9, SIZE - 9, size=2).tolist() + [rng.uniform(4, 7)]
    label[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
    top, left = rng.integers(2, SIZE - 10, size=2)
    square = np.zeros_like(label, dtype=bool)
    square[top : top + 7, left : left + 7] = True
    label[square & (label == 0)] = 2
    image = np.choose(label, [0.1, 0.9, 0.5]) + rng.normal(0.0, noise, size=label.shape)
    return image[None].astype(np.float32), label


@DATASETS.register(
    DatasetSpec(
        "toy_discs",
        "a disc and a square in noisy 32x32 frames (a test dataset)",
        spatial_dims=2,
        eval_mode="frames",
        options=ToyDiscsOptions,
    )
)
def load_toy_discs(cfg) -> SegmentationData:
    rng = np.random.default_rng(cfg.seed)
    frames = [_frame(rng, cfg.data.toy_noise) for _ in range(32)]
    labeled = frames[: cfg.data.labeled_patients or 4]
    unlabeled, val, test = frames[len(labeled) : 24], frames[24:28], frames[28:]

    def pool(items, with_labels: bool, prefix: str) -> TrainPool:
        images = torch.from_numpy(np.stack([x for x, _ in items]))
        labels = torch.from_numpy(np.stack([y for _, y in items])) if with_labels else None
        return TrainPool(images, labels, [f"{prefix}{i}" for i in range(len(items))])

    def cases(items, prefix: str) -> list[Case]:
        return [Case(f"{prefix}{i}", x, y.astype(np.int64)) for i, (x, y) in enumerate(items)]

    return SegmentationData(
        name="toy_discs",
        class_names=list(CLASS_NAMES),
        in_channels=1,
        spatial_dims=2,
        labeled=pool(labeled, True, "labeled"),
        unlabeled=pool(unlabeled, False, "unlabeled"),
        val=cases(val, "val"),
        test=cases(test, "test"),
        eval_mode="frames",
    )
