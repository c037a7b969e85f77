"""Left atrium (2018 LA Segmentation Challenge, LGE-MRI) in the UA-MT preprocessed layout.

::

    ROOT/train.list, ROOT/test.list            case ids, one per line (test.list may be absent)
    ROOT/2018LA_Seg_Training Set/<ID>/mri_norm2.h5   image (X, Y, Z) float32 z-scored, label (X, Y, Z) 0/1

Volumes are transposed to (Z, Y, X) = (D, H, W) when loaded, so the slice axis comes
first as for every volume in coda-edu. The challenge images have isotropic 0.625 mm
voxels and the UA-MT preprocessing crops without resampling, so distances are in mm.

The labeled subset is the first N cases of ``train.list`` (``data.labeled_patients``;
UA-MT uses 16 of 80 = 20 %), or a seeded random choice. ``data.val_patients`` carves the
last N training cases out as a validation set (the usual protocol has none and reports
on the test list; selecting checkpoints on the test set is what coda-edu avoids).
Training draws random 3D patches (``data.image_size``, default 80 x 112 x 112), and
evaluation uses MONAI's sliding-window inference over whole volumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..config import option
from ..errors import DataError
from ..registry import DATASETS, DatasetSpec
from .acdc import split_record
from .base import Case, PatchPool, SegmentationData
from .readers import check_disjoint, dataset_root, read_h5, read_list
from .splits import choose_labeled, labeled_count

CLASS_NAMES = ["background", "LA"]
DEFAULT_PATCH = (80, 112, 112)
SPACING_MM = (0.625, 0.625, 0.625)
CASE_FOLDER = "2018LA_Seg_Training Set"


def read_case(root: Path, case: str, list_name: str) -> tuple[np.ndarray, np.ndarray]:
    """(image (1, D, H, W), label (D, H, W)) of one case, transposed to (Z, Y, X)."""
    path = root / CASE_FOLDER / case / "mri_norm2.h5"
    if not path.is_file():
        raise DataError(f"{list_name} names '{case}' but '{path}' does not exist")
    image, label = read_h5(path, len(CLASS_NAMES), image_ndim=3)
    return np.ascontiguousarray(image.transpose(2, 1, 0))[None], np.ascontiguousarray(label.transpose(2, 1, 0))


@dataclass
class LAOptions:
    """LA's own ``data.*`` key."""

    val_patients: Optional[int] = option(None, help="LA only: carve this many training cases out as validation", min=1)


@DATASETS.register(
    DatasetSpec(
        "la",
        "left atrium LGE-MRI (UA-MT layout): a 3D network on random patches, sliding-window evaluation",
        spatial_dims=3,
        eval_mode="volume",
        folder="LA",
        presets={"cpu": "la_cpu.yaml", "paper": "la_paper.yaml"},
        check_defaults=("data.val_patients=2",),
        val_hint=" (LA has no validation list: set data.val_patients)",
        options=LAOptions,
    )
)
def load_la(cfg) -> SegmentationData:
    root = dataset_root(cfg.data.root, "LA", "LA")
    train_cases = read_list(root / "train.list")
    test_names = read_list(root / "test.list", required=False)
    check_disjoint({"train.list": train_cases, "test.list": test_names}, root)
    n_val = cfg.data.val_patients or 0
    if n_val >= len(train_cases):
        raise DataError(
            f"config key 'data.val_patients': {n_val} validation cases leave no training case "
            f"(train.list has {len(train_cases)})"
        )
    val_names = train_cases[len(train_cases) - n_val :] if n_val else []
    fit_cases = train_cases[: len(train_cases) - n_val]
    n_lab = labeled_count(cfg, len(fit_cases), "cases")
    labeled = choose_labeled(fit_cases, n_lab, cfg.data.labeled_selection, cfg.seed)
    unlabeled = [c for c in fit_cases if c not in labeled]

    volumes = {c: read_case(root, c, "train.list") for c in fit_cases}
    patch = tuple(cfg.data.image_size) or DEFAULT_PATCH

    def pool(cases: list[str]) -> PatchPool:
        return PatchPool([volumes[c][0] for c in cases], [volumes[c][1] for c in cases], cases, patch)

    val = [Case(c, *read_case(root, c, "train.list"), SPACING_MM) for c in val_names]
    test = [Case(c, *read_case(root, c, "test.list"), SPACING_MM) for c in (test_names or [])]
    protocol = {
        "dataset": "la",
        "root": str(root),
        "splits": {
            "train": split_record(root, "train.list", train_cases),
            "val": {"carved_from": "train.list", "rule": f"last {n_val} cases", "cases": val_names},
            "test": split_record(root, "test.list", test_names),
        },
        "labeled_cases": labeled,
        "labeled_rule": f"{cfg.data.labeled_selection} {n_lab} of {len(fit_cases)} training cases in train.list order",
        "patch_size": list(patch),
        "orientation": "volumes transposed from the file's (X, Y, Z) to (Z, Y, X)",
        "spacing": "isotropic 0.625 mm (LA challenge acquisition; the UA-MT crop does not resample)",
    }
    return SegmentationData(
        name="la",
        class_names=CLASS_NAMES,
        in_channels=1,
        spatial_dims=3,
        labeled=pool(labeled),
        unlabeled=pool(unlabeled),
        val=val,
        test=test,
        eval_mode="volume",
        unit="mm",
        protocol=protocol,
    )
