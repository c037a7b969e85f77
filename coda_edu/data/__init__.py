"""Datasets: the embedded synthetic phantoms and the real ACDC, LA and CaDIS data.

Each dataset module registers a :class:`~coda_edu.registry.DatasetSpec` with its loader
(``@DATASETS.register(...)``); a new dataset is one module doing the same.

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


def load_dataset(cfg) -> SegmentationData:
    """Load the dataset registered as ``cfg.data.name`` (see :data:`coda_edu.registry.DATASETS`)."""
    from ..registry import DATASETS

    return DATASETS.get(cfg.data.name).load(cfg)
