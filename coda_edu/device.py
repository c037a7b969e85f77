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


def native_cpu_bf16() -> bool | None:
    """Whether this CPU computes bf16 natively: on x86, AVX512-BF16 or AMX (torch's own CPU probes);
    None where torch cannot tell (other architectures), so that no warning is given there."""
    import platform

    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if platform.machine().lower() not in ("x86_64", "amd64") or not all(callable(p) for p in probes):
        return None
    return any(bool(p()) for p in probes)


def cpu_bf16_warning(precision: Precision, native: bool | None) -> str | None:
    """The one-line warning for bf16 training on a CPU without native bf16, else None.

    Without AVX512-BF16 or AMX, oneDNN emulates bf16 convolutions: on this project's 2-core AVX2
    VM a Co-DA step of the ACDC preset in bf16 (channels-last) took 6.9 times as long as in fp32
    (1.46 s against 0.21 s, ``benchmarks/step_pairs.py``), and 9.6 times on an AVX-512 CPU held to
    AVX2 kernels (docs/benchmarks-acdc.md#acdc-cpu-bf16 and #acdc-cpu-bf16-3200)."""
    if precision.device_type != "cpu" or precision.dtype is not torch.bfloat16 or native is not False:
        return None
    return (
        "train.precision=bf16 on a CPU without native bf16 (no AVX512-BF16 or AMX): its convolutions "
        "are emulated, 7 to 10 times slower than fp32 where measured; use train.precision=fp32 here"
    )


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
