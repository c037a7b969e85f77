"""Supervised: the lower bound every semi-supervised method is measured against.

Both networks learn from the labeled images only; the unlabeled images are never drawn.
"""

from __future__ import annotations

from ..registry import METHODS, MethodSpec
from .base import Algorithm


@METHODS.register(
    MethodSpec(
        "supervised",
        "both networks learn from the labeled images only (the lower bound)",
        uses_unlabeled=False,
        pseudo_labels=False,
        config_keys=("supervised_loss",),
        color="#8c564b",
    )
)
class Supervised(Algorithm):
    """Both networks learn from the labeled images only:
    :math:`\\mathcal{L} = \\mathcal{L}^A_{sup} + \\mathcal{L}^B_{sup}`."""

    def training_step(self, model_a, model_b, batch, step, diagnostics=False):
        logits_a, logits_b = model_a(batch.x_l), model_b(batch.x_l)
        sup_a = self.supervised(logits_a, batch.y_l)
        sup_b = self.supervised(logits_b, batch.y_l)
        loss = sup_a + sup_b
        return loss, {"loss": loss.detach(), "sup_A": sup_a.detach(), "sup_B": sup_b.detach()}
