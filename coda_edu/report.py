"""Final evaluation of a run folder.

:func:`evaluate_run` scores the ``last`` and ``best`` checkpoints and returns the results
(it writes nothing); the caller writes them with
:meth:`~coda_edu.run_folder.RunFolder.write_results` (eval.json, eval_cases.jsonl), draws
:func:`write_figures` and prints :func:`summary_text`. :func:`evaluate_run_dir` does all of
it for ``coda-edu eval --run DIR``.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .config import Config
from .data.base import SegmentationData
from .device import Precision, describe
from .errors import RunFolderError
from .evaluate import MODELS, aggregate, class_argmax, evaluate_cases, format_table, predict_case
from .progress import progress_bar
from .run_folder import CHECKPOINTS, RunFolder


def _inference_text(cfg: Config, data: SegmentationData) -> str:
    size = "x".join(map(str, data.train_size))
    crop = f" after keeping the central {data.crop:.0%} of each slice" if data.crop else ""
    if data.eval_mode == "volume":
        return (
            f"3D sliding window (MONAI, {size} windows, overlap {cfg.eval.overlap}, Gaussian weighting) "
            f"on each whole volume"
        )
    what = "frame" if data.eval_mode == "frames" else "slice"
    return (
        f"2D {what}-wise: each {what} resized to {size}{crop}, class probabilities resized back (bilinear) "
        f"to the native size; "
        + (
            "metrics per frame, IoU/Dice from the split's confusion matrix"
            if data.eval_mode == "frames"
            else "metrics on each 3D volume"
        )
    )


def build_protocol(cfg: Config, data: SegmentationData, splits: dict, best_step: int, last_step: int) -> dict:
    unit = data.unit
    return {
        "dataset": data.protocol,
        "classes": data.class_names,
        "ignore_index": data.ignore_index,
        "evaluated": {"splits": splits, "checkpoints": list(CHECKPOINTS), "models": list(MODELS)},
        "checkpoint_rule": (
            f"best = highest validation mean foreground Dice of model '{cfg.eval.select_model}', "
            f"checked every {cfg.train.val_every} steps (selected at step {best_step}); "
            f"last = final step {last_step}. The test split is never used for selection."
        ),
        "inference": _inference_text(cfg, data),
        "postprocess": (
            "largest connected foreground component per case, then the largest component of each class inside it"
            if cfg.eval.postprocess == "largest_component"
            else "none"
        ),
        "ensemble": "mean of the softmax probabilities of A and B",
        "aggregation": (
            (
                "per class: Dice and IoU from the confusion matrix accumulated over the split (mIoU style), "
                "HD95/ASD mean over frames"
                if data.eval_mode == "frames"
                else "per class: mean over cases of the per-case value (NaN excluded and counted)"
            )
            + "; class 'mean' = mean over the scored classes ("
            + ("all classes" if not data.background else "background excluded")
            + ")"
        ),
        "units": {"dice": "fraction", "iou": "fraction", "hd95": unit, "asd": unit, "hd95_pen": unit, "asd_pen": unit},
        "empty_policy": (
            "Dice/IoU are NaN when prediction and reference are both empty; HD95/ASD are NaN when "
            "either is empty. NaNs are excluded from means and counted in n_empty_pred, n_empty_ref, "
            "n_missed (reference present, nothing predicted) and <metric>_n_nan; hd95_pen/asd_pen "
            "replace the distance of a case where exactly one mask is empty by the image diagonal, so "
            "a missed structure is penalised instead of dropped; null in this file means NaN."
        ),
        "method": {"name": cfg.method.name, "alignment": cfg.method.alignment, "filter": cfg.method.filter},
    }


def same_weights(checkpoint: dict, weights: dict) -> bool:
    """Whether a checkpoint holds exactly ``weights`` (networks A and B, every tensor equal)."""
    for key, state in weights.items():
        other = checkpoint.get(key)
        if not isinstance(other, dict) or other.keys() != state.keys():
            return False
        for name, tensor in state.items():
            value = other[name]
            if not (
                isinstance(value, torch.Tensor)
                and isinstance(tensor, torch.Tensor)
                and value.shape == tensor.shape
                and value.dtype == tensor.dtype
                and torch.equal(value, tensor)
            ):
                return False
    return True


def evaluate_run(
    run: RunFolder | str | Path,
    cfg: Config,
    data: SegmentationData,
    model_a,
    model_b,
    device: torch.device,
    precision: Precision,
    *,
    progress: bool = True,
    train_seconds: float | None = None,
) -> dict:
    """Score the ``last`` and ``best`` checkpoints of a run on its evaluation splits.

    Returns the contents of eval.json (``protocol``, ``records``, ``timing``, ``machine``)
    plus ``cases``, the per-case rows of eval_cases.jsonl; writes nothing. The networks
    are left holding the ``best`` weights. A checkpoint holding the very weights of one
    already scored (``best`` = ``last`` when the last validation was the best) gets copies
    of its records instead of a second pass over the cases.
    """
    run = run if isinstance(run, RunFolder) else RunFolder(run)
    started = time.perf_counter()
    splits = {name: getattr(data, name) for name in cfg.eval.splits}
    available = {name: len(cases) for name, cases in splits.items() if cases}
    split_info = {name: (len(cases) if cases else "not available") for name, cases in splits.items()}
    if not available:
        raise RunFolderError(
            f"nothing to evaluate: the splits {cfg.eval.splits} have no cases for dataset '{data.name}'"
        )
    bar = progress_bar(
        total=len(CHECKPOINTS) * sum(available.values()), desc="evaluation", enabled=progress, unit="case"
    )

    def counted(cases):
        for case in cases:
            yield case
            bar.update(1)

    records, case_rows, steps = [], [], {}
    scored: list[tuple[str, dict]] = []  # (checkpoint name, its weights) already scored
    try:
        for ckpt_name in CHECKPOINTS:
            ckpt = run.load_networks(ckpt_name, model_a, model_b, map_location=device)
            steps[ckpt_name] = ckpt["step"]
            twin = next((name for name, weights in scored if same_weights(ckpt, weights)), None)
            if twin is not None:  # 'best' is 'last' (the best validation was the last step): copy, don't re-score
                records += [{**r, "checkpoint": ckpt_name} for r in records if r["checkpoint"] == twin]
                case_rows += [{**r, "checkpoint": ckpt_name} for r in case_rows if r["checkpoint"] == twin]
                bar.update(sum(available.values()))
                continue
            scored.append((ckpt_name, {key: ckpt[key] for key in ("model_a", "model_b")}))
            for split in available:
                result = evaluate_cases(
                    model_a,
                    model_b,
                    splits[split],
                    data,
                    device,
                    precision,
                    distances=cfg.eval.distances,
                    batch_size=cfg.eval.batch_size,
                    overlap=cfg.eval.overlap,
                    progress=counted,
                    postprocess=cfg.eval.postprocess,
                )
                for rec in aggregate(
                    result["cases"],
                    data.class_names,
                    result["confusion"],
                    from_confusion=data.eval_mode == "frames",
                    background=data.background,
                ):
                    records.append({"split": split, "checkpoint": ckpt_name, "step": ckpt["step"], **rec})
                for row in result["cases"]:
                    case_rows.append({"split": split, "checkpoint": ckpt_name, **row})
    finally:
        bar.close()
    return {
        "protocol": build_protocol(cfg, data, split_info, steps["best"], steps["last"]),
        "records": records,
        "timing": {"train_seconds": train_seconds, "eval_seconds": round(time.perf_counter() - started, 2)},
        "machine": {
            "device": describe(device),
            "precision": precision.name,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "cases": case_rows,
    }


def summary_text(evaluation: dict, cfg: Config, data: SegmentationData, run_dir: str | Path) -> str:
    """The printed tables: Dice (and HD95) per class of both checkpoints on the test split (else val)."""
    records = evaluation["records"]
    counts = {k: v for k, v in evaluation["protocol"]["evaluated"]["splits"].items() if isinstance(v, int)}
    report_split = "test" if "test" in counts else next(iter(counts))
    lines = []
    for ckpt_name in CHECKPOINTS:
        rows = [r for r in records if r["split"] == report_split and r["checkpoint"] == ckpt_name]
        step = rows[0]["step"] if rows else "?"
        lines.append(
            format_table(
                rows,
                data.class_names,
                "dice",
                title=f"\n{report_split} Dice, checkpoint '{ckpt_name}' (step {step}), {counts[report_split]} cases",
            )
        )
        if cfg.eval.distances:
            lines.append(
                format_table(
                    rows,
                    data.class_names,
                    "hd95",
                    title=f"{report_split} HD95 ({data.unit}; '(Nm)': N cases missed the structure "
                    f"and have no distance; penalised by the image diagonal: hd95_pen in eval.json)",
                )
            )
    run = RunFolder(run_dir)
    lines.append(f"\nresults: {run.eval_path}  figures: {run.figure_path('overlay').parent}")
    return "\n".join(lines)


def write_figures(run_dir: Path, cfg: Config, data: SegmentationData, model_a, model_b, device, precision) -> None:
    """Learning curves from metrics.jsonl and an overlay of the best checkpoint on a few slices."""
    from .viz.figures import plot_learning_curves, plot_overlay, save_figure

    run = RunFolder(run_dir)
    save_figure(
        plot_learning_curves(run.read_metrics(), title=f"{cfg.method.name} on {data.name}"),
        run.figure_path("learning_curves"),
    )
    cases = data.test or data.val
    if not cases:
        return
    case = cases[0]
    model_a.eval()
    model_b.eval()
    probs_a, probs_b = predict_case(
        [model_a, model_b], case, data, device, precision, cfg.eval.batch_size, cfg.eval.overlap
    )
    preds = {
        "A": class_argmax(probs_a).numpy(),
        "B": class_argmax(probs_b).numpy(),
        "ensemble": class_argmax((probs_a + probs_b) / 2).numpy(),
    }
    image, label = case.image[0], np.asarray(case.label)
    if image.ndim == 2:
        image, label = image[None], label[None]
        preds = {k: v[None] for k, v in preds.items()}
    fg = (label > 0).reshape(label.shape[0], -1).sum(1)
    order = np.argsort(-fg)[: min(4, label.shape[0])]
    order.sort()
    fig = plot_overlay(
        image[order],
        label[order],
        {k: v[order] for k, v in preds.items()},
        data.class_names,
        title=f"{case.case_id} (best checkpoint)",
        ignore_index=data.ignore_index,
    )
    save_figure(fig, run.figure_path("overlay"))


def evaluate_run_dir(
    run_dir: str | Path, *, device: str | None = None, progress: bool = True, log: Callable[[str], None] = print
) -> dict:
    """``coda-edu eval --run DIR``: rebuild data and networks from the run's config, re-score it and write
    the results (the caller holds the folder's lock)."""
    from .config import resolve
    from .data import load_dataset
    from .device import resolve_device, resolve_precision
    from .models import build_pair

    run = RunFolder(run_dir)
    cfg = run.config_for_eval()  # refused when config.yaml no longer describes the checkpoints
    if device is not None:
        cfg.train.device = device
    cfg = resolve(cfg)
    dev = resolve_device(cfg.train.device)
    precision = resolve_precision(dev, cfg.train.precision)
    data = load_dataset(cfg)
    model_a, model_b = (m.to(dev) for m in build_pair(cfg, data.in_channels, data.num_classes))  # weights: evaluate_run
    state = run.load_checkpoint("last").get("state")
    seconds = state.get("train_seconds") if isinstance(state, dict) else None
    seconds = float(seconds) if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) else None
    evaluation = evaluate_run(
        run, cfg, data, model_a, model_b, dev, precision, progress=progress, train_seconds=seconds
    )
    run.write_results(evaluation)
    write_figures(run.path, cfg, data, model_a, model_b, dev, precision)
    log(summary_text(evaluation, cfg, data, run.path))
    return evaluation
