"""One run folder, opened the same way by training, resuming, evaluation and the notebooks.

::

    RUN/config.yaml         the fully resolved config
    RUN/metrics.jsonl       one line per logged step ("kind": "train") and per validation ("kind": "val")
    RUN/checkpoints/        last.pt (resumable, refreshed at every validation) and best.pt
    RUN/eval.json           protocol + records (split x checkpoint x model x class)
    RUN/eval_cases.jsonl    the per-case values behind the records
    RUN/figures/            learning_curves.png, overlay.png
    RUN/.lock               while a train/resume/eval holds the folder

:class:`RunFolder` checks what a folder is before anything writes to it (a new run never
writes over files it did not make), locks it, reads and checks its config, reads and
writes checkpoints, rebuilds the trained pair and writes the results. Every problem is a
one-line :class:`~coda_edu.errors.RunFolderError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from .errors import ConfigError, RunFolderError, clip, excerpt
from .io import (
    LOCK_NAME,
    TMP_SUFFIX,
    RunLock,
    append_jsonl,
    atomic_write_json,
    atomic_write_text,
    load_yaml,
    read_json,
    read_jsonl,
    read_small_text,
    remove_stale_tmp,
    to_jsonable,
    truncate_jsonl,
    warn_line,
)

if TYPE_CHECKING:  # pragma: no cover
    from .config import Config

CHECKPOINTS = ("last", "best")
#: What ``coda-edu eval --run`` may find changed in config.yaml since the checkpoints were written:
#: how the evaluation runs, never what was trained or on which data.
EVAL_ONLY_KEYS = ("eval.splits", "eval.distances", "eval.batch_size", "eval.overlap", "train.device", "train.threads")


def flatten(mapping: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def config_differences(a: dict, b: dict) -> list[str]:
    """Dotted keys whose values differ between two config dicts (a key missing on one side differs)."""
    fa, fb = flatten(a), flatten(b)
    missing = object()
    return sorted(k for k in set(fa) | set(fb) if fa.get(k, missing) != fb.get(k, missing))


#: config keys that say where a run trained, not what it is: left out when two runs are compared
EXECUTION_KEYS = ("train.device", "train.threads")


def without_execution_keys(config: dict) -> dict:
    """A copy of a config dict without :data:`EXECUTION_KEYS`."""
    out = json.loads(json.dumps(config))
    for key in EXECUTION_KEYS:
        section, name = key.split(".")
        out.get(section, {}).pop(name, None)
    return out


def _shown(keys: list[str]) -> str:
    return ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")


_TMP_RE = re.compile(re.escape(TMP_SUFFIX) + r"(\d+)$")


def _is_step(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _count(shapes: dict, key: str, path: Path) -> int:
    value = shapes[key]
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= 10_000:
        raise RunFolderError(f"checkpoint '{path}' is damaged: its data.{key} is {excerpt(value)}")
    return value


class RunFolder:
    """The files of one run (see the module docstring); ``RunFolder(path)`` only names them."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder('{self.path}')"

    # ------------------------------------------------------------------ names
    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def eval_path(self) -> Path:
        return self.path / "eval.json"

    @property
    def eval_cases_path(self) -> Path:
        return self.path / "eval_cases.jsonl"

    def figure_path(self, name: str) -> Path:
        """``figures/<name>.png``."""
        return self.path / "figures" / f"{name}.png"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint_path(self, name: str) -> Path:
        return self.checkpoints_dir / f"{name}.pt"

    def kind(self) -> str:
        """What the folder is: "missing", "file", "empty", "run" (has checkpoints/last.pt), "started" (a
        coda-edu run that stopped before its first checkpoint: checkpoints/ without last.pt) or "foreign"
        (a non-empty folder that is not a coda-edu run; its lock and temporary files aside)."""
        if not self.path.exists():
            return "missing"
        if not self.path.is_dir():
            return "file"
        own = [p for p in self.path.iterdir() if p.name != LOCK_NAME and not _TMP_RE.search(p.name)]
        if not own:
            return "empty"
        if self.checkpoint_path("last").is_file():
            return "run"
        return "started" if self.checkpoints_dir.is_dir() else "foreign"

    @classmethod
    def find(cls, root: str | Path, skip: str | None = None) -> list[RunFolder]:
        """The evaluated run folders (config.yaml and eval.json) anywhere below ``root``, except those
        below a folder named ``skip``."""
        root = Path(root)
        if not root.is_dir():
            return []
        runs = [cls(p.parent) for p in root.rglob("eval.json")]
        runs = [r for r in runs if r.config_path.is_file() and skip not in r.path.relative_to(root).parts]
        return sorted(runs, key=lambda r: r.path)

    # ------------------------------------------------------------------ opening
    def check_new(self) -> None:
        """Refuse to start a new run in a file, a finished run, or a folder of other files."""
        kind = self.kind()
        if kind == "file":
            raise RunFolderError(f"run folder '{self.path}' is a file, not a folder: choose another --out")
        if kind == "run":
            raise RunFolderError(
                f"run folder '{self.path}' already holds a run: continue it with --resume, or choose another --out"
            )
        if kind == "foreign":
            raise RunFolderError(
                f"folder '{self.path}' is not empty and is not a coda-edu run folder "
                f"(no checkpoints/): coda-edu never writes over files it did not make; "
                f"choose another --out"
            )

    def check_is_folder(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(f"run folder '{self.path}' is a file, not a folder: choose another --out")

    def make(self, folder: Optional[Path] = None) -> None:
        """Create the run folder (or ``folder`` inside it) with a one-line error."""
        try:
            (folder or self.path).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunFolderError(f"cannot create run folder '{self.path}': {exc.strerror or exc}") from None

    def create(self, log: Callable[[str], None] = print) -> None:
        """Make the folder of a new run (see :meth:`check_new`); a run stopped before its first
        checkpoint is started again in place."""
        self.check_new()
        if self.kind() == "started":
            # Stopped before its first checkpoint: nothing in it can be resumed, so start it again in place.
            log(f"restarting {self.path} in place (the earlier run stopped before its first checkpoint)")
            for stale in (self.metrics_path, self.checkpoint_path("best"), self.eval_path, self.eval_cases_path):
                stale.unlink(missing_ok=True)
        self.make(self.checkpoints_dir)

    def lock(self, command: str, warn: Optional[Callable[[str], None]] = None) -> RunLock:
        """Take the folder's exclusive lock (a context manager; a second holder gets a one-line error) and,
        in a coda-edu run folder, remove the temporary files of killed writers."""
        lock = RunLock(self.path, command, warn).acquire()
        if self.kind() in ("run", "started"):
            remove_stale_tmp([self.path, self.checkpoints_dir, self.path / "figures"])
        return lock

    # ------------------------------------------------------------------ config
    def read_config(self) -> Config:
        """``config.yaml``; one-line errors for a missing or damaged file."""
        import yaml

        from .config import CONFIG_LIMIT, from_dict

        path = self.config_path
        if not path.is_file():
            raise RunFolderError(f"'{self.path}' is not a run folder (no config.yaml)")
        text = read_small_text(path, what="run config", limit=CONFIG_LIMIT, error=RunFolderError)
        try:
            mapping = load_yaml(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            raise RunFolderError(
                f"run config '{path}'{where} is not valid YAML ({getattr(exc, 'problem', None) or 'invalid YAML'})"
            ) from None
        if not isinstance(mapping, dict):
            raise RunFolderError(f"run config '{path}' is not a coda-edu config (expected a mapping of keys)")
        try:
            return from_dict(mapping)
        except ConfigError as exc:
            raise RunFolderError(f"run config '{path}': {exc}") from None

    def write_config(self, cfg: Config) -> None:
        from .config import save_config

        save_config(cfg, self.config_path)

    def config_for_resume(self, given: Optional[Config] = None) -> Config:
        """The config a resumed run continues with: ``config.yaml``, which must equal the config
        stored in ``last.pt`` (and ``given``, when the caller passes one): resume means the same run."""
        from .config import resolve

        last = self.checkpoint_path("last")
        if not last.is_file():
            if self.kind() == "started":
                again = (
                    f"coda-edu train --config {self.config_path} --out {self.path}"
                    if self.config_path.is_file()
                    else f"coda-edu train --out {self.path} with the run's --config/--set"
                )
                raise RunFolderError(
                    f"cannot resume: '{self.path}' has no checkpoints/last.pt (the run stopped before "
                    f"its first checkpoint); start it again in place, without --resume: {again}"
                )
            raise RunFolderError(f"cannot resume: '{self.path}' has no checkpoints/last.pt and config.yaml")
        if not self.config_path.is_file():
            raise RunFolderError(f"cannot resume: '{self.path}' has checkpoints/last.pt but no config.yaml")
        cfg = self.read_config()
        stored = self._stored_config("last")
        differ = config_differences(stored, resolve(cfg).to_dict())
        if differ:
            raise RunFolderError(
                f"cannot resume: '{self.config_path}' differs from the config stored in "
                f"checkpoints/last.pt at {_shown(differ)}; a resumed run must be the same run: undo "
                f"the edit, or start a new run in another --out"
            )
        if given is not None:
            differ = config_differences(stored, resolve(given).to_dict())
            if differ:
                raise RunFolderError(
                    f"cannot resume '{self.path}' with another config (it differs at "
                    f"{_shown(differ)}); a resumed run continues with its own config.yaml: "
                    f"pass no config"
                )
        return cfg

    def config_for_eval(self) -> Config:
        """The config ``coda-edu eval --run`` scores the checkpoints with: ``config.yaml``, which must
        equal the config stored in ``last.pt`` and ``best.pt`` (the networks it builds and the data it
        opens are the ones trained), except for :data:`EVAL_ONLY_KEYS`."""
        from .config import resolve

        cfg = self.read_config()
        self.require_checkpoints()
        mine = resolve(cfg).to_dict()
        for name in CHECKPOINTS:
            differ = [k for k in config_differences(self._stored_config(name), mine) if k not in EVAL_ONLY_KEYS]
            if differ:
                raise RunFolderError(
                    f"cannot evaluate: '{self.config_path}' differs from the config stored in "
                    f"checkpoints/{name}.pt at {_shown(differ)}; the checkpoints were trained with that config: "
                    f"undo the edit (only {', '.join(EVAL_ONLY_KEYS)} may change for an evaluation)"
                )
        return cfg

    def _stored_config(self, name: str) -> dict:
        """The resolved config a checkpoint was written with (as a dict), with one-line errors; the
        checkpoint's step and weights are checked on the way."""
        from .config import from_dict, resolve

        path = self.checkpoint_path(name)
        state = self.load_checkpoint(name)
        self._check_entries(state, path)
        stored = state.get("config")
        if not isinstance(stored, dict):
            raise RunFolderError(
                f"checkpoint '{path}' holds no config, so it cannot be checked against '{self.config_path}'"
            )
        try:
            return resolve(from_dict(stored)).to_dict()
        except ConfigError as exc:
            raise RunFolderError(f"checkpoint '{path}': its stored config is invalid ({exc})") from None

    # ------------------------------------------------------------------ checkpoints
    def load_checkpoint(self, name: str, map_location="cpu") -> dict:
        from .checkpoint import load_checkpoint

        return load_checkpoint(self.checkpoint_path(name), map_location=map_location)

    def save_checkpoint(self, name: str, state: dict) -> None:
        from .checkpoint import save_checkpoint

        save_checkpoint(self.checkpoint_path(name), state)

    def load_networks(self, name: str, model_a, model_b, map_location="cpu") -> dict:
        """Load networks A and B from checkpoint ``name`` and return the checkpoint; one-line errors for a
        checkpoint that lacks them, holds other shapes, or has no integer ``step``."""
        state = self.load_checkpoint(name, map_location=map_location)
        self._fill(state, self.checkpoint_path(name), model_a, model_b)
        return state

    @staticmethod
    def _check_entries(state: dict, path: Path) -> None:
        """A checkpoint must hold its step number and the weights of both networks."""
        step = state.get("step")
        if not _is_step(step):
            raise RunFolderError(f"checkpoint '{path}' is damaged: its 'step' is {excerpt(step)}, not a step number")
        for key in ("model_a", "model_b"):
            if not isinstance(state.get(key), dict):
                raise RunFolderError(f"checkpoint '{path}' is damaged: it holds no '{key}' weights")

    @classmethod
    def _fill(cls, state: dict, path: Path, model_a, model_b) -> None:
        cls._check_entries(state, path)
        for key, model in (("model_a", model_a), ("model_b", model_b)):
            try:
                model.load_state_dict(state[key])
            except (RuntimeError, TypeError, ValueError, AttributeError) as exc:
                raise RunFolderError(
                    f"checkpoint '{path}' does not fit its run config ({type(exc).__name__}: {clip(str(exc))})"
                ) from None

    def require_checkpoints(self) -> None:
        for name in CHECKPOINTS:
            if not self.checkpoint_path(name).is_file():
                raise RunFolderError(f"'{self.path}' has no checkpoints/{name}.pt (was the run started?)")

    def load_pair(self, checkpoint: str = "best", device: str = "cpu"):
        """Networks A and B at the ``best`` or ``last`` checkpoint, in eval mode.

        The network shapes come from the config and the ``data`` entry of the checkpoint
        (input channels and classes, stored by the trainer).
        """
        from .config import resolve
        from .models import build_pair

        cfg = resolve(self.read_config())
        path = self.checkpoint_path(checkpoint)
        state = self.load_checkpoint(checkpoint, map_location=device)
        shapes = state.get("data")
        if not isinstance(shapes, dict) or not {"in_channels", "num_classes"} <= set(shapes):
            raise RunFolderError(
                f"checkpoint '{path}' does not record the data shapes "
                f"(in_channels, num_classes): it was written by an older coda-edu; "
                f"train the run again"
            )
        model_a, model_b = build_pair(cfg, _count(shapes, "in_channels", path), _count(shapes, "num_classes", path))
        self._fill(state, path, model_a, model_b)
        return model_a.to(device).eval(), model_b.to(device).eval()

    # ------------------------------------------------------------------ metrics and results
    def append_metrics(self, rows: list[dict]) -> None:
        append_jsonl(self.metrics_path, rows)

    def append_train_logs(self, step: int, logs: dict) -> dict:
        """Write one training step's ``logs`` as a ``"kind": "train"`` line of metrics.jsonl and return
        the row: tensors are read (a device sync: only on logged steps) and every float is rounded to
        6 decimals; ``None`` values are left out."""
        row = {"kind": "train", "step": step}
        for key, value in logs.items():
            if hasattr(value, "detach"):  # a tensor
                value = value.detach().float().cpu()
                value = value.item() if value.ndim == 0 else [round(float(x), 6) for x in value.tolist()]
            if value is not None:
                row[key] = round(value, 6) if isinstance(value, float) else value
        self.append_metrics([row])
        return row

    def append_validation(self, step: int, scores: dict, selected: float | None, state) -> None:
        """One validation as a ``"kind": "val"`` line of metrics.jsonl: the Dice of each model
        (``scores``), the score that selects ``best.pt``, the best step so far and the seconds spent
        training and validating (``state``, a :class:`~coda_edu.checkpoint.TrainState`)."""
        row = {
            "kind": "val",
            "step": step,
            "seconds": round(state.train_seconds, 2),
            "val_seconds": round(state.val_seconds, 2),
            "dice": dict(scores),
            "selected": selected,
            "best_step": state.best_step,
        }
        self.append_metrics([row])

    def read_metrics(self, warn: Optional[Callable[[str], None]] = None) -> list[dict]:
        """The rows of metrics.jsonl that have an integer ``step`` (damaged lines are reported through ``warn``)."""
        return [row for row in read_jsonl(self.metrics_path, warn=warn) if _is_step(row.get("step"))]

    def truncate_metrics(self, step: int) -> None:
        """Forget what a killed run logged after the checkpoint of ``step`` (and rows with no integer step)."""

        def keep(row: dict) -> bool:
            if not _is_step(row.get("step")):
                warn_line(f"'{self.metrics_path}': a row with no integer 'step' ({excerpt(row)}) was dropped")
                return False
            return row["step"] <= step

        truncate_jsonl(self.metrics_path, keep, warn=warn_line)

    def write_results(self, evaluation: dict) -> None:
        """``eval.json`` (everything but the per-case rows) and ``eval_cases.jsonl`` (the rows)."""
        summary = {k: v for k, v in evaluation.items() if k != "cases"}
        atomic_write_json(self.eval_path, summary)
        atomic_write_text(
            self.eval_cases_path,
            "".join(json.dumps(to_jsonable(r), allow_nan=False) + "\n" for r in evaluation.get("cases", [])),
        )

    def is_finished(self, checkpoint: Optional[str] = "best", metrics: bool = False) -> bool:
        """Whether the run was trained and scored: ``config.yaml`` and ``eval.json`` exist, and so do
        checkpoint ``checkpoint`` (None: not needed) and, with ``metrics``, ``metrics.jsonl``."""
        needed = [self.config_path, self.eval_path]
        if checkpoint:
            needed.append(self.checkpoint_path(checkpoint))
        if metrics:
            needed.append(self.metrics_path)
        return all(path.is_file() for path in needed)

    def read_eval(self) -> Optional[dict]:
        """``eval.json`` as written by :meth:`write_results`, or None when the run has none; a damaged file
        (not JSON, no list of records) is a one-line error."""
        if not self.eval_path.is_file():
            return None
        try:
            evaluation = read_json(self.eval_path)
        except (ValueError, OSError):
            evaluation = None
        if not isinstance(evaluation, dict) or not isinstance(evaluation.get("records"), list):
            raise RunFolderError(f"'{self.eval_path}' is damaged (no list of records): run 'coda-edu eval --run'")
        return evaluation


def load_run_pair(run_dir: str | Path, checkpoint: str = "best", device: str = "cpu"):
    """Networks A and B of a run folder at its ``best`` or ``last`` checkpoint, in eval mode
    (:meth:`RunFolder.load_pair`)."""
    return RunFolder(run_dir).load_pair(checkpoint, device)
