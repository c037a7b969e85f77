"""Static matplotlib figures: learning curves and segmentation overlays."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..io import atomic_write

# Figures are built with the object-oriented API (``Figure``), not pyplot: nothing
# depends on the active backend, the CLI needs no display, and a notebook shows a
# returned Figure through its inline formatter.

CARDIAC_COLORS = {"RV": (0.90, 0.25, 0.20), "MYO": (0.20, 0.75, 0.30), "LV": (0.20, 0.45, 0.95),
                  "lesion": (1.00, 0.85, 0.10), "LA": (0.90, 0.35, 0.80)}


def class_colors(class_names: Sequence[str]) -> np.ndarray:
    """RGB colour per class (background black): fixed colours for cardiac classes, tab20 otherwise."""
    cmap = matplotlib.colormaps["tab20"]
    colors = np.zeros((len(class_names), 3))
    for i, name in enumerate(class_names):
        if i == 0:
            continue
        colors[i] = CARDIAC_COLORS.get(name, cmap((i - 1) % 20)[:3])
    return colors


def label_to_rgb(label: np.ndarray, class_names: Sequence[str], ignore_index: Optional[int] = None) -> np.ndarray:
    colors = class_colors(class_names)
    lab = np.asarray(label).astype(np.int64)
    if ignore_index is not None:
        lab = np.where(lab == ignore_index, 0, lab)
    return colors[np.clip(lab, 0, len(class_names) - 1)]


def blend(image: np.ndarray, label: np.ndarray, class_names: Sequence[str], alpha: float = 0.45,
          ignore_index: Optional[int] = None) -> np.ndarray:
    """Greyscale (or RGB channel-first) image with coloured labels on top."""
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 3:  # (C, H, W) RGB
        img = np.moveaxis(img[:3], 0, -1)
    else:
        img = np.repeat(img[..., None], 3, axis=-1)
    lo, hi = np.percentile(img, [1, 99])
    img = np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1)
    rgb = label_to_rgb(label, class_names, ignore_index)
    fg = (np.asarray(label) > 0)[..., None]
    if ignore_index is not None:
        fg = fg & (np.asarray(label) != ignore_index)[..., None]
    return np.where(fg, (1 - alpha) * img + alpha * rgb, img)


def plot_overlay(images: np.ndarray, labels: np.ndarray, predictions: dict[str, np.ndarray],
                 class_names: Sequence[str], title: str = "", ignore_index: Optional[int] = None):
    """Rows = slices; columns = image, reference, then one column per prediction."""
    n = images.shape[0]
    cols = 2 + len(predictions)
    fig = Figure(figsize=(2.2 * cols, 2.2 * n + 0.4))
    axes = fig.subplots(n, cols, squeeze=False)
    for r in range(n):
        panels = [("image", images[r], None), ("reference", images[r], labels[r])]
        panels += [(name, images[r], pred[r]) for name, pred in predictions.items()]
        for c, (name, img, lab) in enumerate(panels):
            ax = axes[r, c]
            if lab is None:
                shown = blend(img, np.zeros(img.shape[-2:], dtype=int), class_names)
            else:
                shown = blend(img, lab, class_names, ignore_index=ignore_index)
            ax.imshow(shown, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=9)
    handles = [Rectangle((0, 0), 1, 1, color=col) for col in class_colors(class_names)[1:]]
    fig.legend(handles, list(class_names[1:]), loc="lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    return fig


def plot_learning_curves(rows: list[dict], title: str = ""):
    """Losses, unsupervised weight, pseudo-label mask coverage and validation Dice over steps."""
    train = [r for r in rows if r.get("kind") == "train"]
    val = [r for r in rows if r.get("kind") == "val"]
    fig = Figure(figsize=(13, 3.4))
    axes = fig.subplots(1, 3)
    steps = [r["step"] for r in train]
    ax = axes[0]
    for key in ("loss", "sup_A", "sup_B", "unsup_A", "unsup_B"):
        values = [r.get(key) for r in train]
        if any(v is not None for v in values):
            ax.plot(steps, [np.nan if v is None else v for v in values], label=key, lw=1)
    ax.set_xlabel("step")
    ax.set_title("losses")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    ax = axes[1]
    for key, label in (("lambda", "lambda(t)"), ("kept_A", "kept share (A's pseudo-labels)"), ("kept_B", "kept share (B's)")):
        values = [r.get(key) for r in train]
        if any(v is not None for v in values):
            ax.plot(steps, [np.nan if v is None else v for v in values], label=label, lw=1)
    lr = [r.get("lr") for r in train]
    if lr and lr[0]:
        ax.plot(steps, [v / lr[0] for v in lr], label="lr / lr0", lw=1, ls="--")
    ax.set_xlabel("step")
    ax.set_title("schedules and filter")
    ax.set_ylim(-0.02, 1.05)
    ax.legend(fontsize=7)
    ax = axes[2]
    for model in ("A", "B", "ensemble"):
        values = [r["dice"][model]["mean"] if r["dice"][model]["mean"] is not None else np.nan for r in val]
        ax.plot([r["step"] for r in val], values, marker="o", ms=3, label=model, lw=1)
    ax.set_xlabel("step")
    ax.set_title("validation mean foreground Dice")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def save_figure(fig, path: str | Path, dpi: int = 110) -> None:
    """Save a matplotlib figure atomically as PNG."""
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))
