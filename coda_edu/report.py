"""Final evaluation of a run folder: eval.json, eval_cases.jsonl, figures and the printed table."""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from .checkpoint import load_checkpoint
from .config import Config
from .data.base import SegmentationData
from .device import Precision, describe
from .errors import RunFolderError
from .evaluate import MODELS, aggregate, evaluate_cases, format_table, predict_case
from .io import atomic_write_json, atomic_write_text, read_jsonl, to_jsonable

CHECKPOINTS = ("last", "best")


def _inference_text(cfg: Config, data: SegmentationData) -> str:
    size = "x".join(map(str, data.train_size))
    crop = f" after keeping the central {data.crop:.0%} of each slice" if data.crop else ""
    if data.eval_mode == "volume":
        return (f"3D sliding window (MONAI, {size} windows, overlap {cfg.eval.overlap}, Gaussian weighting) "
                f"on each whole volume")
    what = "frame" if data.eval_mode == "frames" else "slice"
    return (f"2D {what}-wise: each {what} resized to {size}{crop}, class probabilities resized back (bilinear) "
            f"to the native size; " + ("metrics per frame, IoU/Dice from the split's confusion matrix" if data.eval_mode == "frames"
                                      else "metrics on each 3D volume"))


def build_protocol(cfg: Config, data: SegmentationData, splits: dict, best_step: int, last_step: int) -> dict:
    unit = data.unit
    return {
        "dataset": data.protocol,
        "classes": data.class_names,
        "ignore_index": data.ignore_index,
        "evaluated": {"splits": splits, "checkpoints": list(CHECKPOINTS), "models": list(MODELS)},
        "checkpoint_rule": (f"best = highest validation mean foreground Dice of model '{cfg.eval.select_model}', "
                            f"checked every {cfg.train.val_every} steps (selected at step {best_step}); "
                            f"last = final step {last_step}. The test split is never used for selection."),
        "inference": _inference_text(cfg, data),
        "ensemble": "mean of the softmax probabilities of A and B",
        "aggregation": (("per class: Dice and IoU from the confusion matrix accumulated over the split (mIoU style), "
                         "HD95/ASD mean over frames" if data.eval_mode == "frames" else
                         "per class: mean over cases of the per-case value (NaN excluded and counted)")
                        + "; class 'mean' = mean over the scored classes ("
                        + ("all classes" if not data.background else "background excluded") + ")"),
        "units": {"dice": "fraction", "iou": "fraction", "hd95": unit, "asd": unit, "hd95_pen": unit, "asd_pen": unit},
        "empty_policy": ("Dice/IoU are NaN when prediction and reference are both empty; HD95/ASD are NaN when "
                         "either is empty. NaNs are excluded from means and counted in n_empty_pred, n_empty_ref, "
                         "n_missed (reference present, nothing predicted) and <metric>_n_nan; hd95_pen/asd_pen "
                         "replace the distance of a case where exactly one mask is empty by the image diagonal, so "
                         "a missed structure is penalised instead of dropped; null in this file means NaN."),
        "method": {"name": cfg.method.name, "alignment": cfg.method.alignment, "filter": cfg.method.filter},
    }


def evaluate_run(run_dir: str | Path, cfg: Config, data: SegmentationData, model_a, model_b, device: torch.device,
                 precision: Precision, *, progress: bool = True, train_seconds: float | None = None,
                 log: Callable[[str], None] = print) -> dict:
    """Score the ``last`` and ``best`` checkpoints of a run on its evaluation splits and write the results."""
    run_dir = Path(run_dir)
    started = time.perf_counter()
    splits = {name: getattr(data, name) for name in cfg.eval.splits}
    available = {name: len(cases) for name, cases in splits.items() if cases}
    split_info = {name: (len(cases) if cases else "not available") for name, cases in splits.items()}
    if not available:
        raise RunFolderError(f"nothing to evaluate: the splits {cfg.eval.splits} have no cases for dataset '{data.name}'")
    records, case_rows = [], []
    steps = {}
    for ckpt_name in CHECKPOINTS:
        ckpt = load_checkpoint(run_dir / "checkpoints" / f"{ckpt_name}.pt", map_location=device)
        model_a.load_state_dict(ckpt["model_a"])
        model_b.load_state_dict(ckpt["model_b"])
        steps[ckpt_name] = ckpt["step"]
        for split in available:
            result = evaluate_cases(model_a, model_b, splits[split], data, device, precision,
                                    distances=cfg.eval.distances, batch_size=cfg.eval.batch_size, overlap=cfg.eval.overlap)
            for rec in aggregate(result["cases"], data.class_names, result["confusion"],
                                 from_confusion=data.eval_mode == "frames", background=data.background):
                records.append({"split": split, "checkpoint": ckpt_name, "step": ckpt["step"], **rec})
            for row in result["cases"]:
                case_rows.append({"split": split, "checkpoint": ckpt_name, **row})
    protocol = build_protocol(cfg, data, split_info, steps["best"], steps["last"])
    eval_seconds = time.perf_counter() - started
    result = {
        "protocol": protocol,
        "records": records,
        "timing": {"train_seconds": train_seconds, "eval_seconds": round(eval_seconds, 2)},
        "machine": {"device": describe(device), "precision": precision.name, "torch": torch.__version__,
                    "python": platform.python_version()},
    }
    atomic_write_json(run_dir / "eval.json", result)
    import json

    atomic_write_text(run_dir / "eval_cases.jsonl",
                      "".join(json.dumps(to_jsonable(r), allow_nan=False) + "\n" for r in case_rows))
    write_figures(run_dir, cfg, data, model_a, model_b, device, precision)
    report_split = "test" if "test" in available else next(iter(available))
    for ckpt_name in CHECKPOINTS:
        rows = [r for r in records if r["split"] == report_split and r["checkpoint"] == ckpt_name]
        log(format_table(rows, data.class_names, "dice",
                         title=f"\n{report_split} Dice, checkpoint '{ckpt_name}' (step {steps[ckpt_name]}), {available[report_split]} cases"))
        if cfg.eval.distances:
            log(format_table(rows, data.class_names, "hd95",
                             title=f"{report_split} HD95 ({data.unit}; '(Nm)': N cases missed the structure and have no "
                                   f"distance; penalised by the image diagonal: hd95_pen in eval.json)"))
    log(f"\nresults: {run_dir / 'eval.json'}  figures: {run_dir / 'figures'}")
    return result


def write_figures(run_dir: Path, cfg: Config, data: SegmentationData, model_a, model_b, device, precision) -> None:
    """Learning curves from metrics.jsonl and an overlay of the best checkpoint on a few slices."""
    from .viz.figures import plot_learning_curves, plot_overlay, save_figure

    rows = read_jsonl(run_dir / "metrics.jsonl")
    save_figure(plot_learning_curves(rows, title=f"{cfg.method.name} on {data.name}"), run_dir / "figures" / "learning_curves.png")
    cases = data.test or data.val
    if not cases:
        return
    case = cases[0]
    model_a.eval()
    model_b.eval()
    probs_a, probs_b = predict_case([model_a, model_b], case, data, device, precision, cfg.eval.batch_size, cfg.eval.overlap)
    preds = {"A": probs_a.argmax(0).numpy(), "B": probs_b.argmax(0).numpy(),
             "ensemble": ((probs_a + probs_b) / 2).argmax(0).numpy()}
    image, label = case.image[0], np.asarray(case.label)
    if image.ndim == 2:
        image, label = image[None], label[None]
        preds = {k: v[None] for k, v in preds.items()}
    fg = (label > 0).reshape(label.shape[0], -1).sum(1)
    order = np.argsort(-fg)[: min(4, label.shape[0])]
    order.sort()
    fig = plot_overlay(image[order], label[order], {k: v[order] for k, v in preds.items()}, data.class_names,
                       title=f"{case.case_id} (best checkpoint)", ignore_index=data.ignore_index)
    save_figure(fig, run_dir / "figures" / "overlay.png")


def evaluate_run_dir(run_dir: str | Path, *, device: str | None = None, progress: bool = True,
                     log: Callable[[str], None] = print) -> dict:
    """``coda-edu eval --run DIR``: rebuild data and networks from the run's config and re-score it."""
    import yaml

    from .config import from_dict, resolve
    from .data import load_dataset
    from .device import resolve_device, resolve_precision
    from .models import build_pair

    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise RunFolderError(f"'{run_dir}' is not a run folder (no config.yaml)")
    for name in CHECKPOINTS:
        if not (run_dir / "checkpoints" / f"{name}.pt").is_file():
            raise RunFolderError(f"'{run_dir}' has no checkpoints/{name}.pt (was the run started?)")
    cfg = from_dict(yaml.safe_load(cfg_path.read_text()))
    if device is not None:
        cfg.train.device = device
    cfg = resolve(cfg)
    dev = resolve_device(cfg.train.device)
    precision = resolve_precision(dev, cfg.train.precision)
    data = load_dataset(cfg)
    model_a, model_b = build_pair(cfg, data.in_channels, data.num_classes)
    model_a.to(dev)
    model_b.to(dev)
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt").get("state", {})
    return evaluate_run(run_dir, cfg, data, model_a, model_b, dev, precision, progress=progress,
                        train_seconds=state.get("train_seconds"), log=log)
