"""Segmentation metrics with an explicit policy for empty masks.

Per case and class (binary masks P = prediction, G = reference):

- Dice :math:`2|P\\cap G|/(|P|+|G|)` and IoU :math:`|P\\cap G|/|P\\cup G|`; when both masks
  are empty the score is undefined and reported as NaN (one empty mask gives 0, a
  real error);
- HD95 (95th percentile of the symmetric surface distances) and ASD (average
  symmetric surface distance), MONAI's definitions (:func:`surface_distances`), in mm when the voxel spacing is
  known and in voxels otherwise; when either mask is empty the distance is
  undefined and reported as NaN, never as 0;
- because a NaN drops out of a mean, a network that *misses* a structure (empty
  prediction, non-empty reference) would look better than one that finds it badly.
  So every case also gets ``missed`` (reference present, nothing predicted) and the
  *penalised* distances ``hd95_pen`` / ``asd_pen``: equal to HD95/ASD when both masks
  are non-empty, and to the image diagonal (the largest distance possible in that
  image, in the same unit) when exactly one mask is empty; NaN only when both are.

NaNs are excluded from means and *counted* (``n_empty_pred``, ``n_empty_ref``,
``n_missed``), so a table always says how many cases a mean is over. For large 2D splits (CaDIS) the
per-class IoU/Dice come from one confusion matrix accumulated over the split.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import numpy as np
import torch

NAN = float("nan")


def dice_iou(pred: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """Dice and IoU of two boolean masks (NaN, NaN when both are empty)."""
    p, g = int(pred.sum()), int(ref.sum())
    if p + g == 0:
        return NAN, NAN
    inter = int(np.logical_and(pred, ref).sum())
    return 2.0 * inter / (p + g), inter / (p + g - inter)


def surface_voxels(mask: np.ndarray) -> np.ndarray:
    """The surface of a boolean mask: its voxels with a face-neighbour outside it,
    ``mask & ~erosion(mask)`` (the erosion by the face-connected cross; outside the array counts as
    outside the mask)."""
    from scipy.ndimage import binary_erosion

    return mask & ~binary_erosion(mask)


def bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    """The smallest box holding every True voxel of a non-empty boolean mask."""
    box = []
    for axis in range(mask.ndim):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def surface_distances(
    pred: np.ndarray, ref: np.ndarray, spacing: Optional[Sequence[float]] = None
) -> tuple[float, float]:
    r"""HD95 and ASD of two boolean masks (NaN, NaN when either is empty).

    With :math:`S_P, S_G` the surface voxels of the two masks (:func:`surface_voxels`) and
    :math:`d(x, S) = \min_{y \in S} \lVert (x - y) \odot s\rVert` (``s`` the voxel spacing, 1
    when unknown):

    - :math:`\mathrm{HD95} = \max(q_{95}\{d(x, S_G)\}_{x \in S_P},\; q_{95}\{d(y, S_P)\}_{y \in S_G})`,
      with the linearly interpolated 95th percentile;
    - :math:`\mathrm{ASD} = \dfrac{\sum_{x \in S_P} d(x, S_G) + \sum_{y \in S_G} d(y, S_P)}{|S_P| + |S_G|}`.

    These are MONAI's ``compute_hausdorff_distance(percentile=95)`` and
    ``compute_average_surface_distance(symmetric=True)`` (tests/test_metrics.py checks the two agree),
    computed here with SciPy's exact Euclidean distance transform on the bounding box of the two
    masks: every surface voxel lies in that box, so the distances are the same as on the whole
    volume, at a fraction of the cost.
    """
    if not pred.any() or not ref.any():
        return NAN, NAN
    from scipy.ndimage import distance_transform_edt

    box = bounding_box(pred | ref)  # outside it both masks are empty: the surfaces and distances are unchanged
    surface_p, surface_g = surface_voxels(pred[box]), surface_voxels(ref[box])
    sampling = None if spacing is None else [float(v) for v in spacing]
    to_g = distance_transform_edt(~surface_g, sampling=sampling)[surface_p]
    to_p = distance_transform_edt(~surface_p, sampling=sampling)[surface_g]
    hd95 = max(float(np.percentile(to_g, 95)), float(np.percentile(to_p, 95)))
    asd = float((to_g.sum() + to_p.sum()) / (to_g.size + to_p.size))
    return hd95, asd


def image_diagonal(shape: Sequence[int], spacing: Optional[Sequence[float]] = None) -> float:
    r"""Length of the image diagonal, :math:`\sqrt{\sum_d (n_d s_d)^2}` (spacing 1 when unknown):
    the penalty distance for a structure that is missed or predicted where there is none."""
    sizes = np.asarray(shape, dtype=np.float64)
    scale = np.ones_like(sizes) if spacing is None else np.asarray([float(v) for v in spacing], dtype=np.float64)
    return float(np.sqrt(((sizes * scale) ** 2).sum()))


def penalised_distances(
    hd95: float, asd: float, pred_empty: bool, ref_empty: bool, diagonal: float
) -> tuple[float, float]:
    """HD95/ASD with the miss penalty: the diagonal when exactly one mask is empty, NaN when both are."""
    if pred_empty and ref_empty:
        return NAN, NAN
    if pred_empty or ref_empty:
        return diagonal, diagonal
    return hd95, asd


def case_metrics(
    pred: np.ndarray,
    ref: np.ndarray,
    class_names: Sequence[str],
    spacing=None,
    distances: bool = True,
    ignore_index: Optional[int] = None,
    background: bool = True,
) -> dict[str, dict[str, float]]:
    """Per scored class (all but class 0 when it is background): dice, iou, hd95, asd, the
    penalised hd95_pen/asd_pen, and the flags empty_pred, empty_ref, missed.
    ``pred``/``ref``: integer label maps; ignored reference pixels are skipped."""
    valid = None if ignore_index is None else ref != ignore_index
    diagonal = image_diagonal(ref.shape, spacing)
    out = {}
    for c, name in enumerate(class_names):
        if c == 0 and background:
            continue  # background is not scored
        p, g = pred == c, ref == c
        if valid is not None:
            p, g = p & valid, g & valid
        dice, iou = dice_iou(p, g)
        hd95, asd = surface_distances(p, g, spacing) if distances else (NAN, NAN)
        empty_pred, empty_ref = bool(not p.any()), bool(not g.any())
        hd95_pen, asd_pen = penalised_distances(hd95, asd, empty_pred, empty_ref, diagonal) if distances else (NAN, NAN)
        out[name] = {
            "dice": dice,
            "iou": iou,
            "hd95": hd95,
            "asd": asd,
            "hd95_pen": hd95_pen,
            "asd_pen": asd_pen,
            "empty_pred": empty_pred,
            "empty_ref": empty_ref,
            "missed": empty_pred and not empty_ref,
        }
    return out


def confusion_matrix(
    pred: torch.Tensor, ref: torch.Tensor, num_classes: int, ignore_index: Optional[int] = None
) -> torch.Tensor:
    """``(C, C)`` counts, rows = reference class, columns = predicted class (ignored pixels skipped)."""
    pred = pred.reshape(-1).long()
    ref = ref.reshape(-1).long()
    if ignore_index is not None:
        keep = ref != ignore_index
        pred, ref = pred[keep], ref[keep]
    idx = ref * num_classes + pred
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def scores_from_confusion(cm: torch.Tensor | np.ndarray) -> dict[str, np.ndarray]:
    """Per-class IoU and Dice from a confusion matrix (NaN for a class absent from both)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    fp = cm.sum(0) - tp
    fn = cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / (tp + fp + fn)
        dice = 2 * tp / (2 * tp + fp + fn)
    return {"iou": iou, "dice": dice}


def nan_summary(values: Sequence[float]) -> dict[str, float | int]:
    """Mean and standard deviation over the defined values, and how many were NaN."""
    arr = np.asarray(values, dtype=np.float64)
    ok = arr[~np.isnan(arr)]
    return {
        "mean": float(ok.mean()) if ok.size else NAN,
        "std": float(ok.std()) if ok.size else NAN,
        "n": int(ok.size),
        "n_nan": int(arr.size - ok.size),
    }
