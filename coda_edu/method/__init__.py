"""The Co-DA maths as pure functions, plus the algorithms that compose them.

- :mod:`.losses`      supervised loss (CE + soft Dice) and masked cross-entropy (OECE)
- :mod:`.alignment`   class marginals, EMA, distribution alignment, pseudo-labels
- :mod:`.filtering`   over-expectation mask and fixed-threshold mask
- :mod:`.readings`    the alignment readings and filters, registered by name (``method.alignment``/``filter``;
  two more readings, beyond the paper, in :mod:`coda_edu.beyond`)
- :mod:`.schedules`   sigmoid ramp-up of the unsupervised weight (the poly learning rate: :mod:`coda_edu.optim`)
- :mod:`.base`        what every method shares: the batch, the hooks, the EMA of weights
- one module per method, each registering itself: :mod:`.supervised`, :mod:`.cps`,
  :mod:`.coda`, :mod:`.mean_teacher`
"""

from .alignment import (
    align_distribution,
    class_marginal,
    class_shares,
    ema_update,
    label_marginal,
    pseudo_labels,
)
from .filtering import (
    class_expectations,
    ema_expectations,
    fixed_threshold_mask,
    over_expectation_mask,
)
from .losses import cross_entropy, masked_cross_entropy, soft_dice_loss, supervised_loss
from .schedules import sigmoid_rampup, unsupervised_weight

__all__ = [
    "align_distribution",
    "class_marginal",
    "class_shares",
    "ema_update",
    "label_marginal",
    "pseudo_labels",
    "class_expectations",
    "ema_expectations",
    "fixed_threshold_mask",
    "over_expectation_mask",
    "cross_entropy",
    "masked_cross_entropy",
    "soft_dice_loss",
    "supervised_loss",
    "sigmoid_rampup",
    "unsupervised_weight",
]
