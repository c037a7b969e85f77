"""A method and a dataset from outside coda_edu/, picked up from an installed package's entry points.

The package is "installed" the way pip leaves one on disk: a ``*.dist-info`` folder with an
``entry_points.txt`` on the Python path. Its modules are tests/toy_method.py and
tests/toy_dataset.py; no file under coda_edu/ names them.
"""

import json
import os
import subprocess
import sys
import warnings

import pytest

from coda_edu.errors import ConfigError
from coda_edu.registry import METHODS, PluginWarning, Registry
from tests.conftest import REPO


def _install(site, entry_points: str, name: str = "coda_edu_toy_plugins") -> None:
    info = site / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)


def test_the_toy_method_and_dataset_train_through_the_command_from_entry_points(tmp_path):
    site = tmp_path / "site"
    _install(
        site,
        "[coda_edu.methods]\ntoy = tests.toy_method\n\n[coda_edu.datasets]\ntoy_discs = tests.toy_dataset\n",
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    sets = {
        "method.name": "toy",
        "data.name": "toy_discs",
        "data.labeled_patients": 4,
        "model.base_width": 4,
        "model.levels": 3,
        "train.iterations": 4,
        "train.batch_size": 4,
        "train.labeled_batch_size": 2,
        "train.val_every": 2,
        "train.log_every": 2,
        "train.threads": 1,
        "method.copy_weight": 0.5,  # the plugins' own keys, declared in their modules
        "data.toy_noise": 0.05,
    }
    args = [a for key, value in sets.items() for a in ("--set", f"{key}={value}")]
    out = tmp_path / "run"
    command = [sys.executable, "-m", "coda_edu.cli", "train", "--out", str(out), "--no-progress", *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["kind"] == "train"]
    assert [r["step"] for r in train_rows] == [2, 4] and all("copy_B" in r for r in train_rows)
    saved = (out / "config.yaml").read_text()
    assert "copy_weight: 0.5" in saved and "toy_noise: 0.05" in saved
    evaluation = json.loads((out / "eval.json").read_text())
    scored = {(r["checkpoint"], r["split"], r["model"], r["class"]) for r in evaluation["records"]}
    assert {
        (c, s, "ensemble", k) for c in ("best", "last") for s in ("val", "test") for k in ("disc", "square")
    } <= scored

    # the plugins' keys are listed with their help, and checked against their limits in one line
    keys = [sys.executable, "-m", "coda_edu.cli", "config", "--keys"]
    listed = subprocess.run(keys, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr[-2000:]
    lines = {line.split()[0]: line for line in listed.stdout.splitlines()}
    assert "toy: weight of B's copy loss" in lines["method.copy_weight"]
    assert "toy_discs: standard deviation" in lines["data.toy_noise"]
    bad = subprocess.run(
        command + ["--set", "method.copy_weight=-1"], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert bad.returncode != 0
    assert bad.stderr == "coda-edu: error: config key 'method.copy_weight': -1.0 is out of range (must be >= 0.0)\n"

    # without the package on the path, its keys and names are refused in one line
    env["PYTHONPATH"] = str(REPO)
    refused = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert refused.returncode != 0
    assert refused.stderr.startswith("coda-edu: error: unknown config key 'method.copy_weight'")
    own = ("method.copy_weight", "data.toy_noise")
    plain = [a for key, value in sets.items() if key not in own for a in ("--set", f"{key}={value}")]
    refused = subprocess.run(command[: -len(args)] + plain, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert refused.returncode != 0
    assert refused.stderr.startswith("coda-edu: error: config key 'data.name': 'toy_discs' is not one of")
    assert refused.stderr.count("\n") == 1  # one line, no traceback


def test_a_broken_plugin_is_skipped_with_a_warning_naming_it(tmp_path, monkeypatch):
    site = tmp_path / "site"
    _install(
        site,
        "[coda_edu_test.methods]\nbroken = tests.no_such_module\nmisnamed = tests.toy_method\n",
        name="coda_edu_broken_plugins",
    )
    monkeypatch.syspath_prepend(str(site))
    registry = Registry("method", "method.name", "algorithm", builtins=(), entry_points="coda_edu_test.methods")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = registry.names()
    messages = sorted(str(w.message) for w in caught if issubclass(w.category, PluginWarning))
    assert len(messages) == 2
    assert messages[0].startswith("method 'broken' (entry point 'tests.no_such_module' of group coda_edu_test.methods)")
    assert "ModuleNotFoundError" in messages[0]
    assert messages[1].endswith("skipped: it registers no method of that name")
    assert names == ()  # the module imported, but it registers "toy" in METHODS, not here
    with pytest.raises(ConfigError, match="config key 'method.name': 'broken' is not one of"):
        registry.get("broken")
    assert "coda" in METHODS.names()  # the built-ins are unaffected
