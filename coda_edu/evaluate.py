"""Inference on whole cases and the evaluation records of a run.

Inference modes (``SegmentationData.eval_mode``):

- ``slices``: a 2D network on a volume ``(C, D, H, W)``: every slice is (optionally
  centre-cropped,) resized to the training size, predicted, and its class
  probabilities resized back to the native slice size; metrics are computed on the
  whole 3D volume (the ACDC protocol);
- ``frames``: the same for single 2D frames ``(C, H, W)`` (CaDIS);
- ``volume``: a 3D network with MONAI's sliding-window inference (Gaussian-weighted
  windows of the training patch size).

The ensemble of A and B is the mean of their softmax probabilities.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from .data.base import Case, SegmentationData, center_crop_box
from .device import Precision
from .metrics import case_metrics, confusion_matrix, nan_summary, scores_from_confusion
from .postprocess import keep_largest_components

MODELS = ("A", "B", "ensemble")
METRICS = ("dice", "iou", "hd95", "asd", "hd95_pen", "asd_pen")


def class_argmax(probs: torch.Tensor) -> torch.Tensor:
    """The predicted class of every voxel of class probabilities ``(K, *spatial)``: ``probs.argmax(0)``,
    computed over contiguous memory (the class axis last), several times faster on a CPU."""
    return probs.movedim(0, -1).contiguous().argmax(-1)


def _as_float(image: np.ndarray) -> torch.Tensor:
    """Case images are float32, or uint8 RGB frames (scaled to [0, 1])."""
    x = torch.from_numpy(np.ascontiguousarray(image))
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


def _input_dtype(model: torch.nn.Module) -> torch.dtype:
    """The dtype a network takes: its weights' (float64 under ``train.precision: fp64``), else float32."""
    weight = next((p for p in model.parameters() if p.is_floating_point()), None)
    return weight.dtype if weight is not None else torch.float32


@torch.no_grad()
def predict_slices(
    models: list[torch.nn.Module],
    image: np.ndarray,
    train_size: tuple[int, int],
    device: torch.device,
    precision: Precision,
    batch_size: int = 32,
    crop: Optional[float] = None,
) -> list[torch.Tensor]:
    """Class probabilities ``(K, D, H, W)`` (float32, CPU) of each model for a ``(C, D, H, W)`` volume."""
    c, d, h, w = image.shape
    top, bottom, left, right = center_crop_box(h, w, crop)
    x = _as_float(image[:, :, top:bottom, left:right]).permute(1, 0, 2, 3)
    outputs: list[list[torch.Tensor]] = [[] for _ in models]
    for start in range(0, d, batch_size):
        chunk = x[start : start + batch_size].to(device)
        # The same resize as the training pools (data.base.resize_slices): antialiased when shrinking.
        chunk = F.interpolate(chunk, size=train_size, mode="bilinear", align_corners=False, antialias=True)
        for m, model in enumerate(models):
            with precision.autocast():
                logits = model(chunk.to(_input_dtype(model)))
            probs = torch.softmax(logits.float(), dim=1)
            probs = F.interpolate(probs, size=(bottom - top, right - left), mode="bilinear", align_corners=False)
            outputs[m].append(probs.cpu())
    result = []
    for out in outputs:
        probs = torch.cat(out).permute(1, 0, 2, 3)  # (K, D, h, w)
        if (bottom - top, right - left) != (h, w):
            full = torch.zeros((probs.shape[0], d, h, w))
            full[0] = 1.0  # outside the crop: background
            full[:, :, top:bottom, left:right] = probs
            probs = full
        result.append(probs)
    return result


@torch.no_grad()
def predict_volume(
    models: list[torch.nn.Module],
    image: np.ndarray,
    patch_size: tuple[int, int, int],
    device: torch.device,
    precision: Precision,
    batch_size: int = 4,
    overlap: float = 0.5,
) -> list[torch.Tensor]:
    """Sliding-window class probabilities ``(K, D, H, W)`` of each model for a ``(C, D, H, W)`` volume."""
    from monai.inferers import sliding_window_inference

    x = _as_float(image)[None].to(device)
    result = []
    for model in models:

        def predictor(window, model=model):
            with precision.autocast():
                return torch.softmax(model(window.to(_input_dtype(model))).float(), dim=1)

        probs = sliding_window_inference(
            x, roi_size=patch_size, sw_batch_size=batch_size, predictor=predictor, overlap=overlap, mode="gaussian"
        )
        result.append(probs[0].float().cpu())
    return result


def predict_case(
    models: list[torch.nn.Module],
    case: Case,
    data: SegmentationData,
    device: torch.device,
    precision: Precision,
    batch_size: int = 32,
    overlap: float = 0.5,
) -> list[torch.Tensor]:
    """Probabilities of each model for one case, at the case's native size."""
    if data.eval_mode == "volume":
        return predict_volume(models, case.image, data.train_size, device, precision, max(1, batch_size // 8), overlap)
    if data.eval_mode == "frames":
        probs = predict_slices(models, case.image[:, None], data.train_size, device, precision, batch_size, data.crop)
        return [p[:, 0] for p in probs]
    return predict_slices(models, case.image, data.train_size, device, precision, batch_size, data.crop)


def _set_eval(models):
    states = [m.training for m in models]
    for m in models:
        m.eval()
    return states


def _restore(models, states):
    for m, s in zip(models, states):
        m.train(s)


def evaluate_cases(
    model_a: torch.nn.Module,
    model_b: torch.nn.Module,
    cases: list[Case],
    data: SegmentationData,
    device: torch.device,
    precision: Precision,
    distances: bool = True,
    batch_size: int = 32,
    overlap: float = 0.5,
    progress: Optional[Callable] = None,
    postprocess: str = "none",
) -> dict:
    """Metrics of A, B and their ensemble on ``cases`` (after :func:`keep_largest_components` with
    ``postprocess="largest_component"``).

    Returns ``{"cases": [per case x model x class rows], "confusion": {model: (K, K) array}}``.
    """
    states = _set_eval([model_a, model_b])
    rows = []
    k = data.num_classes
    confusion = {m: np.zeros((k, k), dtype=np.int64) for m in MODELS}
    iterator = progress(cases) if progress is not None else cases
    try:
        for case in iterator:
            probs_a, probs_b = predict_case([model_a, model_b], case, data, device, precision, batch_size, overlap)
            preds = {
                "A": class_argmax(probs_a),
                "B": class_argmax(probs_b),
                "ensemble": class_argmax((probs_a + probs_b) / 2),
            }
            if postprocess == "largest_component":
                preds = {
                    name: keep_largest_components(p, k, 0 if data.background else None) for name, p in preds.items()
                }
            ref = torch.from_numpy(np.asarray(case.label).astype(np.int64))
            for name, pred in preds.items():
                confusion[name] += confusion_matrix(pred, ref, k, data.ignore_index).numpy()
                per_class = case_metrics(
                    pred.numpy(),
                    ref.numpy(),
                    data.class_names,
                    case.spacing,
                    distances,
                    data.ignore_index,
                    data.background,
                )
                for cls, values in per_class.items():
                    rows.append({"case": case.case_id, "model": name, "class": cls, **values})
    finally:
        _restore([model_a, model_b], states)
    return {"cases": rows, "confusion": confusion}


def aggregate(
    case_rows: list[dict],
    class_names: list[str],
    confusion: Optional[dict] = None,
    from_confusion: bool = False,
    background: bool = True,
) -> list[dict]:
    """One record per model x scored class (and ``mean`` over the scored classes).

    Volumes: each metric is the mean over cases of the per-case values (NaN excluded
    and counted). Frames (``from_confusion``): Dice and IoU come from the confusion
    matrix accumulated over the split; distances are still per-frame means.
    """
    records = []
    first = 1 if background else 0
    scored = class_names[first:]
    for model in MODELS:
        per_class = {}
        for ci, cls in enumerate(scored, start=first):
            rows = [r for r in case_rows if r["model"] == model and r["class"] == cls]
            rec = {
                "model": model,
                "class": cls,
                "n_cases": len(rows),
                "n_empty_pred": sum(r["empty_pred"] for r in rows),
                "n_empty_ref": sum(r["empty_ref"] for r in rows),
                "n_missed": sum(r.get("missed", False) for r in rows),
            }
            for metric in METRICS:
                s = nan_summary([r.get(metric, float("nan")) for r in rows])
                rec[metric], rec[f"{metric}_std"], rec[f"{metric}_n_nan"] = s["mean"], s["std"], s["n_nan"]
            if from_confusion and confusion is not None:
                scores = scores_from_confusion(confusion[model])
                rec["dice"], rec["iou"] = float(scores["dice"][ci]), float(scores["iou"][ci])
                rec["dice_std"] = rec["iou_std"] = float("nan")
            per_class[cls] = rec
            records.append(rec)
        mean = {
            "model": model,
            "class": "mean",
            "n_cases": max((r["n_cases"] for r in per_class.values()), default=0),
            "n_empty_pred": sum(r["n_empty_pred"] for r in per_class.values()),
            "n_empty_ref": sum(r["n_empty_ref"] for r in per_class.values()),
            "n_missed": sum(r["n_missed"] for r in per_class.values()),
        }
        for metric in METRICS:
            vals = [r[metric] for r in per_class.values()]
            s = nan_summary(vals)
            mean[metric], mean[f"{metric}_std"], mean[f"{metric}_n_nan"] = s["mean"], float("nan"), s["n_nan"]
        records.append(mean)
    return records


def validation_scores(
    model_a, model_b, data: SegmentationData, device, precision, batch_size=32, overlap=0.5, postprocess="none"
) -> dict:
    """Mean foreground Dice of A, B and the ensemble on the validation cases (no distances, fast)."""
    result = evaluate_cases(
        model_a,
        model_b,
        data.val,
        data,
        device,
        precision,
        distances=False,
        batch_size=batch_size,
        overlap=overlap,
        postprocess=postprocess,
    )
    records = aggregate(
        result["cases"],
        data.class_names,
        result["confusion"],
        from_confusion=data.eval_mode == "frames",
        background=data.background,
    )
    out = {}
    for model in MODELS:
        out[model] = {r["class"]: r["dice"] for r in records if r["model"] == model}
    return out


def _cell(record: Optional[dict], metric: str) -> str:
    value = None if record is None else record.get(metric)
    text = "nan" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"
    if metric in ("hd95", "asd") and record is not None and record.get("n_missed"):
        # A missed structure has no distance: say how many cases the mean leaves out.
        text += f" ({record['n_missed']}m)"
    return text


def format_table(records: list[dict], class_names: list[str], metric: str = "dice", title: str = "") -> str:
    """A plain-text table: rows = models, columns = the classes present in ``records`` + mean.

    For ``hd95``/``asd`` a cell ends with ``(Nm)`` when N cases missed the structure (those
    cases have no distance and are not in the mean; ``hd95_pen``/``asd_pen`` count them).
    """
    present = {r["class"] for r in records}
    columns = [c for c in class_names if c in present and c != "mean"] + ["mean"]
    width = max(9 if metric not in ("hd95", "asd") else 13, max(len(c) for c in columns) + 2)
    lines = [title] if title else []
    lines.append(f"{'model':<10}" + "".join(f"{c:>{width}}" for c in columns))
    for model in MODELS:
        cells = []
        for cls in columns:
            record = next((r for r in records if r["model"] == model and r["class"] == cls), None)
            cells.append(f"{_cell(record, metric):>{width}}")
        lines.append(f"{model:<10}" + "".join(cells))
    return "\n".join(lines)
