"""Checkpoints: written atomically, complete enough to resume a run exactly.

``last.pt`` holds everything the loop needs to continue (step, both networks, the
optimiser and grad scaler, the algorithm's EMA state, the sampler position and every
random-number generator). ``best.pt`` holds the networks at the best validation score.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from .errors import RunFolderError
from .io import atomic_write


def save_checkpoint(path: str | Path, state: dict) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise RunFolderError(f"checkpoint '{path}' does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # truncated or not a checkpoint
        raise RunFolderError(f"checkpoint '{path}' cannot be read ({type(exc).__name__}: {exc})") from None


def rng_state(generator: torch.Generator | None = None) -> dict:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def set_rng_state(state: dict, generator: torch.Generator | None = None) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
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
    """Networks A and B of a run folder at its ``best`` or ``last`` checkpoint, in eval mode."""
    import yaml

    from .config import from_dict
    from .models import build_pair

    run_dir = Path(run_dir)
    cfg = from_dict(yaml.safe_load((run_dir / "config.yaml").read_text()))
    state = load_checkpoint(run_dir / "checkpoints" / f"{checkpoint}.pt", map_location=device)
    in_channels = state["model_a"]["stem.0.weight"].shape[1]
    num_classes = state["model_a"]["head.weight"].shape[0]
    model_a, model_b = build_pair(cfg, in_channels, num_classes)
    model_a.load_state_dict(state["model_a"])
    model_b.load_state_dict(state["model_b"])
    return model_a.to(device).eval(), model_b.to(device).eval()
