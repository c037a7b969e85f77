"""Options beyond the paper that are more than a switch inside the method's step.

- :mod:`.two_view`         the step with EMA teachers, mixed images and strong intensity changes
  (``method.ema_teacher``, ``method.mix``, ``method.strong_intensity``): pseudo-labels from the
  clean unlabeled images, learned on perturbed ones
- :mod:`.pseudo_postprocess` each unlabeled image's pseudo-labels reduced to its largest organ
  (``method.pseudo_postprocess``)
- :mod:`.oece_dice`        a soft Dice over the kept pixels added to the unsupervised loss
  (``method.unsupervised_loss: oece_dice``)
- :mod:`.argmax_readings`  the ``hard_counts`` and ``argmax_share`` alignment readings
  (``method.alignment``), which read the argmax shares instead of the mean softmax

The paper's Co-DA lives in :mod:`coda_edu.method`; nothing there imports this package.
"""

from .argmax_readings import apply_class_weights, apply_log_offsets, hard_count_weights, match_argmax_shares
from .two_view import TwoViewSteps, uses_two_views

__all__ = [
    "apply_class_weights",
    "apply_log_offsets",
    "hard_count_weights",
    "match_argmax_shares",
    "TwoViewSteps",
    "uses_two_views",
]
