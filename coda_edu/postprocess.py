"""Post-processing of class maps: the largest connected component rule.

Used on predictions at validation and evaluation (``eval.postprocess: largest_component``) and,
as an option beyond the paper, on the pseudo-labels during training
(``method.pseudo_postprocess: largest_component``, :func:`keep_largest_components_batch`).
"""

from __future__ import annotations

import numpy as np
import torch

from .metrics import bounding_box


def keep_largest_components(pred: torch.Tensor, num_classes: int, background: int | None = 0) -> torch.Tensor:
    r"""Post-processing ``eval.postprocess: largest_component`` of one case's class map ``(*spatial)``:
    keep the largest connected component (face-connected, over the whole case) of the foreground, then of
    each class inside it; every other foreground voxel becomes ``background``. The heart is one connected
    organ, so a blob away from it (the liver, the stomach) is a false positive this removes.
    """
    from scipy import ndimage  # (imported when used: scipy is slow to import)

    if background is None:
        return pred
    labels = pred.numpy()
    out = np.full_like(labels, background)
    foreground = labels != background
    if not foreground.any():
        return torch.from_numpy(out)
    # Everything kept lies inside the foreground's bounding box: label only that box (same result, faster).
    box = bounding_box(foreground)
    labels, foreground, kept_out = labels[box], foreground[box], out[box]

    def largest(mask: np.ndarray) -> np.ndarray:
        parts, count = ndimage.label(mask)
        if count <= 1:
            return mask
        sizes = np.bincount(parts.ravel(), minlength=count + 1)
        sizes[0] = 0
        return parts == sizes.argmax()

    heart = largest(foreground)
    for k in range(num_classes):
        if k != background:
            kept = largest(heart & (labels == k))
            kept_out[kept] = k
    return torch.from_numpy(out)


@torch.no_grad()
def keep_largest_components_batch(labels: torch.Tensor, num_classes: int, background: int = 0) -> torch.Tensor:
    """:func:`keep_largest_components` on every item of a batch of class maps ``(N, *spatial)`` (each
    2D slice or 3D patch on its own), on the CPU, returned on ``labels``' device and dtype."""
    cpu = labels.detach().cpu()
    kept = torch.stack([keep_largest_components(item, num_classes, background) for item in cpu])
    return kept.to(device=labels.device, dtype=labels.dtype)
