"""Analysis helpers for the notebooks and benchmarks: predictions on a pool, pseudo-label
quality against the hidden truth, filter comparisons, and collecting run folders.

Everything here reuses the method's pure functions (:mod:`coda_edu.method`); nothing
new is computed about the method itself.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from coda_edu.data.base import TrainPool
from coda_edu.method.alignment import pseudo_labels
from coda_edu.method.filtering import class_expectations, fixed_threshold_mask, over_expectation_mask


@torch.no_grad()
def predict_pool(
    model: torch.nn.Module,
    pool: TrainPool,
    device: torch.device | str = "cpu",
    batch_size: int = 64,
    limit: Optional[int] = None,
) -> torch.Tensor:
    """Softmax probabilities ``(N, C, *size)`` (CPU, float32) of ``model`` on the items of a training pool."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    n = len(pool) if limit is None else min(limit, len(pool))
    out = []
    for start in range(0, n, batch_size):
        index = torch.arange(start, min(start + batch_size, n))
        x, _ = pool.batch(index)
        out.append(torch.softmax(model(x.to(device)).float(), dim=1).cpu())
    model.train(was_training)
    return torch.cat(out)


def per_class_quality(
    labels: torch.Tensor, truth: torch.Tensor, num_classes: int, mask: Optional[torch.Tensor] = None
) -> dict[str, np.ndarray]:
    """Per pseudo-class k: ``share`` of pixels assigned to k, ``coverage`` (kept / assigned),
    ``precision`` of the kept pixels (kept and correct / kept) and ``recall`` (kept and
    correct / truly k). NaN where a denominator is zero."""
    labels, truth = labels.reshape(-1).long(), truth.reshape(-1).long()
    keep = torch.ones_like(labels, dtype=torch.bool) if mask is None else mask.reshape(-1)
    correct = labels == truth

    def count(sel):
        return torch.bincount(labels[sel], minlength=num_classes)[:num_classes].double().numpy()

    assigned = count(torch.ones_like(keep))
    kept = count(keep)
    kept_correct = count(keep & correct)
    truly = torch.bincount(truth, minlength=num_classes)[:num_classes].double().numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "share": assigned / max(assigned.sum(), 1),
            "coverage": kept / assigned,
            "precision": kept_correct / kept,
            "recall": kept_correct / truly,
        }


def filter_masks(probs: torch.Tensor, threshold: float = 0.95) -> dict[str, torch.Tensor]:
    """The three filters on the same probabilities: ``none``, ``fixed`` (q >= threshold), ``over_expectation``."""
    confidence, labels = pseudo_labels(probs)
    expectations = class_expectations(confidence, labels, probs.shape[1])
    return {
        "none": torch.ones_like(labels, dtype=torch.bool),
        "fixed": fixed_threshold_mask(confidence, threshold),
        "over_expectation": over_expectation_mask(confidence, labels, expectations),
    }


def compare_filters(
    probs: torch.Tensor, truth: torch.Tensor, class_names: list[str], threshold: float = 0.95
) -> list[dict]:
    """Rows (filter, class, coverage, precision, recall) for the three filters."""
    _, labels = pseudo_labels(probs)
    rows = []
    for name, mask in filter_masks(probs, threshold).items():
        q = per_class_quality(labels, truth, len(class_names), mask)
        for c, cls in enumerate(class_names):
            rows.append(
                {
                    "filter": name,
                    "class": cls,
                    "coverage": float(q["coverage"][c]),
                    "precision": float(q["precision"][c]),
                    "recall": float(q["recall"][c]),
                }
            )
    return rows


def ema_trace(values: torch.Tensor, momentum: float) -> torch.Tensor:
    """The EMA of a sequence of marginals ``(T, C)``, started at the first value (as in training)."""
    out = torch.empty_like(values, dtype=torch.float32)
    running = values[0].float()
    for t, v in enumerate(values):
        running = running if t == 0 else momentum * running + (1 - momentum) * v.float()
        out[t] = running
    return out


# --------------------------------------------------------------------------- run folders
SCRATCH = "scratch"  # notebooks 01-03 train their illustration runs below a folder of this name


def scratch_run_dir(name: str, root: str | Path = "runs") -> Path:
    """A new folder name for one illustration run of a notebook: ``runs/scratch/<name>-<time>``.

    New at every call (to the microsecond), so running the notebook's cells again in the
    same kernel trains a fresh run instead of meeting the previous one's folder."""
    from datetime import datetime

    return Path(root) / SCRATCH / f"{name}-{datetime.now():%Y%m%d-%H%M%S-%f}"


def find_runs(runs_dir: str | Path) -> list[Path]:
    """Run folders (holding eval.json and config.yaml) anywhere below ``runs_dir``, except those
    below a ``scratch`` folder (the notebooks' illustration runs are not experiments to compare)."""
    from coda_edu.run_folder import RunFolder

    return [run.path for run in RunFolder.find(runs_dir, skip=SCRATCH)]


def method_label(method: dict) -> str:
    """A run's method as tables name it: ``method.name``, with ``[alignment,filter]`` when a method that
    makes pseudo-labels runs another alignment reading or filter than its own defaults."""
    from coda_edu.registry import METHODS

    name = method["name"]
    if name not in METHODS.names():
        return name
    spec = METHODS.get(name)
    chosen = (method.get("alignment") or spec.alignment, method.get("filter") or spec.filter)
    if spec.pseudo_labels and chosen != (spec.alignment, spec.filter):
        return f"{name}[{chosen[0]},{chosen[1]}]"
    return name


def collect_runs(runs_dir: str | Path) -> list[dict]:
    """One row per run x record, with the run's method, dataset, labeled amount and seed (a damaged
    config.yaml or eval.json is a one-line :class:`~coda_edu.errors.RunFolderError`)."""
    from coda_edu.run_folder import RunFolder

    rows = []
    for run in find_runs(runs_dir):
        cfg = RunFolder(run).read_config().to_dict()
        data = cfg["data"]
        labeled = data["labeled_patients"] if data.get("labeled_fraction") is None else data["labeled_fraction"]
        ev = RunFolder(run).read_eval()
        variant = method_label(cfg["method"])
        for rec in (r for r in ev["records"] if isinstance(r, dict)):
            rows.append(
                {
                    "run": run.name,
                    "path": str(run),
                    "method": variant,
                    "dataset": data["name"],
                    "labeled": labeled,
                    "seed": cfg["seed"],
                    **rec,
                }
            )
    return rows


def summarize(
    rows: list[dict],
    by: Iterable[str] = ("method", "labeled"),
    metric: str = "dice",
    split: str = "test",
    checkpoint: str = "best",
    model: str = "ensemble",
    cls: str = "mean",
) -> list[dict]:
    """Mean and sample standard deviation of ``metric`` over seeds (and other runs) per group.

    ``std`` is None for a group of one run: one seed measures no spread (print it as n/a)."""
    by = list(by)
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        if r["split"] != split or r["checkpoint"] != checkpoint or r["model"] != model or r["class"] != cls:
            continue
        value = r.get(metric)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        groups.setdefault(tuple(r[k] for k in by), []).append(float(value))
    out = []
    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        values = np.array(groups[key])
        out.append(
            {
                **dict(zip(by, key)),
                "mean": float(values.mean()),
                "std": float(values.std(ddof=1)) if len(values) > 1 else None,
                "n": len(values),
            }
        )
    return out


def std_text(std: Optional[float], digits: int = 3) -> str:
    """A standard deviation for a table: ``n/a`` where there is none (one seed), never ``0.000``."""
    return "n/a" if std is None or not math.isfinite(std) else f"{std:.{digits}f}"


def split_confusion_and_marginals(model_a, model_b, data, cases=None, device="cpu", model: str = "ensemble"):
    """Over the cases of a split (default: test, else validation): the pixel confusion matrix of
    ``model`` ("A", "B" or "ensemble"), its predicted class marginal (mean softmax) and the true
    class frequencies."""
    from coda_edu.device import resolve_precision
    from coda_edu.evaluate import class_argmax, predict_case
    from coda_edu.metrics import confusion_matrix

    device = torch.device(device)
    precision = resolve_precision(device, "fp32")
    cases = cases if cases is not None else (data.test or data.val)
    k = data.num_classes
    cm = torch.zeros(k, k, dtype=torch.long)
    prob_sum, true_count, n = torch.zeros(k, dtype=torch.float64), torch.zeros(k, dtype=torch.float64), 0
    for m in (model_a, model_b):
        m.eval()
    for case in cases:
        pa, pb = predict_case([model_a, model_b], case, data, device, precision)
        probs = {"A": pa, "B": pb, "ensemble": (pa + pb) / 2}[model]
        ref = torch.from_numpy(np.asarray(case.label).astype(np.int64))
        cm += confusion_matrix(class_argmax(probs), ref, k, data.ignore_index)
        prob_sum += probs.reshape(k, -1).sum(1).double()
        valid = ref if data.ignore_index is None else ref[ref != data.ignore_index]
        true_count += torch.bincount(valid.reshape(-1), minlength=k)[:k].double()
        n += probs[0].numel()
    return cm.numpy(), (prob_sum / n).numpy(), (true_count / true_count.sum()).numpy()


# --------------------------------------------------------------------------- class shares against a target
def share_gap(shares: Iterable[float], target: Iterable[float]) -> float:
    """Total-variation gap between two class distributions, ½ Σ_c |s(c) − t(c)|: the smallest
    share of pixels whose label would have to change for the shares ``s`` to equal ``t``."""
    s, t = np.asarray(list(shares), dtype=float), np.asarray(list(target), dtype=float)
    return float(np.abs(s - t).sum() / 2)


def reading_shares(
    probs_u: torch.Tensor,
    probs_l: torch.Tensor,
    labels_l: torch.Tensor,
    readings: Iterable[str],
    alpha: float = 1.0,
) -> dict[str, np.ndarray]:
    """Pseudo-label class shares (argmax counts / pixels) of ``probs_u`` after each alignment
    reading, with pool-wide statistics (:func:`coda_course.bias.align_pool`); ``none`` is before."""
    from coda_edu.method.alignment import class_shares

    from .bias import align_pool

    k = probs_u.shape[1]
    out = {}
    for reading in readings:
        aligned = align_pool(reading, probs_u, probs_l, labels_l, alpha)
        out[reading] = class_shares(aligned.argmax(1), k).double().numpy()
    return out


def over_under(class_names: Iterable[str], shares: Iterable[float], target: Iterable[float]) -> list[str]:
    """One phrase per class: ``"RV 1.52x (over)"``, ratio of ``shares`` to ``target`` (n/a for a zero target)."""
    out = []
    for name, s, t in zip(class_names, shares, target):
        if t <= 0:
            out.append(f"{name} n/a")
            continue
        ratio = float(s) / float(t)
        out.append(f"{name} {ratio:.2f}x ({'over' if ratio > 1 else 'under' if ratio < 1 else 'on target'})")
    return out


PSEUDO_LABEL_FIELDS = ("coverage", "pl_precision", "pl_recall", "shares_after", "pi_gt")


def pseudo_label_summary(metrics: Iterable[dict], network: str, last_fraction: float = 0.2) -> dict[str, list[float]]:
    """Per class, the mean of a run's pseudo-label diagnostics over its last steps.

    ``metrics`` are the rows of a run's ``metrics.jsonl``; the training rows that carry
    diagnostics of ``network`` ("A" or "B") and whose step is in the last
    ``last_fraction`` of the run, s > (1 - last_fraction) * last step, are averaged per
    class, ignoring NaN (a class absent from a batch):

    - ``coverage``: kept / assigned, the share of the pixels pseudo-labelled k that the
      filter keeps (1 without a filter);
    - ``pl_precision``, ``pl_recall``: of the (aligned) pseudo-labels before the filter,
      against the hidden truth of the unlabeled images (where it exists);
    - ``shares_after``: the share of pixels pseudo-labelled k; ``pi_gt``: the labeled
      class frequencies they are compared with.

    A field missing from the rows (no hidden truth, or an older run) is left out.
    """
    if not 0 < last_fraction <= 1:
        raise ValueError(f"last_fraction must be in (0, 1], got {last_fraction}")
    rows = [r for r in metrics if r.get("kind") == "train" and f"coverage_{network}" in r]
    if not rows:
        return {}
    last = max(r["step"] for r in rows)
    rows = [r for r in rows if r["step"] > (1 - last_fraction) * last] or rows[-1:]
    out = {}
    for field in PSEUDO_LABEL_FIELDS:
        values = [r[f"{field}_{network}"] for r in rows if r.get(f"{field}_{network}") is not None]
        if values:
            with warnings.catch_warnings():  # a class absent from every batch stays NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                out[field] = [float(v) for v in np.nanmean(np.asarray(values, dtype=float), axis=0)]
    return out


def late_mean(steps: list[int], values: list[float], last_fraction: float = 0.2) -> float:
    """The mean of a logged curve over its last ``last_fraction`` of steps (NaN ignored)."""
    last = max(steps)
    late = [v for s, v in zip(steps, values) if s > (1 - last_fraction) * last] or values[-1:]
    return float(np.nanmean(np.asarray(late, dtype=float)))


def paired(
    rows: list[dict],
    method: str,
    baseline: str,
    cls: str,
    split: str,
    checkpoint: str = "best",
    model: str = "ensemble",
) -> dict[str, Any]:
    """Per seed ``method`` − ``baseline`` of ``cls``'s Dice, over the seeds both have: the
    differences, their mean, their sample std (None for fewer than two seeds) and how many are > 0."""

    def by_seed(m):
        return {
            r["seed"]: r["dice"]
            for r in rows
            if r["method"] == m
            and r["split"] == split
            and r["checkpoint"] == checkpoint
            and r["model"] == model
            and r["class"] == cls
            and r.get("dice") is not None
            and not math.isnan(r["dice"])
        }

    a, b = by_seed(method), by_seed(baseline)
    seeds = sorted(set(a) & set(b))
    diffs = [a[s] - b[s] for s in seeds]
    n = len(diffs)
    mean = sum(diffs) / n if n else None
    std = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1)) if n > 1 else None
    return {"seeds": seeds, "diffs": diffs, "mean": mean, "std": std, "n": n, "positive": sum(d > 0 for d in diffs)}
