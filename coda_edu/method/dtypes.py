"""The dtype of the method's statistics and losses: float32, or float64 under ``train.precision: fp64``."""

from __future__ import annotations

import torch


def widen(x: torch.Tensor) -> torch.Tensor:
    r"""``x`` as a float tensor at least as wide as float32: float64 stays float64 (the ``fp64``
    testing precision), anything else (bf16/fp16 logits, integer counts, masks) becomes float32.

    The losses and statistics call this where they used ``.float()``, which would round an fp64
    run's logits to float32 and bring back the rounding flips fp64 is there to remove.
    """
    return x if x.dtype == torch.float64 else x.float()
