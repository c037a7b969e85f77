r"""The two-view step beyond the paper: pseudo-labels from clean images, learned on perturbed ones.

Three ``method.*`` options of CPS and Co-DA (declared here, :class:`TwoViewOptions`; they are
keys of every method derived from CPS) change the paper's step; they are what makes the
unlabeled patients pay on ACDC in a CPU slot (``configs/acdc_cpu.yaml``, docs/method.md):

- ``method.ema_teacher`` > 0: the pseudo-labels come from EMA copies of A and B (the
  *teachers*, :func:`~coda_edu.method.base.ema_weights`); A still learns from B's, B from A's;
- ``method.mix``: each network learns on mixed images, a box pasted between a labeled and an
  unlabeled image (``copy_paste``) or between two unlabeled ones (``cutmix``)
  (:mod:`coda_edu.data.mixing`);
- ``method.strong_intensity`` > 0: a strong gamma/contrast/noise change of those images;
- ``method.feature_dropout`` > 0: feature perturbation as in UniMatch (Yang et al. 2023): channel
  dropout of the encoder's outputs (:func:`~coda_edu.models.unet.channel_dropout`), on the
  perturbed images themselves (``method.feature_view: perturbed``, no extra cost) or on an extra
  view of the clean unlabeled images (``clean``, UniMatch's reading; a third more images per pass).

When any of them is on, :class:`TwoViewSteps` is put in front of the method's class
(:meth:`coda_edu.registry.Registry.refine`): every CPS-derived method gets it, and
:mod:`coda_edu.method` itself stays the paper's step and never imports this module.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..config import option
from ..data.mixing import mix_plan, mixed_images, mixed_targets, strong_intensity
from ..method.base import UNUSED, ema_weights
from ..method.cps import CrossPseudoSupervision
from ..method.losses import supervised_loss
from ..registry import METHODS


@dataclass
class TwoViewOptions:
    """The ``method.*`` keys of the two-view step (keys of CPS, Co-DA and every method derived from them)."""

    ema_teacher: float = option(
        0.0,
        help="beyond the paper: > 0 makes the pseudo-labels with EMA copies of A and B of this momentum "
        "(A still learns from B's, B from A's); 0 = from the networks themselves (the paper)",
        min=0.0,
        max=1.0,
    )
    mix: str = option(
        "none",
        help="beyond the paper: train on mixed images, the pseudo-labels made on the clean ones: 'copy_paste' "
        "= a labeled box pasted into an unlabeled image and back (BCP-like; ground truth on the labeled pixels), "
        "'cutmix' = a box of another unlabeled image (docs/method.md#beyond-the-paper)",
        choices=("none", "copy_paste", "cutmix"),
    )
    mix_fraction: float = option(
        0.667, help="side of the pasted box as a fraction of the image side", min=0.0, max=1.0, min_exclusive=True
    )
    mix_per_network: bool = option(
        True, help="each network gets its own boxes (more diverse pair, same cost); false = both the same"
    )
    strong_intensity: float = option(
        0.0,
        help="beyond the paper: strength of a random gamma/contrast/brightness/noise change of the images a "
        "network learns its pseudo-labels on (0 = off; the pseudo-labels come from the unchanged images)",
        min=0.0,
        max=1.0,
    )
    feature_dropout: float = option(
        0.0,
        help="beyond the paper (UniMatch-like feature perturbation): probability of dropping each channel of "
        "every encoder output (skips and bottleneck) where a network learns a pseudo-label (0 = off; below 1)",
        min=0.0,
        max=0.95,
    )
    feature_view: str = option(
        "perturbed",
        help="where method.feature_dropout acts: 'perturbed' = on the mixed/intensity-changed unlabeled images "
        "(no extra cost); 'clean' = on an extra view of the clean unlabeled images, learned against the same "
        "pseudo-labels, its loss averaged with the perturbed view's (UniMatch; a third more images per pass)",
        choices=("perturbed", "clean"),
    )


def uses_two_views(cfg) -> bool:
    """Whether a CPS-derived method's config turns on an option of the two-view step."""
    m = cfg.method
    return m.mix != "none" or m.strong_intensity > 0 or m.ema_teacher > 0 or m.feature_dropout > 0


@METHODS.refine(CrossPseudoSupervision, when=uses_two_views, options=TwoViewOptions)
class TwoViewSteps:
    r"""The step of :class:`~coda_edu.method.cps.CrossPseudoSupervision` with two views of the unlabeled images.

    1. no gradient: both networks (or their EMA teachers) on the clean :math:`x_u` -> statistics,
       aligned pseudo-labels :math:`\hat y^m` and masks :math:`M^m` (as in the paper's step);
    2. per network, mixed images :math:`\tilde x = R \odot x_{src} + (1-R) \odot x_u` (copy-paste:
       the source is a labeled image and R marks its pixels; cutmix: another unlabeled image) and a
       strong intensity change;
    3. network A on :math:`[x_l, \tilde x^A]`: the supervised loss on :math:`x_l` and on the labeled
       pixels of :math:`\tilde x^A` (their ground truth), and the unsupervised loss with B's mixed
       pseudo-labels on its other pixels (weight :math:`\lambda(t)`); B the same with A's:

    .. math:: \mathcal{L} = \mathcal{L}^A_{sup} + \mathcal{L}^B_{sup}
              + \lambda(t)(\mathcal{L}^A_{u} + \mathcal{L}^B_{u})
              + \textstyle\sum_m \mathcal{L}_{sup}(z^m_{\tilde x}, y_l \text{ on the pasted labeled pixels})

    With ``method.feature_dropout`` p > 0 the encoder outputs of the images a network learns a
    pseudo-label on are channel-dropped (:math:`\mathrm{FD}_p`). ``feature_view: perturbed``: on
    :math:`\tilde x^A` itself. ``clean``: A's pass is :math:`[x_l, \tilde x^A, x_u]` with only
    :math:`x_u`'s features dropped, and :math:`\mathcal{L}^A_u = \tfrac12 [\ell(z^A_{\tilde x},
    \tilde y^B, \tilde M^B) + \ell(z^A_{\mathrm{FD}_p(x_u)}, \hat y^B, M^B)]` (the second term
    with B's pseudo-labels and mask of the clean images, unmixed); B the same with A's.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.teachers: dict[str, nn.Module] = {}  # EMA copies of A and B (method.ema_teacher > 0)

    def prepare(self, model_a, model_b):
        super().prepare(model_a, model_b)
        if self.cfg.method.ema_teacher > 0:
            self.teachers = {"A": copy.deepcopy(model_a), "B": copy.deepcopy(model_b)}
            for teacher in self.teachers.values():
                teacher.requires_grad_(False)

    @torch.no_grad()
    def after_optimizer_step(self, model_a, model_b, step):
        """Each teacher follows its network by :func:`~coda_edu.method.base.ema_weights`."""
        super().after_optimizer_step(model_a, model_b, step)
        if self.teachers:
            ema_weights(self.teachers["A"], model_a, self.cfg.method.ema_teacher, step)
            ema_weights(self.teachers["B"], model_b, self.cfg.method.ema_teacher, step)

    def training_step(self, model_a, model_b, batch, step, diagnostics=False):
        m = self.cfg.method
        n_l = batch.x_l.shape[0]
        # 1. the pseudo-labels' logits, from the clean unlabeled images (no gradient)
        with torch.no_grad():
            if self.teachers:
                clean_a, clean_b = self.teachers["A"](batch.x_u), self.teachers["B"](batch.x_u)
            else:
                clean_a, clean_b = model_a(batch.x_u), model_b(batch.x_u)
        # 2. each network's perturbed view: its own boxes (or one shared plan), then the intensity change
        inputs, plans = {}, {}
        shared = None if m.mix_per_network else mix_plan(m.mix, m.mix_fraction, n_l, batch.x_u)
        clean_view = m.feature_dropout > 0 and m.feature_view == "clean"
        for key in ("A", "B"):
            plans[key] = shared if shared is not None else mix_plan(m.mix, m.mix_fraction, n_l, batch.x_u)
            x_mix = mixed_images(plans[key], batch.x_l, batch.x_u)
            views = [batch.x_l, strong_intensity(x_mix, m.strong_intensity)] + ([batch.x_u] if clean_view else [])
            inputs[key] = torch.cat(views)
        # the feature perturbation acts on the items from `start` on: the perturbed view or the clean one
        # (the keywords only when it is on: otherwise the networks' plain forward, as before the option)
        start = n_l + batch.x_u.shape[0] if clean_view else n_l
        perturb = {"feature_dropout": m.feature_dropout, "perturbed_from": start} if m.feature_dropout > 0 else {}
        logits_a, logits_b = model_a(inputs["A"], **perturb), model_b(inputs["B"], **perturb)
        dropped = {}
        if clean_view:  # split off the clean view's logits: the rest is the step without it
            dropped = {"A": logits_a[start:], "B": logits_b[start:]}
            logits_a, logits_b = logits_a[:start], logits_b[:start]
        sup_a = self.supervised(logits_a[:n_l], batch.y_l)
        sup_b = self.supervised(logits_b[:n_l], batch.y_l)
        # 3. the paper's statistics, alignment and filter on the clean logits
        targets, logs = self._targets(
            {"A": logits_a[:n_l], "B": logits_b[:n_l]}, {"A": clean_a, "B": clean_b}, batch, step, diagnostics
        )
        # 4. A learns from B's mixed pseudo-labels and B from A's; pasted labeled pixels from their truth
        losses, mixed_sup = {}, None
        for key, logits, teacher in (("A", logits_a, "B"), ("B", logits_b, "A")):
            target, kept, labeled = mixed_targets(plans[key], *targets[teacher], batch.y_l, self.ignore_index)
            losses[key] = self.unsupervised(logits[n_l:], target, kept)
            if clean_view:  # UniMatch: the feature-dropped clean view learns the other's clean pseudo-labels
                losses[key] = 0.5 * (losses[key] + self.unsupervised(dropped[key], *targets[teacher]))
            if labeled is not None:
                truth = torch.where(labeled, target, torch.full_like(target, UNUSED))
                part = supervised_loss(logits[n_l:], truth, UNUSED, m.supervised_loss)
                mixed_sup = part if mixed_sup is None else mixed_sup + part
        loss, logs = self._total(sup_a, sup_b, losses["A"], losses["B"], step, logs)
        if mixed_sup is not None:
            loss = loss + mixed_sup
            logs["mixed_sup"], logs["loss"] = mixed_sup.detach(), loss.detach()
        return loss, logs

    def state_dict(self) -> dict:
        state = super().state_dict()
        if self.teachers:
            state["teachers"] = {k: t.state_dict() for k, t in self.teachers.items()}
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        for key, teacher in self.teachers.items():
            teacher.load_state_dict(state["teachers"][key])
