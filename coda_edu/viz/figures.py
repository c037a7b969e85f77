"""Static matplotlib figures: learning curves and segmentation overlays."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..io import atomic_write

# Figures are built with the object-oriented API (``Figure``), not pyplot: nothing
# depends on the active backend, the CLI needs no display, and a notebook shows a
# returned Figure through its inline formatter.

# --------------------------------------------------------------------------- palettes
# One palette for classes and one for methods, used by every figure of the series: a
# colour never means two different classes, and method colours are none of the class
# colours. Models A, B and their ensemble are told apart by line style, in greys.
CLASS_COLORS = {
    "background": (0.62, 0.62, 0.62),
    "RV": (0.84, 0.15, 0.16),
    "MYO": (0.17, 0.63, 0.17),
    "LV": (0.12, 0.47, 0.71),
    "LA": (0.89, 0.47, 0.76),
    "lesion": (1.00, 0.75, 0.00),
    "organ": (0.09, 0.75, 0.81),
}
UNSUPERVISED_COLOR = "#9467bd"  # the unsupervised losses in the learning curves (purple)
#: The loss curves' (colour, line style): the total black, the supervised losses grey, the unsupervised
#: ones purple; A dashed, B dotted, totals solid (no class colour is reused).
LOSS_STYLES = {
    "loss": ("black", "-"),
    "sup_A": ("0.35", "--"),
    "sup_B": ("0.35", ":"),
    "unsup_A": (UNSUPERVISED_COLOR, "--"),
    "unsup_B": (UNSUPERVISED_COLOR, ":"),
}
MODEL_STYLES = {
    "A": {"color": "0.45", "ls": "--"},
    "B": {"color": "0.45", "ls": ":"},
    "ensemble": {"color": "black", "ls": "-"},
}
SERIES_HATCHES = ("", "//", "..", "xx", "\\\\", "++")
_OTHER_METHOD_COLORS = ("#e7298a", "#666666")  # labels that name no registered method


def class_color(name: str, index: int) -> tuple:
    """The series-wide colour of a class: fixed for known names, tab20 (by index) otherwise."""
    if name in CLASS_COLORS:
        return tuple(CLASS_COLORS[name])
    if index == 0:
        return tuple(CLASS_COLORS["background"])
    return tuple(matplotlib.colormaps["tab20"]((index - 1) % 20)[:3])


def method_color(name: str) -> str:
    """The series-wide colour of a method, declared by its ``MethodSpec``; a variant labelled after a
    method ("coda, argmax share", ``coda[labels,fixed]``, "cps + options") gets one of that method's
    shades, or its colour when it declares none."""
    from ..registry import METHODS

    registered = METHODS.names()
    if name in registered:
        return METHODS.get(name).color
    base = re.match(r"[A-Za-z_]+", name)
    spec = METHODS.get(base.group(0)) if base and base.group(0) in registered else None
    if spec is not None and not spec.variant_colors:
        return spec.color
    family = spec.variant_colors if spec is not None else _OTHER_METHOD_COLORS
    return family[sum(map(ord, name)) % len(family)]


def class_colors(class_names: Sequence[str]) -> np.ndarray:
    """RGB colour per class for label images (background black: it is never painted over the image)."""
    colors = np.zeros((len(class_names), 3))
    for i, name in enumerate(class_names):
        if i == 0:
            continue
        colors[i] = class_color(name, i)
    return colors


def legend_outside(ax, **kwargs) -> None:
    """A legend to the right of the axes, so that it covers no data."""
    ax.legend(
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        borderaxespad=0.0,
        fontsize=kwargs.pop("fontsize", 8),
        frameon=False,
        **kwargs,
    )


def label_to_rgb(label: np.ndarray, class_names: Sequence[str], ignore_index: Optional[int] = None) -> np.ndarray:
    colors = class_colors(class_names)
    lab = np.asarray(label).astype(np.int64)
    if ignore_index is not None:
        lab = np.where(lab == ignore_index, 0, lab)
    return colors[np.clip(lab, 0, len(class_names) - 1)]


def blend(
    image: np.ndarray,
    label: np.ndarray,
    class_names: Sequence[str],
    alpha: float = 0.45,
    ignore_index: Optional[int] = None,
) -> np.ndarray:
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


def plot_overlay(
    images: np.ndarray,
    labels: np.ndarray,
    predictions: dict[str, np.ndarray],
    class_names: Sequence[str],
    title: str = "",
    ignore_index: Optional[int] = None,
):
    """Rows = slices; columns = image, reference, then one column per prediction."""
    n = images.shape[0]
    cols = 2 + len(predictions)
    fig = Figure(figsize=(1.45 * cols, 1.45 * n + 0.6))  # 5 columns at 110 dpi: 800 px, the width of a page
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
    fig = Figure(figsize=(13, 4.2))
    axes = fig.subplots(1, 3)
    steps = [r["step"] for r in train]
    ax = axes[0]
    for key, (color, ls) in LOSS_STYLES.items():
        values = [r.get(key) for r in train]
        if any(v is not None for v in values):
            ax.plot(steps, [np.nan if v is None else v for v in values], label=key, lw=1, color=color, ls=ls)
    ax.set_xlabel("training step")
    ax.set_ylabel("loss (log scale)")
    ax.set_title("losses", fontsize=10)
    ax.set_yscale("log")
    legend_below(ax)
    ax = axes[1]
    for key, label, color, ls in (
        ("lambda", "λ(t), unsupervised weight", "black", "-"),
        ("kept_A", "kept share of A's pseudo-labels", "0.35", "--"),
        ("kept_B", "kept share of B's pseudo-labels", "0.35", ":"),
    ):
        values = [r.get(key) for r in train]
        if any(v is not None for v in values):
            ax.plot(steps, [np.nan if v is None else v for v in values], label=label, lw=1, color=color, ls=ls)
    lr = [r.get("lr") for r in train]
    if lr and lr[0]:
        ax.plot(steps, [v / lr[0] for v in lr], label="learning rate / initial", lw=1, ls="-.", color="0.6")
    ax.set_xlabel("training step")
    ax.set_ylabel("weight or share (0 to 1)")
    ax.set_title("schedules and filter", fontsize=10)
    ax.set_ylim(-0.02, 1.05)
    legend_below(ax)
    ax = axes[2]
    for model in ("A", "B", "ensemble"):
        values = [r["dice"][model]["mean"] if r["dice"][model]["mean"] is not None else np.nan for r in val]
        ax.plot([r["step"] for r in val], values, marker="o", ms=3, label=model, lw=1, **MODEL_STYLES[model])
    ax.set_xlabel("training step")
    ax.set_ylabel("mean foreground Dice")
    ax.set_title("validation Dice", fontsize=10)
    ax.set_ylim(0, 1)
    legend_below(ax)
    from matplotlib.ticker import MaxNLocator

    all_steps = steps + [r["step"] for r in val]
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if steps:
            low, high = min(all_steps), max(all_steps)
            if low == high:  # one logged step (a very short run): a step either side (integer ticks), not zero width
                low, high = low - 1, high + 1
            ax.set_xlim(low, high)
    readable_log_axis(axes[0].yaxis)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def readable_log_axis(axis) -> None:
    """Log-scale ticks at 1, 2 and 5 per decade, written as plain numbers."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def legend_below(ax) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=7, frameon=False)


def save_figure(fig, path: str | Path, dpi: int = 110) -> None:
    """Save a matplotlib figure atomically as PNG."""
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))


# --------------------------------------------------------------------------- notebook figures
def bar_groups(
    ax,
    names: Sequence[str],
    series: dict[str, Sequence[float]],
    log: bool = False,
    ylabel: str = "",
    series_colors: Optional[dict[str, str]] = None,
    errors: Optional[dict[str, Sequence[float]]] = None,
):
    """Grouped bars, one group per class.

    Without ``series_colors`` every bar has its class's colour and the series differ by
    hatching (a legend in grey explains the hatches); with ``series_colors`` (methods)
    each series has its colour. The legend goes outside the axes.
    """
    x = np.arange(len(names))
    width = 0.8 / max(len(series), 1)
    colors = [class_color(n, i) for i, n in enumerate(names)]
    handles = []
    for i, (label, values) in enumerate(series.items()):
        pos = x + (i - (len(series) - 1) / 2) * width
        values = np.asarray(values, dtype=float)
        yerr = None
        if errors is not None and label in errors:  # None or NaN: no spread measured (one seed), no bar drawn
            spread = np.array([np.nan if e is None else float(e) for e in errors[label]], dtype=float)
            yerr = np.where(np.isfinite(spread), spread, np.nan) if np.isfinite(spread).any() else None
        if series_colors is not None:
            ax.bar(
                pos,
                values,
                width,
                color=series_colors[label],
                edgecolor="white",
                linewidth=0.5,
                label=label,
                yerr=yerr,
                capsize=2,
                error_kw={"lw": 0.8},
            )
            handles.append(Rectangle((0, 0), 1, 1, facecolor=series_colors[label]))
        else:
            hatch = SERIES_HATCHES[i % len(SERIES_HATCHES)]
            ax.bar(
                pos,
                values,
                width,
                color=colors,
                hatch=hatch,
                edgecolor="white",
                linewidth=0.5,
                yerr=yerr,
                capsize=2,
                error_kw={"lw": 0.8},
            )
            handles.append(Rectangle((0, 0), 1, 1, facecolor="0.55", hatch=hatch, edgecolor="white"))
        for xi, v in zip(pos, values):  # a bar that cannot be seen says why
            if not np.isfinite(v) or v == 0:
                ax.annotate(
                    "n/a" if not np.isfinite(v) else "0",
                    (xi, 0),
                    xycoords=("data", "axes fraction"),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=6,
                    color="0.3",
                )
    ax.set_xticks(x)
    ax.set_xticklabels(
        names, rotation=30 if len(names) > 5 else 0, ha="right" if len(names) > 5 else "center", fontsize=8
    )
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    if len(series) > 1:
        legend_outside(ax, handles=handles, labels=list(series))


def _bars_figure(names: Sequence[str], series: dict, extra_width: float):
    width = max(5.0, 0.45 * len(names) * max(1, len(series))) + (extra_width if len(series) > 1 else 0.0)
    fig = Figure(figsize=(min(width, 8.0), 3.4))  # at most 8 in: readable at the width of a page
    return fig, fig.subplots()


def plot_class_shares(
    class_names: Sequence[str],
    series: dict[str, Sequence[float]],
    title: str = "",
    log: bool = True,
    ylabel: str = "share of pixels",
):
    """Grouped bars of pixel class shares (log scale by default: minority classes stay visible).

    Bars have their class's colour; several series (e.g. predicted and true) differ by hatching."""
    longest = max((len(str(k)) for k in series), default=0)
    fig, ax = _bars_figure(class_names, series, 0.07 * longest + 0.6)
    bar_groups(ax, class_names, series, log=log, ylabel=ylabel)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_class_scores(
    class_names: Sequence[str],
    series: dict[str, Sequence[float]],
    title: str = "",
    ylabel: str = "Dice",
    errors: Optional[dict[str, Sequence[float]]] = None,
):
    """Grouped bars of a score in [0, 1] (Dice) per class, one colour per method (:func:`method_color`)."""
    longest = max((len(str(k)) for k in series), default=0)
    fig, ax = _bars_figure(class_names, series, 0.07 * longest + 0.6)
    bar_groups(
        ax, class_names, series, ylabel=ylabel, series_colors={m: method_color(str(m)) for m in series}, errors=errors
    )
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_share_ratios(
    class_names: Sequence[str],
    series: dict[str, Sequence[float]],
    title: str = "",
    target: str = "labeled class frequency",
):
    """Bars of ratios share(c) / target(c) per class, drawn from the line at 1 (on target).

    A bar going up is a class predicted more often than the target, down less often; log
    scale, so that 2x over and 2x under are equally long. Bars have their class's colour
    and the series (e.g. before and after an alignment reading) differ by hatching."""
    longest = max((len(str(k)) for k in series), default=0)
    fig, ax = _bars_figure(class_names, series, 0.07 * longest + 0.6)
    x = np.arange(len(class_names))
    width = 0.8 / max(len(series), 1)
    colors = [class_color(n, i) for i, n in enumerate(class_names)]
    handles = []
    for i, values in enumerate(series.values()):
        pos = x + (i - (len(series) - 1) / 2) * width
        values = np.asarray(values, dtype=float)
        shown = np.where(np.isfinite(values) & (values > 0), values, 1.0)
        hatch = SERIES_HATCHES[i % len(SERIES_HATCHES)]
        ax.bar(pos, shown - 1.0, width, bottom=1.0, color=colors, hatch=hatch, edgecolor="white", linewidth=0.5)
        handles.append(Rectangle((0, 0), 1, 1, facecolor="0.55", hatch=hatch, edgecolor="white"))
        for xi, v in zip(pos, values):  # a ratio that cannot be drawn says why
            if not np.isfinite(v) or v <= 0:
                ax.annotate(
                    "n/a" if not np.isfinite(v) else "0",
                    (xi, 1.0),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    fontsize=6,
                    color="0.3",
                )
    ax.set_yscale("log")
    readable_log_axis(ax.yaxis)
    finite = np.asarray([v for vs in series.values() for v in vs], dtype=float)
    finite = finite[np.isfinite(finite) & (finite > 0)]
    span = 1.25 * max(2.0, float(finite.max()), float(1 / finite.min())) if finite.size else 2.5
    ax.set_ylim(1 / span, span)  # symmetric around 1, at least 0.4x..2.5x
    ax.axhline(1.0, color="0.2", lw=1, ls="--")
    ax.annotate(
        "on target",
        (0.0, 1.0),
        xycoords=("axes fraction", "data"),
        xytext=(3, 3),
        textcoords="offset points",
        ha="left",
        fontsize=7,
        color="0.2",
    )
    ax.set_xticks(x)
    ax.set_xticklabels(class_names, fontsize=8)
    ax.set_ylabel(f"pseudo-label share\n÷ {target}", fontsize=9)
    legend_outside(ax, handles=handles, labels=list(series))
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
            ax.text(
                j,
                i,
                f"{shown[i, j]:.2f}" if normalize else f"{int(cm[i, j])}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if shown[i, j] > 0.6 * shown.max() else "black",
            )
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


def plot_confidence_histograms(
    confidence: np.ndarray, correct: np.ndarray, labels: np.ndarray, class_names: Sequence[str], bins: int = 20
):
    """Per pseudo-class, histograms of the confidence of correct and wrong pseudo-labels."""
    k = len(class_names)
    cols = min(k, 2)  # two per row: readable at the width of a page (about 800 px)
    rows = -(-k // cols)
    fig = Figure(figsize=(4.3 * cols, 2.7 * rows + 0.4))
    axes = np.atleast_1d(fig.subplots(rows, cols, sharey=False)).ravel()
    for ax in axes[k:]:
        ax.set_visible(False)
    axes = axes[:k]
    edges = np.linspace(0, 1, bins + 1)
    for c, ax in enumerate(axes):
        sel = labels == c
        if (sel & correct).any():
            ax.hist(
                confidence[sel & correct], bins=edges, alpha=0.8, label="correct", color=class_color(class_names[c], c)
            )
        if (sel & ~correct).any():
            ax.hist(confidence[sel & ~correct], bins=edges, label="wrong", histtype="step", color="black", lw=1.2)
        ax.set_xlim(0, 1)
        if sel.any():
            from matplotlib.ticker import NullFormatter

            ax.set_yscale("log")
            ax.yaxis.set_minor_formatter(NullFormatter())
        else:
            ax.set_yticks([])
            ax.text(
                0.5,
                0.5,
                "no pixel has\nthis pseudo-label",
                ha="center",
                va="center",
                transform=ax.transAxes,
                fontsize=8,
            )
        ax.set_title(f"pseudo-label {class_names[c]}", fontsize=9)
        ax.set_xlabel("confidence (max softmax)")
        if c % cols == 0:
            ax.set_ylabel("pixels")
    handles = [Rectangle((0, 0), 1, 1, facecolor="0.55"), Rectangle((0, 0), 1, 1, facecolor="none", edgecolor="black")]
    fig.legend(
        handles,
        ["correct (filled, in the class's colour)", "wrong (black outline)"],
        loc="lower center",
        ncol=2,
        fontsize=8,
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def plot_filter_comparison(rows: list[dict], class_names: Sequence[str]):
    """Coverage and precision per class for each filter (rows from ``analysis.compare_filters``)."""
    filters = list(dict.fromkeys(r["filter"] for r in rows))
    fig = Figure(figsize=(9, 3.4))
    axes = fig.subplots(1, 2)
    for ax, metric in zip(axes, ("coverage", "precision")):
        series = {
            f: [next(r[metric] for r in rows if r["filter"] == f and r["class"] == c) for c in class_names]
            for f in filters
        }
        bar_groups(ax, class_names, series, ylabel=f"{metric} (0 to 1)")
        ax.set_ylim(0, 1.05)
        ax.set_title(
            f"{metric} of the kept pseudo-labels" if metric == "precision" else "coverage: share of pseudo-labels kept",
            fontsize=10,
        )
        if ax is axes[0] and ax.get_legend() is not None:
            ax.get_legend().remove()  # one legend (right of the second panel) for both
    fig.tight_layout()
    return fig


def plot_comparison(
    summary: list[dict], x: str = "labeled", group: str = "method", ylabel: str = "mean Dice", title: str = ""
):
    """Mean (± standard deviation over seeds) of a metric against ``x``, one line per ``group``."""
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(7.0, 3.6))
    ax = fig.subplots()
    for name in dict.fromkeys(r[group] for r in summary):
        pts = sorted((r for r in summary if r[group] == name), key=lambda r: r[x])
        std = np.array(
            [r["std"] if r.get("n", 2) > 1 and r["std"] is not None and np.isfinite(r["std"]) else np.nan for r in pts]
        )
        color = method_color(str(name)) if group == "method" else None
        xs, ys = np.array([r[x] for r in pts], dtype=float), np.array([r["mean"] for r in pts], dtype=float)
        ax.plot(xs, ys, marker="o", color=color, label=f"{name} (seeds: {'/'.join(str(r.get('n', '?')) for r in pts)})")
        has = np.isfinite(std)  # a std only where two seeds or more were run: no bar of length 0 for one seed
        if has.any():
            ax.errorbar(xs[has], ys[has], yerr=std[has], fmt="none", capsize=3, ecolor=color)
    values = [r[x] for r in summary]
    if all(float(v).is_integer() for v in values):  # patient counts: integer ticks only
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if len(set(values)) == 1:
        ax.set_xlim(values[0] - 1, values[0] + 1)
    label = {"labeled": "labeled patients" if all(float(v).is_integer() for v in values) else "labeled fraction"}
    ax.set_xlabel(label.get(x, x))
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=10)
    legend_outside(ax, title="method (seeds per point)" if group == "method" else group, title_fontsize=8)
    fig.tight_layout()
    return fig


def plot_masks(
    image: np.ndarray,
    labels: np.ndarray,
    mask: np.ndarray,
    truth: np.ndarray,
    class_names: Sequence[str],
    title: str = "",
):
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
    handles = [Rectangle((0, 0), 1, 1, color=col) for col in class_colors(class_names)[1:]]
    handles.append(Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="0.5", alpha=0.8))
    fig.legend(
        handles,
        list(class_names[1:]) + ["filtered out (whitened)"],
        loc="lower center",
        ncol=min(len(handles), 6),
        fontsize=8,
        frameon=False,
    )
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def figure_png(fig) -> bytes:
    """PNG bytes of a matplotlib figure (for display bundles and tests)."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()
