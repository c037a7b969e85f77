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
        "data.synthetic.n_patients": 14, "data.synthetic.slices_per_patient": 4, "data.synthetic.resolution": 32,
        "data.synthetic.val_patients": 2, "data.synthetic.test_patients": 2, "data.labeled_patients": 2,
        "model.base_width": 4, "model.levels": 4, "train.iterations": 8, "train.batch_size": 4,
        "train.labeled_batch_size": 2, "train.val_every": 4, "train.log_every": 2,
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


@pytest.fixture
def tiny_config() -> Config:
    return load_config(None, tiny_overrides())


def real_data_root(folder: str) -> Path:
    """``$CODA_EDU_DATA_DIR/<folder>`` or skip the test with the reason."""
    root = os.environ.get("CODA_EDU_DATA_DIR")
    if not root:
        pytest.skip(f"real data not available: set CODA_EDU_DATA_DIR to a folder holding {folder}/ (CI uses ../shared/data)")
    path = Path(root) / folder
    if not path.is_dir():
        pytest.skip(f"real data not available: {path} does not exist")
    return path


def cli_command() -> list[str]:
    """The coda-edu CLI of this interpreter (works without the console script on PATH)."""
    return [sys.executable, "-m", "coda_edu.cli"]
