"""What the largest-component rule adds: finished runs scored again with it off (evaluation only).

    python benchmarks/postprocess_ablation.py --runs "coda + options=runs/coda_ks_s*" \\
        --runs "supervised=runs/sup_base_s*" [--runs LABEL=GLOB ...] [--out FILE]

Each run folder's ``best`` checkpoint is scored on its validation split with its own config
but ``eval.postprocess: none`` (Dice only); the run's own ``eval_cases.jsonl`` gives the
scores with its rule. Nothing is written into the run folders. Printed per label (ensemble,
mean over the runs, which are paired by their seeds): Dice without the rule, and the paired
difference with - without; then each label against the first one, both without the rule,
with a 95 % bootstrap interval over the validation patients (benchmarks/quality.py's
``paired_bootstrap``). The runs must have been trained with ``eval.postprocess:
largest_component`` (the rule also chose their best checkpoint).
"""

from __future__ import annotations

import argparse
import glob
import json
import statistics
import sys
from pathlib import Path

if __package__ in (None, ""):  # python benchmarks/NAME.py: the checkout's root on the path, for the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import machine, write_results  # noqa: E402
from benchmarks.quality import paired_bootstrap  # noqa: E402
from coda_edu.errors import CodaEduError, ConfigError  # noqa: E402
from coda_edu.run_folder import RunFolder  # noqa: E402


def ensemble_cases(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Per validation case of the best checkpoint: the ensemble's Dice per class and their mean ("mean")."""
    cases: dict[str, dict[str, float]] = {}
    for r in rows:
        if r["split"] == "val" and r["checkpoint"] == "best" and r["model"] == "ensemble":
            cases.setdefault(r["case"], {})[r["class"]] = r["dice"]
    return {case: {**v, "mean": statistics.fmean(v.values())} for case, v in cases.items()}


def without_rule(folder: Path, datasets: dict) -> tuple[int, dict, dict]:
    """(seed, cases with the run's rule, cases with the rule off) of one run folder. ``datasets``
    keeps each dataset loaded once, by its ``data`` config (the runs of a comparison share it)."""
    from coda_edu.config import resolve
    from coda_edu.data import load_dataset
    from coda_edu.device import resolve_device, resolve_precision
    from coda_edu.io import read_jsonl
    from coda_edu.report import evaluate_run
    from coda_edu.run_folder import RunFolder

    run = RunFolder(folder)
    cfg = run.read_config()
    if cfg.eval.postprocess != "largest_component":
        raise ConfigError(f"{folder}: eval.postprocess is '{cfg.eval.postprocess}', not largest_component")
    with_rule = ensemble_cases(read_jsonl(run.eval_cases_path))
    cfg.eval.postprocess, cfg.eval.distances, cfg.eval.splits = "none", False, ["val"]
    cfg = resolve(cfg)
    key = json.dumps(cfg.to_dict()["data"], sort_keys=True)
    if key not in datasets:
        datasets[key] = load_dataset(cfg)
    device = resolve_device("cpu")
    model_a, model_b = run.load_pair("best")
    precision = resolve_precision(device, "fp32")
    evaluation = evaluate_run(run, cfg, datasets[key], model_a, model_b, device, precision, progress=False)
    return cfg.seed, with_rule, ensemble_cases(evaluation["cases"])


def mean_std(values: list[float]) -> str:
    return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def paired_text(diffs: list[float]) -> str:
    """Mean ± std of paired differences and in how many pairs the first side is ahead."""
    if len(diffs) < 2:
        return f"{diffs[0]:+.3f}"
    return f"{statistics.fmean(diffs):+.3f} ± {statistics.stdev(diffs):.3f} ({sum(d > 0 for d in diffs)}/{len(diffs)})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", action="append", required=True, metavar="LABEL=GLOB", help="run folders of one method"
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    groups, datasets = {}, {}
    for spec in args.runs:
        label, _, pattern = spec.partition("=")
        folders = sorted(Path(p) for p in glob.glob(pattern) if RunFolder(p).eval_cases_path.is_file())
        if not label or not folders:
            parser.error(f"--runs {spec!r}: no finished run folder matches")
        groups[label] = {}
        for folder in folders:
            try:
                seed, with_rule, without = without_rule(folder, datasets)
            except CodaEduError as exc:
                parser.error(str(exc))
            groups[label][seed] = {"with": with_rule, "without": without}
            print(f"scored {folder} (seed {seed})", flush=True)

    some_run = next(iter(next(iter(groups.values())).values()))
    classes = list(next(iter(some_run["with"].values())))  # the classes, then "mean"
    results = {"machine": machine(), "rows": []}
    print("\n| (validation, ensemble, best) | " + " | ".join(classes) + " |")
    print("|---" * (len(classes) + 1) + "|")
    scores = {}  # label -> "with"/"without" -> seed -> class -> Dice (mean over the cases)
    for label, runs in groups.items():
        scores[label] = {
            kind: {s: {c: statistics.fmean(v[c] for v in r[kind].values()) for c in classes} for s, r in runs.items()}
            for kind in ("with", "without")
        }
        mine = scores[label]
        row = [f"{label}, without the rule"] + [mean_std([x[c] for x in mine["without"].values()]) for c in classes]
        diff = [f"{label}, with − without"] + [
            paired_text([mine["with"][s][c] - mine["without"][s][c] for s in runs]) for c in classes
        ]
        print("| " + " | ".join(row) + " |\n| " + " | ".join(diff) + " |")
        results["rows"].append({"label": label, "seeds": sorted(runs), **mine})
    first = next(iter(groups))
    for label in list(groups)[1:]:
        a, b = scores[first]["without"], scores[label]["without"]
        seeds = sorted(set(a) & set(b))
        paired = [paired_text([a[s][c] - b[s][c] for s in seeds]) for c in classes]
        print(f"| {first} − {label}, without the rule, paired by seed | " + " | ".join(paired) + " |")
        rows = [{"method": m, "seed": s, "cases": r["without"]} for m in (first, label) for s, r in groups[m].items()]
        interval = paired_bootstrap(rows, first, label)
        cells = [f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}]" for m, lo, hi in (interval[c] for c in classes)]
        print("| the same, 95 % bootstrap over patients | " + " | ".join(cells) + " |")
        results["rows"].append({"label": f"{first} - {label}", "seeds": seeds, "bootstrap_without": interval})
    print(f"\nresults: {write_results('postprocess_ablation', results, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
