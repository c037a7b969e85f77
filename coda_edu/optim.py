r"""The optimiser and its learning-rate schedule (``optim.*``), the same for every method.

The paper trains with SGD and the poly schedule :math:`\eta(t) = \eta_0\,(1 - t/T)^{0.9}`
(:func:`poly_lr`); ``optim.name`` also offers Adam and AdamW, ``optim.schedule: constant`` a
fixed rate.
"""

from __future__ import annotations

import torch


def build_optimizer(cfg, params, device: torch.device | None = None) -> torch.optim.Optimizer:
    """``optim.name`` over ``params``; with ``optim.fused`` one multi-tensor step for all parameters
    (torch's ``fused=True`` on CUDA, ``foreach=True`` elsewhere): the same update, fewer launches."""
    o = cfg.optim
    kw = {}
    if o.fused:
        kw = {"fused": True} if device is not None and device.type == "cuda" else {"foreach": True}
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, **kw)
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay, **kw)
    return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay, **kw)


def poly_lr(base_lr: float, step: int, total_steps: int, power: float = 0.9) -> float:
    r"""Poly decay: :math:`\eta(t) = \eta_0\,(1 - t/T)^{p}`, with p = 0.9 by default."""
    if total_steps <= 0:
        return base_lr
    frac = min(max(step, 0), total_steps) / total_steps
    return base_lr * (1.0 - frac) ** power


def learning_rate(cfg, step: int) -> float:
    """The rate of ``step``: ``optim.lr`` under ``optim.schedule`` (``poly`` over ``train.iterations``,
    or ``constant``)."""
    o = cfg.optim
    return poly_lr(o.lr, step, cfg.train.iterations, o.poly_power) if o.schedule == "poly" else o.lr
