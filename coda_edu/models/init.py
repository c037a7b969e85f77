"""Weight initialisation: the two Co-DA networks differ in init scheme and seed."""

from __future__ import annotations

import torch.nn as nn

_CONVS = (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_NORMS = (nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.GroupNorm)


def initialise(model: nn.Module, scheme: str) -> nn.Module:
    """Re-initialise every convolution with ``kaiming`` normal (fan-in, LeakyReLU gain)
    or ``xavier`` normal weights and zero biases; norms get weight 1 and bias 0."""
    for module in model.modules():
        if isinstance(module, _CONVS):
            if scheme == "kaiming":
                nn.init.kaiming_normal_(module.weight, a=0.01, nonlinearity="leaky_relu")
            elif scheme == "xavier":
                nn.init.xavier_normal_(module.weight)
            else:
                raise ValueError(f"unknown init scheme {scheme!r}")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, _NORMS) and getattr(module, "weight", None) is not None:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model
