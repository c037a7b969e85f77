"""Interactive explorers for the notebooks (ipywidgets + matplotlib).

Each builder returns an :class:`Explorer`: ``controls`` (the sliders and menus),
``figure`` and ``data`` (the current picture and the numbers behind it, recomputed
whenever a control changes) and ``widget`` (what a live notebook displays). Tests set
``explorer.controls[name].value`` and check that ``data`` and ``figure`` change.

``explorer.show()`` first draws the default view as an ordinary static figure, so an
executed, saved or exported notebook shows real content without a live kernel, then
displays the controls; moving a control redraws below them.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from ..method.alignment import align_distribution, pseudo_labels
from .figures import Figure, blend, plot_class_shares, plot_masks


class Explorer:
    """Controls + a draw function ``draw(**values) -> (Figure, data dict)``."""

    def __init__(self, controls: dict, draw: Callable, title: str = ""):
        import ipywidgets as widgets

        self.controls = controls
        self._draw = draw
        self.title = title
        self.output = widgets.Output()
        header = [widgets.HTML(f"<b>{title}</b>")] if title else []
        self.widget = widgets.VBox(header + [widgets.HBox(list(controls.values())), self.output])
        for control in controls.values():
            control.observe(self._changed, names="value")
        self.redraws = 0
        self.figure, self.data = draw(**self.values())

    def values(self) -> dict:
        return {name: control.value for name, control in self.controls.items()}

    def _changed(self, _change=None) -> None:
        self.figure, self.data = self._draw(**self.values())
        self.redraws += 1
        from IPython.display import display

        with self.output:
            self.output.clear_output(wait=True)
            display(self.figure)

    def show(self) -> None:
        """Static default view (saved with the notebook), then the live controls."""
        from IPython.display import display

        display(self.figure)
        display(self.widget)


def _slider(description: str, value: float, lo: float, hi: float, step: float):
    import ipywidgets as widgets

    return widgets.FloatSlider(value=value, min=lo, max=hi, step=step, description=description,
                               continuous_update=False, readout_format=".2f",
                               style={"description_width": "initial"})


def imbalance_explorer(seed: int = 0, resolution: int = 64, patients: int = 12, slices: int = 8) -> Explorer:
    """Slider ``imbalance`` -> pixel class shares of the synthetic phantoms and an example slice."""
    from ..data.synthetic import CLASS_NAMES, generate_phantoms, pixel_class_shares

    def draw(imbalance: float):
        images, labels = generate_phantoms(patients, slices, resolution, imbalance=imbalance, seed=seed)
        shares = pixel_class_shares(labels, len(CLASS_NAMES))
        fig = Figure(figsize=(10, 3.2))
        ax_bar, ax_img = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
        ax_bar.bar(CLASS_NAMES, shares, color=["0.6", "tab:red", "tab:green", "tab:blue"])
        ax_bar.set_yscale("log")
        ax_bar.set_ylim(1e-4, 1)
        for i, s in enumerate(shares):
            ax_bar.text(i, s * 1.15, f"{s:.2%}", ha="center", fontsize=8)
        ax_bar.set_title(f"pixel shares at imbalance {imbalance:.2f}", fontsize=10)
        ax_img.imshow(blend(images[0, slices // 3], labels[0, slices // 3], CLASS_NAMES), interpolation="nearest")
        ax_img.axis("off")
        ax_img.set_title("patient 0, a mid slice", fontsize=9)
        fig.tight_layout()
        return fig, {"shares": dict(zip(CLASS_NAMES, shares.tolist()))}

    return Explorer({"imbalance": _slider("imbalance", 0.5, 0.0, 1.0, 0.05)}, draw, "Class imbalance of the phantoms")


def simplex_explorer(probs: np.ndarray, pi_l: Sequence[float], class_names: Sequence[str]) -> Explorer:
    """Slider ``alpha`` -> the toy predictions on the simplex before and after alignment."""
    from .simplex import align_toy, ternary_static

    def draw(alpha: float):
        aligned, pi_u = align_toy(probs, pi_l, alpha)
        fig = ternary_static(probs, aligned, class_names, title=f"alpha = {alpha:.2f}")
        shares = np.bincount(aligned.argmax(1), minlength=3) / len(aligned)
        return fig, {"shares_after": shares.tolist(), "pi_u": pi_u.tolist(), "aligned": aligned}

    return Explorer({"alpha": _slider("alpha", 1.0, 0.0, 1.0, 0.05)}, draw, "Alignment on the probability simplex")


def alignment_explorer(batch_marginals: torch.Tensor, probs_u: torch.Tensor, targets: dict[str, torch.Tensor],
                       class_names: Sequence[str], momentum: float = 0.99, truth: torch.Tensor | None = None) -> Explorer:
    """Menu ``target`` and sliders ``alpha`` and ``momentum``.

    ``batch_marginals`` ``(T, C)``: the unlabeled marginal of T successive batches; their EMA
    with the chosen momentum is the pi_u used to align ``probs_u`` ``(N, C, H, W)`` towards
    the chosen target pi_l (``targets``: name -> ``(C,)``, e.g. the network's labeled
    predictions or the labeled ground truth). The figure shows the EMA trace and the
    pseudo-label class shares before and after alignment (and the hidden truth's shares
    when ``truth`` is given); ``data`` also holds the pseudo-label accuracy.
    """
    import ipywidgets as widgets

    from ..analysis import ema_trace

    k = len(class_names)
    true_shares = None if truth is None else torch.bincount(truth.reshape(-1).long(), minlength=k)[:k].double()

    def shares(labels):
        counts = torch.bincount(labels.reshape(-1), minlength=k)[:k].double()
        return (counts / counts.sum()).numpy()

    def draw(target: str, alpha: float, momentum: float):
        pi_l = targets[target]
        trace = ema_trace(batch_marginals, momentum)
        pi_u = trace[-1]
        labels_before = pseudo_labels(probs_u)[1]
        labels_after = pseudo_labels(align_distribution(probs_u, pi_l, pi_u, alpha))[1]
        before, after = shares(labels_before), shares(labels_after)
        fig = Figure(figsize=(11, 3.3))
        ax_trace, ax_bar = fig.subplots(1, 2)
        steps = np.arange(len(trace))
        for c in range(1, k):
            ax_trace.plot(steps, batch_marginals[:, c].numpy(), lw=0.6, alpha=0.4, color=f"C{c}")
            ax_trace.plot(steps, trace[:, c].numpy(), lw=1.6, color=f"C{c}", label=f"pi_u({class_names[c]})")
            ax_trace.axhline(float(pi_l[c]), color=f"C{c}", ls=":", lw=1)
        ax_trace.set_xlabel("batch")
        ax_trace.set_title(f"EMA of the unlabeled marginal, momentum {momentum:.3f} (dotted: pi_l)", fontsize=9)
        ax_trace.legend(fontsize=7)
        series = {"before alignment": before, f"after (alpha={alpha:.2f})": after, f"pi_l ({target})": pi_l.numpy()}
        if true_shares is not None:
            series["hidden truth"] = (true_shares / true_shares.sum()).numpy()
        width = 0.8 / len(series)
        x = np.arange(k)
        for i, (name, values) in enumerate(series.items()):
            ax_bar.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=name)
        ax_bar.set_xticks(x)
        ax_bar.set_xticklabels(class_names, fontsize=8)
        ax_bar.set_yscale("log")
        ax_bar.set_title("pseudo-label class shares", fontsize=9)
        ax_bar.legend(fontsize=7)
        fig.tight_layout()
        data = {"pi_u": pi_u.numpy(), "before": before, "after": after}
        if truth is not None:
            data["accuracy_before"] = float((labels_before == truth).float().mean())
            data["accuracy_after"] = float((labels_after == truth).float().mean())
        return fig, data

    controls = {"target": widgets.Dropdown(options=list(targets), value=list(targets)[0], description="pi_l from"),
                "alpha": _slider("alpha", 1.0, 0.0, 1.0, 0.05),
                "momentum": _slider("momentum", momentum, 0.0, 0.999, 0.001)}
    return Explorer(controls, draw, "Distribution alignment on real predictions")


def mask_explorer(images: np.ndarray, probs: torch.Tensor, truth: torch.Tensor, class_names: Sequence[str],
                  threshold: float = 0.95) -> Explorer:
    """Menu ``filter``, slider ``threshold``, slider ``index`` -> the kept pseudo-labels drawn over an image.

    ``images`` ``(N, H, W)``, ``probs`` ``(N, C, H, W)``, ``truth`` ``(N, H, W)``. ``data`` holds
    the coverage and precision per class of the chosen filter over all N images.
    """
    import ipywidgets as widgets

    from ..analysis import filter_masks, per_class_quality

    _, labels = pseudo_labels(probs)

    def draw(filter: str, threshold: float, index: int):
        masks = filter_masks(probs, threshold)
        mask = masks[filter]
        quality = per_class_quality(labels, truth, len(class_names), mask)
        cov = ", ".join(f"{c} {v:.0%}" for c, v in zip(class_names, quality["coverage"]))
        fig = plot_masks(images[index], labels[index].numpy(), mask[index].numpy(), truth[index].numpy(), class_names,
                         title=f"filter: {filter}" + (f" (threshold {threshold:.2f})" if filter == "fixed" else "")
                         + f" | kept per class: {cov}")
        return fig, {"coverage": quality["coverage"], "precision": quality["precision"], "kept": float(mask.float().mean())}

    controls = {
        "filter": widgets.Dropdown(options=["none", "fixed", "over_expectation"], value="over_expectation",
                                   description="filter"),
        "threshold": _slider("threshold (fixed)", threshold, 0.5, 0.999, 0.005),
        "index": widgets.IntSlider(value=0, min=0, max=len(images) - 1, description="image", continuous_update=False),
    }
    return Explorer(controls, draw, "Which pseudo-labels does each filter keep?")


def shares_figure(class_names: Sequence[str], series: dict, title: str = "") -> Figure:
    """Alias used by the notebooks for a quick class-share bar chart."""
    return plot_class_shares(class_names, series, title)
