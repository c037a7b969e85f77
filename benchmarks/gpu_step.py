"""The Co-DA training step at the paper's ACDC setting: plain against fast, in one GPU job.

    python benchmarks/gpu_step.py [--quick] [--device auto|cuda|cpu] [--data auto|synthetic|acdc]
                                  [--compile] [--budget-seconds 480] [--out FILE]

Setting: 256x256 slices, batch 24 with 12 labeled, U-Net 16-32-64-128-256, Co-DA with the
paper preset's optimiser (``configs/acdc_paper.yaml``). The images are synthetic tensors of
that shape (no download needed), or the real ACDC pool with ``--data acdc`` (the default
``auto`` takes it when ``$CODA_EDU_DATA_DIR/ACDC`` exists). ``--quick`` shrinks everything
(32x32, batch 4, a 3-level U-Net of width 4) so that CI runs the script on a CPU.

What it writes, to ``--out`` (default ``benchmarks/results/gpu_step.json``) after every part,
so a job stopped by its time limit still leaves what it measured:

1. **equivalence**: 5 steps of the plain and the fast path from the same seed on this
   device (dropout off, fp32 with TF32 off, then bf16): the largest relative difference of
   the losses and of the weights.
2. **rows**, one per variant: plain fp32, plain bf16, plain bf16 with channels-last, fast bf16
   (the fused optimiser step), and with ``--compile`` the fast path under
   ``torch.compile`` in its default, ``max-autotune-no-cudagraphs`` and ``reduce-overhead``
   modes. Per row: the first steps' time (start-up, compilation), the median s/step over
   repeats of timed steps and images/s, the FLOPs of one step
   (``torch.utils.flop_counter``), the fraction of the dense bf16 (and fp32) matrix-product
   peak measured in the same run, the peak allocated CUDA memory, and on CUDA the number of
   host synchronisations in non-logged steps (``torch.cuda.set_sync_debug_mode``).
   The FLOPs are counted on the plain step.
3. ``paper_schedule_minutes``: 30,000 steps at each row's s/step (training only).

``--budget-seconds`` is a wall-clock guard: a variant that would start after it is
recorded as skipped, and an alarm 60 s after it stops the script (exit status 3) with
the results so far written.
"""

from __future__ import annotations

import argparse
import resource
import signal
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

if __package__ in (None, ""):  # python benchmarks/NAME.py: the checkout's root on the path, for the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import (  # noqa: E402
    Stopwatch,
    count_flops,
    dense_peak,
    has_acdc,
    machine,
    median,
    table,
    write_results,
)

PAPER_STEPS = 30_000


def settings(quick: bool) -> dict:
    if quick:
        return {"size": 32, "batch": 4, "labeled_bs": 2, "width": 4, "levels": 3, "warmup": 2, "repeats": 2, "steps": 2}
    return {
        "size": 256,
        "batch": 24,
        "labeled_bs": 12,
        "width": 16,
        "levels": 5,
        "warmup": 10,
        "repeats": 5,
        "steps": 20,
    }


def config(s: dict, device: str, dataset: str, **keys):
    """The paper preset at the benchmark's size, with ``keys`` (dotted) on top."""
    from coda_edu.config import load_config, preset_path

    overrides = {
        "data.name": dataset,
        "data.image_size": f"[{s['size']}, {s['size']}]",
        "model.base_width": s["width"],
        "model.levels": s["levels"],
        "train.batch_size": s["batch"],
        "train.labeled_batch_size": s["labeled_bs"],
        "train.device": device,
        "train.log_every": 10**6,  # every timed step is a non-logged step
        "train.val_every": 10**6,
        "train.threads": 0,
        **keys,
    }
    return load_config(preset_path("acdc_paper.yaml"), [f"{k}={v}" for k, v in overrides.items()])


def synthetic_data(s: dict):
    """Random images and labels in ACDC's shapes (4 classes, uint8 pool as the ACDC loader keeps it)."""
    import numpy as np

    from coda_edu.data.base import Case, SegmentationData, TrainPool

    g = torch.Generator().manual_seed(0)
    size = (s["size"], s["size"])

    def pool(n):  # the unlabeled pool keeps its labels as the hidden truth, as the loaders do
        images = torch.randint(0, 256, (n, 1, *size), generator=g, dtype=torch.uint8)
        labels = torch.randint(0, 4, (n, *size), generator=g, dtype=torch.uint8)
        return TrainPool(images, labels, [f"p{i}" for i in range(n)], scale=1 / 255)

    case = Case("val0", np.zeros((1, 2, *size), np.float32), np.zeros((2, *size), np.int64))  # never validated
    return SegmentationData(
        name="synthetic-acdc-shapes",
        class_names=["background", "RV", "Myo", "LV"],
        in_channels=1,
        spatial_dims=2,
        labeled=pool(4 * s["labeled_bs"]),
        unlabeled=pool(4 * (s["batch"] - s["labeled_bs"])),
        val=[case],
        test=[],
        eval_mode="slices",
    )


VARIANTS = [  # (row name, config keys, torch.compile mode of the networks or None)
    ("plain fp32", {"train.precision": "fp32"}, None),
    ("plain bf16", {"train.precision": "bf16"}, None),
    ("plain bf16 + channels-last", {"train.precision": "bf16", "train.channels_last": "true"}, None),
    ("fast bf16", {"train.precision": "bf16", "optim.fused": "true"}, None),
]
COMPILED = [
    ("fast bf16 + compile", "default"),
    ("fast bf16 + compile max-autotune-no-cudagraphs", "max-autotune-no-cudagraphs"),
    ("fast bf16 + compile reduce-overhead", "reduce-overhead"),
]


def make_trainer(cfg, data, tmp: Path, name: str, compile_mode: str | None = None):
    from coda_edu.trainer import Trainer

    trainer = Trainer(cfg, tmp / name.replace(" ", "_"), progress=False, data=data, log=lambda m: None)
    if compile_mode is not None:
        # Benchmark-only, GPU-only and untested in CI: compile the two networks in a chosen mode.
        mode = None if compile_mode == "default" else compile_mode
        trainer.forward_a = torch.compile(trainer.model_a, mode=mode)
        trainer.forward_b = torch.compile(trainer.model_b, mode=mode)
    return trainer


def host_syncs(step, n: int = 3) -> int | None:
    """CUDA: synchronising operations in ``n`` non-logged steps (warnings of the sync debug mode)."""
    if not torch.cuda.is_available():
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for _ in range(n):
                step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-12))


def equivalence(s, device, dataset, data, tmp: Path) -> dict:
    """5 steps plain vs fast from one seed (dropout off): largest relative loss and weight differences."""
    out = {}
    cuda = device.startswith("cuda")
    for precision in ("fp32", "bf16"):
        keys = {"train.precision": precision, "model.dropout": "false"}
        previous = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        if cuda and precision == "fp32":
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        try:
            runs = []
            for name, extra in (("plain", {}), ("fast", {"optim.fused": "true"})):
                trainer = make_trainer(config(s, device, dataset, **keys, **extra), data, tmp, f"eq-{precision}-{name}")
                losses = [float(trainer.train_step()["loss"]) for _ in range(5)]
                runs.append((losses, trainer.model_a.state_dict(), trainer.model_b.state_dict()))
                del trainer
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = previous
        (lp, ap, bp), (lf, af, bf) = runs
        keys = [k for k in ap if ap[k].is_floating_point()]
        flat = {
            name: torch.cat([sd[k].float().flatten() for sd in pair for k in keys])
            for name, pair in (("plain", (ap, bp)), ("fast", (af, bf)))
        }
        out[precision] = {
            "losses_plain": lp,
            "losses_fast": lf,
            "max_rel_loss_diff": max(abs(x - y) / max(abs(y), 1e-12) for x, y in zip(lf, lp)),
            "rel_weight_diff": relative(flat["fast"], flat["plain"]),  # all of A's and B's weights as one vector
        }
    return out


class WallClock(Exception):
    pass


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CI, CPU)")
    parser.add_argument("--device", default="auto", help="auto, cuda or cpu")
    parser.add_argument("--data", default="auto", choices=("auto", "synthetic", "acdc"))
    parser.add_argument("--compile", action="store_true", help="CUDA: also the fast path under torch.compile")
    parser.add_argument("--budget-seconds", type=float, default=480.0, help="wall-clock guard (see above)")
    parser.add_argument("--out", help="results JSON (default: benchmarks/results/gpu_step.json)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else None
    s = settings(args.quick)
    dataset = "acdc" if args.data == "acdc" or (args.data == "auto" and has_acdc() and not args.quick) else "synthetic"
    if dataset == "acdc":
        from coda_edu.data import load_dataset

        data = load_dataset(config(s, device, "acdc"))
    else:
        data = synthetic_data(s)
    result = {"settings": s, "device": device, "data": dataset, "rows": [], "stopped": None}

    def save():
        result["elapsed_s"] = round(time.perf_counter() - start, 1)
        return write_results("gpu_step", result, args.out)

    def alarm(signum, frame):
        raise WallClock()

    if hasattr(signal, "SIGALRM"):
        signal.signal(signal.SIGALRM, alarm)
        signal.alarm(int(args.budget_seconds) + 60)
    print(
        f"gpu_step on {device} ({machine().get('gpu', machine()['cpu'])}): {dataset} {s['size']}x{s['size']}, "
        f"batch {s['batch']} ({s['labeled_bs']} labeled), U-Net {s['width']}-{s['width'] * 2 ** (s['levels'] - 1)}; "
        f"{s['repeats']} repeats x {s['steps']} steps after {s['warmup']} warm-up steps",
        flush=True,
    )
    tmp = Path(tempfile.mkdtemp(prefix="coda-gpu-step-"))
    try:
        result["peak_bf16_flops"] = dense_peak(device, torch.bfloat16, args.quick)
        result["peak_fp32_flops"] = dense_peak(device, torch.float32, args.quick)
        print(
            f"dense matmul peak: bf16 {result['peak_bf16_flops'] / 1e12:.2f} TFLOP/s, "
            f"fp32 {result['peak_fp32_flops'] / 1e12:.2f} TFLOP/s",
            flush=True,
        )
        save()
        result["equivalence"] = equivalence(s, device, dataset, data, tmp)
        for precision, eq in result["equivalence"].items():
            print(
                f"equivalence {precision}: losses within {eq['max_rel_loss_diff']:.1e}, "
                f"weights within {eq['rel_weight_diff']:.1e} (relative)",
                flush=True,
            )
        save()
        variants = list(VARIANTS)
        if args.compile:
            fast_keys = VARIANTS[-1][1]
            variants += [(name, fast_keys, mode) for name, mode in COMPILED]
        for name, keys, mode in variants:
            row = {"variant": name, "keys": keys, "compile": mode}
            result["rows"].append(row)
            if mode is not None and not cuda:
                row["skipped"] = "torch.compile variants run on CUDA only"
                continue
            if time.perf_counter() - start > args.budget_seconds:
                row["skipped"] = "wall-clock budget spent"
                continue
            measure(row, make_trainer(config(s, device, dataset, **keys), data, tmp, name, mode), s, sync, cuda)
            # Every variant computes the same maths, so every row uses the plain step's count.
            result.setdefault("flops_per_step", row["flops_counted"])
            row["flops_per_step"] = result["flops_per_step"]
            row["gflop_per_step"] = row["flops_per_step"] / 1e9
            row["peak_fraction_bf16"] = row["flops_per_step"] / row["step_s"] / result["peak_bf16_flops"]
            row["peak_fraction_fp32"] = row["flops_per_step"] / row["step_s"] / result["peak_fp32_flops"]
            row["paper_schedule_minutes"] = PAPER_STEPS * row["step_s"] / 60
            print(
                f"  {name}: {row['step_s']:.4f} s/step, {row['images_per_s']:.0f} images/s, "
                f"{row['peak_fraction_bf16']:.1%} of bf16 peak, first steps {row['first_steps_s']:.1f} s"
                + (
                    f", {row['host_syncs_per_step']:.1f} host syncs/step"
                    if row["host_syncs_per_step"] is not None
                    else ""
                ),
                flush=True,
            )
            save()
            if cuda:
                torch.cuda.empty_cache()
    except WallClock:
        result["stopped"] = f"wall-clock guard: {args.budget_seconds + 60:.0f} s"
        print(f"stopped by the {result['stopped']}", flush=True)
        save()
        return 3
    finally:
        if hasattr(signal, "SIGALRM"):
            signal.alarm(0)
    if not cuda:
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = [r for r in result["rows"] if "step_s" in r]
    base = next((r["step_s"] for r in rows if r["variant"] == "plain bf16"), None)
    for r in rows:
        r["speedup_vs_plain_bf16"] = base / r["step_s"] if base else None
    print()
    print(
        table(
            rows,
            [
                ("variant", "variant", ""),
                ("step_s", "s/step", ".4f"),
                ("images_per_s", "images/s", ".0f"),
                ("gflop_per_step", "GFLOP/step", ".1f"),
                ("peak_fraction_bf16", "of bf16 peak", ".1%"),
                ("speedup_vs_plain_bf16", "x plain bf16", ".2f"),
                ("peak_memory_mb", "peak MB", ".0f"),
                ("host_syncs_per_step", "syncs/step", ".1f"),
                ("first_steps_s", "first steps s", ".1f"),
                ("paper_schedule_minutes", "30k steps min", ".1f"),
            ],
        )
    )
    print(f"results: {save()}")
    return 0


def measure(row: dict, trainer, s: dict, sync, cuda: bool) -> None:
    """Warm-up (timed: start-up and compilation), FLOPs, host syncs, timed repeats, peak memory."""
    step = trainer.train_step
    with Stopwatch(sync) as t:
        for _ in range(s["warmup"]):
            step()
    row["first_steps_s"] = t.seconds
    row["flops_counted"] = count_flops(step) if row["compile"] is None else None
    row["host_syncs_per_step"] = None
    syncs = host_syncs(step)
    if syncs is not None:
        row["host_syncs_per_step"] = syncs / 3
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(s["repeats"]):
        with Stopwatch(sync) as t:
            for _ in range(s["steps"]):
                step()
        times.append(t.seconds / s["steps"])
    row["step_s"] = median(times)
    row["all_step_s"] = times
    row["images_per_s"] = s["batch"] / row["step_s"]
    row["peak_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20 if cuda else None


if __name__ == "__main__":
    raise SystemExit(main())
