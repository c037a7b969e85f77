"""Post-processed pseudo-labels, beyond the paper: each unlabeled image keeps its largest organ.

``method.pseudo_postprocess: largest_component`` applies the rule of ``eval.postprocess`` to
the aligned, filtered pseudo-labels of CPS and Co-DA (:func:`~coda_edu.postprocess.keep_largest_components_batch`:
the largest foreground component, then each class's largest inside it; the other foreground
pixels become class 0), so a network is not taught fragments away from the organ. For data
whose class 0 is background. The mask of kept pixels is the filter's, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import option
from ..method.cps import CrossPseudoSupervision
from ..postprocess import keep_largest_components_batch
from ..registry import METHODS


@dataclass
class PseudoPostprocessOptions:
    pseudo_postprocess: str = option(
        "none",
        help="beyond the paper: 'largest_component' applies the rule of eval.postprocess to each unlabeled "
        "image's pseudo-labels (the largest foreground component, then each class's inside it; other "
        "foreground pixels become class 0), so a network is not taught fragments away from the organ; for "
        "data whose class 0 is background",
        choices=("none", "largest_component"),
    )


def postprocesses_pseudo_labels(cfg) -> bool:
    return cfg.method.pseudo_postprocess != "none"


@METHODS.refine(CrossPseudoSupervision, when=postprocesses_pseudo_labels, options=PseudoPostprocessOptions)
class LargestComponentPseudoLabels:
    """The pseudo-labels of :class:`~coda_edu.method.cps.CrossPseudoSupervision`, each image's
    fragments outside its largest component set to class 0 (a CPU pass)."""

    def _pseudo(self, key, probs_u, step=0):
        labels, mask = super()._pseudo(key, probs_u, step)
        return keep_largest_components_batch(labels, self.num_classes), mask
