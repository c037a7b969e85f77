"""Shared helpers of the benchmark scripts: machine description, results files, tables."""

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
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))


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
