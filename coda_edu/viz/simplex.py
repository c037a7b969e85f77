"""The alignment formula on a toy three-class example, drawn on the probability simplex.

Each pixel's prediction is a point of the triangle whose corners are the three
classes; the argmax regions are the three kites meeting at the centre. Alignment
re-weights the classes, so points move, and those that cross a kite border change
their pseudo-label. :func:`ternary_static` draws the alignment with matplotlib (the widget
of notebook 02); :func:`ternary_points_figure` draws predictions with plotly (interactive) and
:func:`ternary_points_static` with matplotlib (for saved and exported notebooks).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from ..method.alignment import align_distribution, class_marginal

CORNERS = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3) / 2]])


def _colors(class_names: Sequence[str]) -> list[str]:
    """The series' class palette (``figures.CLASS_COLORS``) as hex strings."""
    from matplotlib.colors import to_hex

    from .figures import class_color

    return [to_hex(class_color(n, i)) for i, n in enumerate(class_names)]


def _argmax_borders(fig) -> None:
    """Dashed lines from the centre to the edge midpoints: the borders of the three argmax regions."""
    import plotly.graph_objects as go

    third = 1 / 3
    for a, b, c in ((0.0, 0.5, 0.5), (0.5, 0.0, 0.5), (0.5, 0.5, 0.0)):
        fig.add_trace(
            go.Scatterternary(
                a=[third, a],
                b=[third, b],
                c=[third, c],
                mode="lines",
                hoverinfo="skip",
                line={"color": "black", "width": 1, "dash": "dash"},
                showlegend=False,
            )
        )


def _hover(class_names: Sequence[str], what: str) -> str:
    """Plotly hover text naming the classes (a = corner 2, b = corner 0, c = corner 1)."""
    return (
        f"p({class_names[0]}) = %{{b:.2f}}<br>p({class_names[1]}) = %{{c:.2f}}<br>"
        f"p({class_names[2]}) = %{{a:.2f}}<extra>{what}</extra>"
    )


def toy_predictions(
    n: int = 300, seed: int = 0, shares=(0.6, 0.25, 0.15), bias: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """Predictions ``(n, 3)`` of a network biased towards class 0, and the true classes ``(n,)``.

    True classes are drawn with ``shares``; each pixel's logits favour its true class by
    2 and class 0 by ``bias``, plus Gaussian noise, so minority pixels are often
    predicted as class 0 (the effect alignment is meant to correct).
    """
    rng = np.random.default_rng(seed)
    truth = rng.choice(3, size=n, p=np.asarray(shares) / np.sum(shares))
    logits = rng.normal(0, 1.0, size=(n, 3))
    logits[np.arange(n), truth] += 2.0
    logits[:, 0] += bias
    probs = np.exp(logits - logits.max(1, keepdims=True))
    return probs / probs.sum(1, keepdims=True), truth


def align_toy(probs: np.ndarray, pi_l: Sequence[float], alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Aligned toy predictions and the unlabeled marginal pi_u they were aligned with."""
    p = torch.from_numpy(probs).float().view(-1, 3, 1, 1)
    pi_u = class_marginal(p)
    aligned = align_distribution(p, torch.tensor(pi_l, dtype=torch.float32), pi_u, alpha)
    return aligned.view(-1, 3).numpy(), pi_u.numpy()


def to_xy(probs: np.ndarray) -> np.ndarray:
    """Barycentric (n, 3) -> Cartesian (n, 2) inside the triangle."""
    return np.asarray(probs) @ CORNERS


def _ternary_trace(probs: np.ndarray, class_names: Sequence[str], name: str, marker: dict):
    """One group of points of a ternary plot: corner a is class 2, b class 0, c class 1."""
    import plotly.graph_objects as go

    return go.Scatterternary(
        a=probs[:, 2],
        b=probs[:, 0],
        c=probs[:, 1],
        mode="markers",
        marker=marker,
        hovertemplate=_hover(class_names, name),
        name=name,
    )


def _ternary_layout(fig, title: str, axis_titles: list[str]):
    """The argmax borders and the layout every ternary plot shares (corner a is class 2, b 0, c 1)."""
    _argmax_borders(fig)
    fig.update_layout(
        title=title,
        height=460,
        margin={"l": 40, "r": 40, "t": 60, "b": 40},
        ternary={
            "aaxis": {"title": axis_titles[2]},
            "baxis": {"title": axis_titles[0]},
            "caxis": {"title": axis_titles[1]},
        },
    )
    return fig


def ternary_static(before: np.ndarray, after: np.ndarray, class_names: Sequence[str], title: str = ""):
    """The same picture with matplotlib: two triangles, before and after alignment."""
    fig = Figure(figsize=(9, 4.2))
    axes = fig.subplots(1, 2)
    centre = CORNERS.mean(0)
    mids = [(CORNERS[i] + CORNERS[j]) / 2 for i, j in ((0, 1), (1, 2), (2, 0))]
    for ax, probs, name in zip(axes, (before, after), ("before alignment", "after alignment")):
        ax.fill(*CORNERS.T, facecolor="none", edgecolor="black")
        for m in mids:
            ax.plot([centre[0], m[0]], [centre[1], m[1]], color="black", lw=0.6, ls="--")
        xy = to_xy(probs)
        labels = probs.argmax(1)
        shares = np.bincount(labels, minlength=3) / len(labels)
        for c in range(3):
            ax.scatter(
                *xy[labels == c].T,
                s=9,
                color=_colors(class_names)[c],
                alpha=0.7,
                label=f"{class_names[c]} ({shares[c]:.0%})",
            )
        for c, corner in enumerate(CORNERS):
            ax.annotate(
                class_names[c],
                corner,
                textcoords="offset points",
                xytext=(0, -12 if c < 2 else 5),
                ha="center",
                fontsize=9,
            )
        ax.set_title(name, fontsize=10)
        ax.set_aspect("equal")
        ax.axis("off")
        ax.legend(
            fontsize=7,
            loc="upper left",
            bbox_to_anchor=(0.78, 1.0),
            title="pseudo-label",
            title_fontsize=7,
            frameon=False,
        )
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def ternary_points_figure(probs: np.ndarray, truth: np.ndarray, class_names: Sequence[str], title: str = ""):
    """Plotly ternary plot of predictions coloured by their *true* class; the hover names the classes."""
    import plotly.graph_objects as go

    colors = _colors(class_names)
    fig = go.Figure()
    for c in range(3):
        marker = {"color": colors[c], "size": 6, "opacity": 0.8, "line": {"width": 0.5, "color": "white"}}
        fig.add_trace(_ternary_trace(probs[truth == c], class_names, f"true class {class_names[c]}", marker))
    return _ternary_layout(fig, title, [f"p({name})" for name in class_names])


def ternary_points_static(probs: np.ndarray, truth: np.ndarray, class_names: Sequence[str], title: str = ""):
    """The matplotlib version of :func:`ternary_points_figure` (for viewers that run no JavaScript)."""
    fig = Figure(figsize=(5.6, 4.2))
    ax = fig.subplots()
    centre = CORNERS.mean(0)
    ax.fill(*CORNERS.T, facecolor="none", edgecolor="black")
    for i, j in ((0, 1), (1, 2), (2, 0)):
        m = (CORNERS[i] + CORNERS[j]) / 2
        ax.plot([centre[0], m[0]], [centre[1], m[1]], color="black", lw=0.6, ls="--")
    xy = to_xy(probs)
    colors = _colors(class_names)
    for c in range(3):
        ax.scatter(*xy[truth == c].T, s=9, color=colors[c], alpha=0.7, label=class_names[c])
    for c, corner in enumerate(CORNERS):
        ax.annotate(
            class_names[c], corner, textcoords="offset points", xytext=(0, -12 if c < 2 else 5), ha="center", fontsize=9
        )
    ax.set_aspect("equal")
    ax.axis("off")
    ax.legend(
        fontsize=7, loc="upper left", bbox_to_anchor=(0.8, 1.0), title="true class", title_fontsize=7, frameon=False
    )
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
