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


# --------------------------------------------------------------------------- notebook figures
def _bar_groups(ax, names: Sequence[str], series: dict[str, Sequence[float]], log: bool = False, ylabel: str = ""):
    x = np.arange(len(names))
    width = 0.8 / max(len(series), 1)
    for i, (label, values) in enumerate(series.items()):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, np.asarray(values, dtype=float), width, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=30 if len(names) > 5 else 0, ha="right" if len(names) > 5 else "center", fontsize=8)
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    if len(series) > 1:
        ax.legend(fontsize=8)


def plot_class_shares(class_names: Sequence[str], series: dict[str, Sequence[float]], title: str = "",
                      log: bool = True):
    """Grouped bars of pixel class shares (log scale by default: minority classes stay visible)."""
    fig = Figure(figsize=(max(5.0, 0.45 * len(class_names) * max(1, len(series))), 3.2))
    ax = fig.subplots()
    _bar_groups(ax, class_names, series, log=log, ylabel="share of pixels")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_confusion_matrix(cm: np.ndarray, class_names: Sequence[str], title: str = "", normalize: bool = True):
    """Rows = reference class, columns = predicted class; row-normalised (recall per class) by default."""
    cm = np.asarray(cm, dtype=float)
    shown = cm / np.maximum(cm.sum(1, keepdims=True), 1) if normalize else cm
    fig = Figure(figsize=(0.7 * len(class_names) + 2.2, 0.6 * len(class_names) + 1.6))
    ax = fig.subplots()
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    for i in range(len(class_names)):
        for j in range(len(class_names)):
            ax.text(j, i, f"{shown[i, j]:.2f}" if normalize else f"{int(cm[i, j])}", ha="center", va="center",
                    fontsize=7, color="white" if shown[i, j] > 0.6 * shown.max() else "black")
    ax.set_xticks(range(len(class_names)))
    ax.set_yticks(range(len(class_names)))
    ax.set_xticklabels(class_names, rotation=30, fontsize=8)
    ax.set_yticklabels(class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def plot_confidence_histograms(confidence: np.ndarray, correct: np.ndarray, labels: np.ndarray,
                               class_names: Sequence[str], bins: int = 20):
    """Per pseudo-class, histograms of the confidence of correct and wrong pseudo-labels."""
    k = len(class_names)
    fig = Figure(figsize=(3.0 * k, 2.6))
    axes = np.atleast_1d(fig.subplots(1, k, sharey=False))
    edges = np.linspace(0, 1, bins + 1)
    for c, ax in enumerate(axes):
        sel = labels == c
        ax.hist(confidence[sel & correct], bins=edges, alpha=0.7, label="correct", color="tab:green")
        ax.hist(confidence[sel & ~correct], bins=edges, alpha=0.7, label="wrong", color="tab:red")
        if sel.any():
            ax.set_yscale("log")
        else:
            ax.text(0.5, 0.5, "no pixel has\nthis pseudo-label", ha="center", va="center", transform=ax.transAxes, fontsize=8)
        ax.set_title(f"pseudo-label {class_names[c]}", fontsize=9)
        ax.set_xlabel("confidence")
        if c == 0:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_filter_comparison(rows: list[dict], class_names: Sequence[str]):
    """Coverage and precision per class for each filter (rows from ``analysis.compare_filters``)."""
    filters = list(dict.fromkeys(r["filter"] for r in rows))
    fig = Figure(figsize=(11, 3.2))
    axes = fig.subplots(1, 2)
    for ax, metric in zip(axes, ("coverage", "precision")):
        series = {f: [next(r[metric] for r in rows if r["filter"] == f and r["class"] == c) for c in class_names] for f in filters}
        _bar_groups(ax, class_names, series, ylabel=metric)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{metric} of the kept pseudo-labels" if metric == "precision" else "share of pseudo-labels kept",
                     fontsize=10)
    fig.tight_layout()
    return fig


def plot_comparison(summary: list[dict], x: str = "labeled", group: str = "method", ylabel: str = "mean Dice",
                    title: str = ""):
    """Mean (± standard deviation over seeds) of a metric against ``x``, one line per ``group``."""
    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.subplots()
    for name in dict.fromkeys(r[group] for r in summary):
        pts = sorted((r for r in summary if r[group] == name), key=lambda r: r[x])
        ax.errorbar([r[x] for r in pts], [r["mean"] for r in pts], yerr=[r["std"] for r in pts], marker="o",
                    capsize=3, label=str(name))
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_masks(image: np.ndarray, labels: np.ndarray, mask: np.ndarray, truth: np.ndarray,
               class_names: Sequence[str], title: str = ""):
    """Pseudo-labels over the image, with filtered-out pixels greyed, next to the hidden truth."""
    fig = Figure(figsize=(9, 3.2))
    axes = fig.subplots(1, 3)
    kept = np.where(mask, labels, 0)
    panels = (("pseudo-labels", labels), ("kept by the filter", kept), ("hidden truth", truth))
    for ax, (name, lab) in zip(axes, panels):
        ax.imshow(blend(image, lab, class_names), interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[1].imshow(np.ma.masked_where(mask, np.ones_like(mask, dtype=float)), cmap="gray", alpha=0.6, vmin=0, vmax=1)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def figure_png(fig) -> bytes:
    """PNG bytes of a matplotlib figure (for display bundles and tests)."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()
