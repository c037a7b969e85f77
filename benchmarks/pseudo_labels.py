"""What the filter keeps, per class: pseudo-label diagnostics of the quality runs.

    python benchmarks/pseudo_labels.py --dataset acdc --seeds 5 --method coda --method "alignment only" [--last 0.2]

Reads the run folders that ``benchmarks/quality.py`` keeps
(``benchmarks/results/quality/<dataset>/<method>-seed<k>/metrics.jsonl``) and prints, per
method and class, the mean over seeds (± std) of each run's pseudo-label diagnostics
over its last steps, the two networks averaged (:func:`coda_course.analysis.pseudo_label_summary`):

- ``kept``: the share of the pixels pseudo-labelled k that the filter keeps;
- ``precision`` / ``recall`` of the pseudo-labels before the filter, against the hidden
  truth of the unlabeled images (ACDC and the synthetic phantoms have it);
- ``share / labeled``: the share of pixels pseudo-labelled k over the labeled class
  frequency it is aligned to (below 1: the class is under-counted).

These are training-batch estimates (one batch per diagnostic step), not evaluation
numbers. Runs that are missing are named and skipped. ``--save FILE.json`` keeps the
per-run summaries (a few kB, where the run folders take megabytes) and ``--load FILE.json``
makes the table from them again.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

if __package__ in (None, ""):  # python benchmarks/NAME.py: the checkout's root on the path, for the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import RESULTS, table  # noqa: E402
from benchmarks.quality import run_folder  # noqa: E402
from coda_course.analysis import pseudo_label_summary
from coda_edu.errors import CodaEduError
from coda_edu.io import atomic_write_json, read_json
from coda_edu.run_folder import RunFolder


def run_summary(folder, last_fraction: float) -> tuple[list[str], dict[str, list[float]]] | None:
    """(class names, per-class diagnostics averaged over networks A and B) of one run folder."""
    run = RunFolder(folder)
    if not run.metrics_path.is_file() or not run.eval_path.is_file():
        return None
    classes = run.read_eval()["protocol"]["classes"]
    metrics = run.read_metrics()
    per_net = [pseudo_label_summary(metrics, net, last_fraction) for net in ("A", "B")]
    per_net = [s for s in per_net if s]
    if not per_net:
        return None
    fields = set.intersection(*(set(s) for s in per_net))
    both = {f: [statistics.fmean(s[f][c] for s in per_net) for c in range(len(classes))] for f in fields}
    return classes, both


def fmt(values: list[float]) -> str:
    values = [v for v in values if v is not None and not math.isnan(v)]  # a saved NaN reads back as None
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f}"


def collect(
    dataset: str, methods: list[str], seeds: int, last_fraction: float, root: Path
) -> tuple[dict[str, list[dict]], list[str]]:
    """Per method, the summaries of its finished runs ({seed, classes, summary}); and the missing run folders."""
    found: dict[str, list[dict]] = {}
    missing = []
    for method in methods:
        for seed in range(seeds):
            folder = run_folder(dataset, method, seed, root)
            summary = run_summary(folder, last_fraction)
            if summary is None:
                missing.append(str(folder))
            else:
                found.setdefault(method, []).append({"seed": seed, "classes": summary[0], "summary": summary[1]})
    return found, missing


def tabulate(found: dict[str, list[dict]]) -> list[dict]:
    """Table rows, one per method and class: mean ± std over the runs of each diagnostic."""
    rows = []
    for method, runs in found.items():
        for c, name in enumerate(runs[0]["classes"]):
            summaries = [r["summary"] for r in runs]
            per_seed = {f: [s[f][c] for s in summaries if f in s] for f in ("coverage", "pl_precision", "pl_recall")}
            ratio = [
                s["shares_after"][c] / s["pi_gt"][c]
                for s in summaries
                if {"shares_after", "pi_gt"} <= set(s) and (s["pi_gt"][c] or 0) > 0 and s["shares_after"][c] is not None
            ]
            rows.append(
                {
                    "method": method,
                    "class": name,
                    "n": len(runs),
                    "kept": fmt(per_seed["coverage"]),
                    "precision": fmt(per_seed["pl_precision"]),
                    "recall": fmt(per_seed["pl_recall"]),
                    "share / labeled": fmt(ratio),
                }
            )
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="acdc", help="demo, synthetic or acdc (a folder of --root)")
    ap.add_argument(
        "--method", action="append", dest="methods", help="a method label of quality.py (repeatable; default: coda)"
    )
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--root", type=Path, default=RESULTS / "quality", help="where quality.py keeps its run folders")
    ap.add_argument("--last", type=float, default=0.2, help="average over this last fraction of each run's steps")
    ap.add_argument("--save", type=Path, help="also write the per-run summaries to this JSON file")
    ap.add_argument("--load", type=Path, help="tabulate the per-run summaries of a --save file (no run folders read)")
    args = ap.parse_args(argv)
    if not 0 < args.last <= 1:
        ap.error(f"--last must be in (0, 1], got {args.last}")
    if args.load:
        try:
            saved = read_json(args.load)
            found = saved["runs"]
            last = saved["last_fraction"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"error: {args.load}: not a --save file of pseudo_labels.py ({exc})", file=sys.stderr)
            return 2
        if args.methods:
            found = {m: found[m] for m in args.methods if m in found}
        methods = list(found)
    else:
        methods = args.methods or ["coda"]
        try:
            found, missing = collect(args.dataset, methods, args.seeds, args.last, args.root)
        except CodaEduError as exc:  # a damaged eval.json of a run folder
            print(f"error: {exc}", file=sys.stderr)
            return 2
        for path in missing:
            print(f"skipped (no finished run): {path}", file=sys.stderr)
        last = args.last
    if not found:
        where = f"in {args.load}" if args.load else f"on {args.dataset} in {args.root}"
        print(f"error: no finished run of {', '.join(methods) or 'any method'} {where}", file=sys.stderr)
        return 1
    if args.save:
        atomic_write_json(args.save, {"dataset": args.dataset, "last_fraction": last, "runs": found})
    print(f"pseudo-labels over the last {last:.0%} of the steps, networks A and B averaged, mean ± std over seeds")
    columns = [(k, k, "") for k in ("method", "class", "n", "kept", "precision", "recall", "share / labeled")]
    print(table(tabulate(found), columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
