"""Sizes shipped inside the package: the *quick* size of the notebooks and datasets.

``quick.yaml`` (package data) is the one place that says what "quick" means:

- ``datasets.<name>``: ``KEY=VALUE`` config overrides that shrink a run of that dataset
  (:attr:`coda_edu.registry.DatasetSpec.quick`; the benchmarks' ``--quick`` add the synthetic
  entry);
- ``notebooks.<notebook>``: the training ``steps`` that ``quick=True`` sets in that
  notebook and extra ``overrides`` (:func:`notebook_quick`).

``$CODA_EDU_QUICK_PRESET`` may name another YAML file with a ``notebooks`` section of the
same form; tests that only check mechanics (a live JupyterLab, running in place, the
sweep) use it to run the notebooks smaller than the quick size. The datasets section is
always read from the packaged file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from ..io import load_yaml

PRESET_ENV = "CODA_EDU_QUICK_PRESET"
PACKAGED = "quick.yaml"


@dataclass(frozen=True)
class NotebookQuick:
    """What ``quick=True`` sets in one notebook: training ``steps`` and extra config ``overrides``."""

    steps: int
    overrides: list[str] = field(default_factory=list)


def _read(path: Path | None = None) -> tuple[dict[str, Any], str]:
    if path is None:
        text, where = resources.files(__package__).joinpath(PACKAGED).read_text(), f"coda_edu/presets/{PACKAGED}"
    else:
        if not path.is_file():
            raise ConfigError(f"quick preset '{path}' (${PRESET_ENV}) not found")
        text, where = path.read_text(), str(path)
    try:
        data = load_yaml(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"quick preset '{where}': not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"quick preset '{where}': expected a mapping at the top level")
    return data, where


def _string_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and "=" in v for v in value):
        raise ConfigError(f"quick preset '{where}': expected a list of KEY=VALUE strings")
    return list(value)


def dataset_quick(dataset: str) -> tuple[str, ...]:
    """The packaged quick overrides of ``dataset`` (empty when the preset names none)."""
    data, where = _read()
    datasets = data.get("datasets") or {}
    return tuple(_string_list(datasets.get(dataset), f"{where}: datasets.{dataset}"))


def notebook_quick(notebook: str) -> NotebookQuick:
    """What ``quick=True`` sets in ``notebook`` (a full name such as ``01_class_imbalance``), from
    ``$CODA_EDU_QUICK_PRESET`` when set, else from the packaged ``quick.yaml``."""
    override = os.environ.get(PRESET_ENV)
    data, where = _read(Path(override) if override else None)
    entry = (data.get("notebooks") or {}).get(notebook)
    if not isinstance(entry, dict):
        raise ConfigError(f"quick preset '{where}': no entry notebooks.{notebook}")
    steps = entry.get("steps")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ConfigError(f"quick preset '{where}': notebooks.{notebook}.steps must be a positive integer")
    return NotebookQuick(steps, _string_list(entry.get("overrides"), f"{where}: notebooks.{notebook}.overrides"))
