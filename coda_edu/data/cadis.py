"""CaDIS (Cataract Dataset for Image Segmentation): RGB video frames with 36 class ids.

::

    ROOT/VideoNN/Images/<frame>.png    RGB frames (960 x 540)
    ROOT/VideoNN/Labels/<frame>.png    class ids 0..35 (same file name)
    ROOT/frame_index.csv               optional index of all frames (per-class pixel counts, blacklist flag)

The three tasks of the CaDIS paper group the 36 ids into 8, 17 or 25 classes; ids a
task does not use become the ignore index 255 (skipped by losses and metrics). There
is no background class: every class is scored and mIoU is the mean over all of them,
from one confusion matrix accumulated over the whole split.

Standard video split: validation videos 5, 7, 16; test videos 2, 12, 22; the other
videos (1..25) train. The labeled subset is chosen by video (``data.labeled_patients``
videos, or ``data.labeled_fraction`` of the training videos).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import option
from ..errors import DataError, clip
from ..io import MB, read_small_text
from ..registry import DATASETS, DatasetSpec
from .base import Case, SegmentationData, TrainPool, resize_slices
from .readers import check_pair, dataset_root, read_png
from .splits import choose_labeled, labeled_count

IGNORE = 255
ORIGINAL_CLASSES = [
    "Pupil",
    "Surgical Tape",
    "Hand",
    "Eye Retractors",
    "Iris",
    "Skin",
    "Cornea",
    "Hydrodissection Cannula",
    "Viscoelastic Cannula",
    "Capsulorhexis Cystotome",
    "Rycroft Cannula",
    "Bonn Forceps",
    "Primary Knife",
    "Phacoemulsifier Handpiece",
    "Lens Injector",
    "I/A Handpiece",
    "Secondary Knife",
    "Micromanipulator",
    "I/A Handpiece Handle",
    "Capsulorhexis Forceps",
    "Rycroft Cannula Handle",
    "Phacoemulsifier Handpiece Handle",
    "Capsulorhexis Cystotome Handle",
    "Secondary Knife Handle",
    "Lens Injector Handle",
    "Suture Needle",
    "Needle Holder",
    "Charleux Cannula",
    "Primary Knife Handle",
    "Vitrectomy Handpiece",
    "Mendez Ring",
    "Marker",
    "Hydrodissection Cannula Handle",
    "Troutman Forceps",
    "Cotton",
    "Iris Hooks",
]
_ANATOMY_AND_OTHERS = [(n, [i]) for i, n in enumerate(ORIGINAL_CLASSES[:7])]

#: task -> list of (class name, original ids); ids not listed are ignored (255).
TASKS: dict[int, list[tuple[str, list[int]]]] = {
    1: _ANATOMY_AND_OTHERS + [("Instrument", list(range(7, 36)))],
    2: _ANATOMY_AND_OTHERS
    + [
        ("Cannula", [7, 8, 10, 20, 27, 32]),
        ("Cap. Cystotome", [9, 22]),
        ("Tissue Forceps", [11, 33]),
        ("Primary Knife", [12, 28]),
        ("Ph. Handpiece", [13, 21]),
        ("Lens Injector", [14, 24]),
        ("I/A Handpiece", [15, 18]),
        ("Secondary Knife", [16, 23]),
        ("Micromanipulator", [17]),
        ("Cap. Forceps", [19]),
    ],
    3: [(n, [i]) for i, n in enumerate(ORIGINAL_CLASSES[:25])],
}
VAL_VIDEOS = (5, 7, 16)
TEST_VIDEOS = (2, 12, 22)
ALL_VIDEOS = tuple(range(1, 26))
DEFAULT_SIZE = (272, 480)


def task_classes(task: int) -> list[str]:
    return [name for name, _ in TASKS[task]]


def task_lookup(task: int) -> np.ndarray:
    """A 256-entry table mapping original ids (0..35) to task class ids or 255."""
    table = np.full(256, IGNORE, dtype=np.uint8)
    for new_id, (_, ids) in enumerate(TASKS[task]):
        table[ids] = new_id
    return table


def video_number(folder: str) -> int:
    m = re.fullmatch(r"Video0*(\d+)", folder)
    return int(m.group(1)) if m else -1


def split_of(video: int) -> str:
    if video in VAL_VIDEOS:
        return "val"
    if video in TEST_VIDEOS:
        return "test"
    return "train"


def read_frame(image_path: Path, label_path: Path, lookup: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(image (3, H, W) uint8, task label (H, W) uint8 with 255 = ignore), checked."""
    image = read_png(image_path, "RGB")
    label = read_png(label_path, "L")
    # Label problems (range, shape) are reported with the label file's name: that is the file to fix.
    check_pair(label_path, image.transpose(2, 0, 1), label, len(ORIGINAL_CLASSES))
    return np.ascontiguousarray(image.transpose(2, 0, 1)), lookup[label.astype(np.int64)]


INDEX_LIMIT = 64 * MB  # the published index of all 4,670 frames is about 1 MB


def _index_rows(path: Path) -> list[dict]:
    """The rows of a frame index (CSV), with one-line errors for a file that is not one."""
    text = read_small_text(path, what="frame index", limit=INDEX_LIMIT, error=DataError)
    try:
        return list(csv.DictReader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise DataError(f"frame index '{path}': not a readable CSV file ({clip(str(exc), 80)})") from None


def read_frame_index(root: Path) -> list[dict] | None:
    path = root / "frame_index.csv"
    if not path.is_file():
        return None
    rows = _index_rows(path)
    if rows and "img_path" not in rows[0]:
        raise DataError(f"file '{path}': missing column 'img_path'")
    return rows


def frame_index_class_shares(path: str | Path, task: int = 2, skip_blacklisted: bool = True) -> dict[str, float]:
    """Pixel share of each task class over every frame listed in ``frame_index.csv`` (ignored ids excluded)."""
    path = Path(path)
    counts = np.zeros(len(ORIGINAL_CLASSES))
    for number, row in enumerate(_index_rows(path), 2):
        if skip_blacklisted and row.get("blacklisted", "0") not in ("0", "", "0.0"):
            continue
        try:
            counts += np.array([float(row.get(name, 0) or 0) for name in ORIGINAL_CLASSES])
        except (TypeError, ValueError):
            raise DataError(f"frame index '{path}' line {number}: a pixel count is not a number") from None
    task_counts = np.array([counts[ids].sum() for _, ids in TASKS[task]])
    return dict(zip(task_classes(task), (task_counts / task_counts.sum()).tolist()))


def discover_frames(root: Path, skip_blacklisted: bool) -> tuple[dict[int, list[tuple[Path, Path]]], int]:
    """Frames per video number, and how many blacklisted frames were skipped."""
    videos = sorted(
        (p for p in root.iterdir() if p.is_dir() and video_number(p.name) > 0), key=lambda p: video_number(p.name)
    )
    if not videos:
        raise DataError(f"CaDIS folder '{root}' has no VideoNN/ folders")
    blacklisted: set[str] = set()
    index = read_frame_index(root) if skip_blacklisted else None
    if index:
        blacklisted = {r["img_path"] for r in index if r.get("blacklisted", "0") not in ("0", "", "0.0")}
    frames: dict[int, list[tuple[Path, Path]]] = {}
    skipped = 0
    for video in videos:
        images = sorted((video / "Images").glob("*.png"))
        for image in images:
            if f"{video.name}/Images/{image.name}" in blacklisted:
                skipped += 1
                continue
            label = video / "Labels" / image.name
            if not label.is_file():
                raise DataError(f"frame '{image}' has no label file '{label}'")
            frames.setdefault(video_number(video.name), []).append((image, label))
    return frames, skipped


@dataclass
class CadisOptions:
    """CaDIS's own ``data.*`` key."""

    cadis_task: int = option(2, help="CaDIS class grouping (task I, II or III of the CaDIS paper)", choices=(1, 2, 3))


@DATASETS.register(
    DatasetSpec(
        "cadis",
        "CaDIS cataract-surgery video frames: a 2D network, mIoU from the confusion matrix over frames",
        spatial_dims=2,
        eval_mode="frames",
        folder="CaDIS",
        presets={"cpu": "cadis_cpu.yaml", "paper": "cadis_paper.yaml"},
        options=CadisOptions,
    )
)
def load_cadis(cfg) -> SegmentationData:
    root = dataset_root(cfg.data.root, "CaDIS", "CaDIS")
    task = cfg.data.cadis_task
    lookup = task_lookup(task)
    frames, skipped = discover_frames(root, skip_blacklisted=True)
    train_videos = [v for v in ALL_VIDEOS if split_of(v) == "train" and v in frames]
    if not train_videos:
        raise DataError(f"CaDIS folder '{root}' has no training video (videos {VAL_VIDEOS + TEST_VIDEOS} are val/test)")
    n_lab = labeled_count(cfg, len(train_videos), "videos")
    labeled_videos = choose_labeled(train_videos, n_lab, cfg.data.labeled_selection, cfg.seed)
    size = tuple(cfg.data.image_size) or DEFAULT_SIZE

    def pool(videos: list[int]) -> TrainPool:
        paths = [(v, image, label) for v in videos for image, label in frames[v]]
        if not paths:
            return TrainPool(
                torch.zeros((0, 3, *size), dtype=torch.uint8),
                torch.zeros((0, *size), dtype=torch.uint8),
                [],
                scale=1 / 255,
            )
        items = (read_frame(image, label, lookup) for _, image, label in paths)
        x, y = resize_slices(items, len(paths), size, as_uint8=True)
        return TrainPool(x, y, [f"Video{v:02d}" for v, _, _ in paths], scale=1 / 255)

    def cases(split: str) -> list[Case]:
        out = []
        for v in ALL_VIDEOS:
            if split_of(v) == split and v in frames:
                for image_path, label_path in frames[v]:
                    image, label = read_frame(image_path, label_path, lookup)
                    out.append(Case(f"Video{v:02d}/{image_path.stem}", image, label))
        return out

    protocol = {
        "dataset": "cadis",
        "root": str(root),
        "task": task,
        "class_groups": {name: ids for name, ids in TASKS[task]},
        "ignored_ids": [i for i in range(36) if lookup[i] == IGNORE],
        "splits": {
            "train_videos": train_videos,
            "val_videos": list(VAL_VIDEOS),
            "test_videos": list(TEST_VIDEOS),
            "present": sorted(frames),
        },
        "labeled_cases": [f"Video{v:02d}" for v in labeled_videos],
        "labeled_rule": f"{cfg.data.labeled_selection} {n_lab} of {len(train_videos)} training videos",
        "blacklisted_frames_skipped": skipped,
        "training_size": list(size),
    }
    return SegmentationData(
        name="cadis",
        class_names=task_classes(task),
        in_channels=3,
        spatial_dims=2,
        labeled=pool(labeled_videos),
        unlabeled=pool([v for v in train_videos if v not in labeled_videos]),
        val=cases("val"),
        test=cases("test"),
        eval_mode="frames",
        ignore_index=IGNORE,
        background=False,
        unit="pixel",
        protocol=protocol,
    )
