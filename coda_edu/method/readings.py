r"""The alignment readings (``method.alignment``) and pseudo-label filters (``method.filter``).

Each is registered by name with a :class:`~coda_edu.registry.ReadingSpec`, the function
that applies it and the ``method.*`` keys it declares, the same way a method registers
itself; CPS and Co-DA call whichever the config names. A new reading or filter is one
function registered here, or in a module of another package named in an entry point of
the group ``coda_edu.alignments`` / ``coda_edu.filters``.

An alignment gets one network's unlabeled probabilities :math:`p` ``(N, C, *S)``, its
:class:`~coda_edu.method.cps.MarginalTracker` (:math:`\pi_l, \pi_u, \pi_{gt}, s_u`), its
own running state (None at the first step), the ``method`` config section and the
strength :math:`\alpha(t)`; it returns the aligned probabilities and its new state.
A filter gets the confidence :math:`q` and pseudo-labels :math:`\hat y` ``(N, *S)``, the
number of classes, its state and the config section; it returns the mask of kept pixels
and its new state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import option
from ..registry import ALIGNMENTS, FILTERS, ReadingSpec
from .alignment import align_distribution
from .filtering import (
    class_expectations,
    ema_expectations,
    fixed_threshold_mask,
    image_class_expectations,
    over_expectation_mask,
    restrict_to_classes,
)


# --------------------------------------------------------------------------- alignment readings
@ALIGNMENTS.register(ReadingSpec("none", "no alignment: the pseudo-labels are the networks' own argmax"))
def no_alignment(probs_u, tracker, state, m, alpha):
    return probs_u, state


@ALIGNMENTS.register(
    ReadingSpec("predictions", "the paper's reading: p(c) (pi_l(c) / pi_u(c))^alpha, pi_l from labeled predictions")
)
def align_to_labeled_predictions(probs_u, tracker, state, m, alpha):
    r""":math:`\tilde p(c) \propto p(c)\,((\pi_l(c) + \epsilon) / (\pi_u(c) + \epsilon))^{\alpha}`
    (:func:`~coda_edu.method.alignment.align_distribution`)."""
    return align_distribution(probs_u, tracker.pi_l, tracker.pi_u, alpha, m.eps), state


@ALIGNMENTS.register(
    ReadingSpec(
        "labels",
        "as 'predictions', with pi_l the labeled ground-truth class frequencies",
        labeled_target="labels",
    )
)
def align_to_label_frequencies(probs_u, tracker, state, m, alpha):
    r"""The same formula with :math:`\pi_l` the labels' class frequencies (the tracker tracks those)."""
    return align_distribution(probs_u, tracker.pi_l, tracker.pi_u, alpha, m.eps), state


# --------------------------------------------------------------------------- pseudo-label filters
@FILTERS.register(ReadingSpec("none", "every pseudo-label is kept"))
def keep_all(confidence, labels, num_classes, state, m):
    return torch.ones_like(labels, dtype=torch.bool), state


@dataclass
class FixedThresholdOptions:
    threshold: float = option(0.95, help="confidence threshold of the fixed filter", min=0.0, max=1.0)


@FILTERS.register(ReadingSpec("fixed", "keep q >= threshold (FixMatch-like)", options=FixedThresholdOptions))
def keep_above_threshold(confidence, labels, num_classes, state, m):
    r""":math:`M_i = [q_i \ge \tau]` (:func:`~coda_edu.method.filtering.fixed_threshold_mask`)."""
    return fixed_threshold_mask(confidence, m.threshold), state


@dataclass
class OverExpectationOptions:
    expectation: str = option(
        "batch",
        help="class expectations of the over-expectation filter: per 'batch', an 'ema' over steps, or per "
        "'image' (beyond the paper: each image keeps its better half of each class)",
        choices=("batch", "ema", "image"),
    )
    expectation_momentum: float = option(
        0.99, help="EMA momentum of the class expectations (expectation: ema)", min=0.0, max=1.0
    )
    filter_classes: str = option(
        "all",
        help="pseudo-classes the over-expectation filter applies to: 'all' (the paper); beyond the paper, "
        "'majority' (only the batch's most frequent pseudo-class, the background, is filtered) or 'minority' "
        "(every other class is filtered and every majority-class pseudo-label is kept)",
        choices=("all", "majority", "minority"),
    )


@FILTERS.register(
    ReadingSpec(
        "over_expectation",
        "Co-DA's filter: keep q >= the mean confidence of the pixel's class",
        options=OverExpectationOptions,
    )
)
def keep_over_expectation(confidence, labels, num_classes, expectations, m):
    r""":math:`M_i = [q_i \ge e_{\hat y_i}]`, :math:`e_c` the mean confidence of class c in the batch
    (:func:`~coda_edu.method.filtering.class_expectations`) or, with ``method.expectation: ema``, its EMA
    over steps (the state); with ``image``, :math:`e_{n,c}` the mean over image n's pixels of class c
    (:func:`~coda_edu.method.filtering.image_class_expectations`). With ``method.filter_classes: majority``
    only the batch's most frequent pseudo-class is filtered, with ``minority`` only the others
    (:func:`~coda_edu.method.filtering.restrict_to_classes`)."""
    if m.expectation == "image":
        expected = image_class_expectations(confidence, labels, num_classes)
    else:
        expected = class_expectations(confidence, labels, num_classes)
    if m.expectation == "ema":
        expectations = ema_expectations(expectations, expected, m.expectation_momentum)
        expected = expectations
    mask = over_expectation_mask(confidence, labels, expected)
    return restrict_to_classes(mask, labels, num_classes, m.filter_classes), expectations
