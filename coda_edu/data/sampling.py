"""Two-stream batch sampling: every step draws labeled and unlabeled items.

Each stream walks through a fresh random permutation of its pool per epoch. The
permutation of epoch e is a pure function of (seed, stream, e), so the whole sampler
state is two (epoch, position) pairs: small to checkpoint, exact to resume.
"""

from __future__ import annotations

import torch


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


class TwoStreamSampler:
    """``next_indices()`` -> (labeled indices, unlabeled indices or None) for one step."""

    def __init__(self, n_labeled: int, n_unlabeled: int, labeled_batch: int, unlabeled_batch: int, seed: int):
        self.labeled = IndexStream(n_labeled, seed, stream=1)
        self.unlabeled = IndexStream(n_unlabeled, seed, stream=2) if unlabeled_batch > 0 and n_unlabeled > 0 else None
        self.labeled_batch = labeled_batch
        self.unlabeled_batch = unlabeled_batch

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
