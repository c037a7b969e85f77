"""Shared fixtures: tiny configs for fast runs and the real-data location."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from coda_edu.config import Config, load_config

REPO = Path(__file__).resolve().parents[1]


def tiny_overrides(**extra) -> list[str]:
    """A synthetic experiment small enough for a unit test (seconds, not minutes)."""
    base = {
        "data.synthetic.n_patients": 14,
        "data.synthetic.slices_per_patient": 4,
        "data.synthetic.resolution": 32,
        "data.synthetic.val_patients": 2,
        "data.synthetic.test_patients": 2,
        "data.labeled_patients": 2,
        "model.base_width": 4,
        "model.levels": 4,
        "train.iterations": 8,
        "train.batch_size": 4,
        "train.labeled_batch_size": 2,
        "train.val_every": 4,
        "train.log_every": 2,
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


@pytest.fixture
def tiny_config() -> Config:
    return load_config(None, tiny_overrides())


def real_data_root(folder: str) -> Path:
    """``$CODA_EDU_DATA_DIR/<folder>``, or skip the test with the reason.

    With ``CODA_EDU_REQUIRE_DATA=1`` (set by ``.ci/run`` when it finds the data) a missing
    folder fails the test instead, so CI cannot turn green by skipping the real-data checks.
    """
    root = os.environ.get("CODA_EDU_DATA_DIR")
    reason = None
    if not root:
        reason = (
            f"real data not available: set CODA_EDU_DATA_DIR to a folder holding {folder}/ (CI uses ../shared/data)"
        )
    elif not (Path(root) / folder).is_dir():
        reason = f"real data not available: {Path(root) / folder} does not exist"
    if reason is None:
        return Path(root) / folder
    if os.environ.get("CODA_EDU_REQUIRE_DATA") == "1":
        pytest.fail(f"{reason} (CODA_EDU_REQUIRE_DATA=1 requires it)")
    pytest.skip(reason)


def cli_command() -> list[str]:
    """The coda-edu CLI of this interpreter (works without the console script on PATH)."""
    return [sys.executable, "-m", "coda_edu.cli"]


@pytest.fixture(scope="session")
def quick_series(tmp_path_factory):
    """The notebook series executed once per test session at the quick size, with the exercises'
    reference answers (``solutions=True``): ``(folder, seconds per notebook)``. The notebook claims
    (tests/test_notebooks.py) and the course site (tests/test_book.py) read these executions."""
    from coda_course import notebooks

    out = tmp_path_factory.mktemp("notebooks")
    timings = notebooks.run_series(None, out, {"solutions": True}, quick=True, log=lambda s: None)
    return out, timings


#: A notebook size below the quick one for tests that check mechanics only (``$CODA_EDU_QUICK_PRESET``).
SMOKE_PRESET = REPO / "tests" / "smoke_preset.yaml"
