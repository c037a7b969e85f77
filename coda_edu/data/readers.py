"""Checked readers for the real datasets.

Every reader validates what it reads and raises :class:`~coda_edu.errors.DataError`
with one line naming the file and the problem: unreadable (truncated or corrupt)
files, missing keys, image/label shape mismatch, label values outside the class
range, NaN or infinite intensities. Loaders call them when a dataset is opened, so a
broken file stops the run before training starts, not hours into it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import DataError, excerpt

DATA_ENV = "CODA_EDU_DATA_DIR"


def dataset_root(configured: Optional[str], folder: str, dataset: str) -> Path:
    """``data.root`` if set, else ``$CODA_EDU_DATA_DIR/<folder>``; a clear error when neither exists."""
    if configured:
        root = Path(configured).expanduser()
        if not root.is_dir():
            raise DataError(f"config key 'data.root': folder '{root}' does not exist")
        return root
    base = os.environ.get(DATA_ENV)
    if not base:
        raise DataError(f"{dataset} data not found: set data.root or {DATA_ENV} (see data_scripts/README.md)")
    root = Path(base).expanduser() / folder
    if not root.is_dir():
        raise DataError(f"{dataset} data not found: '{root}' does not exist ({DATA_ENV}={base})")
    return root


def read_list(path: Path, required: bool = True) -> Optional[list[str]]:
    """Non-empty, stripped lines of a split list; None if the optional file is absent.

    Every entry must be a plain case name (no path separators, no ``..``), so a list can
    never make a loader read outside the dataset folder.
    """
    if not path.is_file():
        if required:
            raise DataError(f"split list '{path}' does not exist" + (" (it is a folder)" if path.is_dir() else ""))
        return None
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"split list '{path}' is not UTF-8 text (byte {exc.start} cannot be decoded)") from None
    except PermissionError:
        raise DataError(f"split list '{path}' cannot be read: permission denied") from None
    except OSError as exc:
        raise DataError(f"split list '{path}' cannot be read: {exc.strerror or exc}") from None
    names = []
    for number, line in enumerate(text.splitlines(), 1):
        name = line.strip()
        if not name:
            continue
        if "/" in name or "\\" in name or "\0" in name or name in (".", "..") or Path(name).is_absolute():
            raise DataError(
                f"split list '{path}' line {number}: {excerpt(name)} is not a plain case name (paths such as "
                f"'../x' or '/abs' are refused: every case must stay inside the dataset folder)"
            )
        names.append(name)
    if not names and required:
        raise DataError(f"split list '{path}' is empty")
    return names


def check_disjoint(lists: dict[str, Optional[list[str]]], root: Path, key=None, what: str = "case") -> None:
    """No case (or, with ``key``, no patient) may appear twice in one list or in two split lists.

    ``lists`` maps list file names (relative to ``root``) to their entries (None = absent).
    A case in both the training and the validation list would choose the best checkpoint
    on training data; one in the test list would report training data as test results.
    """
    key = key or (lambda name: name)
    owner: dict[str, str] = {}
    for list_name, names in lists.items():
        seen: set[str] = set()
        for name in names or []:
            if name in seen:
                raise DataError(f"split list '{root / list_name}' names '{name}' twice")
            seen.add(name)
            k = key(name)
            other = owner.get(k)
            if other is not None and other != list_name:
                label = f"{what} '{k}'" + (f" (entry '{name}')" if k != name else "")
                raise DataError(
                    f"{label} is in both {other} and {list_name} of '{root}': the splits must not "
                    f"overlap (training data would be used to select or test checkpoints)"
                )
            owner.setdefault(k, list_name)


def check_pair(
    path: Path,
    image: np.ndarray,
    label: Optional[np.ndarray],
    num_classes: int,
    ignore_values: Iterable[int] = (),
    image_ndim: Optional[int] = None,
) -> None:
    """The checks shared by all formats (shapes, label range, finite intensities)."""
    if image_ndim is not None and image.ndim != image_ndim:
        raise DataError(f"file '{path}': image has {image.ndim} dimensions {image.shape}, expected {image_ndim}")
    if image.size == 0:
        raise DataError(f"file '{path}': image is empty {image.shape}")
    if np.issubdtype(image.dtype, np.floating):
        bad = int((~np.isfinite(image)).sum())
        if bad:
            raise DataError(f"file '{path}': image has {bad} non-finite values (NaN or inf)")
    if label is None:
        return
    spatial = image.shape[-label.ndim :] if image.ndim > label.ndim else image.shape
    if tuple(spatial) != tuple(label.shape):
        raise DataError(f"file '{path}': image shape {image.shape} does not match label shape {label.shape}")
    if not np.issubdtype(label.dtype, np.integer):
        if np.issubdtype(label.dtype, np.floating) and np.all(np.isfinite(label)) and np.all(label == np.round(label)):
            pass
        else:
            raise DataError(f"file '{path}': label must hold integer class ids, got dtype {label.dtype}")
    values = np.unique(label)
    allowed = set(range(num_classes)) | set(ignore_values)
    outside = [int(v) for v in values if int(v) not in allowed]
    if outside:
        shown = ", ".join(map(str, outside[:5])) + (", ..." if len(outside) > 5 else "")
        raise DataError(f"file '{path}': label values {shown} are outside the class range 0..{num_classes - 1}")


def read_h5(
    path: Path, num_classes: int, keys: tuple[str, str] = ("image", "label"), image_ndim: Optional[int] = None
) -> tuple[np.ndarray, np.ndarray]:
    """``image`` (float32) and ``label`` (uint8) of an HDF5 file, checked."""
    import h5py

    _check_readable(path)
    try:
        with h5py.File(path, "r") as fh:
            missing = [k for k in keys if k not in fh]
            if missing:
                raise DataError(
                    f"file '{path}': missing key '{missing[0]}' (has: {', '.join(sorted(fh.keys())) or 'nothing'})"
                )
            image = np.asarray(fh[keys[0]][()])
            label = np.asarray(fh[keys[1]][()])
    except DataError:
        raise
    except Exception as exc:  # h5py raises OSError/KeyError/RuntimeError for broken files
        raise DataError(
            f"file '{path}': not a readable HDF5 file (truncated or corrupt: {type(exc).__name__})"
        ) from None
    check_pair(path, image, label, num_classes, image_ndim=image_ndim)
    return image.astype(np.float32, copy=False), label.astype(np.uint8, copy=False)


def read_png(path: Path, mode: str) -> np.ndarray:
    """A PNG as an array: ``mode="RGB"`` gives (H, W, 3) uint8, ``mode="L"`` gives (H, W) class ids."""
    from PIL import Image, UnidentifiedImageError

    _check_readable(path)
    try:
        with Image.open(path) as img:
            img.load()
            if mode == "L" and img.mode not in ("L", "P", "I", "I;16"):
                raise DataError(f"file '{path}': label PNG must be single-channel (mode L or P), got mode {img.mode}")
            if mode == "RGB" and img.mode not in ("RGB", "RGBA", "L"):
                raise DataError(f"file '{path}': image PNG must be RGB, got mode {img.mode}")
            array = np.asarray(img.convert("RGB") if mode == "RGB" else img)
    except DataError:
        raise
    except Image.DecompressionBombError:
        raise DataError(
            f"file '{path}': the PNG is too large to open safely (decompression-bomb guard, "
            f"over {2 * (Image.MAX_IMAGE_PIXELS or 0)} pixels)"
        ) from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise DataError(f"file '{path}': not a readable PNG (truncated or corrupt: {type(exc).__name__})") from None
    return array


def _check_readable(path: Path) -> None:
    if not path.is_file():
        raise DataError(f"file '{path}' does not exist")
    if not os.access(path, os.R_OK):
        raise DataError(f"file '{path}' cannot be read: permission denied")


def read_nifti(path: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    """Voxel data and voxel spacing (mm) of a NIfTI file, checked."""
    import nibabel as nib

    if not path.is_file():
        raise DataError(f"file '{path}' does not exist")
    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj)
        spacing = tuple(float(z) for z in img.header.get_zooms()[: data.ndim])
    except Exception as exc:
        raise DataError(
            f"file '{path}': not a readable NIfTI file (truncated or corrupt: {type(exc).__name__})"
        ) from None
    if np.issubdtype(data.dtype, np.floating) and not np.all(np.isfinite(data)):
        raise DataError(f"file '{path}': image has {int((~np.isfinite(data)).sum())} non-finite values (NaN or inf)")
    return data, spacing
