"""Where the time of a run goes at an ACDC CPU preset (default: the plain one, the paper's method; the
course's recipe is ``--config configs/acdc_cpu.yaml``): a training step by kind of work, per method,
and what validation and the final evaluation cost.

    python benchmarks/step_profile.py [--config configs/acdc_cpu_plain.yaml] [--set KEY=VALUE ...]
                                      [--methods supervised,cps,coda] [--steps 20] [--out FILE] [--quick]

For each method the script builds the run as ``coda-edu train`` would (no run folder is kept),
warms up, times ``--steps`` training steps in 3 rounds (median step time), then profiles 5
steps with ``torch.profiler`` and sums the time of each operator into a few kinds of work:
convolutions (forward, backward), batch norm, activations and dropout, pooling and
upsampling, and the rest (the losses, the method's statistics, augmentation, optimiser).
It then times one validation (the 20 validation volumes, Dice only) and one evaluation
with distances (HD95, ASD), as the run does at its end for each checkpoint. With real data
it reads ``$CODA_EDU_DATA_DIR``; without, the synthetic phantoms at the same size.
``--quick`` (CI): the synthetic phantoms at their quick size and 2 steps a round; it checks the
script, not speed.
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
from benchmarks.common import has_acdc, machine, table, write_results  # noqa: E402

KINDS = {
    "conv forward": ("aten::mkldnn_convolution", "aten::convolution", "aten::_convolution", "aten::conv2d"),
    "conv backward": ("aten::convolution_backward",),
    "batch norm": ("aten::native_batch_norm", "aten::native_batch_norm_backward", "aten::batch_norm"),
    "activations, dropout": ("aten::leaky_relu", "aten::leaky_relu_", "aten::leaky_relu_backward", "aten::bernoulli_"),
    "pooling, upsampling": (
        "aten::max_pool2d_with_indices",
        "aten::max_pool2d_with_indices_backward",
        "aten::upsample_bilinear2d",
        "aten::upsample_bilinear2d_backward",
    ),
}


def kind_of(name: str) -> str:
    for kind, names in KINDS.items():
        if name in names:
            return kind
    return "losses, method, augmentation, optimiser, other"


REPO = Path(__file__).resolve().parents[1]


def build(config: str, overrides: list[str], method: str, folder: str, quick: bool = False):
    from coda_edu.config import load_config
    from coda_edu.presets import dataset_quick
    from coda_edu.trainer import Trainer

    sets = ["train.device=cpu", f"method.name={method}"]
    if quick or not has_acdc():
        sets += ["data.name=synthetic", "data.crop=null"]
    if quick:
        sets += list(dataset_quick("synthetic")) + ["data.image_size=[32,32]", "model.base_width=4"]
    cfg = load_config(config, sets + overrides)
    return Trainer(cfg, f"{folder}/{method}", progress=False, log=lambda message: None)


def profile_steps(trainer, steps: int) -> dict:
    from torch.profiler import ProfilerActivity, profile

    for _ in range(3):
        trainer.train_step()
    rounds = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(steps):
            trainer.train_step()
        rounds.append((time.perf_counter() - start) / steps)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(5):
            trainer.train_step()
    shares: dict[str, float] = {}
    for event in prof.key_averages():
        shares[kind_of(event.key)] = shares.get(kind_of(event.key), 0.0) + event.self_cpu_time_total
    total = sum(shares.values())
    return {"step_s": statistics.median(rounds), "shares": {k: v / total for k, v in shares.items()}}


def evaluation_seconds(trainer) -> dict:
    from coda_edu.evaluate import evaluate_cases

    start = time.perf_counter()
    trainer.validate()
    validation = time.perf_counter() - start
    start = time.perf_counter()
    evaluate_cases(
        trainer.model_a, trainer.model_b, trainer.data.val, trainer.data, trainer.device, trainer.precision, True
    )
    return {"validation_s": validation, "evaluation_s": time.perf_counter() - start}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "acdc_cpu_plain.yaml"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--methods", default="supervised,cps,coda")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", default=None)
    parser.add_argument("--quick", action="store_true", help="synthetic phantoms at the quick size, 2 steps (CI)")
    args = parser.parse_args(argv)
    steps = 2 if args.quick else args.steps

    rows = []
    folder = tempfile.mkdtemp(prefix="step_profile-")  # the trainers' run folders, removed at the end
    try:
        for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
            trainer = build(args.config, args.set, method, folder, args.quick)
            result = profile_steps(trainer, steps)
            row = {"method": method, "step_s": result["step_s"], **{k: 100 * v for k, v in result["shares"].items()}}
            row["steps_per_min"] = 60 / result["step_s"]
            rows.append(row)
            print(f"{method}: {result['step_s']:.4f} s/step", flush=True)
        costs = evaluation_seconds(trainer)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    columns = [("method", "method", ""), ("step_s", "s/step", ".4f"), ("steps_per_min", "steps/min", ".0f")]
    columns += [(kind, f"{kind} %", ".1f") for kind in list(KINDS) + ["losses, method, augmentation, optimiser, other"]]
    print(table(rows, columns))
    print(
        f"one validation (Dice, {len(trainer.data.val)} cases): {costs['validation_s']:.1f} s; "
        f"one evaluation with distances: {costs['evaluation_s']:.1f} s"
    )
    path = write_results(
        "step_profile", {"config": args.config, "overrides": args.set, "rows": rows, **costs}, args.out
    )
    print(f"results: {path}  ({machine()['cpu']}, {torch.get_num_threads()} threads)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
