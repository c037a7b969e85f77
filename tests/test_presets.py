"""The quick preset: one packaged file that the notebooks, the datasets and the benchmarks read."""

import sys
from fnmatch import fnmatch

import pytest

from coda_course import notebooks
from coda_edu import presets
from coda_edu.config import load_config
from coda_edu.errors import ConfigError
from coda_edu.registry import DATASETS
from tests.conftest import REPO, SMOKE_PRESET

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def test_every_notebook_reads_its_quick_size_from_the_preset(monkeypatch):
    monkeypatch.delenv(presets.PRESET_ENV, raising=False)
    for name in notebooks.SERIES:
        source = notebooks.source_path(name).read_text()
        assert "SMALL_SYNTHETIC" not in source, name
        if name == "05_compare_runs":  # it reads runs and trains none: no quick size to read
            assert "import train" not in source and "notebook_quick" not in source
            with pytest.raises(ConfigError, match="no entry notebooks.05_compare_runs"):
                presets.notebook_quick(name)
            continue
        size = presets.notebook_quick(name)
        assert size.steps >= 1 and all("=" in o for o in size.overrides), name
        assert f'notebook_quick("{name}")' in source, name


def test_dataset_quick_overrides_come_from_the_preset():
    assert DATASETS.get("synthetic").quick == presets.dataset_quick("synthetic")
    assert DATASETS.get("acdc").quick == presets.dataset_quick("acdc")
    assert presets.dataset_quick("no-such-dataset") == ()
    cfg = load_config(None, list(presets.dataset_quick("synthetic")))  # valid config keys and values
    assert cfg.data.synthetic.resolution == 32


def test_the_environment_names_another_notebook_size(monkeypatch, tmp_path):
    monkeypatch.setenv(presets.PRESET_ENV, str(SMOKE_PRESET))
    smoke = presets.notebook_quick("01_class_imbalance").steps
    monkeypatch.delenv(presets.PRESET_ENV)
    assert smoke < presets.notebook_quick("01_class_imbalance").steps
    monkeypatch.setenv(presets.PRESET_ENV, str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="missing.yaml.*not found"):
        presets.notebook_quick("01_class_imbalance")
    bad = tmp_path / "bad.yaml"
    bad.write_text("notebooks:\n  01_class_imbalance: {steps: 0}\n")
    monkeypatch.setenv(presets.PRESET_ENV, str(bad))
    with pytest.raises(ConfigError, match=r"bad.yaml.*notebooks.01_class_imbalance.steps"):
        presets.notebook_quick("01_class_imbalance")
    with pytest.raises(ConfigError, match="no entry notebooks.02_distribution_alignment"):
        presets.notebook_quick("02_distribution_alignment")


def test_the_preset_ships_as_package_data():
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["coda_edu"]
    shipped = (REPO / "coda_edu" / "presets" / presets.PACKAGED).relative_to(REPO / "coda_edu").as_posix()
    assert any(fnmatch(shipped, p) for p in patterns), patterns
