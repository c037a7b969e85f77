"""Checkpoints: written atomically, complete enough to resume a run exactly.

``last.pt`` holds everything the loop needs to continue (step, both networks, the
optimiser and grad scaler, the algorithm's EMA state, the sampler position and every
random-number generator). ``best.pt`` holds the networks at the best validation score.

Checkpoints hold only tensors and plain values (dicts, lists, numbers, strings), and are
always read with ``torch.load(weights_only=True)``: a file that would run code or build
arbitrary Python objects when unpickled is refused, never executed (checkpoints are
shared between students and instructors). The random-number states are stored as
lists and tensors for that reason.
"""

from __future__ import annotations

import dataclasses
import io
import math
import pickle
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import DivergedError, RunFolderError, clip, excerpt
from .io import atomic_write


def save_checkpoint(path: str | Path, state: dict) -> None:
    # Serialised in memory first, so a full disk is an OSError (ENOSPC) from the write, not a torch error.
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise RunFolderError(f"checkpoint '{path}' does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:  # weights_only refused a global: a foreign or malicious object
        named = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f" (it names {named.group(1)})" if named else ""
        raise RunFolderError(
            f"checkpoint '{path}' holds objects other than tensors and plain values{what}, so it was not "
            f"loaded: coda-edu loads checkpoints with weights_only=True and never runs code from them"
        ) from None
    except MemoryError:
        raise
    except Exception as exc:  # truncated or not a checkpoint
        raise RunFolderError(f"checkpoint '{path}' cannot be read ({type(exc).__name__}: {clip(str(exc))})") from None
    if not isinstance(state, dict):
        raise RunFolderError(f"checkpoint '{path}' is not a coda-edu checkpoint (holds a {type(state).__name__})")
    return state


def rng_state(generator: torch.Generator | None = None) -> dict:
    """Every random-number state, as tensors, lists and numbers (loadable with ``weights_only=True``)."""
    version, internal, gauss_next = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state = {
        "python": {"version": int(version), "internal": [int(x) for x in internal], "gauss_next": gauss_next},
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def set_rng_state(state: dict, generator: torch.Generator | None = None) -> None:
    py, nps = state["python"], state["numpy"]
    random.setstate((int(py["version"]), tuple(int(x) for x in py["internal"]), py["gauss_next"]))
    keys = np.asarray(torch.as_tensor(nps["keys"]).cpu().numpy(), dtype=np.uint32)
    np.random.set_state((nps["kind"], keys, int(nps["pos"]), int(nps["has_gauss"]), float(nps["cached_gaussian"])))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and state.get("generator") is not None:
        generator.set_state(state["generator"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


@dataclass
class TrainState:
    """Where a run stands: the step, the best validation score so far and the time spent."""

    step: int = 0
    best_score: float = -math.inf
    best_step: int = -1
    train_seconds: float = 0.0  # time spent in training steps (validation and checkpoints excluded)
    val_seconds: float = 0.0  # time spent validating and writing checkpoints

    @classmethod
    def from_checkpoint(cls, values: dict) -> TrainState:
        """The state stored in last.pt, checked (a TypeError names the first field that is wrong)."""
        if not isinstance(values, dict):
            raise TypeError(f"state is {type(values).__name__}, not a mapping")
        state = cls()
        for f in dataclasses.fields(cls):
            value = values.get(f.name, getattr(state, f.name))
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if f.type in (int, "int") and not (number and isinstance(value, int) and value >= -1):
                raise TypeError(f"state.{f.name} is {excerpt(value)}, not an integer")
            if f.type in (float, "float") and not (number and not math.isnan(value)):
                raise TypeError(f"state.{f.name} is {excerpt(value)}, not a number")
            setattr(state, f.name, value)
        if state.step < 0:
            raise TypeError(f"state.step is {state.step}, not a step number")
        return state


def nonfinite_parts(model_a: torch.nn.Module, model_b: torch.nn.Module, optimizer=None) -> list[str]:
    """Which of network A, network B (and the optimiser state, when given) hold NaN or inf values."""
    groups = [("network A", model_a.state_dict().values()), ("network B", model_b.state_dict().values())]
    if optimizer is not None:
        moments = [v for st in optimizer.state.values() for v in st.values() if isinstance(v, torch.Tensor)]
        groups.append(("the optimiser state", moments))
    bad = []
    for name, tensors in groups:
        flags = [torch.isfinite(t).all() for t in tensors if t.is_floating_point()]
        if flags and not bool(torch.stack(flags).all()):
            bad.append(name)
    return bad


def own_rng_state(ckpt: dict, rank: int, world_size: int, rank_seed: int) -> dict:
    """This rank's random state in ``last.pt``: rank 0's is ``rng``; the others' are in ``rng_ranks``
    when the run had as many processes, else they start from rank 0's generator, every other
    generator reseeded with ``rank_seed + step``."""
    ranks = ckpt.get("rng_ranks")
    if world_size > 1 and ranks is not None and len(ranks) == world_size:
        return ranks[rank]
    if rank > 0:  # resumed on more processes than it had
        seed_everything(rank_seed + int(ckpt["step"]))
        return {**rng_state(), "generator": ckpt["rng"].get("generator")}
    return ckpt["rng"]


def run_checkpoint(step: int, cfg, data, model_a: torch.nn.Module, model_b: torch.nn.Module, **extra) -> dict:
    """What ``best.pt`` and ``last.pt`` hold: the step, the config, what rebuilding the networks needs
    besides the config (``data``'s channels, classes and class names; read by ``RunFolder.load_pair``),
    both networks' weights, and ``extra`` (best: the scores; last: everything else a resume needs)."""
    shapes = {"in_channels": data.in_channels, "num_classes": data.num_classes, "class_names": list(data.class_names)}
    return {
        "step": step,
        "config": cfg.to_dict(),
        "data": shapes,
        "model_a": model_a.state_dict(),
        "model_b": model_b.state_dict(),
        **extra,
    }


def restore_training(
    ckpt: dict, path: Path, parts: dict, generator: torch.Generator, rank: int, world_size: int, rank_seed: int
) -> TrainState:
    """Load every part of a run (``parts``: its key in ``ckpt`` -> an object with ``load_state_dict``),
    then this rank's random states (:func:`own_rng_state`, ``generator`` the batches'); returns the
    stored :class:`TrainState`. A checkpoint of another run (missing keys, other shapes) is a
    one-line :class:`RunFolderError` naming ``path``."""
    try:
        for key, part in parts.items():
            part.load_state_dict(ckpt[key])
        set_rng_state(own_rng_state(ckpt, rank, world_size, rank_seed), generator)
        return TrainState.from_checkpoint(ckpt["state"])
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        why = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
        raise RunFolderError(f"checkpoint '{path}' does not fit this run ({why})") from None


class DivergenceGuard:
    """Stops a run whose loss or weights became NaN or inf with a :class:`DivergedError` that names
    the steps between which it happened and the checkpoints that were kept.

    Every step's loss joins a flag on the device (no host sync); the flag is read on logged steps
    and before every checkpoint (:meth:`add_loss`). The weights and the optimiser state are checked
    once per validation, before any checkpoint is written (:meth:`check_weights`), so a broken
    state never replaces a good one."""

    def __init__(self, checkpoints_dir: Path):
        self.checkpoints_dir = checkpoints_dir
        self.saved_step: int | None = None  # the step of the last.pt on disk (None: none written yet)
        self.start(0, "cpu")

    def start(self, step: int, device) -> None:
        """Begin checking at ``step`` (a new or resumed loop)."""
        self.finite = torch.ones((), dtype=torch.bool, device=device)
        self.loss_checked = self.weights_checked = step

    def add_loss(self, loss, step: int, read: bool) -> None:
        """Add step ``step``'s loss to the flag; with ``read``, stop if any loss since the last read was not finite."""
        if isinstance(loss, torch.Tensor):
            self.finite = self.finite & torch.isfinite(loss.detach()).all()
        elif isinstance(loss, float) and not math.isfinite(loss):
            self.finite = self.finite & False
        if read:
            if not bool(self.finite):
                self._stop("the loss", self.loss_checked, step)
            self.loss_checked = step

    def check_weights(self, model_a: torch.nn.Module, model_b: torch.nn.Module, optimizer, step: int) -> None:
        """Stop if network A, B or the optimiser state holds NaN or inf (the same weights on every rank: all stop)."""
        bad = nonfinite_parts(model_a, model_b, optimizer)
        if bad:
            self._stop(" and ".join(bad), self.weights_checked, step)
        self.weights_checked = step

    def _stop(self, what: str, since: int, step: int) -> None:
        kept = (
            f"the checkpoints in '{self.checkpoints_dir}' are from step {self.saved_step} and were kept"
            if self.saved_step is not None
            else "no checkpoint was written"
        )
        raise DivergedError(
            f"training diverged between steps {since + 1} and {step}: {what} became NaN or inf; "
            f"lower optim.lr or method.lambda_max; {kept}"
        )
