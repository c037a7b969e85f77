"""Datasets: the embedded synthetic phantoms and the real ACDC, LA and CaDIS data.

:func:`load_dataset` turns a config into a :class:`SegmentationData` (everything in
memory, split by patient, checked for broken files when it is opened). The classes
are imported lazily, so ``coda_edu.data.readers`` can be used without importing torch
(the data scripts start faster).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .base import Case, PatchPool, SegmentationData, TrainPool

__all__ = ["Case", "PatchPool", "SegmentationData", "TrainPool", "load_dataset"]


def __getattr__(name: str):
    if name in ("Case", "PatchPool", "SegmentationData", "TrainPool"):
        from . import base

        return getattr(base, name)
    raise AttributeError(f"module 'coda_edu.data' has no attribute {name!r}")


def load_dataset(cfg) -> "SegmentationData":
    """Load the dataset named by ``cfg.data.name``."""
    name = cfg.data.name
    if name in ("synthetic", "synthetic3d"):
        from .synthetic import load_synthetic

        return load_synthetic(cfg, volumetric=name == "synthetic3d")
    if name == "acdc":
        from .acdc import load_acdc

        return load_acdc(cfg)
    if name == "la":
        from .la import load_la

        return load_la(cfg)
    if name == "cadis":
        from .cadis import load_cadis

        return load_cadis(cfg)
    raise ValueError(f"unknown dataset {name!r}")
