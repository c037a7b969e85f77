"""Training-step throughput, method overhead, hardware efficiency and memory.

    python benchmarks/throughput.py [--quick] [--device auto|cpu|cuda] [--compile] [--out FILE]

What it measures, in one process and one run:

1. **Throughput**: steps/s and images/s of coda-edu's Co-DA step against the reference
   loop (``reference_loop.py``: DataLoader workers with per-sample scipy augmentation,
   float32, no channels-last, no mixed precision) with the same U-Net, batch,
   resolution and algorithm. The loops alternate, after a warm-up, over several
   repeats; the table reports medians and the ratio.
2. **Method overhead**: the same for coda-edu's ``cps`` and ``supervised`` steps against
   its ``coda`` step (the cost of alignment and filtering).
3. **Hardware efficiency**: the forward+backward FLOPs of one step, counted with
   ``torch.utils.flop_counter``, divided by the median step time, as a fraction of the
   peak measured in the same run by a large dense matrix product on the same device
   and dtype.
4. **Memory**: peak resident memory of a fresh process running each loop, and the sum of
   the peaks of its DataLoader worker processes (CPU; shared pages are counted in each),
   or peak allocated CUDA memory. coda-edu's figure includes its in-memory training pool.

Data: ACDC with 7 labeled patients when ``$CODA_EDU_DATA_DIR/ACDC`` exists (the reference
reads its h5 files per sample, as the public code does), else the synthetic phantoms at
the same resolution. CPU: 128x128, batch 8 with 4 labeled, U-Net 16-256 (the setting the
reference numbers in the issue were measured with). CUDA: the paper-scale ACDC setting,
256x256, batch 24 with 12 labeled, plus coda-edu with mixed precision (and, with
``--compile``, torch.compile).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import torch  # noqa: E402

if __package__ in (None, ""):  # python benchmarks/NAME.py: the checkout's root on the path, for the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import (  # noqa: E402
    REPO,
    Stopwatch,
    count_flops,
    dense_peak,
    has_acdc,
    machine,
    median,
    table,
    write_results,
)


def settings(device: str, quick: bool) -> dict:
    cuda = device.startswith("cuda")
    s = {
        "size": [256, 256] if cuda else [128, 128],
        "batch": 24 if cuda else 8,
        "labeled_bs": 12 if cuda else 4,
        "width": 16,
        "levels": 5,
        "labeled_patients": 7,
        "dataset": "acdc" if has_acdc() else "synthetic",
    }
    s.update({"warmup": 2, "repeats": 3, "steps": 2} if quick else {"warmup": 5, "repeats": 7, "steps": 8})
    if cuda and not quick:
        s.update({"repeats": 7, "steps": 20})
    return s


def coda_config(s: dict, method: str, device: str, precision: str = "fp32", channels_last=None, compile=False):
    from coda_edu.config import load_config

    overrides = [
        f"data.name={s['dataset']}",
        f"data.image_size={s['size']}",
        f"data.labeled_patients={s['labeled_patients']}",
        f"model.base_width={s['width']}",
        f"model.levels={s['levels']}",
        f"method.name={method}",
        f"train.batch_size={s['batch']}",
        f"train.labeled_batch_size={s['labeled_bs']}",
        f"train.device={device}",
        f"train.precision={precision}",
        f"train.compile={str(compile).lower()}",
        "train.iterations=100000",
        "train.threads=0",
    ]
    if s["dataset"] == "synthetic":
        overrides += [
            f"data.synthetic.resolution={s['size'][0]}",
            "data.synthetic.n_patients=60",
            f"data.labeled_patients={s['labeled_patients']}",
        ]
    if channels_last is not None:
        overrides.append(f"train.channels_last={str(channels_last).lower()}")
    return load_config(None, overrides)


def make_trainer(s, method, device, data, tmp, **kw):
    from coda_edu.trainer import Trainer

    return Trainer(
        coda_config(s, method, device, **kw),
        tmp / f"{method}-{kw.get('precision', 'fp32')}-{kw.get('channels_last')}",
        progress=False,
        data=data,
        log=lambda m: None,
    )


def make_reference(s, device, data_cfg, data=None):
    """The reference loop on the same slices: for ACDC it reads the h5 files itself (``data`` is
    not needed, so its memory is measured without coda-edu's in-memory pools); for the
    synthetic data it takes the arrays of ``data``."""
    import numpy as np
    from reference_loop import ReferenceCoDA, SliceDataset

    from coda_edu.config import resolve
    from coda_edu.models import build_pair

    cfg = resolve(data_cfg)
    num_classes = 4
    model_a, model_b = build_pair(cfg, 1, num_classes)
    if s["dataset"] == "acdc":
        from coda_edu.data.acdc import labeled_patients_of, patient_of, training_slices
        from coda_edu.data.readers import dataset_root, read_list

        root = dataset_root(None, "ACDC", "ACDC")
        cases = read_list(root / "train.list")
        names, _ = training_slices(root, cases)
        labeled_patients = set(labeled_patients_of(cfg, cases)[1])
        paths = [root / "data" / "slices" / f"{n}.h5" for n in names]
        labeled = [i for i, n in enumerate(names) if patient_of(n) in labeled_patients]
        dataset = SliceDataset(tuple(s["size"]), h5_paths=paths)
    else:
        images = torch.cat([data.labeled.images, data.unlabeled.images])[:, 0].cpu().numpy()
        labels = torch.cat([data.labeled.labels, data.unlabeled.labels]).cpu().numpy()
        labeled = list(range(len(data.labeled)))
        dataset = SliceDataset(tuple(s["size"]), arrays=(images, labels.astype(np.int64)))
    unlabeled = [i for i in range(len(dataset)) if i not in set(labeled)]
    return ReferenceCoDA(
        model_a,
        model_b,
        dataset,
        labeled,
        unlabeled,
        s["batch"],
        s["labeled_bs"],
        num_classes,
        workers=2,
        device=device,
    )


def memory_child(kind: str, device: str, quick: bool) -> dict:
    """Run one loop in a fresh process; its peak resident memory and that of its DataLoader workers (bytes)."""
    cmd = [sys.executable, __file__, "--memory-child", kind, "--device", device] + (["--quick"] if quick else [])
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"memory child {kind} failed: {done.stderr[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def children_peak_rss() -> int:
    """Sum of the peak resident memory (VmHWM) of this process's live child processes (Linux)."""
    import os
    from pathlib import Path

    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) != os.getpid():
                continue
            for line in (stat.parent / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) * 1024
        except (OSError, IndexError, ValueError):
            continue
    return total


def run_memory_child(kind: str, device: str, quick: bool) -> None:
    import tempfile
    from pathlib import Path

    from coda_edu.data import load_dataset

    s = settings(device, quick)
    cfg = coda_config(s, "coda", device)
    data = None if kind == "reference" and s["dataset"] == "acdc" else load_dataset(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        step = (
            make_reference(s, device, cfg, data).step
            if kind == "reference"
            else make_trainer(s, "coda", device, data, Path(tmp)).train_step
        )
        for _ in range(s["warmup"] + s["steps"]):
            step()
        workers = children_peak_rss()
    print(
        json.dumps({"peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "workers_peak_rss": workers})
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few steps (CI size, a few minutes on 2 cores)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--compile", action="store_true", help="CUDA: also measure coda-edu with torch.compile")
    parser.add_argument("--out", help="results JSON (default: benchmarks/results/throughput.json)")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if args.memory_child:
        run_memory_child(args.memory_child, device, args.quick)
        return 0

    import tempfile
    from pathlib import Path

    from coda_edu.data import load_dataset

    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else None
    s = settings(device, args.quick)
    print(
        f"throughput on {device}: {s['dataset']} {s['size'][0]}x{s['size'][1]}, batch {s['batch']} "
        f"({s['labeled_bs']} labeled), U-Net {s['width']}-{s['width'] * 2 ** (s['levels'] - 1)}; "
        f"{s['repeats']} repeats x {s['steps']} steps after {s['warmup']} warm-up steps",
        flush=True,
    )
    base_cfg = coda_config(s, "coda", device)
    data = load_dataset(base_cfg)
    tmp = Path(tempfile.mkdtemp(prefix="coda-bench-"))
    loops = {
        "reference (fp32, scipy DataLoader)": make_reference(s, device, base_cfg, data).step,
        "coda-edu coda (fp32)": make_trainer(s, "coda", device, data, tmp).train_step,
        "coda-edu coda (fp32, channels-last)": make_trainer(
            s, "coda", device, data, tmp, channels_last=True
        ).train_step,
        "coda-edu cps (fp32)": make_trainer(s, "cps", device, data, tmp).train_step,
        "coda-edu supervised (fp32)": make_trainer(s, "supervised", device, data, tmp).train_step,
    }
    if cuda:
        loops["coda-edu coda (mixed precision)"] = make_trainer(
            s, "coda", device, data, tmp, precision="auto"
        ).train_step
        if args.compile:
            loops["coda-edu coda (mixed precision, compiled)"] = make_trainer(
                s, "coda", device, data, tmp, precision="auto", compile=True
            ).train_step
    for name, step in loops.items():
        for _ in range(s["warmup"]):
            step()
        print(f"  warmed up: {name}", flush=True)
    times = {name: [] for name in loops}
    for rep in range(s["repeats"]):
        for name, step in loops.items():
            with Stopwatch(sync) as t:
                for _ in range(s["steps"]):
                    step()
            times[name].append(t.seconds / s["steps"])
        print(
            f"  repeat {rep + 1}/{s['repeats']}: "
            + ", ".join(f"{n.split(' (')[0]} {times[n][-1]:.3f}s" for n in list(loops)[:2]),
            flush=True,
        )

    flops = {name: count_flops(step) for name, step in loops.items()}
    peak_fp32 = dense_peak(device, torch.float32, args.quick)
    peak_bf16 = dense_peak(device, torch.bfloat16, args.quick) if cuda else None
    mem, workers_mem = {}, {}
    if cuda:
        for name, step in loops.items():
            torch.cuda.reset_peak_memory_stats()
            step()
            mem[name] = torch.cuda.max_memory_allocated()
    else:
        for name, kind in (("reference (fp32, scipy DataLoader)", "reference"), ("coda-edu coda (fp32)", "coda")):
            measured = memory_child(kind, device, args.quick)
            mem[name], workers_mem[name] = measured["peak_rss"], measured["workers_peak_rss"]

    ref_name, coda_name = "reference (fp32, scipy DataLoader)", "coda-edu coda (fp32)"
    rows = []
    for name in loops:
        step_s = median(times[name])
        peak = peak_bf16 if "mixed" in name and peak_bf16 else peak_fp32
        images = s["labeled_bs"] if "supervised" in name else s["batch"]
        rows.append(
            {
                "loop": name,
                "step_s": step_s,
                "steps_per_s": 1 / step_s,
                "images_per_s": images / step_s,
                "gflop_per_step": flops[name] / 1e9,
                "gflop_per_s": flops[name] / step_s / 1e9,
                "peak_fraction": flops[name] / step_s / peak,
                "speedup_vs_reference": median(times[ref_name]) / step_s,
                "time_vs_coda": step_s / median(times[coda_name]),
                "peak_memory_mb": mem[name] / 2**20 if name in mem else None,
                "workers_peak_memory_mb": workers_mem[name] / 2**20 if name in workers_mem else None,
                "all_step_s": times[name],
            }
        )
    print()
    print(
        table(
            rows,
            [
                ("loop", "loop", ""),
                ("step_s", "s/step", ".3f"),
                ("images_per_s", "images/s", ".1f"),
                ("gflop_per_step", "GFLOP/step", ".1f"),
                ("gflop_per_s", "GFLOP/s", ".1f"),
                ("peak_fraction", "of peak", ".0%"),
                ("speedup_vs_reference", "x reference", ".2f"),
                ("time_vs_coda", "time/coda", ".3f"),
                ("peak_memory_mb", "peak MB", ".0f"),
                ("workers_peak_memory_mb", "+ workers MB", ".0f"),
            ],
        )
    )
    print(
        f"\ndense {'fp32'} matmul peak: {peak_fp32 / 1e9:.1f} GFLOP/s"
        + (f", bf16: {peak_bf16 / 1e12:.1f} TFLOP/s" if peak_bf16 else "")
        + f" on {machine().get('gpu', machine()['cpu'])}"
    )
    path = write_results(
        "throughput",
        {"settings": s, "device": device, "peak_fp32_flops": peak_fp32, "peak_bf16_flops": peak_bf16, "rows": rows},
        args.out,
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
