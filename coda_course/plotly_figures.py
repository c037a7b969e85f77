"""Plotly figures of the explorers that move on the course site without a kernel
(:mod:`coda_course.static` precomputes them for every position of their controls).

They use the series' palettes (:mod:`coda_edu.viz.figures`) and are laid out for the
site's content width (about 800 px): panels side by side at most two, legends below
them, fonts of 12 px and more.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import numpy as np

from coda_edu.viz.figures import class_color, method_color

FONT = {"size": 12}
HATCHES = ("", "/", ".", "x", "\\", "+")
MEAN_MARKER = {"size": 14, "symbol": "diamond", "line": {"color": "black", "width": 1}}


def css(color) -> str:
    """A matplotlib colour (RGB tuple in 0..1, or a string) as CSS."""
    if isinstance(color, str):
        return color
    r, g, b = (int(round(255 * float(c))) for c in color[:3])
    return f"rgb({r},{g},{b})"


def _base_layout(title: str, height: int) -> dict:
    return {
        "title": {"text": title, "font": {"size": 14}, "x": 0.01, "xanchor": "left"},
        "height": height,
        "margin": {"l": 60, "r": 20, "t": 70, "b": 40},
        "font": FONT,
        "template": "plotly_white",
        "legend": {"orientation": "h", "y": -0.22, "x": 0.0, "font": {"size": 11}},
    }


def alignment_figure(
    batch_marginals: np.ndarray,
    trace: np.ndarray,
    pi_l: np.ndarray,
    series: dict[str, np.ndarray],
    class_names: Sequence[str],
    alpha: float,
    momentum: float,
):
    """Left: the unlabeled marginal of each batch (thin), its EMA (thick) and pi_l (dotted) per
    foreground class; right: pseudo-label class shares before and after alignment (log scale)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.14,
        subplot_titles=(f"EMA of the unlabeled marginal, momentum {momentum:g}", "pseudo-label class shares"),
    )
    steps = list(range(len(trace)))
    for c in range(1, len(class_names)):
        color = css(class_color(class_names[c], c))
        name = class_names[c]
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=batch_marginals[:, c],
                mode="lines",
                line={"color": color, "width": 1},
                opacity=0.35,
                name=f"{name}: each batch",
                showlegend=False,
                hoverinfo="skip",
            ),
            1,
            1,
        )
        fig.add_trace(
            go.Scatter(
                x=steps, y=trace[:, c], mode="lines", line={"color": color, "width": 3}, name=f"pi_u({name}), EMA"
            ),
            1,
            1,
        )
        fig.add_trace(
            go.Scatter(
                x=[steps[0], steps[-1]],
                y=[float(pi_l[c])] * 2,
                mode="lines",
                line={"color": color, "width": 1.5, "dash": "dot"},
                name=f"pi_l({name})",
                showlegend=False,
            ),
            1,
            1,
        )
    for i, (label, values) in enumerate(series.items()):
        fig.add_trace(
            go.Bar(
                x=list(class_names),
                y=[max(float(v), 1e-6) for v in values],
                name=label,
                marker={
                    "color": [css(class_color(n, j)) for j, n in enumerate(class_names)],
                    "pattern": {"shape": HATCHES[i % len(HATCHES)], "fgcolor": "white"},
                    "line": {"color": "white", "width": 0.5},
                },
                hovertemplate="%{x}: %{y:.3%}<extra>" + label + "</extra>",
            ),
            1,
            2,
        )
    fig.update_layout(
        **_base_layout(f"alpha = {alpha:g}, momentum = {momentum:g} (dotted: pi_l)", 470), barmode="group"
    )
    fig.update_xaxes(title_text="batch of unlabeled slices", row=1, col=1)
    fig.update_yaxes(title_text="mean predicted probability", row=1, col=1)
    fig.update_yaxes(title_text="share of pixels (log)", type="log", dtick=1, tickformat=".1%", row=1, col=2)
    return fig


def points_figure(
    methods: Sequence[str],
    left: dict[str, dict],
    right: dict[str, dict],
    left_title: str,
    right_title: str,
    title: str,
    right_zero: bool = True,
    note: Optional[str] = None,
):
    """Two panels sharing the method axis (rows): per method its per-seed values (dots) and their
    mean, with a ± std bar only where the std exists (two seeds or more: never a bar of length 0).
    ``left``/``right``: method -> {"values": [...], "mean": x or None, "std": s or None}."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.06, subplot_titles=(left_title, right_title)
    )
    order = list(methods)[::-1]  # first method on top
    for col, panel in ((1, left), (2, right)):
        for m in order:
            entry = panel.get(m)
            if not entry or not entry.get("values"):
                continue
            color = method_color(str(m))
            values = [float(v) for v in entry["values"]]
            fig.add_trace(
                go.Scatter(
                    x=values,
                    y=[m] * len(values),
                    mode="markers",
                    marker={"color": color, "size": 8, "opacity": 0.45, "line": {"width": 0}},
                    name=f"{m}: each seed",
                    showlegend=False,
                    hovertemplate="%{x:.3f}<extra>" + str(m) + "</extra>",
                ),
                1,
                col,
            )
            if entry.get("mean") is not None:
                std = entry.get("std")
                fig.add_trace(
                    go.Scatter(
                        x=[float(entry["mean"])],
                        y=[m],
                        mode="markers",
                        marker={
                            "color": color,
                            "size": 14,
                            "symbol": "diamond",
                            "line": {"color": "black", "width": 1},
                        },
                        error_x=(
                            {"type": "data", "array": [float(std)], "color": color, "thickness": 2, "width": 6}
                            if std is not None
                            else {"visible": False}
                        ),
                        name=str(m),
                        showlegend=False,
                        hovertemplate=(
                            "mean %{x:.3f}" + (f" ± {std:.3f} (std)" if std is not None else " (one seed: no std)")
                        )
                        + "<extra>"
                        + str(m)
                        + "</extra>",
                    ),
                    1,
                    col,
                )
    if right_zero:
        fig.add_vline(x=0, line={"color": "black", "width": 1}, row=1, col=2)
    layout = _base_layout(title, 150 + 42 * len(order))
    layout["margin"] = {"l": 150, "r": 20, "t": 80, "b": 60 if note else 40}
    fig.update_layout(**layout)
    if note:
        fig.add_annotation(
            text=note,
            xref="paper",
            yref="paper",
            x=0,
            y=-0.06 - 60 / layout["height"],
            showarrow=False,
            xanchor="left",
            yanchor="top",
            font={"size": 11, "color": "#555"},
        )
    return fig


def smooth(values: np.ndarray, window: int = 5) -> np.ndarray:
    """A centred moving average over ``window`` logged points (NaN ignored; the ends average fewer)."""
    values = np.asarray(values, dtype=float)
    out = np.full_like(values, np.nan)
    half = window // 2
    for i in range(len(values)):
        part = values[max(0, i - half) : i + half + 1]
        part = part[np.isfinite(part)]
        if part.size:
            out[i] = part.mean()
    return out


def _rgba(color: str, alpha: float) -> str:
    import matplotlib.colors as mcolors

    r, g, b = mcolors.to_rgb(color)
    return f"rgba({int(r * 255)},{int(g * 255)},{int(b * 255)},{alpha})"


def curves_figure(
    steps_by_method: dict[str, list[np.ndarray]],
    values_by_method: dict[str, list[np.ndarray]],
    dice: dict[str, dict],
    methods: Sequence[str],
    cls: str,
    title: str,
    ylabel: str,
    window: int = 5,
):
    """Left: a logged curve over training per method, each seed smoothed over ``window`` logged
    points: the mean over seeds (line) and the range of the seeds (band); right: a final score per
    method (dots: seeds; diamond: mean ± std where there are two seeds or more)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.6, 0.4],
        horizontal_spacing=0.2,
        subplot_titles=(f"{cls}: {ylabel}", f"{cls}: test Dice (best checkpoint)"),
    )
    top = 1.5
    for m in methods:
        if m not in values_by_method:
            continue
        color = method_color(str(m))
        runs = list(zip(steps_by_method[m], values_by_method[m]))
        common = min(len(s) for s, _ in runs)
        steps = [int(x) for x in runs[0][0][:common]]
        curves = np.stack([smooth(v[:common], window) for _, v in runs])
        lo, hi, mean = np.nanmin(curves, axis=0), np.nanmax(curves, axis=0), np.nanmean(curves, axis=0)
        top = max(top, float(np.nanmax(hi)) * 1.05)
        fig.add_trace(
            go.Scatter(
                x=steps + steps[::-1],
                y=list(hi) + list(lo[::-1]),
                fill="toself",
                fillcolor=_rgba(color, 0.18),
                line={"width": 0},
                hoverinfo="skip",
                showlegend=False,
            ),
            1,
            1,
        )
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=list(mean),
                mode="lines",
                line={"color": color, "width": 3},
                name=m,
                hovertemplate="step %{x}: %{y:.2f}<extra>" + str(m) + "</extra>",
            ),
            1,
            1,
        )
    if values_by_method:
        first = next(iter(steps_by_method.values()))[0]
        fig.add_trace(
            go.Scatter(
                x=[int(first[0]), int(first[-1])],
                y=[1, 1],
                mode="lines",
                line={"color": "black", "dash": "dash", "width": 1},
                name="on target (1)",
            ),
            1,
            1,
        )
    order = list(methods)[::-1]
    for m in order:
        entry = dice.get(m)
        if not entry:
            continue
        color = method_color(str(m))
        fig.add_trace(
            go.Scatter(
                x=entry["values"],
                y=[m] * len(entry["values"]),
                mode="markers",
                marker={"color": color, "size": 8, "opacity": 0.45},
                showlegend=False,
                hovertemplate="%{x:.3f}<extra>" + str(m) + "</extra>",
            ),
            1,
            2,
        )
        std = entry.get("std")
        fig.add_trace(
            go.Scatter(
                x=[entry["mean"]],
                y=[m],
                mode="markers",
                marker=MEAN_MARKER | {"color": color},
                error_x={"type": "data", "array": [std], "color": color, "thickness": 2, "width": 6}
                if std is not None
                else {"visible": False},
                showlegend=False,
                hovertemplate="mean %{x:.3f}<extra>" + str(m) + "</extra>",
            ),
            1,
            2,
        )
    layout = _base_layout(title, 540)
    layout["margin"] = {"l": 60, "r": 20, "t": 80, "b": 40}
    layout["legend"] = {"orientation": "h", "y": -0.16, "x": 0.0, "font": {"size": 11}}
    fig.update_layout(**layout)
    fig.update_xaxes(title_text="training step", row=1, col=1)
    fig.update_yaxes(title_text=ylabel, range=[0, top], row=1, col=1)
    fig.update_xaxes(title_text="Dice", row=1, col=2)
    return fig
