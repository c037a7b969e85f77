"""What every training algorithm shares: the batch it gets, the hooks it may fill, a helper.

Each algorithm turns one two-stream batch into a loss for the networks A and B; each
method is one module of this package (:mod:`.supervised`, :mod:`.cps`, :mod:`.coda`,
:mod:`.mean_teacher`) built from the pure functions of the others. The trainer
(:mod:`coda_edu.trainer`) owns everything else: sampling, augmentation,
mixed precision, the optimiser, logging and checkpoints. Hooks, in call order:

``prepare(model_a, model_b)``            once, before the first step
``training_step(..., diagnostics)``      every step, inside autocast; returns ``(loss, logs)``
``after_optimizer_step(...)``            every step, after ``optimizer.step()``
``state_dict()`` / ``load_state_dict()`` checkpointing of the algorithm's own state

Each method registers a :class:`~coda_edu.registry.MethodSpec` with its class
(``@METHODS.register(...)``): the one place that declares whether it uses unlabeled
data, makes pseudo-labels, trains network B, and its default ``method.alignment`` and
``method.filter``. A new method is one module doing the same (see ``tests/toy_method.py``).

``logs`` maps names to tensors; the trainer asks for the diagnostic entries (class
shares, mask coverage, pseudo-label accuracy: :mod:`coda_edu.diagnostics`) only on the steps it writes to
``metrics.jsonl``, and converts tensors to numbers only then (no host sync and no
extra work on the other steps).

With several processes (``torchrun``), each rank's ``Batch`` is its shard of the global
batch and the trainer runs ``training_step`` inside
:func:`coda_edu.distributed.sharded_step`: the losses, marginals, expectations and
diagnostics sum their numerators and denominators over the ranks, so every statistic and
loss is that of the global batch (:mod:`coda_edu.distributed`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ..config import Config
from .losses import supervised_loss
from .schedules import unsupervised_weight

UNUSED = -1  # the target of a pixel that a loss leaves out (its ignore index)


@dataclass
class Batch:
    """One step's data, already augmented and on the training device."""

    x_l: torch.Tensor  # (Bl, C, *S) labeled images
    y_l: torch.Tensor  # (Bl, *S) integer labels
    x_u: torch.Tensor | None = None  # (Bu, C, *S) unlabeled images
    y_u: torch.Tensor | None = None  # hidden truth of x_u: diagnostics only, never in a loss


@torch.no_grad()
def ema_weights(teacher: nn.Module, student: nn.Module, momentum: float, step: int) -> None:
    r"""Teacher weights as an EMA of the student's, :math:`\theta_T \leftarrow \mu_t\theta_T + (1-\mu_t)\theta_S`
    with the warm-up :math:`\mu_t = \min(1 - 1/(t+2), \mu)`; buffers (batch-norm statistics) are copied."""
    mu = min(1.0 - 1.0 / (step + 2), momentum)
    for p_t, p_s in zip(teacher.parameters(), student.parameters()):
        p_t.mul_(mu).add_(p_s.detach(), alpha=1.0 - mu)
    for b_t, b_s in zip(teacher.buffers(), student.buffers()):
        b_t.copy_(b_s)


class Algorithm:
    """Base class; see the module docstring for the hooks. The method's properties are in its
    :class:`~coda_edu.registry.MethodSpec`, not on the class."""

    def __init__(self, cfg: Config, num_classes: int, ignore_index: int | None):
        self.cfg = cfg
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.rampup_steps = int(round(cfg.method.rampup * cfg.train.iterations))

    def prepare(self, model_a: nn.Module, model_b: nn.Module) -> None:
        pass

    def lambda_at(self, step: int) -> float:
        return unsupervised_weight(step, self.cfg.method.lambda_max, self.rampup_steps)

    def supervised(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The supervised loss ``method.supervised_loss`` of one network on labeled images."""
        return supervised_loss(logits, target, self.ignore_index, self.cfg.method.supervised_loss)

    def training_step(self, model_a: nn.Module, model_b: nn.Module, batch: Batch, step: int, diagnostics: bool = False):
        raise NotImplementedError

    def after_optimizer_step(self, model_a: nn.Module, model_b: nn.Module, step: int) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


COMMON_KEYS = ("supervised_loss", "lambda_max", "rampup")  # the method.* keys every method of two networks reads
