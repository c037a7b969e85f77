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
import re
from pathlib import Path

import numpy as np
import torch

from .errors import RunFolderError, clip
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


def load_run_pair(run_dir: str | Path, checkpoint: str = "best", device: str = "cpu"):
    """Networks A and B of a run folder at its ``best`` or ``last`` checkpoint, in eval mode
    (:meth:`coda_edu.run_folder.RunFolder.load_pair`)."""
    from .run_folder import RunFolder

    return RunFolder(run_dir).load_pair(checkpoint, device)
