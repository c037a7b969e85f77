"""The schedule of the unsupervised loss's weight, its ramp-up (the learning rate's: :mod:`coda_edu.optim`)."""

from __future__ import annotations

import math


def sigmoid_rampup(step: int, length: int) -> float:
    r"""Sigmoid-shaped ramp from ~0 to 1 (Laine & Aila, 2017).

    .. math:: r(t) = \exp\!\left(-5\,(1 - t/T)^2\right) \text{ for } t < T,\quad r(t) = 1 \text{ for } t \ge T

    ``length`` (T) of 0 means no ramp (always 1). At t = 0 the value is exp(-5) ~ 0.0067.
    """
    if length <= 0:
        return 1.0
    t = min(max(step, 0), length) / length
    return float(math.exp(-5.0 * (1.0 - t) ** 2))


def unsupervised_weight(step: int, lambda_max: float, rampup_steps: int) -> float:
    r"""Weight of the unsupervised loss: :math:`\lambda(t) = \lambda_{max}\, r(t)`."""
    return lambda_max * sigmoid_rampup(step, rampup_steps)
