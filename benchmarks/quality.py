"""Segmentation quality of the methods and ablations, at equal iterations, over seeds.

    python benchmarks/quality.py [--quick] [--seeds 5] [--datasets demo,synthetic,acdc] [--out FILE]
                                 [--devices cuda:0,cuda:1,...] [--rows FILE.jsonl]

Methods: supervised, CPS, mean teacher, Co-DA (with each alignment reading), and the
ablations "alignment only" (Co-DA without the filter) and "filter only" (Co-DA without
alignment), all trained by the same loop with the same data, steps and schedule. For
each method and dataset the table gives the mean and standard deviation over seeds of
the per-class and mean Dice of the ensemble at the ``best`` checkpoint (chosen on
validation data), the differences to CPS and to supervised paired by seed, and a
*pair* table: validation Dice of A and B, their gap, and in how many seeds the
ensemble reaches the better network - 0.01. Datasets:

- ``demo``: the default experiment (``coda-edu train``), reported on the synthetic
  **test** patients;
- ``synthetic``: the minority regime (``configs/synthetic_minority.yaml``), where
  supervised and CPS training under-predict the RV on the unlabeled images; reported on
  the synthetic **test** patients, plus a *bias* table: per network, the RV's argmax
  share on the unlabeled pool against its true share (hidden truth), at the ``best``
  checkpoint; each seed draws its own phantoms and initialisation;
- ``acdc``: the plain CPU preset (``configs/acdc_cpu_plain.yaml``, 7 labeled patients), reported on
  the 10 **validation** patients (the test patients are not in the development subset;
  the validation volumes both select the checkpoint and report, which the table says).

With ``--devices`` the runs are queued over the devices, one run per device at a time,
each in its own process (:mod:`coda_course.sweep_devices`); a failed run is reported in one
line and the script exits with status 1 after writing the others' results. With
``--rows FILE.jsonl`` each run's row is saved the moment the run ends, and a second call
with the same file runs only what is missing (an interrupted or time-limited sweep, e.g.
inside a short GPU lease, keeps every finished run).

Nothing is ever selected on test data. Run folders are kept in
``benchmarks/results/quality/`` so notebook 05 can draw them
(``coda-edu notebooks run 05 -p runs_dir benchmarks/results/quality/synthetic``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # python benchmarks/NAME.py: the checkout's root on the path, for the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import RESULTS, has_acdc, table, write_results  # noqa: E402

METHODS = {
    "supervised": ["method.name=supervised"],
    "cps": ["method.name=cps"],
    "mean teacher": ["method.name=mean_teacher"],
    "coda": ["method.name=coda"],
    "coda, predictions": ["method.name=coda", "method.alignment=predictions"],
    "coda, labels": ["method.name=coda", "method.alignment=labels"],
    "coda, hard counts": ["method.name=coda", "method.alignment=hard_counts"],
    "coda, argmax share": ["method.name=coda", "method.alignment=argmax_share"],
    "alignment only": ["method.name=coda", "method.filter=none"],
    "filter only": ["method.name=coda", "method.alignment=none"],
}


def dataset_settings(name: str, quick: bool) -> dict:
    from coda_edu.config import preset_path
    from coda_edu.presets import dataset_quick

    if name in ("demo", "synthetic"):
        overrides = ["eval.distances=false"]
        if quick:
            overrides += list(dataset_quick("synthetic")) + [
                "train.iterations=20",
                "train.val_every=10",
                "model.base_width=4",
            ]
        config = None if name == "demo" else preset_path("synthetic_minority.yaml")
        return {"config": config, "overrides": overrides, "split": "test", "reuse_data": False, "bias": True}
    if name == "acdc":
        from coda_edu.config import preset_path

        overrides = ["eval.splits=[val]", "eval.distances=false"]
        if quick:
            overrides += [
                "train.iterations=20",
                "train.val_every=10",
                "data.image_size=[64, 64]",
                "model.levels=4",
                "model.base_width=4",
            ]
        return {
            "config": preset_path("acdc_cpu_plain.yaml"),
            "overrides": overrides,
            "split": "val",
            "reuse_data": True,
            "bias": False,
        }
    raise SystemExit(f"unknown dataset {name!r} (demo, synthetic or acdc)")


def pool_bias(result) -> dict:
    """Per network at the best checkpoint (the pair ``train`` returns): share_bias rows on the
    unlabeled pool (hidden truth)."""
    from coda_course.analysis import predict_pool
    from coda_course.bias import share_bias

    pool = result.data.unlabeled
    if pool.labels is None or len(pool) == 0:
        return {}
    truth = pool.labels.cpu()
    out = {}
    for key, model in (("A", result.model_a), ("B", result.model_b)):
        device = next(model.parameters()).device
        out[key] = share_bias(predict_pool(model, pool, device), truth, result.data.class_names)
    return out


def parse_variant(text: str) -> tuple[str, list[str]]:
    """``"coda, labels target:method.name=coda,method.alignment=labels"`` -> (label, overrides)."""
    if ":" not in text:
        raise SystemExit(f"--variant {text!r} must look like LABEL:KEY=VALUE,KEY=VALUE")
    label, overrides = text.rsplit(":", 1)
    return label.strip(), [o.strip() for o in overrides.split(",") if o.strip()]


def run_overrides(settings: dict, extra: list[str] | None, method_overrides: list[str], seed: int) -> list[str]:
    """The config overrides of one run, the device aside (also what a saved row is matched on)."""
    return settings["overrides"] + (extra or []) + method_overrides + [f"seed={seed}"]


def run_folder(dataset: str, method: str, seed: int, root: Path = RESULTS / "quality") -> Path:
    """Where the run of (dataset, method label, seed) keeps its folder."""
    return Path(root) / dataset / f"{''.join(ch if ch.isalnum() else '_' for ch in method)}-seed{seed}"


def run_one(
    name: str,
    method: str,
    method_overrides: list[str],
    seed: int,
    quick: bool,
    extra: list[str],
    data=None,
    device=None,
) -> dict:
    """Train and evaluate one (dataset, method, seed); the row of the results (``device`` pins the run)."""
    from coda_edu.config import load_config
    from coda_edu.train import train

    s = dataset_settings(name, quick)
    overrides = run_overrides(s, extra, method_overrides, seed)
    overrides_without_device = list(overrides)
    if device is not None:
        overrides.append(f"train.device={device}")
    out = run_folder(name, method, seed)
    shutil.rmtree(out, ignore_errors=True)
    cfg = load_config(s["config"], overrides)
    start = time.perf_counter()
    result = train(cfg, out, progress=False, log=lambda m: None, data=data)
    best = [r for r in result.evaluation["records"] if r["checkpoint"] == "best"]
    dice = {r["class"]: r["dice"] for r in best if r["split"] == s["split"] and r["model"] == "ensemble"}
    val = {
        m: {r["class"]: r["dice"] for r in best if r["split"] == "val" and r["model"] == m}
        for m in ("A", "B", "ensemble")
    }
    cases: dict[str, dict] = {}
    for r in result.evaluation.get("cases", []):
        if r["checkpoint"] == "best" and r["split"] == s["split"] and r["model"] == "ensemble":
            cases.setdefault(r["case"], {})[r["class"]] = r["dice"]
    for values in cases.values():  # the case's mean over its scored classes, as the table's "mean"
        scored = [v for v in values.values() if v is not None and not math.isnan(v)]
        values["mean"] = sum(scored) / len(scored) if scored else float("nan")
    row = {
        "dataset": name,
        "method": method,
        "seed": seed,
        "split": s["split"],
        "dice": dice,
        "val": val,
        "cases": cases,
        "curve": validation_curve(out),
        "best_step": result.state.best_step,
        "seconds": time.perf_counter() - start,
        "train_seconds": result.state.train_seconds,
        "val_seconds": result.state.val_seconds,
        "overrides": overrides_without_device,
    }
    if s.get("bias"):
        row["bias"] = pool_bias(result)
    return row


def validation_curve(run: Path) -> list[list]:
    """``[step, ensemble mean Dice]`` of every validation of a run (its metrics.jsonl)."""
    from coda_edu.run_folder import RunFolder

    return [[r["step"], r["dice"]["ensemble"]["mean"]] for r in RunFolder(run).read_metrics() if r.get("kind") == "val"]


def patient_of(case: str) -> str:
    """The patient of an evaluation case (``patient012_frame01`` -> ``patient012``): the bootstrap's unit."""
    return case.split("_frame")[0]


def paired_bootstrap(
    rows: list[dict], method: str, baseline: str, samples: int = 10000, seed: int = 0
) -> dict[str, tuple[float, float, float]]:
    """Per class: the mean over seeds and patients of (method - baseline) Dice, paired by seed and case, and a
    95 % percentile interval from resampling the *patients* with replacement (the seeds stay paired): the
    spread that comes from having only these few validation patients, which seed repeats do not show.
    Returns ``{class: (mean, low, high)}``; empty when the rows hold no per-case values."""
    import numpy as np

    base = {(r["seed"], c): v for r in rows if r["method"] == baseline for c, v in r.get("cases", {}).items()}
    mine = [r for r in rows if r["method"] == method and r.get("cases")]
    pairs = [(r["seed"], case) for r in mine for case in r["cases"] if (r["seed"], case) in base]
    if not pairs:
        return {}
    classes = list(next(iter(mine[0]["cases"].values())))
    patients = sorted({patient_of(case) for _, case in pairs})
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(patients), size=(samples, len(patients)))
    out = {}
    for cls in classes:
        # per patient: the mean difference over its cases and the seeds
        diff = {p: [] for p in patients}
        lookup = {(r["seed"], case): r["cases"][case] for r in mine for case in r["cases"]}
        for key in pairs:
            a, b = lookup[key].get(cls), base[key].get(cls)
            if a is not None and b is not None and not (math.isnan(a) or math.isnan(b)):
                diff[patient_of(key[1])].append(a - b)
        per_patient = np.array([np.mean(diff[p]) if diff[p] else np.nan for p in patients])
        means = np.nanmean(per_patient[draws], axis=1)
        out[cls] = (float(np.nanmean(per_patient)), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5)))
    return out


def run_dataset(
    name: str,
    seeds: list[int],
    quick: bool,
    log,
    methods: dict | None = None,
    extra: list[str] | None = None,
    devices: list[str] | None = None,
    rows_file: Path | None = None,
    run: bool = True,
) -> tuple[list[dict], list[str]]:
    """Every (method, seed) of one dataset: in this process one after the other (sharing the loaded
    data where the dataset allows), or queued over ``devices``. Returns the rows and the failures.

    With ``rows_file`` (JSON lines) each row is appended as soon as its run ends, and the runs
    whose row is already there are not run again: an interrupted sweep resumes. ``run=False``
    runs nothing: the tables of the saved rows alone (what is missing is said)."""
    from coda_course.sweep_devices import Job, report, run_queued
    from coda_edu.config import load_config
    from coda_edu.data import load_dataset

    s = dataset_settings(name, quick)
    methods = methods or METHODS
    wanted = {(m, seed) for m in methods for seed in seeds}
    saved = [
        r
        for r in (read_rows(rows_file) if rows_file else [])
        if r["dataset"] == name
        and (r["method"], r["seed"]) in wanted
        and r.get("overrides") == run_overrides(s, extra, methods[r["method"]], r["seed"])
    ]
    done = {(r["method"], r["seed"]) for r in saved}
    if saved:
        log(f"  {len(saved)} runs already in {rows_file} with the same settings: not run again")
    todo = [(m, seed) for m in methods for seed in seeds if (m, seed) not in done]
    if not run:
        for method, seed in todo:
            log(f"  {name} {method} seed {seed}: not in {rows_file} (--no-run: not run)")
        todo = []
    shared = None
    if s["reuse_data"] and devices is None and todo:
        shared = load_dataset(load_config(s["config"], s["overrides"] + (extra or [])))
    jobs = [
        Job(
            f"{name} {method} seed {seed}",
            run_one,
            (name, method, methods[method], seed, quick, extra),
            {"data": shared} if shared else {},
        )
        for method, seed in todo
    ]

    def save(outcome) -> None:
        if rows_file is not None and outcome.ok:
            append_row(rows_file, outcome.value)

    outcomes = run_queued(jobs, devices, log=lambda m: log(f"  {m}"), on_outcome=save)
    rows = saved + [o.value for o in outcomes if o.ok]
    order = list(methods)
    rows.sort(key=lambda r: (order.index(r["method"]), r["seed"]))
    for row in rows:
        dice, val = row["dice"], row["val"]
        rv = next((c for c in dice if c != "mean"), None)
        log(
            f"  {name} {row['method']:<20} seed {row['seed']}: mean Dice {dice['mean']:.4f}, {rv} {dice[rv]:.4f}; "
            f"val A {val['A']['mean']:.3f} B {val['B']['mean']:.3f} ens {val['ensemble']['mean']:.3f} "
            f"({row['seconds']:.0f} s)"
        )
    failures: list[str] = []
    report(outcomes, failures.append)
    return rows, failures


def read_rows(path: Path) -> list[dict]:
    """The rows saved in a JSON-lines file (none if it does not exist; a torn last line is skipped)."""
    if not path.exists():
        return []
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            print(f"{path}:{number}: not a JSON row, skipped (an interrupted write?)", flush=True)
    return rows


def append_row(path: Path, row: dict) -> None:
    """Append one row as a JSON line and flush it to disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torn = False
    if path.exists() and path.stat().st_size > 0:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            torn = f.read(1) != b"\n"
    with open(path, "a") as f:
        # after a write torn by a kill, start a new line: the torn one is skipped on reading, this one is not
        f.write(("\n" if torn else "") + json.dumps(row, default=float) + "\n")
        f.flush()
        os.fsync(f.fileno())


def summarise(rows: list[dict]) -> list[dict]:
    import numpy as np

    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        if not mine:
            continue
        row = {"method": method, "seeds": len(mine)}
        for cls in mine[0]["dice"]:
            values = np.array(
                [r["dice"][cls] for r in mine if r["dice"][cls] is not None and not math.isnan(r["dice"][cls])]
            )
            row[cls] = float(values.mean()) if values.size else float("nan")
            row[f"{cls}_std"] = float(values.std(ddof=1)) if values.size > 1 else 0.0
            row[f"{cls}_text"] = f"{row[cls]:.3f} ± {row[f'{cls}_std']:.3f}"
        out.append(row)
    return out


def paired_deltas(rows: list[dict], baseline: str = "cps") -> list[dict]:
    """Per method, the mean ± std over seeds of (method - baseline) Dice, paired by seed (same data and
    initialisation), which removes most of the seed-to-seed variation."""
    import numpy as np

    out = []
    base = {(r["seed"], c): v for r in rows if r["method"] == baseline for c, v in r["dice"].items()}
    if not base:
        return out
    for method in dict.fromkeys(r["method"] for r in rows):
        if method == baseline:
            continue
        row = {"method": f"{method} - {baseline}"}
        for cls in next(r for r in rows if r["method"] == method)["dice"]:
            diffs = np.array(
                [
                    r["dice"][cls] - base[(r["seed"], cls)]
                    for r in rows
                    if r["method"] == method
                    and (r["seed"], cls) in base
                    and r["dice"][cls] is not None
                    and base[(r["seed"], cls)] is not None
                ]
            )
            diffs = diffs[~np.isnan(diffs)]
            sd = diffs.std(ddof=1) if diffs.size > 1 else 0.0
            row[f"{cls}_text"] = f"{diffs.mean():+.3f} ± {sd:.3f}" if diffs.size else "n/a"
        out.append(row)
    return out


def pair_table(rows: list[dict]) -> list[dict]:
    """Per method: mean over seeds of the validation mean Dice of A, B and the ensemble (best checkpoint),
    the mean |A - B| gap, and the seeds whose ensemble is >= the better network - 0.01."""
    import numpy as np

    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method and r.get("val", {}).get("A")]
        if not mine:
            continue
        a = np.array([r["val"]["A"]["mean"] for r in mine])
        b = np.array([r["val"]["B"]["mean"] for r in mine])
        e = np.array([r["val"]["ensemble"]["mean"] for r in mine])
        ok = int((e >= np.maximum(a, b) - 0.01).sum())
        out.append(
            {
                "method": method,
                "A": f"{a.mean():.3f}",
                "B": f"{b.mean():.3f}",
                "ensemble": f"{e.mean():.3f}",
                "gap": f"{np.abs(a - b).mean():.3f}",
                "ens_ok": f"{ok}/{len(mine)}",
            }
        )
    return out


def bias_table(rows: list[dict], cls: str) -> list[dict]:
    """Per method: the class's argmax share / true share on the unlabeled pool, per network (mean ± std over seeds)."""
    import numpy as np

    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method and r.get("bias")]
        if not mine:
            continue
        row = {"method": method}
        for key in ("A", "B"):
            stats = [next(x for x in r["bias"][key] if x["class"] == cls) for r in mine]
            ratio = np.array([x["ratio"] for x in stats], dtype=float)
            share = np.array([x["share"] for x in stats], dtype=float)
            true = np.array([x["true"] for x in stats], dtype=float)
            under = int((share < true).sum())
            sd = ratio.std(ddof=1) if ratio.size > 1 else float("nan")
            row[key] = (
                f"{share.mean():.4f} vs {true.mean():.4f} (ratio {ratio.mean():.2f}"
                + (f" ± {sd:.2f}" if ratio.size > 1 else "")
                + f", under in {under}/{len(mine)})"
            )
        out.append(row)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny runs, 2 seeds (CI size)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--datasets", default="demo,synthetic,acdc", help="comma-separated: demo, synthetic, acdc")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="LABEL:KEY=VALUE,...",
        help="replace the method list by these variants (repeatable), e.g. "
        "'coda, labels target:method.name=coda,method.alignment=labels'",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        dest="extra",
        metavar="KEY=VALUE",
        help="an override applied to every run (repeatable), e.g. train.iterations=1200",
    )
    parser.add_argument("--out", help="results JSON (default: benchmarks/results/quality.json)")
    parser.add_argument(
        "--rows",
        type=Path,
        metavar="FILE.jsonl",
        help="append each run's row here as soon as it ends, and skip the runs already there "
        "(resume an interrupted sweep; the tables are made from the saved rows and the new ones)",
    )
    parser.add_argument(
        "--devices",
        metavar="D1,D2,...",
        help="queue the runs over these devices, one run per device at a time (e.g. cuda:0,cuda:1 or cpu,cpu)",
    )
    parser.add_argument(
        "--no-run",
        action="store_true",
        help="with --rows: run nothing, make the tables from the saved rows (e.g. rows a GPU job sent back)",
    )
    args = parser.parse_args(argv)
    if args.no_run and not args.rows:
        parser.error("--no-run needs --rows FILE.jsonl")
    devices = None
    if args.devices:
        from coda_course.sweep_devices import parse_devices
        from coda_edu.errors import CodaEduError

        try:
            devices = parse_devices(args.devices)
        except CodaEduError as exc:
            parser.error(str(exc))
    methods = dict(parse_variant(v) for v in args.variant) or METHODS
    seeds = list(range(2 if args.quick else args.seeds))
    datasets = [d for d in args.datasets.split(",") if d]
    if "acdc" in datasets and not has_acdc() and not args.no_run:
        print("ACDC not found under $CODA_EDU_DATA_DIR: skipping it (see data_scripts/README.md)")
        datasets.remove("acdc")
    rows, failures = [], []
    for name in datasets:
        print(f"{name}: {len(methods)} methods x {len(seeds)} seeds", flush=True)
        more, failed = run_dataset(
            name,
            seeds,
            args.quick,
            lambda m: print(m, flush=True),
            methods,
            args.extra,
            devices,
            args.rows,
            not args.no_run,
        )
        rows += more
        failures += failed
    tables = {}
    for name in [d for d in datasets if any(r["dataset"] == d for r in rows)]:
        summary = summarise([r for r in rows if r["dataset"] == name])
        classes = [c for c in rows[[r["dataset"] for r in rows].index(name)]["dice"] if c != "mean"] + ["mean"]
        split = next(r["split"] for r in rows if r["dataset"] == name)
        every_seed = all(r["seeds"] == len(seeds) for r in summary)
        print(
            f"\n{name}: ensemble Dice on the {split} split, best checkpoint (chosen on validation), "
            f"mean ± std over {len(seeds)} seeds" + ("" if every_seed else " (n: fewer)")
        )
        seed_column = [] if every_seed else [("seeds", "n", "")]
        print(table(summary, [("method", "method", "")] + seed_column + [(f"{c}_text", c, "") for c in classes]))
        mine = [r for r in rows if r["dataset"] == name]
        tables[name] = {"summary": summary}
        for baseline in ("cps", "supervised"):
            deltas = paired_deltas(mine, baseline)
            if deltas:
                print(
                    f"\n{name}: difference to {baseline}, paired by seed (same data and initialisation), "
                    f"mean ± std over seeds"
                )
                print(table(deltas, [("method", "method", "")] + [(f"{c}_text", c, "") for c in classes]))
            tables[name][f"paired_vs_{baseline}"] = deltas
            intervals = []
            for method in dict.fromkeys(r["method"] for r in mine):
                boot = paired_bootstrap(mine, method, baseline) if method != baseline else {}
                if boot:
                    row = {"method": f"{method} - {baseline}"}
                    row.update({f"{c}_text": f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}]" for c, (m, lo, hi) in boot.items()})
                    intervals.append(row)
            if intervals:
                print(
                    f"\n{name}: difference to {baseline}, paired by seed and case, with a 95 % bootstrap interval "
                    f"over the {split} patients (resampled with replacement, 10,000 draws)"
                )
                print(table(intervals, [("method", "method", "")] + [(f"{c}_text", c, "") for c in classes]))
            tables[name][f"bootstrap_vs_{baseline}"] = intervals
        pairs = pair_table(mine)
        if pairs:
            print(
                f"\n{name}: the pair on the validation split (best checkpoint): mean over seeds; "
                f"gap = mean |A - B|; ens ok = seeds with ensemble >= better network - 0.01"
            )
            print(
                table(
                    pairs,
                    [
                        ("method", "method", ""),
                        ("A", "A", ""),
                        ("B", "B", ""),
                        ("ensemble", "ensemble", ""),
                        ("gap", "gap", ""),
                        ("ens_ok", "ens ok", ""),
                    ],
                )
            )
        tables[name]["pair"] = pairs
        minority = classes[0] if classes[0] != "mean" else None
        biases = bias_table(mine, minority) if minority else []
        if biases:
            print(
                f"\n{name}: {minority} on the unlabeled pool (hidden truth), best checkpoint: argmax share vs "
                f"true share, per network (ratio < 1: under-predicted)"
            )
            print(table(biases, [("method", "method", ""), ("A", "A", ""), ("B", "B", "")]))
        tables[name]["bias"] = biases
    path = write_results(
        "quality",
        {
            "quick": args.quick,
            "seeds": seeds,
            "methods": methods,
            "extra": args.extra,
            "devices": devices,
            "runs": rows,
            "failures": failures,
            "summary": tables,
        },
        args.out,
    )
    print(f"\nresults: {path}")
    for line in failures:
        print(line)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
