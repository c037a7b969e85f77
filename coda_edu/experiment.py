"""A run folder trained once: read it when it is finished, resume it when it stopped, train it otherwise.

Notebook 04 uses :func:`train_or_read` so that running it a second time (or pointing it at
a run trained before a workshop) reads the run instead of failing on an existing folder
or training it again. :func:`run_name` gives a folder name that changes with the config,
so that other settings never meet an older run's folder.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .config import Config, resolve
from .errors import RunFolderError
from .run_folder import RunFolder, config_differences, without_execution_keys


def comparable(cfg: Config) -> dict:
    """The resolved config as a dict, without the keys that say where it trains."""
    return without_execution_keys(resolve(cfg).to_dict())


def config_hash(cfg: Config) -> str:
    """Six hex digits of the resolved config (execution keys aside)."""
    text = json.dumps(comparable(cfg), sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:6]


def run_name(prefix: str, cfg: Config) -> str:
    """``<prefix>-<data>-<method>-labeled<n>-seed<s>-<steps>steps-<hash>``."""
    c = resolve(cfg)
    labeled = c.data.labeled_patients if c.data.labeled_fraction is None else c.data.labeled_fraction
    return (
        f"{prefix}-{c.data.name}-{c.method.name}-labeled{labeled}-seed{c.seed}-{c.train.iterations}steps-"
        f"{config_hash(c)}"
    )


@dataclass
class Experiment:
    """What :func:`train_or_read` gives: the run folder, its resolved config, its evaluation
    (eval.json), the data, the networks A and B at the ``best`` checkpoint, and what was done
    ("read", "resumed" or "trained"), with the config keys where a read run differs from the
    config asked for."""

    run_dir: Path
    cfg: Config
    evaluation: dict
    data: object
    model_a: object
    model_b: object
    done: str
    differs: list[str]


def finished(run_dir: str | Path) -> bool:
    return RunFolder(run_dir).is_finished("best")


def train_or_read(
    cfg: Config,
    out: str | Path,
    *,
    data=None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Experiment:
    """The run in ``out``: read when finished (its own config, whatever ``cfg`` says: the
    differences are returned), resumed when it stopped after a checkpoint, else trained with
    ``cfg``. ``data`` is reused only for a run whose config equals ``cfg``."""
    from .data import load_dataset
    from .run_folder import load_run_pair
    from .train import train

    run = RunFolder(out)
    if finished(out):
        own = resolve(run.read_config())
        differs = config_differences(comparable(own), comparable(cfg))
        evaluation = run.read_eval()
        if data is None or differs:
            data = load_dataset(own)
        model_a, model_b = load_run_pair(run.path, "best")
        return Experiment(run.path, own, evaluation, data, model_a, model_b, "read", differs)
    kind = run.kind()
    if kind == "run":  # stopped after a checkpoint: continue it (its own config must be the one asked for)
        own = resolve(run.read_config())
        differs = config_differences(comparable(own), comparable(cfg))
        if differs:
            raise RunFolderError(
                f"'{run.path}' holds an unfinished run of other settings (it differs at {', '.join(differs[:6])}): "
                f"choose another run folder, or delete it"
            )
        result = train(None, run.path, resume=True, progress=progress, log=log, data=data)
        done = "resumed"
    else:
        result = train(cfg, run.path, progress=progress, log=log, data=data)
        done = "trained"
    return Experiment(
        result.run_dir,
        resolve(cfg),
        result.evaluation,
        result.data,
        result.model_a,
        result.model_b,
        done,
        [],
    )


def with_method(cfg: Config, method: str) -> Config:
    """The same run with another ``method.name`` (alignment and filter back to that method's defaults)."""
    from .config import from_dict

    mapping = cfg.to_dict()
    mapping["method"]["name"] = method
    mapping["method"]["alignment"] = None
    mapping["method"]["filter"] = None
    return resolve(from_dict(mapping))


def describe(exp: Experiment, label: str = "") -> str:
    """One line: what was done with which run folder (and how a read run differs from the parameters)."""
    c = exp.cfg
    what = {"read": "read the finished run", "resumed": "resumed and finished", "trained": "trained"}[exp.done]
    line = (
        f"{label}{what} {exp.run_dir}: {c.method.name} on {c.data.name}, {c.data.labeled_patients} labeled, "
        f"{c.train.iterations} steps, seed {c.seed}"
    )
    if exp.differs:
        shown = ", ".join(exp.differs[:6]) + (f" and {len(exp.differs) - 6} more" if len(exp.differs) > 6 else "")
        line += f" (not the notebook's parameters: it differs at {shown})"
    return line
