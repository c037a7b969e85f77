"""Build one network or the A/B pair from the config."""

from __future__ import annotations

import torch

from ..config import Config
from .init import initialise
from .unet import UNet


def build_model(cfg: Config, in_channels: int, num_classes: int, init: str, seed: int) -> UNet:
    """One network of ``cfg.model`` (resolved config), initialised with ``init`` under ``seed``."""
    m = cfg.model
    spatial_dims = 3 if m.name == "unet3d" else 2
    # The seed fixes the initial weights without disturbing the global RNG stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = UNet(in_channels, num_classes, spatial_dims, m.base_width, m.levels, m.dropout, m.upsampling)
        initialise(model, init, m.init_scale)
    return model


def build_pair(cfg: Config, in_channels: int, num_classes: int) -> tuple[UNet, UNet]:
    """Networks A and B: one architecture, different init schemes (``model.init_a``/``init_b``)
    and different seeds (``seed`` and ``seed + 1000``)."""
    model_a = build_model(cfg, in_channels, num_classes, cfg.model.init_a, cfg.seed)
    model_b = build_model(cfg, in_channels, num_classes, cfg.model.init_b, cfg.seed + 1000)
    return model_a, model_b
