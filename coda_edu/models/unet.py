"""A U-Net for 2D or 3D, in the layout common in semi-supervised segmentation papers.

Encoder level k: two 3x3(x3) convolutions with batch norm and LeakyReLU, and dropout
between them (0.05, 0.1, 0.2, 0.3, 0.5 from the top level to the bottleneck), widths
``base_width * 2**k`` (16-32-64-128-256 by default in 2D). Decoder: upsample (bilinear
after a 1x1 convolution, or a transposed convolution), concatenate the skip
connection, two convolutions. A 1x1 convolution gives the class logits.

``forward(x, feature_dropout=p, perturbed_from=k)`` drops whole channels of every encoder output
(the skip connections and the bottleneck) of the items ``k, k+1, ...`` with probability ``p``:
the feature perturbation of ``method.feature_dropout`` (beyond the paper,
:mod:`coda_edu.beyond.two_view`). Without it the forward pass is the plain U-Net.
"""

from __future__ import annotations

import torch
import torch.nn as nn

ENCODER_DROPOUT = (0.05, 0.1, 0.2, 0.3, 0.5, 0.5, 0.5)


def _layers(spatial_dims: int):
    if spatial_dims == 2:
        return nn.Conv2d, nn.BatchNorm2d, nn.Dropout2d, nn.MaxPool2d, nn.ConvTranspose2d, "bilinear"
    if spatial_dims == 3:
        return nn.Conv3d, nn.BatchNorm3d, nn.Dropout3d, nn.MaxPool3d, nn.ConvTranspose3d, "trilinear"
    raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")


def channel_dropout(h: torch.Tensor, p: float, perturbed_from: int = 0) -> torch.Tensor:
    r"""Channel dropout of the items ``perturbed_from, ...`` of a feature map; the earlier items unchanged.

    .. math:: h'_{n,c} = h_{n,c} \, b_{n,c} / (1 - p), \quad b_{n,c} \sim \mathrm{Bernoulli}(1 - p)
              \text{ for } n \ge k, \qquad h'_{n,c} = h_{n,c} \text{ for } n < k

    One draw per item and channel, shared by all its pixels (voxels), as ``Dropout2d``/``Dropout3d``;
    k = ``perturbed_from``. Applied whether or not the network is in training mode (the caller asks).
    """
    if p <= 0 or perturbed_from >= h.shape[0]:
        return h
    if p >= 1:
        raise ValueError(f"feature dropout must be below 1, got {p}")
    keep = torch.full((h.shape[0], h.shape[1]) + (1,) * (h.dim() - 2), 1.0 - p, device=h.device)
    scale = torch.bernoulli(keep[perturbed_from:]) / (1.0 - p)
    mask = torch.cat([torch.ones_like(keep[:perturbed_from]), scale])
    return h * mask.to(h.dtype)


class ConvBlock(nn.Sequential):
    """conv - BN - LeakyReLU - dropout - conv - BN - LeakyReLU."""

    def __init__(self, spatial_dims: int, in_ch: int, out_ch: int, dropout: float = 0.0):
        conv, norm, drop, *_ = _layers(spatial_dims)
        super().__init__(
            conv(in_ch, out_ch, 3, padding=1, bias=False),
            norm(out_ch),
            nn.LeakyReLU(0.01, inplace=True),
            drop(dropout) if dropout > 0 else nn.Identity(),
            conv(out_ch, out_ch, 3, padding=1, bias=False),
            norm(out_ch),
            nn.LeakyReLU(0.01, inplace=True),
        )


class UpBlock(nn.Module):
    """Upsample the deeper features, concatenate the skip connection, ConvBlock."""

    def __init__(self, spatial_dims: int, deep_ch: int, skip_ch: int, out_ch: int, mode: str = "bilinear"):
        super().__init__()
        conv, _, _, _, transposed, interp = _layers(spatial_dims)
        if mode == "transposed":
            self.up = transposed(deep_ch, skip_ch, kernel_size=2, stride=2)
        else:
            self.up = nn.Sequential(
                conv(deep_ch, skip_ch, 1), nn.Upsample(scale_factor=2, mode=interp, align_corners=False)
            )
        self.block = ConvBlock(spatial_dims, 2 * skip_ch, out_ch)

    def forward(self, deep: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.block(torch.cat([skip, self.up(deep)], dim=1))


class UNet(nn.Module):
    """U-Net returning logits of shape ``(N, num_classes, *spatial)``.

    Input sizes must be divisible by ``2 ** (levels - 1)``.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        spatial_dims: int = 2,
        base_width: int = 16,
        levels: int = 5,
        dropout: bool = True,
        upsampling: str = "bilinear",
    ):
        super().__init__()
        _, _, _, pool, _, _ = _layers(spatial_dims)
        widths = [base_width * 2**k for k in range(levels)]
        drops = ENCODER_DROPOUT[:levels] if dropout else (0.0,) * levels
        self.spatial_dims = spatial_dims
        self.divisor = 2 ** (levels - 1)
        self.stem = ConvBlock(spatial_dims, in_channels, widths[0], drops[0])
        self.down = nn.ModuleList(
            nn.Sequential(pool(2), ConvBlock(spatial_dims, widths[k - 1], widths[k], drops[k]))
            for k in range(1, levels)
        )
        self.up = nn.ModuleList(
            UpBlock(spatial_dims, widths[k], widths[k - 1], widths[k - 1], upsampling) for k in range(levels - 1, 0, -1)
        )
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.head = conv(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor, feature_dropout: float = 0.0, perturbed_from: int = 0) -> torch.Tensor:
        """Logits of ``x``; with ``feature_dropout`` > 0, :func:`channel_dropout` of every encoder
        output of the items from ``perturbed_from`` on (the decoder sees the dropped features)."""
        skips = [self.stem(x)]
        for down in self.down:
            skips.append(down(skips[-1]))
        if feature_dropout > 0:
            skips = [channel_dropout(h, feature_dropout, perturbed_from) for h in skips]
        h = skips.pop()
        for up in self.up:
            h = up(h, skips.pop())
        return self.head(h)
