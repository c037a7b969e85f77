r"""The minority-class bias of pseudo-labels on a pool, and what each alignment reading does to it.

A network trained with few labels tends to give a small class (the RV) some
probability on its pixels but rarely the *largest* probability, so its argmax
pseudo-labels under-count the class even when its soft mass is about right:

.. math:: s_u(c) = \frac{1}{|\Omega_u|}\sum_i [\arg\max_{c'} p_i(c') = c] \;<\; \pi_{true}(c)
          \quad\text{while}\quad \bar p_u(c) = \frac{1}{|\Omega_u|}\sum_i p_i(c) \approx \pi_{true}(c).

:func:`share_bias` measures that on a pool whose hidden truth is known (the synthetic
unlabeled pool), and :func:`align_pool` applies every alignment reading of
:mod:`coda_edu.method.alignment` and :mod:`coda_edu.beyond.argmax_readings` to the pool's
predictions with statistics taken from the pool itself (labeled predictions and labels,
unlabeled predictions), so the readings can be compared on one set of predictions. Used
by ``benchmarks/bias.py``, the notebooks and the tests.
"""

from __future__ import annotations

import numpy as np
import torch

from coda_edu.beyond.argmax_readings import (
    apply_class_weights,
    apply_log_offsets,
    hard_count_weights,
    match_argmax_shares,
)
from coda_edu.method.alignment import align_distribution, class_marginal, class_shares, label_marginal

READINGS = ("none", "predictions", "labels", "hard_counts", "argmax_share")


def align_pool(
    reading: str,
    probs_u: torch.Tensor,
    probs_l: torch.Tensor,
    labels_l: torch.Tensor,
    alpha: float = 1.0,
    max_weight: float = 10.0,
    ignore_index: int | None = None,
) -> torch.Tensor:
    """``probs_u`` aligned by ``reading`` (one of :data:`READINGS`), with pool-wide statistics:
    :math:`\\pi_l` = mean softmax on the labeled pool (``predictions``) or its label
    frequencies (``labels``, ``hard_counts``, ``argmax_share``); :math:`\\pi_u` and
    :math:`s_u` from ``probs_u``."""
    k = probs_u.shape[1]
    frequencies = label_marginal(labels_l, k, ignore_index)
    if reading == "none":
        return probs_u
    if reading == "predictions":
        valid = None if ignore_index is None else labels_l != ignore_index
        return align_distribution(probs_u, class_marginal(probs_l, valid), class_marginal(probs_u), alpha)
    if reading == "labels":
        return align_distribution(probs_u, frequencies, class_marginal(probs_u), alpha)
    if reading == "hard_counts":
        weights = hard_count_weights(frequencies, class_shares(probs_u.argmax(1), k), alpha, max_weight)
        return apply_class_weights(probs_u, weights)
    if reading == "argmax_share":
        return apply_log_offsets(probs_u, alpha * match_argmax_shares(probs_u, frequencies, iterations=50))
    raise ValueError(f"unknown alignment reading {reading!r} (one of {', '.join(READINGS)})")


def share_bias(probs: torch.Tensor, truth: torch.Tensor, class_names: list[str]) -> list[dict]:
    """Per class: argmax ``share``, soft ``mass`` (mean probability), the ``true`` share, their
    ratio ``share / true`` (< 1: under-predicted), and the pseudo-labels' ``dice``,
    ``precision`` and ``recall`` against the hidden truth."""
    k = len(class_names)
    labels = probs.argmax(1).reshape(-1)
    truth = truth.reshape(-1).long()
    share = torch.bincount(labels, minlength=k)[:k].double()
    true = torch.bincount(truth, minlength=k)[:k].double()
    hits = torch.bincount(labels[labels == truth], minlength=k)[:k].double()
    mass = probs.movedim(1, -1).reshape(-1, k).double().mean(0)
    n = labels.numel()
    rows = []
    for c, name in enumerate(class_names):
        with np.errstate(invalid="ignore", divide="ignore"):
            rows.append(
                {
                    "class": name,
                    "share": float(share[c] / n),
                    "mass": float(mass[c]),
                    "true": float(true[c] / n),
                    "ratio": float(share[c] / true[c]) if true[c] else float("nan"),
                    "dice": float(2 * hits[c] / (share[c] + true[c])) if share[c] + true[c] else float("nan"),
                    "precision": float(hits[c] / share[c]) if share[c] else float("nan"),
                    "recall": float(hits[c] / true[c]) if true[c] else float("nan"),
                }
            )
    return rows
