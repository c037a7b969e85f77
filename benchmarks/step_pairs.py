"""Paired step times of two or more configurations of one ACDC CPU run, in one process.

    python benchmarks/step_pairs.py --variant "fp32:" --variant "channels-last:train.channels_last=true" \
        [--config configs/acdc_cpu.yaml] [--set KEY=VALUE ...] [--rounds 5] [--steps 40] [--out FILE] [--quick]

A VM's speed drifts by about 10 % over minutes, so two runs made one after the other do not say
which of two settings steps faster. This script builds one trainer per variant (``--set`` applies to
all, each ``--variant "NAME:KEY=VALUE,KEY=VALUE"`` adds its own keys), warms each up, then times
blocks of ``--steps`` training steps in turn, A B A B ..., for ``--rounds`` rounds: every round
compares the variants under the same load. It prints each variant's median step time and, per
later variant, its time over the first one's in every round (below 1: faster). With real data it
reads ``$CODA_EDU_DATA_DIR``; without, the synthetic phantoms at the same size. ``--quick`` (CI):
the synthetic phantoms at their quick size, 2 steps a block, 2 rounds; it checks the script, not speed.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

if __package__ in (None, ""):  # python benchmarks/NAME.py: the checkout's root on the path, for the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import machine, table, write_results  # noqa: E402
from benchmarks.step_profile import REPO, build  # noqa: E402


def parse_variant(text: str) -> tuple[str, list[str]]:
    """``"NAME:KEY=VALUE,KEY=VALUE"`` (keys may be empty) -> (NAME, [KEY=VALUE, ...])."""
    name, sep, keys = text.partition(":")
    if not sep or not name.strip():
        raise SystemExit(f"--variant {text!r}: expected NAME:KEY=VALUE,... (the keys may be empty)")
    return name.strip(), [k.strip() for k in keys.split(",") if k.strip()]


def time_blocks(trainers: list, rounds: int, steps: int, warmup: int) -> list[list[float]]:
    """Seconds per step of each trainer, one block of ``steps`` steps per round, the trainers in turn."""
    for trainer in trainers:
        for _ in range(warmup):
            trainer.train_step()
    times: list[list[float]] = [[] for _ in trainers]
    for _ in range(rounds):
        for i, trainer in enumerate(trainers):
            start = time.perf_counter()
            for _ in range(steps):
                trainer.train_step()
            times[i].append((time.perf_counter() - start) / steps)
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "acdc_cpu.yaml"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="for every variant")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE,...")
    parser.add_argument("--method", default="coda")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--out", default=None)
    parser.add_argument("--quick", action="store_true", help="synthetic phantoms at the quick size (CI)")
    args = parser.parse_args(argv)
    variants = [parse_variant(v) for v in args.variant]
    if len(variants) < 2:
        raise SystemExit("give at least two --variant")
    rounds, steps, warmup = (2, 2, 1) if args.quick else (args.rounds, args.steps, 20)

    folder = tempfile.mkdtemp(prefix="step_pairs-")  # the trainers' run folders, removed at the end
    try:
        trainers = [
            build(args.config, args.set + keys, args.method, f"{folder}/{i}", args.quick)
            for i, (_, keys) in enumerate(variants)
        ]
        times = time_blocks(trainers, rounds, steps, warmup)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    rows = []
    for (name, keys), seconds in zip(variants, times):
        ratios = [t / first for t, first in zip(seconds, times[0])]
        rows.append(
            {
                "variant": name,
                "keys": " ".join(keys) or "-",
                "median_s": statistics.median(seconds),
                "rounds_s": seconds,
                "ratio_median": statistics.median(ratios),
                "ratios": " ".join(f"{r:.2f}" for r in ratios),
            }
        )
    print(
        table(
            rows,
            [
                ("variant", "variant", ""),
                ("keys", "keys", ""),
                ("median_s", "median s/step", ".4f"),
                ("ratio_median", f"/ {variants[0][0]} (median)", ".3f"),
                ("ratios", "per round", ""),
            ],
        )
    )
    payload = {"config": args.config, "overrides": args.set, "method": args.method, "steps": steps, "rows": rows}
    path = write_results("step_pairs", payload, args.out)
    print(f"results: {path}  ({machine()['cpu']}, {torch.get_num_threads()} threads)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
