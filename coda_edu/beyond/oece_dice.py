r"""A Dice term on the pseudo-labels, beyond the paper (``method.unsupervised_loss: oece_dice``).

The paper's unsupervised loss is the over-expectation cross-entropy alone, in which every
kept pixel weighs the same, so the background dominates. ``oece_dice`` adds a soft Dice
over the kept pixels, in which every class weighs the same (as in the supervised loss):

.. math:: \mathcal{L}_u = \tfrac12\left[\mathrm{OECE}(z, \hat y, M)
          + \mathrm{Dice}(z, \hat y \text{ on the pixels } M = 1)\right]

It is part of the ACDC CPU preset (``configs/acdc_cpu.yaml``, docs/method.md#beyond-the-paper).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import option
from ..method.base import UNUSED
from ..method.cps import CrossPseudoSupervision
from ..method.losses import soft_dice_loss
from ..registry import METHODS


@dataclass
class UnsupervisedLossOptions:
    unsupervised_loss: str = option(
        "oece",
        help="loss of a network on the other's pseudo-labels: 'oece' (the paper's over-expectation CE) or "
        "'oece_dice' = (OECE + soft Dice over the kept pixels) / 2 (beyond the paper)",
        choices=("oece", "oece_dice"),
    )


def adds_dice(cfg) -> bool:
    return cfg.method.unsupervised_loss == "oece_dice"


@METHODS.refine(CrossPseudoSupervision, when=adds_dice, options=UnsupervisedLossOptions)
class OeceDiceLoss:
    """The unsupervised loss of :class:`~coda_edu.method.cps.CrossPseudoSupervision` plus a soft Dice
    over the kept pixels, both halved (see the module docstring)."""

    def unsupervised(self, logits, labels, mask):
        oece = super().unsupervised(logits, labels, mask)
        return 0.5 * (oece + soft_dice_loss(logits, torch.where(mask, labels, torch.full_like(labels, UNUSED)), UNUSED))
