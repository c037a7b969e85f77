"""Options beyond the paper that are more than a switch inside the method's step.

- :mod:`.argmax_readings`  the ``hard_counts`` and ``argmax_share`` alignment readings
  (``method.alignment``), which read the argmax shares instead of the mean softmax

The paper's Co-DA lives in :mod:`coda_edu.method`; nothing there imports this package.
"""

from .argmax_readings import apply_class_weights, apply_log_offsets, hard_count_weights, match_argmax_shares

__all__ = ["apply_class_weights", "apply_log_offsets", "hard_count_weights", "match_argmax_shares"]
