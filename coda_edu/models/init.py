r"""Weight initialisation: the two Co-DA networks differ in init scheme and seed.

Both schemes draw zero-mean Gaussian weights; they differ only in the variance,
:math:`\sigma^2_{kaiming} = 2 / ((1 + a^2)\,n_{in})` and
:math:`\sigma^2_{xavier} = 2 / (n_{in} + n_{out})` (:math:`n` = fan-in/out, ``a`` the
LeakyReLU slope). Behind a batch norm the scale of a convolution's weights does not
change what the network computes, only how fast it learns: the effective step is
about :math:`\eta / \lVert w \rVert^2`. Kaiming's weights are larger (2x the variance for
a square layer, 3x where the width doubles, 9x in the one-channel stem), so in the
raw schemes network A learns 2-9x slower than B.

``scale="matched"`` (the default) removes that handicap: every convolution that feeds
a batch norm is rescaled to the Xavier variance, so A and B learn at the same speed
and still differ in their random draws (seeds) and in the layers that feed no batch
norm (the decoder's 1x1 up-convolutions and the output head), which keep their
scheme. ``scale="scheme"`` keeps each scheme's own variance everywhere.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

_CONVS = (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_NORMS = (nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.GroupNorm)


def _draw(weight: torch.Tensor, scheme: str) -> None:
    if scheme == "kaiming":
        nn.init.kaiming_normal_(weight, a=0.01, nonlinearity="leaky_relu")
    elif scheme == "xavier":
        nn.init.xavier_normal_(weight)
    else:
        raise ValueError(f"unknown init scheme {scheme!r}")


def _xavier_std(weight: torch.Tensor) -> float:
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(weight)
    return math.sqrt(2.0 / (fan_in + fan_out))


def convs_before_norm(model: nn.Module) -> set[int]:
    """ids of the convolutions whose output goes straight into a normalisation layer
    (found from the module order inside each ``nn.Sequential``)."""
    found = set()
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            children = list(module.children())
            for first, second in zip(children, children[1:]):
                if isinstance(first, _CONVS) and isinstance(second, _NORMS):
                    found.add(id(first))
    return found


@torch.no_grad()
def initialise(model: nn.Module, scheme: str, scale: str = "matched") -> nn.Module:
    """Re-initialise every convolution with ``kaiming`` normal (fan-in, LeakyReLU gain) or
    ``xavier`` normal weights and zero biases; norms get weight 1 and bias 0. With
    ``scale="matched"``, convolutions that feed a norm are rescaled to the Xavier
    standard deviation (see the module docstring)."""
    if scale not in ("matched", "scheme"):
        raise ValueError(f"unknown init scale {scale!r}")
    normed = convs_before_norm(model) if scale == "matched" else set()
    for module in model.modules():
        if isinstance(module, _CONVS):
            _draw(module.weight, scheme)
            if id(module) in normed:
                module.weight.mul_(_xavier_std(module.weight) / module.weight.std().clamp_min(1e-12))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, _NORMS) and getattr(module, "weight", None) is not None:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model


@torch.no_grad()
def set_head_prior(model: nn.Module, frequencies: torch.Tensor, eps: float = 1e-4) -> nn.Module:
    r"""Start the output head at the class prior: bias :math:`b_c = \log(\pi_c + \epsilon)`, so the
    first predictions already follow the labeled class frequencies :math:`\pi` instead of
    a uniform guess (the early steps then learn *where* the classes are, not how
    rare they are)."""
    head = model.head
    head.bias.copy_((frequencies.detach().float().to(head.bias.device) + eps).log())
    return model
