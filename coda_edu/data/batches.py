"""One training step's batch: two streams of items, gathered on the device and augmented together.

:class:`TwoStreamBatches` is where the trainer gets its batches: the sampler picks labeled and
(for a semi-supervised method) unlabeled indices (:mod:`.sampling`), the in-memory pools on
the device hand over their images and labels, one augmentation is drawn for the whole batch
from the run's seeded generator (:mod:`.augment`), and the images are cast to the compute
dtype and memory format. With several processes (``torchrun``) every rank prepares the same
global batch and keeps its shard of each stream (:meth:`~.sampling.TwoStreamSampler.shard_slices`).
"""

from __future__ import annotations

import torch

from ..method.base import Batch
from .augment import Augmenter
from .sampling import TwoStreamSampler


class TwoStreamBatches:
    """The batches of a run: ``sampler`` (which items; checkpointed), ``generator`` (the augmentation's
    random draws; checkpointed) and ``augment``."""

    def __init__(self, data, cfg, uses_unlabeled: bool, device, dtype, memory_format, rank=0, world_size=1):
        t = cfg.train
        unlabeled_batch = t.batch_size - t.labeled_batch_size if uses_unlabeled else 0
        sizes = (len(data.labeled), len(data.unlabeled), t.labeled_batch_size, unlabeled_batch)
        self.sampler = TwoStreamSampler(*sizes, cfg.seed, rank, world_size)
        self.generator = torch.Generator(device=device).manual_seed(cfg.seed)
        fill = data.ignore_index if data.ignore_index is not None else 0
        self.augment = Augmenter(t.augment, data.spatial_dims, fill_label=fill)
        self.data, self.dtype, self.memory_format, self.world_size = data, dtype, memory_format, world_size

    def next(self) -> Batch:
        """Draw, gather and augment one batch (all tensor ops on the device); this rank's shard of it."""
        batch = self._global_batch()
        if self.world_size == 1:
            return batch
        labeled, unlabeled = self.sampler.shard_slices()
        if batch.x_u is None or unlabeled is None:
            return Batch(batch.x_l[labeled], batch.y_l[labeled])
        y_u = batch.y_u[unlabeled] if batch.y_u is not None else None
        return Batch(batch.x_l[labeled], batch.y_l[labeled], batch.x_u[unlabeled], y_u)

    def _global_batch(self) -> Batch:
        idx_l, idx_u = self.sampler.next_indices()
        x_l, y_l = self.data.labeled.batch(idx_l, self.generator)
        if idx_u is None:
            x, y = self.augment(x_l, y_l, self.generator)
            return Batch(x.to(self.dtype).contiguous(memory_format=self.memory_format), y)
        x_u, y_u = self.data.unlabeled.batch(idx_u, self.generator)
        n_l = x_l.shape[0]
        y_all = torch.cat(
            [y_l, y_u if y_u is not None else torch.zeros_like(y_l[:1]).expand(x_u.shape[0], *y_l.shape[1:])]
        )
        x, y = self.augment(torch.cat([x_l, x_u]), y_all, self.generator)
        x = x.to(self.dtype).contiguous(memory_format=self.memory_format)
        return Batch(x[:n_l], y[:n_l], x[n_l:], y[n_l:] if y_u is not None else None)
