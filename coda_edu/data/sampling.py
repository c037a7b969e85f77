"""Two-stream batch sampling: every step draws labeled and unlabeled items.

Each stream walks through a fresh random permutation of its pool per epoch. The
permutation of epoch e is a pure function of (seed, stream, e), so the whole sampler
state is two (epoch, position) pairs: small to checkpoint, exact to resume.

Several processes (``torchrun``, :mod:`coda_edu.distributed`): every rank draws the same
global indices (same seed) and the trainer gathers and augments the same global batch
with the same seeded generator; each rank then keeps its shard of each stream
(:meth:`TwoStreamSampler.shard_slices`). The shards are exact slices of the batch one
process would train on, for the price of every rank preparing the whole batch (N times the
gather and augmentation work, one ``grid_sample``, small next to two U-Net passes) and
holding the whole training pool (it already does: the pools are in memory).
"""

from __future__ import annotations

import torch

from ..errors import ConfigError


class IndexStream:
    """An endless sequence of indices into a pool of size ``n``, reshuffled every epoch."""

    def __init__(self, n: int, seed: int, stream: int):
        if n <= 0:
            raise ValueError("cannot sample from an empty pool")
        self.n = n
        self.seed = seed
        self.stream = stream
        self.epoch = 0
        self.position = 0
        self._perm = self._permutation(0)

    def _permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.stream * 7_919 + epoch)
        return torch.randperm(self.n, generator=g)

    def take(self, k: int) -> torch.Tensor:
        out = []
        while k > 0:
            if self.position >= self.n:
                self.epoch += 1
                self.position = 0
                self._perm = self._permutation(self.epoch)
            step = min(k, self.n - self.position)
            out.append(self._perm[self.position : self.position + step])
            self.position += step
            k -= step
        return torch.cat(out)

    def state_dict(self) -> dict:
        return {"n": self.n, "seed": self.seed, "stream": self.stream, "epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        if state["n"] != self.n:
            raise ValueError(f"sampler state is for a pool of {state['n']} items, this pool has {self.n}")
        self.epoch, self.position = state["epoch"], state["position"]
        self._perm = self._permutation(self.epoch)


def shard(n: int, rank: int, world_size: int) -> slice:
    """Rank ``rank``'s contiguous part of ``n`` items; part sizes differ by at most one (the first
    ``n % world_size`` ranks get one more)."""
    size, extra = divmod(n, world_size)
    start = rank * size + min(rank, extra)
    return slice(start, start + size + (1 if rank < extra else 0))


class TwoStreamSampler:
    """``next_indices()`` -> (labeled indices, unlabeled indices or None) for one step; the global
    batch when several ranks train, of which ``shard_slices()`` says what this rank keeps."""

    def __init__(
        self,
        n_labeled: int,
        n_unlabeled: int,
        labeled_batch: int,
        unlabeled_batch: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ):
        # every rank needs at least one labeled (and, when drawn, unlabeled) image of the global batch
        streams = (("labeled", labeled_batch, "labeled_batch_size"), ("unlabeled", unlabeled_batch, "batch_size"))
        for what, count, key in streams:
            if count < world_size and (count > 0 or what == "labeled"):
                raise ConfigError(
                    f"config key 'train.{key}': {count} {what} images per step cannot be shared "
                    f"by {world_size} processes (each needs at least one)"
                )
        self.labeled = IndexStream(n_labeled, seed, stream=1)
        self.unlabeled = IndexStream(n_unlabeled, seed, stream=2) if unlabeled_batch > 0 and n_unlabeled > 0 else None
        self.labeled_batch = labeled_batch
        self.unlabeled_batch = unlabeled_batch
        self.rank = rank
        self.world_size = world_size

    def shard_slices(self) -> tuple[slice, slice | None]:
        """This rank's slices of the labeled and of the unlabeled part of every global batch."""
        unlabeled = shard(self.unlabeled_batch, self.rank, self.world_size) if self.unlabeled is not None else None
        return shard(self.labeled_batch, self.rank, self.world_size), unlabeled

    def next_indices(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        idx_l = self.labeled.take(self.labeled_batch)
        idx_u = self.unlabeled.take(self.unlabeled_batch) if self.unlabeled is not None else None
        return idx_l, idx_u

    def state_dict(self) -> dict:
        return {
            "labeled": self.labeled.state_dict(),
            "unlabeled": self.unlabeled.state_dict() if self.unlabeled is not None else None,
        }

    def load_state_dict(self, state: dict) -> None:
        self.labeled.load_state_dict(state["labeled"])
        if self.unlabeled is not None and state["unlabeled"] is not None:
            self.unlabeled.load_state_dict(state["unlabeled"])
