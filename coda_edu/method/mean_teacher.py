"""Mean teacher (Tarvainen & Valpola, 2017): A is the student, B its EMA teacher."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import option
from ..distributed import global_mean
from ..registry import METHODS, MethodSpec
from .base import COMMON_KEYS, Algorithm, ema_weights
from .dtypes import widen


@dataclass
class MeanTeacherOptions:
    """Mean teacher's own ``method.*`` keys."""

    teacher_momentum: float = option(0.99, help="mean teacher: EMA decay of the teacher weights", min=0.0, max=1.0)
    teacher_noise: float = option(0.1, help="mean teacher: std of the Gaussian noise on the teacher input", min=0.0)


@METHODS.register(
    MethodSpec(
        "mean_teacher",
        "A is the student, B its EMA teacher; a consistency loss on noisy unlabeled images",
        pseudo_labels=False,
        trains_b=False,
        config_keys=COMMON_KEYS + ("teacher_momentum", "teacher_noise"),
        options=MeanTeacherOptions,
        color="#bcbd22",
    )
)
class MeanTeacher(Algorithm):
    r"""Mean teacher (Tarvainen & Valpola, 2017): A is the student, B its EMA teacher.

    .. math:: \mathcal{L} = \mathcal{L}^A_{sup}
              + \lambda(t)\,\frac{1}{|\Omega_u|}\sum_i \lVert p^A_i(x_u) - p^B_i(x_u + \xi) \rVert^2,
              \qquad \theta_B \leftarrow \mu\,\theta_B + (1-\mu)\,\theta_A

    with Gaussian input noise :math:`\xi` (clipped to ±2σ) and :math:`\mu` warmed up as
    :math:`\min(1 - 1/(t+1), \mu)`.
    """

    def prepare(self, model_a, model_b):
        model_b.load_state_dict(model_a.state_dict())
        for p in model_b.parameters():
            p.requires_grad_(False)

    def training_step(self, model_a, model_b, batch, step, diagnostics=False):
        n_l = batch.x_l.shape[0]
        logits_a = model_a(torch.cat([batch.x_l, batch.x_u]))
        sup_a = self.supervised(logits_a[:n_l], batch.y_l)
        sigma = self.cfg.method.teacher_noise
        with torch.no_grad():
            noise = (torch.randn_like(batch.x_u) * sigma).clamp(-2 * sigma, 2 * sigma)
            teacher = torch.softmax(widen(model_b(batch.x_u + noise)), dim=1)
        student = torch.softmax(widen(logits_a[n_l:]), dim=1)
        consistency = global_mean(((student - teacher) ** 2).sum(1))
        lam = self.lambda_at(step)
        loss = sup_a + lam * consistency
        return loss, {"loss": loss.detach(), "sup_A": sup_a.detach(), "unsup_A": consistency.detach(), "lambda": lam}

    @torch.no_grad()
    def after_optimizer_step(self, model_a, model_b, step):
        ema_weights(model_b, model_a, self.cfg.method.teacher_momentum, step)
