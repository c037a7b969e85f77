"""Validation Dice against CPU minutes on ACDC with 7 labeled patients.

    python benchmarks/time_to_dice.py [--quick] [--target 0.52] [--budget-minutes 29] [--out FILE]

Supervised, CPS and Co-DA are trained with the plain CPU preset (``configs/acdc_cpu_plain.yaml``),
validating every ``--val-every`` steps. Minutes are **training** minutes (the time in
training steps; validation and checkpoint writing are timed separately and excluded),
the same quantity as the reference's 29 CPU-minutes for 1,000 steps. The table gives,
per method, the minutes until the validation mean Dice (ensemble) first reaches the
target, and the Dice at the end; a PNG plots the curves.

``--budget-minutes M`` adds one Co-DA run whose schedule is sized to last M training
minutes (the step time is measured first), to report the Dice reached at the
reference's budget.

The validation volumes are used to draw the curves (there is no other labeled data in
the development subset); no setting was chosen on test data. Without ACDC the script
falls back to the synthetic data (and says so).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # python benchmarks/NAME.py: the checkout's root on the path, for the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import RESULTS, has_acdc, table, write_results  # noqa: E402

METHODS = ("supervised", "cps", "coda")


def base_config(quick: bool, val_every: int):
    from coda_edu.config import load_config, preset_path

    extra = [f"train.val_every={val_every}", "eval.splits=[val]", "eval.distances=false"]
    if not has_acdc():
        cfg = load_config(None, ["data.synthetic.imbalance=0.9", "data.labeled_patients=2"] + extra)
    else:
        cfg = load_config(preset_path("acdc_cpu_plain.yaml"), extra)
    if quick:
        from coda_edu.config import set_value

        for key, value in (
            ("train.iterations", 40),
            ("train.val_every", 20),
            ("model.base_width", 4),
            ("model.levels", 4),
            ("data.image_size", [64, 64] if has_acdc() else [32, 32]),
        ):
            set_value(cfg, key, value)
        if not has_acdc():
            set_value(cfg, "data.synthetic.resolution", 32)
    return cfg


def curve(run_dir) -> list[tuple[float, float, int]]:
    """(training minutes, validation mean Dice of the ensemble, step) at every validation."""
    from coda_edu.run_folder import RunFolder

    return [
        (r["seconds"] / 60, r["dice"]["ensemble"]["mean"], r["step"])
        for r in RunFolder(run_dir).read_metrics()
        if r["kind"] == "val"
    ]


def first_reach(points, target: float):
    for minutes, dice, step in points:
        if dice is not None and dice >= target:
            return minutes, step
    return None, None


def measured_step_seconds(cfg, data) -> float:
    """Median time of 20 Co-DA steps (after 5 warm-up steps) with this config."""
    import statistics
    import tempfile

    from coda_edu.trainer import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, tmp, progress=False, data=data, log=lambda m: None)
        for _ in range(5):
            trainer.train_step()
        times = []
        for _ in range(20):
            start = time.perf_counter()
            trainer.train_step()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def plot(curves: dict, target: float, path, reference_minutes: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4))
    ax = fig.subplots()
    for name, points in curves.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", ms=3, label=name)
    ax.axhline(target, color="gray", ls="--", lw=1, label=f"target {target}")
    ax.axvline(reference_minutes, color="gray", ls=":", lw=1, label=f"reference: {reference_minutes:.0f} min")
    ax.set_xlabel("training minutes (CPU)")
    ax.set_ylabel("validation mean Dice (ensemble)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny runs (CI size)")
    parser.add_argument("--target", type=float, default=0.52)
    parser.add_argument("--val-every", type=int, default=100)
    parser.add_argument("--budget-minutes", type=float, default=0.0, help="also run Co-DA sized to this many minutes")
    parser.add_argument("--reference-minutes", type=float, default=29.0)
    parser.add_argument("--out", help="results JSON (default: benchmarks/results/time_to_dice.json)")
    args = parser.parse_args(argv)

    from coda_edu.config import set_value
    from coda_edu.data import load_dataset
    from coda_edu.train import train

    cfg0 = base_config(args.quick, args.val_every)
    dataset = cfg0.data.name
    if dataset != "acdc":
        print("ACDC not found under $CODA_EDU_DATA_DIR: using the synthetic data instead")
    data = load_dataset(cfg0)
    root = RESULTS / "time_to_dice"
    runs = {}
    for method in METHODS:
        cfg = cfg0.copy()
        set_value(cfg, "method.name", method)
        out = root / method
        __import__("shutil").rmtree(out, ignore_errors=True)
        print(f"{method}: {cfg.train.iterations} steps on {dataset}", flush=True)
        result = train(cfg, out, progress=False, log=lambda m: None, data=data)
        runs[method] = {"dir": out, "state": result.state}
    if args.budget_minutes > 0:
        cfg = cfg0.copy()
        set_value(cfg, "method.name", "coda")
        step_s = measured_step_seconds(cfg, data)
        iterations = max(int(args.budget_minutes * 60 / step_s), 10)
        set_value(cfg, "train.iterations", iterations)
        set_value(cfg, "train.val_every", max(iterations // 20, 1))
        name = f"coda ({args.budget_minutes:g}-minute schedule)"
        out = root / "coda-budget"
        __import__("shutil").rmtree(out, ignore_errors=True)
        print(f"{name}: {iterations} steps ({step_s:.3f} s/step measured)", flush=True)
        result = train(cfg, out, progress=False, log=lambda m: None, data=data)
        runs[name] = {"dir": out, "state": result.state}

    rows, curves = [], {}
    for name, run in runs.items():
        points = curve(run["dir"])
        curves[name] = points
        minutes, step = first_reach(points, args.target)
        final = points[-1]
        rows.append(
            {
                "method": name,
                "minutes_to_target": minutes,
                "step_at_target": step,
                "speedup_vs_reference": args.reference_minutes / minutes if minutes else None,
                "final_minutes": final[0],
                "final_dice": final[1],
                "best_dice": max(p[1] for p in points),
                "steps": final[2],
                "val_minutes": run["state"].val_seconds / 60,
            }
        )
    print(f"\nvalidation mean Dice (ensemble) against training minutes, {dataset}, target {args.target}")
    print(
        table(
            rows,
            [
                ("method", "method", ""),
                ("minutes_to_target", f"min to {args.target}", ".2f"),
                ("step_at_target", "step", ""),
                ("speedup_vs_reference", f"x faster than {args.reference_minutes:g} min", ".1f"),
                ("final_minutes", "train min", ".1f"),
                ("final_dice", "final Dice", ".3f"),
                ("best_dice", "best Dice", ".3f"),
                ("val_minutes", "val min", ".1f"),
            ],
        )
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    figure = RESULTS / "time_to_dice.png"
    plot(curves, args.target, figure, args.reference_minutes)
    path = write_results(
        "time_to_dice",
        {
            "dataset": dataset,
            "target": args.target,
            "quick": args.quick,
            "config": cfg0.to_dict(),
            "rows": rows,
            "curves": {k: [list(p) for p in v] for k, v in curves.items()},
        },
        args.out,
    )
    print(f"results: {path}  figure: {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
