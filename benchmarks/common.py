"""Shared helpers of the benchmark scripts: machine description, timing, the FLOP counter and the
dense-matmul peak probe, results files, tables."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"


def data_dir() -> Path | None:
    root = os.environ.get("CODA_EDU_DATA_DIR")
    return Path(root) if root and Path(root).is_dir() else None


def has_acdc() -> bool:
    root = data_dir()
    return root is not None and (root / "ACDC" / "train.list").is_file()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    import torch

    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    # a copy without the real history (a GPU machine's) names its commit in $CODA_EDU_GIT_COMMIT
    info["git_commit"] = os.environ.get("CODA_EDU_GIT_COMMIT", "")
    if not info["git_commit"]:
        try:
            info["git_commit"] = subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=5
            ).stdout.strip()
        except Exception:
            pass
    return info


def write_results(name: str, payload: dict, out: str | None = None) -> Path:
    """Write ``payload`` (plus machine and date) as JSON; returns the path."""
    from coda_edu.io import atomic_write_json

    path = Path(out) if out else RESULTS / f"{name}.json"
    payload = {
        "benchmark": name,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "machine": machine(),
        **payload,
    }
    atomic_write_json(path, payload)
    return path


def table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """Plain-text table; ``columns`` = (key, header, format spec)."""
    widths = []
    cells = []
    for key, header, spec in columns:
        col = [header] + [
            format(r[key], spec) if r.get(key) is not None and spec else str(r.get(key, "")) for r in rows
        ]
        widths.append(max(len(c) for c in col))
        cells.append(col)
    lines = []
    for i in range(len(rows) + 1):
        lines.append(
            "  ".join(col[i].ljust(w) if j == 0 else col[i].rjust(w) for j, (col, w) in enumerate(zip(cells, widths)))
        )
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def median(values) -> float:
    return float(statistics.median(values))


class Stopwatch:
    """``with Stopwatch(sync) as t: ...`` then ``t.seconds`` (CUDA-synchronised when ``sync`` is given)."""

    def __init__(self, sync=None):
        self.sync = sync
        self.seconds = 0.0

    def __enter__(self):
        if self.sync:
            self.sync()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.sync:
            self.sync()
        self.seconds = time.perf_counter() - self._start
        return False


def count_flops(step) -> float:
    """FLOPs of one call of ``step`` as torch's FLOP counter sees them (matrix products and
    convolutions, forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def dense_peak(device: str, dtype, quick: bool) -> float:
    """FLOP/s of a large dense matrix product, the device's practical peak for ``dtype``: the median of
    repeated n x n products, n = 2048 on the CPU and 8192 on a GPU (512 with ``quick``: a CPU without
    bf16 units takes seconds per bf16 product of 2048)."""
    import torch

    n = 512 if quick else 2048 if device == "cpu" else 8192
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.startswith("cuda") else None
    for _ in range(3):
        a @ b
    times = []
    for _ in range(5 if quick else 20):
        with Stopwatch(sync) as t:
            a @ b
        times.append(t.seconds)
    return 2 * n**3 / median(times)
