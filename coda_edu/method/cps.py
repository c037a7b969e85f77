"""Cross pseudo supervision (Chen et al., 2021) and the hooks Co-DA adds to it.

:class:`CrossPseudoSupervision` is the training step of both CPS and Co-DA: A learns from
B's pseudo-labels and B from A's. Its hooks make the difference: ``align`` (the reading
``method.alignment``), the filter (``method.filter``; both registered by name in
:mod:`.readings`) and the unsupervised loss. With the hooks off it is CPS, registered here;
:mod:`.coda` registers Co-DA on the same step with its own defaults. The options beyond the
paper that change the step itself (EMA teachers, mixed images, strong intensity changes,
post-processed pseudo-labels, a Dice term on them) declare their own keys and live in :mod:`coda_edu.beyond`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from ..config import Config, option
from ..diagnostics import pseudo_label_logs
from ..registry import ALIGNMENTS, FILTERS, METHODS, MethodSpec
from .alignment import class_marginal, class_shares, ema_update, label_marginal, pseudo_labels
from .base import COMMON_KEYS, Algorithm, Batch
from .dtypes import widen
from .losses import masked_cross_entropy
from .schedules import unsupervised_weight


@dataclass
class CPSOptions:
    """The ``method.*`` keys of CPS and Co-DA (their config section; ``coda-edu config --keys``). Each
    alignment reading and filter declares its own (:mod:`coda_edu.method.readings`), and so does each
    option beyond the paper that changes the step (:mod:`coda_edu.beyond`)."""

    alpha: float = option(1.0, help="alignment strength: 0 = off, 1 = full", min=0.0, max=1.0)
    alignment_rampup: bool = option(
        True,
        help="ramped readings (hard_counts, argmax_share): the strength follows the unsupervised ramp-up, "
        "alpha(t) = alpha r(t)",
    )
    marginal_momentum: float = option(0.99, help="EMA momentum of the class marginals pi_l, pi_u", min=0.0, max=1.0)
    loss_normalization: str = option(
        "all", help="OECE divides by 'all' unlabeled pixels or only the 'kept' ones", choices=("all", "kept")
    )
    eps: float = option(1e-6, help="added to marginals before dividing", min=0.0, min_exclusive=True)


CPS_KEYS = COMMON_KEYS + ("alignment", "filter") + tuple(f.name for f in fields(CPSOptions))


class MarginalTracker:
    r"""EMA class statistics of one network (all without gradient, momentum ``m``):

    - :math:`\pi_l`: mean softmax on labeled pixels (or, with ``target="labels"``, the
      labeled ground-truth class frequencies);
    - :math:`\pi_u`: mean softmax on unlabeled pixels;
    - :math:`\pi_{gt}`: labeled ground-truth class frequencies (always tracked: the
      target of the hard-count and argmax-share readings and of the logged share gap);
    - :math:`s_u`: argmax class shares of the (unaligned) unlabeled predictions (tracked only for
      a reading that reads them, ``hard_shares=True``: hard_counts).
    """

    def __init__(self, momentum: float, labeled_target: str = "predictions", hard_shares: bool = False):
        self.momentum = momentum
        self.labeled_target = labeled_target
        self.hard_shares = hard_shares
        self.pi_l: torch.Tensor | None = None
        self.pi_u: torch.Tensor | None = None
        self.pi_gt: torch.Tensor | None = None
        self.hard_u: torch.Tensor | None = None

    @torch.no_grad()
    def update(self, probs_l, y_l, probs_u, num_classes, ignore_index) -> None:
        valid = None if ignore_index is None else (y_l != ignore_index)
        frequencies = label_marginal(y_l, num_classes, ignore_index)
        labeled = frequencies if self.labeled_target == "labels" else class_marginal(probs_l, valid)
        self.pi_l = ema_update(self.pi_l, labeled, self.momentum)
        self.pi_u = ema_update(self.pi_u, class_marginal(probs_u), self.momentum)
        self.pi_gt = ema_update(self.pi_gt, frequencies, self.momentum)
        if self.hard_shares:  # only a reading that reads them (hard_counts)
            self.hard_u = ema_update(self.hard_u, class_shares(probs_u.argmax(1), num_classes), self.momentum)

    def state_dict(self) -> dict:
        return {"pi_l": self.pi_l, "pi_u": self.pi_u, "pi_gt": self.pi_gt, "hard_u": self.hard_u}

    def load_state_dict(self, state: dict) -> None:
        self.pi_l, self.pi_u = state["pi_l"], state["pi_u"]
        self.pi_gt, self.hard_u = state.get("pi_gt"), state.get("hard_u")


@METHODS.register(
    MethodSpec(
        "cps",
        "cross pseudo supervision: A learns from B's pseudo-labels and B from A's (Chen et al., 2021)",
        alignment="none",
        filter="none",
        config_keys=CPS_KEYS,
        options=CPSOptions,
        color="#ff7f0e",
    )
)
class CrossPseudoSupervision(Algorithm):
    r"""Cross pseudo supervision, optionally with distribution alignment and a pseudo-label filter.

    With ``alignment="none"`` and ``filter="none"`` this is CPS (Chen et al., 2021);
    with an alignment reading and ``filter="over_expectation"`` it is Co-DA:

    1. :math:`\mathcal{L}^m_{sup} = \tfrac12(\mathrm{CE} + \mathrm{Dice})` on the labeled images, m in {A, B}.
    2. per network m, EMA statistics :math:`\pi^m_l, \pi^m_u, \pi^m_{gt}, s^m_u` (:class:`MarginalTracker`).
    3. aligned unlabeled predictions :math:`\tilde p^m` by the reading ``method.alignment``
       (:meth:`align`; see :mod:`coda_edu.method.alignment`).
    4. pseudo-labels :math:`\hat y^m = \arg\max_c \tilde p^m(c)`, confidence :math:`q^m = \max_c \tilde p^m(c)`.
    5. mask :math:`M^m` (over-expectation :math:`q^m_i \ge e^m_{\hat y_i}`, fixed :math:`q^m_i \ge \tau`, or all ones).
    6. A learns from B and B from A:
       :math:`\mathcal{L} = \mathcal{L}^A_{sup} + \mathcal{L}^B_{sup}
       + \lambda(t)\,[\mathrm{OECE}(z^A_u, \hat y^B, M^B) + \mathrm{OECE}(z^B_u, \hat y^A, M^A)]`.
    """

    def __init__(self, cfg: Config, num_classes: int, ignore_index: int | None):
        super().__init__(cfg, num_classes, ignore_index)
        m = cfg.method
        self.reading = ALIGNMENTS.get(m.alignment)  # method.alignment (coda_edu.method.readings)
        self.pseudo_filter = FILTERS.get(m.filter)  # method.filter
        self.trackers = {
            k: MarginalTracker(m.marginal_momentum, self.reading.labeled_target, self.reading.hard_shares)
            for k in ("A", "B")
        }
        # the running states of the filter (EMA expectations) and of the reading (argmax_share's log-offsets)
        self.expectations: dict[str, torch.Tensor | None] = {"A": None, "B": None}
        self.offsets: dict[str, torch.Tensor | None] = {"A": None, "B": None}

    def alignment_strength(self, step: int) -> float:
        """alpha, ramped like the unsupervised weight for a ramped reading (hard_counts, argmax_share)."""
        m = self.cfg.method
        if self.reading.ramped and m.alignment_rampup:
            return m.alpha * unsupervised_weight(step, 1.0, self.rampup_steps)
        return m.alpha

    def align(self, key: str, probs_u: torch.Tensor, step: int) -> torch.Tensor:
        """Network ``key``'s unlabeled probabilities after the reading ``method.alignment``."""
        state = self.offsets[key]
        aligned, self.offsets[key] = self.reading.function(
            probs_u, self.trackers[key], state, self.cfg.method, self.alignment_strength(step)
        )
        return aligned

    def _pseudo(self, key: str, probs_u: torch.Tensor, step: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Network ``key``'s pseudo-labels of its aligned probabilities and the filter's mask of kept pixels."""
        confidence, labels = pseudo_labels(self.align(key, probs_u, step))
        mask, self.expectations[key] = self.pseudo_filter.function(
            confidence, labels, self.num_classes, self.expectations[key], self.cfg.method
        )
        return labels, mask

    def training_step(self, model_a, model_b, batch, step, diagnostics=False):
        n_l = batch.x_l.shape[0]
        x = torch.cat([batch.x_l, batch.x_u])
        logits_a, logits_b = model_a(x), model_b(x)
        sup_a = self.supervised(logits_a[:n_l], batch.y_l)
        sup_b = self.supervised(logits_b[:n_l], batch.y_l)
        labeled, unlabeled = {"A": logits_a[:n_l], "B": logits_b[:n_l]}, {"A": logits_a[n_l:], "B": logits_b[n_l:]}
        targets, logs = self._targets(labeled, unlabeled, batch, step, diagnostics)
        unsup_a = self.unsupervised(logits_a[n_l:], *targets["B"])  # A learns from B
        unsup_b = self.unsupervised(logits_b[n_l:], *targets["A"])  # B learns from A
        return self._total(sup_a, sup_b, unsup_a, unsup_b, step, logs)

    def _targets(self, logits_l: dict, logits_u: dict, batch: Batch, step: int, diagnostics: bool):
        """Per network: update its statistics, then its (aligned, filtered) pseudo-labels of the
        unlabeled images ``{key: (labels, mask)}`` and the diagnostic logs (no gradient)."""
        logs: dict[str, torch.Tensor | float] = {}
        targets = {}
        with torch.no_grad():
            for key in ("A", "B"):
                probs_l = torch.softmax(widen(logits_l[key].detach()), dim=1)
                probs_u = torch.softmax(widen(logits_u[key].detach()), dim=1)
                self.trackers[key].update(probs_l, batch.y_l, probs_u, self.num_classes, self.ignore_index)
                targets[key] = self._pseudo(key, probs_u, step)
                if diagnostics:  # shares, coverage, accuracy against the hidden truth (coda_edu.diagnostics)
                    tracker, truth = self.trackers[key], batch.y_u
                    logs.update(pseudo_label_logs(key, tracker, probs_u, *targets[key], truth, self.ignore_index))
        return targets, logs

    def _total(self, sup_a, sup_b, unsup_a, unsup_b, step: int, logs: dict):
        r"""The total loss and its logs,
        :math:`\mathcal{L} = \mathcal{L}^A_{sup} + \mathcal{L}^B_{sup}
        + \lambda(t)(\mathcal{L}^A_{u} + \mathcal{L}^B_{u})`."""
        lam = self.lambda_at(step)
        loss = sup_a + sup_b + lam * (unsup_a + unsup_b)
        parts = {"loss": loss, "sup_A": sup_a, "sup_B": sup_b, "unsup_A": unsup_a, "unsup_B": unsup_b}
        logs.update({name: value.detach() for name, value in parts.items()} | {"lambda": lam})
        return loss, logs

    def unsupervised(self, logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        r"""The loss of one network on the other's pseudo-labels, :math:`\mathrm{OECE}(z, \hat y, M)`
        (with ``method.unsupervised_loss: oece_dice``, beyond the paper: :mod:`coda_edu.beyond.oece_dice`)."""
        return masked_cross_entropy(logits, labels, mask, normalize=self.cfg.method.loss_normalization)

    def state_dict(self) -> dict:
        return {
            "trackers": {k: t.state_dict() for k, t in self.trackers.items()},
            "expectations": dict(self.expectations),
            "offsets": dict(self.offsets),
        }

    def load_state_dict(self, state: dict) -> None:
        for k, t in self.trackers.items():
            t.load_state_dict(state["trackers"][k])
        self.expectations = dict(state["expectations"])
        self.offsets = dict(state.get("offsets", {"A": None, "B": None}))
