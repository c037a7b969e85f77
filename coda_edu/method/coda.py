r"""Co-DA (Co-Distribution Alignment): CPS whose pseudo-labels are aligned and filtered.

The step is :class:`~coda_edu.method.cps.CrossPseudoSupervision`; Co-DA is that step with
two defaults switched on (``resolve()`` fills them when the config leaves them null):

- ``method.alignment: predictions``: each network's unlabeled prediction is aligned to
  its labeled one, :math:`\tilde p^m(c) \propto p^m(c)\,(\pi^m_l(c) / \pi^m_u(c))^{\alpha}`
  (:func:`~coda_edu.method.alignment.align_distribution`);
- ``method.filter: over_expectation``: a pseudo-label is kept where its confidence is at
  least the mean confidence of its class, :math:`q_i \ge e_{\hat y_i}`
  (:func:`~coda_edu.method.filtering.over_expectation_mask`), and the over-expectation
  cross-entropy learns from the kept pixels only.

Every other reading of the paper's formulas is a ``method.*`` key (docs/method.md).
"""

from __future__ import annotations

from ..registry import METHODS, MethodSpec
from .cps import CPS_KEYS, CPSOptions, CrossPseudoSupervision


@METHODS.register(
    MethodSpec(
        "coda",
        "Co-DA: CPS with distribution-aligned pseudo-labels and the over-expectation filter",
        alignment="predictions",
        filter="over_expectation",
        config_keys=CPS_KEYS,
        options=CPSOptions,  # the same keys as CPS: one step, other defaults
        color="#9467bd",
        variant_colors=("#c5b0d5", "#54278f", "#a88fd0", "#3f007d"),  # shades of its purple
    )
)
class CoDA(CrossPseudoSupervision):
    """Co-DA: the step of :class:`~coda_edu.method.cps.CrossPseudoSupervision`, with the alignment and
    the over-expectation filter on by default (see the module docstring)."""
