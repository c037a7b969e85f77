"""Networks: a U-Net for 2D slices and 3D volumes, and the differently initialised pair."""

from .init import initialise
from .pair import build_model, build_pair
from .unet import UNet

__all__ = ["UNet", "initialise", "build_model", "build_pair"]
