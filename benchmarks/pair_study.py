"""Do both networks of the pair learn? Val Dice of A and B over seeds, per design.

    python benchmarks/pair_study.py [--quick] [--seeds 5] [--method supervised]
        [--design LABEL:KEY=VALUE,...]... [--set KEY=VALUE]... [--out FILE]

A *design* is a set of config overrides (width, init schemes, init scale, ...). Each
run trains the A/B pair with the given method on the default synthetic experiment
(plus ``--set`` overrides) without the final evaluation, and reads the validation Dice
of A, B and the ensemble at every validation step from ``metrics.jsonl``. The table
gives, per design, the mean over seeds of A's and B's final validation mean and RV
Dice, the mean |A - B| gap, how many seeds have the ensemble at or above the better
network - 0.01, and how many networks never find the RV (val RV Dice < 0.1 at the end).
Only validation data is used.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # python benchmarks/NAME.py: the checkout's root on the path, for the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import RESULTS, table, write_results  # noqa: E402

DESIGNS = {
    "kaiming/xavier w8 (old default)": ["model.base_width=8", "model.init_a=kaiming", "model.init_b=xavier"],
    "xavier/xavier w8": ["model.base_width=8", "model.init_a=xavier", "model.init_b=xavier"],
    "kaiming/xavier w16": ["model.base_width=16", "model.init_a=kaiming", "model.init_b=xavier"],
}


def parse_design(text: str) -> tuple[str, list[str]]:
    if ":" not in text:
        raise SystemExit(f"--design {text!r} must look like LABEL:KEY=VALUE,KEY=VALUE")
    label, overrides = text.rsplit(":", 1)
    return label.strip(), [o.strip() for o in overrides.split(",") if o.strip()]


def run(designs: dict, seeds: list[int], method: str, extra: list[str], log) -> list[dict]:
    from coda_edu.config import load_config
    from coda_edu.run_folder import RunFolder
    from coda_edu.train import train

    rows = []
    root = RESULTS / "pair_study"
    for label, overrides in designs.items():
        for seed in seeds:
            out = root / f"{''.join(ch if ch.isalnum() else '_' for ch in label)}-{method}-seed{seed}"
            shutil.rmtree(out, ignore_errors=True)
            cfg = load_config(None, [f"method.name={method}", f"seed={seed}", *extra, *overrides])
            start = time.perf_counter()
            train(cfg, out, progress=False, evaluate=False, log=lambda m: None)
            vals = [r for r in RunFolder(out).read_metrics() if r.get("kind") == "val"]
            last = vals[-1]["dice"]
            rows.append(
                {
                    "design": label,
                    "seed": seed,
                    "method": method,
                    "curve": [(r["step"], r["dice"]) for r in vals],
                    "A": last["A"],
                    "B": last["B"],
                    "ensemble": last["ensemble"],
                    "seconds": time.perf_counter() - start,
                }
            )
            log(
                f"  {label:<34} seed {seed}: A mean {last['A']['mean']:.3f} RV {last['A']['RV']:.3f} | "
                f"B mean {last['B']['mean']:.3f} RV {last['B']['RV']:.3f} | ens {last['ensemble']['mean']:.3f} "
                f"({time.perf_counter() - start:.0f} s)"
            )
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    import numpy as np

    out = []
    for label in dict.fromkeys(r["design"] for r in rows):
        mine = [r for r in rows if r["design"] == label]

        def mean(model, cls, mine=mine):
            return float(np.nanmean([np.nan if r[model][cls] is None else r[model][cls] for r in mine]))

        gaps = [abs(r["A"]["mean"] - r["B"]["mean"]) for r in mine]
        ens_ok = sum(r["ensemble"]["mean"] >= max(r["A"]["mean"], r["B"]["mean"]) - 0.01 for r in mine)
        no_rv = sum((r[m]["RV"] or 0.0) < 0.1 for r in mine for m in ("A", "B"))
        out.append(
            {
                "design": label,
                "seeds": len(mine),
                "A_mean": mean("A", "mean"),
                "B_mean": mean("B", "mean"),
                "ens_mean": mean("ensemble", "mean"),
                "A_RV": mean("A", "RV"),
                "B_RV": mean("B", "RV"),
                "gap": float(np.mean(gaps)),
                "ens_ok": f"{ens_ok}/{len(mine)}",
                "no_rv": f"{no_rv}/{2 * len(mine)}",
                "seconds": float(np.mean([r["seconds"] for r in mine])),
            }
        )
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny runs, 2 seeds (CI size)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--method", default="supervised")
    parser.add_argument("--design", action="append", default=[], metavar="LABEL:KEY=VALUE,...")
    parser.add_argument("--set", action="append", default=[], dest="extra", metavar="KEY=VALUE")
    parser.add_argument("--out", help="results JSON (default: benchmarks/results/pair_study.json)")
    args = parser.parse_args(argv)
    designs = dict(parse_design(d) for d in args.design) or DESIGNS
    seeds = list(range(2 if args.quick else args.seeds))
    extra = list(args.extra)
    if args.quick:
        from coda_edu.presets import dataset_quick

        extra = list(dataset_quick("synthetic")) + ["train.iterations=12", "train.val_every=6"] + extra
    print(f"{len(designs)} designs x {len(seeds)} seeds, method {args.method}", flush=True)
    rows = run(designs, seeds, args.method, extra, lambda m: print(m, flush=True))
    summary = summarise(rows)
    print(
        "\nfinal validation Dice (mean over seeds); gap = mean |A - B|; ens ok = seeds with ensemble >= better - 0.01"
    )
    print(
        table(
            summary,
            [
                ("design", "design", ""),
                ("A_mean", "A mean", ".3f"),
                ("B_mean", "B mean", ".3f"),
                ("ens_mean", "ens mean", ".3f"),
                ("A_RV", "A RV", ".3f"),
                ("B_RV", "B RV", ".3f"),
                ("gap", "gap", ".3f"),
                ("ens_ok", "ens ok", ""),
                ("no_rv", "no RV", ""),
                ("seconds", "s/run", ".0f"),
            ],
        )
    )
    path = write_results(
        "pair_study",
        {"method": args.method, "seeds": seeds, "designs": designs, "extra": extra, "runs": rows, "summary": summary},
        args.out,
    )
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
