"""Device and precision choice: ``auto`` picks CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from .errors import ConfigError, excerpt


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> the best available device; an unavailable explicit choice is a one-line error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"config key 'train.device': {excerpt(name)} requested but CUDA is not available (use 'auto' or 'cpu')"
            )
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"config key 'train.device': {excerpt(name)} requested "
                f"but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    if name == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise ConfigError(
            "config key 'train.device': 'mps' requested but Apple MPS is not available (use 'auto' or 'cpu')"
        )
    return torch.device(name)


@dataclass
class Precision:
    """How the forward pass runs: autocast dtype (None = no autocast), whether a GradScaler is needed,
    and the dtype of the weights, batches and losses (``compute``: float32, or float64 for ``fp64``)."""

    device_type: str
    dtype: torch.dtype | None
    compute: torch.dtype = torch.float32

    @property
    def name(self) -> str:
        if self.compute == torch.float64:
            return "fp64"
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    @property
    def needs_scaler(self) -> bool:
        return self.dtype == torch.float16

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)


def resolve_precision(device: torch.device, choice: str = "auto") -> Precision:
    """``auto``: bf16 on CUDA GPUs that support it, else fp16 on CUDA; fp32 on CPU and MPS.

    ``fp64`` is a testing and debugging precision, not a training one: networks, batches,
    statistics and losses in float64, so that two computations of the same maths that differ
    only in the order of their float sums (one process against several, 1 thread against 2)
    agree to ~1e-12 instead of drifting apart at float32's rounding flips (docs/benchmarks-speed.md#several-processes).
    """
    if choice == "fp64":
        if device.type == "mps":
            raise ConfigError("config key 'train.precision': fp64 is not supported on Apple MPS (use fp32)")
        return Precision(device.type, None, torch.float64)
    if choice == "auto":
        if device.type == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            dtype = None
    else:
        dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[choice]
        if dtype is torch.float16 and device.type == "cpu":
            raise ConfigError("config key 'train.precision': fp16 is not supported on the CPU (use fp32 or bf16)")
    return Precision(device.type, dtype)


def describe(device: torch.device) -> str:
    """Human-readable device name for logs and benchmark tables."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        import platform

        return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    return device.type


def memory_format(device: torch.device, channels_last: bool | None, spatial_dims: int) -> torch.memory_format:
    """The layout of images and weights: channels-last (``train.channels_last``; by default on CUDA,
    where its convolutions are faster) or the contiguous default."""
    if not (channels_last if channels_last is not None else device.type == "cuda"):
        return torch.contiguous_format
    return torch.channels_last if spatial_dims == 2 else torch.channels_last_3d
