"""A new method in one file: importing this module registers ``method.name: toy``.

Network A learns from the labeled images; network B learns to copy A's predictions on
the unlabeled images, weighted by its own config key ``method.copy_weight`` (declared
here with its default, limit and help). Nothing else in the package is edited to add it
(tests/test_registry.py trains it through ``coda_edu.train.train``).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from coda_edu.config import option
from coda_edu.method.base import Algorithm
from coda_edu.method.losses import supervised_loss
from coda_edu.registry import METHODS, MethodSpec


@dataclass
class ToyOptions:
    copy_weight: float = option(1.0, help="toy: weight of B's copy loss (times the ramp-up)", min=0.0)


@METHODS.register(
    MethodSpec(
        "toy",
        "A learns from the labels, B copies A's predictions on unlabeled images",
        pseudo_labels=False,
        config_keys=("lambda_max", "rampup", "copy_weight"),
        options=ToyOptions,
    )
)
class Toy(Algorithm):
    def training_step(self, model_a, model_b, batch, step, diagnostics=False):
        n_l = batch.x_l.shape[0]
        logits_a = model_a(torch.cat([batch.x_l, batch.x_u]))
        sup_a = supervised_loss(logits_a[:n_l], batch.y_l, self.ignore_index)
        copy_b = F.cross_entropy(model_b(batch.x_u), logits_a[n_l:].detach().argmax(1))
        loss = sup_a + self.lambda_at(step) * self.cfg.method.copy_weight * copy_b
        return loss, {"loss": loss.detach(), "sup_A": sup_a.detach(), "copy_B": copy_b.detach()}
