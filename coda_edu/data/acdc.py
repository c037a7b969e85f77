"""ACDC (Automated Cardiac Diagnosis Challenge) in the widely used preprocessed layout.

::

    ROOT/train.list            cases (patientNNN_frameMM), one per line, in a fixed order
    ROOT/val.list, test.list   validation / test cases (test.list may be absent)
    ROOT/train_slices.list     training slices (<case>_slice_<k>); optional, else found on disk
    ROOT/data/slices/<case>_slice_<k>.h5   training slices: image (H, W) float32, label (H, W) uint8
    ROOT/data/<case>.h5        whole volumes (D, H, W) for validation and test
    ROOT/spacing.json          optional sidecar {case: [dz, dy, dx] in mm} (written by data_scripts/acdc.py)

Labels: 0 background, 1 right ventricle (RV), 2 myocardium (MYO), 3 left ventricle (LV).

The labeled subset is chosen **by patient**: ``data.labeled_patients = N`` takes the
first N patients in ``train.list`` order (N = 7 gives the common 136-slice split, 3 gives
68, 14 gives 256), or a seeded random choice (``data.labeled_selection: random``). All
other training slices are unlabeled (their labels are kept only as hidden truth for
diagnostics). Validation and test volumes are evaluated per volume, slice-wise.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, excerpt
from ..io import MB, parse_json, read_small_text, sha256_file
from ..presets import dataset_quick
from ..registry import DATASETS, METHODS, DatasetSpec
from .base import Case, SegmentationData, TrainPool, resize_slices
from .readers import check_disjoint, dataset_root, read_h5, read_list
from .splits import choose_labeled, labeled_count

CLASS_NAMES = ["background", "RV", "MYO", "LV"]
DEFAULT_SIZE = (256, 256)


def patient_of(name: str) -> str:
    """``patient012_frame01_slice_3`` -> ``patient012``."""
    return name.split("_")[0]


def _slice_index(name: str) -> int:
    m = re.search(r"_slice_(\d+)$", name)
    return int(m.group(1)) if m else 0


def training_slices(root: Path, cases: list[str]) -> tuple[list[str], str]:
    """Slice names of the training cases, from train_slices.list (in its order) or from the folder."""
    listed = read_list(root / "train_slices.list", required=False)
    wanted = set(cases)
    if listed is not None:
        names = [n for n in listed if n.rsplit("_slice_", 1)[0] in wanted]
        source = "train_slices.list"
    else:
        names = []
        for case in cases:
            found = sorted((p.stem for p in (root / "data" / "slices").glob(f"{case}_slice_*.h5")), key=_slice_index)
            names.extend(found)
        source = "data/slices/ (no train_slices.list)"
    have = {n.rsplit("_slice_", 1)[0] for n in names}
    missing = [c for c in cases if c not in have]
    if missing:
        raise DataError(
            f"train.list names '{missing[0]}' but '{root / 'data' / 'slices'}' has no slice of it"
            + (f" ({len(missing)} cases missing)" if len(missing) > 1 else "")
        )
    return names, source


SPACING_LIMIT = 16 * MB  # {case: [dz, dy, dx]} for a few hundred cases is a few kB


def load_spacing(root: Path) -> dict[str, tuple[float, ...]]:
    """``spacing.json`` ({case: [dz, dy, dx] in mm}), checked: three finite numbers > 0 per case."""
    path = root / "spacing.json"
    if not path.is_file():
        return {}
    text = read_small_text(path, what="spacing file", limit=SPACING_LIMIT, error=DataError)
    try:
        raw = parse_json(text)
    except ValueError:
        raise DataError(f"file '{path}': not valid JSON; expected an object {{case: [dz, dy, dx]}}") from None
    if not isinstance(raw, dict):
        raise DataError(f"file '{path}': expected a JSON object {{case: [dz, dy, dx]}}, got {type(raw).__name__}")
    spacing = {}
    for case, value in raw.items():
        ok = (
            isinstance(value, list)
            and len(value) == 3
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value)
        )
        if ok:
            value = tuple(float(x) for x in value)
            ok = all(math.isfinite(x) and x > 0 for x in value)
        if not ok:
            raise DataError(
                f"file '{path}': spacing of {excerpt(case)} must be three finite numbers > 0 "
                f"[dz, dy, dx] in mm, got {excerpt(raw[case])}"
            )
        spacing[str(case)] = value
    return spacing


def load_volume_cases(root: Path, names: list[str], list_name: str, spacing: dict) -> list[Case]:
    cases = []
    for name in names:
        path = root / "data" / f"{name}.h5"
        if not path.is_file():
            raise DataError(f"{list_name} names '{name}' but '{path}' does not exist")
        image, label = read_h5(path, len(CLASS_NAMES), image_ndim=3)
        cases.append(Case(name, image[None], label, spacing.get(name)))
    return cases


def split_record(root: Path, list_name: str, names: list[str] | None) -> dict:
    path = root / list_name
    if names is None:
        return {"file": list_name, "available": False}
    return {"file": list_name, "sha256": sha256_file(path), "cases": len(names)}


def labeled_patients_of(cfg, train_cases: list[str]) -> tuple[list[str], list[str]]:
    """(training patients in train.list order, the labeled ones), chosen by patient."""
    patients = list(dict.fromkeys(patient_of(c) for c in train_cases))
    n_lab = labeled_count(cfg, len(patients))
    return patients, choose_labeled(patients, n_lab, cfg.data.labeled_selection, cfg.seed)


def label_shares(root: Path) -> dict[str, float]:
    """Pixel share of each class over all training slices (labels only; used by notebook 01)."""
    import h5py

    counts = np.zeros(len(CLASS_NAMES))
    names, _ = training_slices(root, read_list(root / "train.list"))
    for name in names:
        with h5py.File(root / "data" / "slices" / f"{name}.h5", "r") as fh:
            counts += np.bincount(fh["label"][()].reshape(-1), minlength=len(CLASS_NAMES))[: len(CLASS_NAMES)]
    return dict(zip(CLASS_NAMES, (counts / counts.sum()).tolist()))


@DATASETS.register(
    DatasetSpec(
        "acdc",
        "ACDC cine-MRI (RV, MYO, LV): a 2D network on slices, metrics on each 3D volume",
        spatial_dims=2,
        eval_mode="slices",
        folder="ACDC",
        presets={"cpu": "acdc_cpu.yaml", "paper": "acdc_paper.yaml"},
        quick=dataset_quick("acdc"),
    )
)
def load_acdc(cfg) -> SegmentationData:
    root = dataset_root(cfg.data.root, "ACDC", "ACDC")
    train_cases = read_list(root / "train.list")
    val_names = read_list(root / "val.list")
    test_names = read_list(root / "test.list", required=False)
    check_disjoint(
        {"train.list": train_cases, "val.list": val_names, "test.list": test_names},
        root,
        key=patient_of,
        what="patient",
    )

    patients, labeled_patients = labeled_patients_of(cfg, train_cases)
    n_lab = len(labeled_patients)
    labeled_set = set(labeled_patients)

    slice_names, slice_source = training_slices(root, train_cases)
    size = tuple(cfg.data.image_size) or DEFAULT_SIZE

    def slices():
        for name in slice_names:
            image, label = read_h5(root / "data" / "slices" / f"{name}.h5", len(CLASS_NAMES), image_ndim=2)
            yield image[None], label

    x, y = resize_slices(slices(), len(slice_names), size, cfg.data.crop)
    is_labeled = torch.tensor([patient_of(n) in labeled_set for n in slice_names])
    lab_idx, unl_idx = torch.nonzero(is_labeled).flatten(), torch.nonzero(~is_labeled).flatten()
    if len(unl_idx) == 0 and METHODS.get(cfg.method.name).uses_unlabeled:
        raise DataError(
            f"config key 'data.labeled_patients': all {len(patients)} training patients are labeled, "
            f"so method '{cfg.method.name}' has no unlabeled slices"
        )
    pool_l = TrainPool(x[lab_idx], y[lab_idx], [patient_of(slice_names[i]) for i in lab_idx])
    pool_u = TrainPool(x[unl_idx], y[unl_idx], [patient_of(slice_names[i]) for i in unl_idx])

    spacing = load_spacing(root)
    val = load_volume_cases(root, val_names, "val.list", spacing)
    test = load_volume_cases(root, test_names, "test.list", spacing) if test_names else []
    eval_cases = val + test
    unit = "mm" if eval_cases and all(c.spacing is not None for c in eval_cases) else "voxel"

    protocol = {
        "dataset": "acdc",
        "root": str(root),
        "splits": {
            "train": split_record(root, "train.list", train_cases),
            "val": split_record(root, "val.list", val_names),
            "test": split_record(root, "test.list", test_names),
            "train_slices": slice_source,
        },
        "labeled_cases": labeled_patients,
        "labeled_rule": (
            f"{cfg.data.labeled_selection} {n_lab} of {len(patients)} training patients in train.list order"
        ),
        "labeled_slices": int(len(lab_idx)),
        "unlabeled_slices": int(len(unl_idx)),
        "training_size": list(size),
        "crop": cfg.data.crop,
        "spacing": "spacing.json sidecar"
        if spacing
        else "unknown (the common h5 layout drops it): distances in voxels",
    }
    return SegmentationData(
        name="acdc",
        class_names=CLASS_NAMES,
        in_channels=1,
        spatial_dims=2,
        labeled=pool_l,
        unlabeled=pool_u,
        val=val,
        test=test,
        eval_mode="slices",
        unit=unit,
        crop=cfg.data.crop,
        protocol=protocol,
    )
