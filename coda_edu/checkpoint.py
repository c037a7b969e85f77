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

import io
import pickle
import random
from pathlib import Path

import numpy as np
import torch

from .errors import RunFolderError
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
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunFolderError(f"checkpoint '{path}' holds objects other than tensors and plain values, so it was "
                             f"not loaded (coda-edu loads checkpoints with weights_only=True; {first[:200]})") from None
    except MemoryError:
        raise
    except Exception as exc:  # truncated or not a checkpoint
        raise RunFolderError(f"checkpoint '{path}' cannot be read ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict):
        raise RunFolderError(f"checkpoint '{path}' is not a coda-edu checkpoint (holds a {type(state).__name__})")
    return state


def rng_state(generator: torch.Generator | None = None) -> dict:
    """Every random-number state, as tensors, lists and numbers (loadable with ``weights_only=True``)."""
    version, internal, gauss_next = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state = {
        "python": {"version": int(version), "internal": [int(x) for x in internal], "gauss_next": gauss_next},
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
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


def read_run_config(run_dir: str | Path):
    """The config of a run folder (``RUN/config.yaml``); one-line errors for a missing or damaged file."""
    import yaml

    from .config import from_dict
    from .errors import ConfigError

    run_dir = Path(run_dir)
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise RunFolderError(f"'{run_dir}' is not a run folder (no config.yaml)")
    try:
        mapping = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise RunFolderError(f"run config '{path}' is not UTF-8 text (damaged?)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise RunFolderError(f"run config '{path}'{where} is not valid YAML "
                             f"({getattr(exc, 'problem', None) or 'invalid YAML'})") from None
    except OSError as exc:
        raise RunFolderError(f"run config '{path}' cannot be read: {exc.strerror or exc}") from None
    if not isinstance(mapping, dict):
        raise RunFolderError(f"run config '{path}' is not a coda-edu config (expected a mapping of keys)")
    try:
        return from_dict(mapping)
    except ConfigError as exc:
        raise RunFolderError(f"run config '{path}': {exc}") from None


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


def load_run_pair(run_dir: str | Path, checkpoint: str = "best", device: str = "cpu"):
    """Networks A and B of a run folder at its ``best`` or ``last`` checkpoint, in eval mode."""
    from .models import build_pair

    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    state = load_checkpoint(run_dir / "checkpoints" / f"{checkpoint}.pt", map_location=device)
    in_channels = state["model_a"]["stem.0.weight"].shape[1]
    num_classes = state["model_a"]["head.weight"].shape[0]
    model_a, model_b = build_pair(cfg, in_channels, num_classes)
    model_a.load_state_dict(state["model_a"])
    model_b.load_state_dict(state["model_b"])
    return model_a.to(device).eval(), model_b.to(device).eval()
