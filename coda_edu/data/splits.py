"""Labeled-subset selection, shared by all datasets: always by patient (case, video)."""

from __future__ import annotations

import numpy as np

from ..errors import DataError


def choose_labeled(ids: list, n_labeled: int, selection: str, seed: int) -> list:
    """The labeled subset of ``ids``: the first ``n_labeled`` in order, or a seeded random choice."""
    if selection == "random":
        rng = np.random.default_rng(seed)
        picked = sorted(rng.choice(len(ids), size=n_labeled, replace=False).tolist())
        return [ids[i] for i in picked]
    return list(ids[:n_labeled])


def labeled_count(cfg, n_train: int, what: str = "patients") -> int:
    """Number of labeled training patients from ``data.labeled_patients`` / ``labeled_fraction``."""
    d = cfg.data
    if d.labeled_fraction is not None:
        n = max(1, int(round(d.labeled_fraction * n_train)))
    else:
        n = d.labeled_patients or 0
    if n < 1:
        raise DataError(
            f"config key 'data.labeled_patients': the labeled set would be empty ({n} of {n_train} training {what})"
        )
    if n > n_train:
        raise DataError(
            f"config key 'data.labeled_patients': {n} labeled {what} requested "
            f"but the training split has only {n_train}"
        )
    return n
