"""Interactive explorers for the notebooks (ipywidgets + matplotlib).

Each builder returns an :class:`Explorer`: ``controls`` (the sliders and menus),
``figure`` and ``data`` (the current picture and the numbers behind it, recomputed
whenever a control changes) and ``widget`` (what a live notebook displays). Tests set
``explorer.controls[name].value`` and check that ``data`` and ``figure`` change.

``explorer.show()`` displays the title, the controls and the figure once: the figure
lives in an ``ipywidgets.Output`` below the controls, which is cleared and redrawn in
place whenever a control moves. The same output also carries a PNG of the default view,
so an executed, saved or exported notebook shows the figure where no widget can render.
``explorer.data_at(**values)`` computes the numbers for other control values without
touching the controls (the prediction exercises check a student's guess with it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from coda_edu.method.alignment import align_distribution, pseudo_labels
from coda_edu.viz.figures import Figure, bar_groups, blend, class_color, figure_png, plot_masks

from .static import MIME, Choice, nearest, static_spec


class Explorer:
    """Controls + a draw function ``draw(**values) -> (Figure, data dict)``."""

    def __init__(self, controls: dict, draw: Callable, title: str = "", static: Callable[[], dict] | None = None):
        import ipywidgets as widgets

        self.controls = controls
        self._draw = draw
        self.title = title
        self._static = static  # -> a coda_course.static spec: the explorer on a site without a kernel
        self._static_spec = None
        self.output = widgets.Output()
        header = [widgets.HTML(f"<b>{title}</b>")] if title else []
        self.widget = widgets.VBox(header + [widgets.HBox(list(controls.values())), self.output])
        for control in controls.values():
            control.observe(self._changed, names="value")
        self.redraws = 0
        self.figure, self.data = draw(**self.values())

    def values(self) -> dict:
        return {name: control.value for name, control in self.controls.items()}

    def data_at(self, **values) -> dict:
        """The ``data`` the explorer would show with some controls set to ``values`` (controls unchanged)."""
        unknown = set(values) - set(self.controls)
        if unknown:
            raise KeyError(f"no control {sorted(unknown)} (controls: {list(self.controls)})")
        return self._draw(**{**self.values(), **values})[1]

    def _render(self) -> None:
        from IPython.display import display

        with self.output:
            self.output.clear_output(wait=True)
            display(self.figure)

    def _changed(self, _change=None) -> None:
        self.figure, self.data = self._draw(**self.values())
        self.redraws += 1
        self._render()

    def _repr_mimebundle_(self, **kwargs):
        """The live widget, plus a PNG of the current figure and a one-line text for viewers without widgets."""
        import base64

        bundle = self.widget._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        data = dict(data or {})
        data["image/png"] = base64.b64encode(figure_png(self.figure)).decode("ascii")
        data["text/plain"] = f"<{self.title or 'explorer'}: controls {', '.join(self.controls)}>"
        if self._static is not None:
            data[MIME] = self.static_spec()
        return data

    def static_spec(self) -> dict | None:
        """Every precomputed state for a page without a kernel (:mod:`coda_course.static`), or None."""
        if self._static is not None and self._static_spec is None:
            self._static_spec = self._static()
        return self._static_spec

    def show(self) -> None:
        """One output: controls with the figure below them, redrawn in place when a control moves."""
        from IPython.display import display

        self._render()
        display(self._repr_mimebundle_(), raw=True)


class PlotlyExplorer(Explorer):
    """An explorer whose controls take a few values each and whose figure is plotly.

    ``choices``: control name -> :class:`~coda_course.static.Choice`; ``draw(**values)`` returns
    ``(plotly figure, data)``. Live (JupyterLab) the controls are ipywidgets and the figure is
    redrawn in place; the display bundle also carries every state precomputed
    (:mod:`coda_course.static`), so the course site moves the same controls without a kernel.
    """

    def __init__(self, choices: dict[str, Choice], draw: Callable, title: str = ""):
        import ipywidgets as widgets

        controls = {}
        for name, choice in choices.items():
            options = list(zip(choice.labels, choice.values))
            value = choice.values[choice.default]
            if choice.kind == "menu":
                controls[name] = widgets.Dropdown(
                    options=options,
                    value=value,
                    description=choice.label or name,
                    style={"description_width": "initial"},
                )
            else:
                controls[name] = widgets.SelectionSlider(
                    options=options,
                    value=value,
                    description=choice.label or name,
                    continuous_update=False,
                    style={"description_width": "initial"},
                )
        self.choices = choices
        super().__init__(controls, draw, title, static=lambda: static_spec(title, choices, lambda **v: draw(**v)[0]))

    def _render(self) -> None:
        from IPython.display import display

        with self.output:
            self.output.clear_output(wait=True)
            display(_plotly_bundle(self.figure), raw=True)

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        data = dict((bundle[0] if isinstance(bundle, tuple) else bundle) or {})
        data["text/plain"] = f"<{self.title or 'explorer'}: controls {', '.join(self.controls)}>"
        data[MIME] = self.static_spec()
        return data


def _plotly_bundle(fig) -> dict:
    import json

    return {
        "application/vnd.plotly.v1+json": json.loads(fig.to_json()),
        "text/plain": f"<plotly figure: {fig.layout.title.text or 'untitled'}>",
    }


def _slider(description: str, value: float, lo: float, hi: float, step: float):
    import ipywidgets as widgets

    return widgets.FloatSlider(
        value=value,
        min=lo,
        max=hi,
        step=step,
        description=description,
        continuous_update=False,
        readout_format=".2f",
        style={"description_width": "initial"},
    )


def imbalance_explorer(
    seed: int = 0, resolution: int = 64, patients: int = 12, slices: int = 8, imbalance: float = 0.5
) -> Explorer:
    """Slider ``imbalance`` (starting at ``imbalance``) -> pixel class shares of the synthetic phantoms
    and an example slice."""
    from coda_edu.data.synthetic import CLASS_NAMES, generate_phantoms, pixel_class_shares

    def draw(imbalance: float):
        images, labels = generate_phantoms(patients, slices, resolution, imbalance=imbalance, seed=seed)
        shares = pixel_class_shares(labels, len(CLASS_NAMES))
        fig = Figure(figsize=(9, 3.4))
        ax_bar, ax_img = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
        ax_bar.bar(CLASS_NAMES, shares, color=[class_color(n, i) for i, n in enumerate(CLASS_NAMES)])
        ax_bar.set_yscale("log")
        ax_bar.set_ylabel("share of pixels (log scale)")
        ax_bar.set_ylim(1e-4, 2)
        for i, s in enumerate(shares):
            ax_bar.text(i, s * 1.15, f"{s:.2%}", ha="center", fontsize=8)
        ax_bar.set_title(f"pixel shares at imbalance {imbalance:.2f}", fontsize=10)
        ax_img.imshow(blend(images[0, slices // 3], labels[0, slices // 3], CLASS_NAMES), interpolation="nearest")
        ax_img.axis("off")
        ax_img.set_title("patient 0, a mid slice", fontsize=9)
        fig.tight_layout()
        return fig, {"shares": dict(zip(CLASS_NAMES, shares.tolist()))}

    return Explorer(
        {"imbalance": _slider("imbalance", imbalance, 0.0, 1.0, 0.05)}, draw, "Class imbalance of the phantoms"
    )


def simplex_explorer(
    probs: np.ndarray, pi_l: Sequence[float], class_names: Sequence[str], alpha: float = 1.0
) -> Explorer:
    """Slider ``alpha`` (starting at ``alpha``) -> the toy predictions on the simplex before and after alignment."""
    from coda_edu.viz.simplex import align_toy, ternary_static

    def draw(alpha: float):
        aligned, pi_u = align_toy(probs, pi_l, alpha)
        fig = ternary_static(probs, aligned, class_names, title=f"alpha = {alpha:.2f}")
        shares = np.bincount(aligned.argmax(1), minlength=3) / len(aligned)
        return fig, {
            "shares_after": shares.tolist(),
            "pi_u": pi_u.tolist(),
            "aligned": aligned,
            "class_names": list(class_names),
        }

    return Explorer({"alpha": _slider("alpha", alpha, 0.0, 1.0, 0.05)}, draw, "Alignment on the probability simplex")


def alignment_explorer(
    batch_marginals: torch.Tensor,
    probs_u: torch.Tensor,
    targets: dict[str, torch.Tensor],
    class_names: Sequence[str],
    momentum: float = 0.99,
    truth: torch.Tensor | None = None,
    alpha: float = 1.0,
) -> Explorer:
    """Menu ``target`` and sliders ``alpha`` and ``momentum``.

    ``batch_marginals`` ``(T, C)``: the unlabeled marginal of T successive batches; their EMA
    with the chosen momentum is the pi_u used to align ``probs_u`` ``(N, C, H, W)`` towards
    the chosen target pi_l (``targets``: name -> ``(C,)``, e.g. the network's labeled
    predictions or the labeled ground truth). The figure shows the EMA trace and the
    pseudo-label class shares before and after alignment (and the hidden truth's shares
    when ``truth`` is given); ``data`` also holds the pseudo-label accuracy.
    """
    import ipywidgets as widgets

    from .analysis import ema_trace

    k = len(class_names)
    true_shares = None if truth is None else torch.bincount(truth.reshape(-1).long(), minlength=k)[:k].double()

    def shares(labels):
        counts = torch.bincount(labels.reshape(-1), minlength=k)[:k].double()
        return (counts / counts.sum()).numpy()

    def compute(target: str, alpha: float, momentum: float) -> dict:
        pi_l = targets[target]
        trace = ema_trace(batch_marginals, momentum)
        pi_u = trace[-1]
        labels_before = pseudo_labels(probs_u)[1]
        labels_after = pseudo_labels(align_distribution(probs_u, pi_l, pi_u, alpha))[1]
        out = {
            "pi_l": pi_l.double().numpy(),
            "trace": trace.numpy(),
            "pi_u": pi_u.numpy(),
            "before": shares(labels_before),
            "after": shares(labels_after),
        }
        if truth is not None:
            out["accuracy_before"] = float((labels_before == truth).float().mean())
            out["accuracy_after"] = float((labels_after == truth).float().mean())
        return out

    def series_of(d: dict, target: str, alpha: float) -> dict:
        series = {
            "before alignment": d["before"],
            f"after (alpha={alpha:.2f})": d["after"],
            f"pi_l ({target})": d["pi_l"],
        }
        if true_shares is not None:
            series["hidden truth"] = (true_shares / true_shares.sum()).numpy()
        return series

    def draw(target: str, alpha: float, momentum: float):
        d = compute(target, alpha, momentum)
        fig = Figure(figsize=(10, 3.9))
        ax_trace, ax_bar = fig.subplots(1, 2)
        steps = np.arange(len(d["trace"]))
        for c in range(1, k):
            color = class_color(class_names[c], c)
            ax_trace.plot(steps, batch_marginals[:, c].numpy(), lw=0.6, alpha=0.4, color=color)
            ax_trace.plot(steps, d["trace"][:, c], lw=1.6, color=color, label=f"pi_u({class_names[c]}), EMA")
            ax_trace.axhline(float(d["pi_l"][c]), color=color, ls=":", lw=1)
        ax_trace.set_xlabel("batch of unlabeled slices")
        ax_trace.set_ylabel("mean predicted probability")
        ax_trace.set_title(
            f"EMA of the unlabeled marginal, momentum {momentum:.3f}\n(thin: each batch; dotted: pi_l)", fontsize=9
        )
        ax_trace.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, fontsize=8, frameon=False)
        bar_groups(ax_bar, class_names, series_of(d, target, alpha), log=True, ylabel="share of pixels (log scale)")
        ax_bar.set_title("pseudo-label class shares", fontsize=9)
        fig.tight_layout()
        return fig, {key: value for key, value in d.items() if key not in ("trace", "pi_l")}

    def plotly_at(target: str, alpha: float, momentum: float):
        from .plotly_figures import alignment_figure

        d = compute(target, alpha, momentum)
        return alignment_figure(
            batch_marginals.numpy(), d["trace"], d["pi_l"], series_of(d, target, alpha), class_names, alpha, momentum
        )

    alphas, momenta = [0.0, 0.25, 0.5, 0.75, 1.0], [0.0, 0.5, 0.9, 0.99, 0.999]
    choices = {
        "target": Choice(list(targets), kind="menu", label="pi_l from"),
        "alpha": Choice(alphas, default=nearest(alphas, alpha), label="alpha"),
        "momentum": Choice(momenta, default=nearest(momenta, momentum), label="momentum"),
    }
    controls = {
        "target": widgets.Dropdown(options=list(targets), value=list(targets)[0], description="pi_l from"),
        "alpha": _slider("alpha", alpha, 0.0, 1.0, 0.05),
        "momentum": _slider("momentum", momentum, 0.0, 0.999, 0.001),
    }
    title = "Distribution alignment on real predictions"
    return Explorer(controls, draw, title, static=lambda: static_spec(title, choices, plotly_at))


def mask_explorer(
    images: np.ndarray, probs: torch.Tensor, truth: torch.Tensor, class_names: Sequence[str], threshold: float = 0.95
) -> Explorer:
    """Menu ``filter``, slider ``threshold``, slider ``index`` -> the kept pseudo-labels drawn over an image.

    ``images`` ``(N, H, W)``, ``probs`` ``(N, C, H, W)``, ``truth`` ``(N, H, W)``. ``data`` holds
    the coverage and precision per class of the chosen filter over all N images.
    """
    import ipywidgets as widgets

    from .analysis import filter_masks, per_class_quality

    _, labels = pseudo_labels(probs)

    def draw(filter: str, threshold: float, index: int):
        masks = filter_masks(probs, threshold)
        mask = masks[filter]
        quality = per_class_quality(labels, truth, len(class_names), mask)
        cov = ", ".join(
            f"{c} {v:.0%}" if np.isfinite(v) else f"{c} n/a" for c, v in zip(class_names, quality["coverage"])
        )
        fig = plot_masks(
            images[index],
            labels[index].numpy(),
            mask[index].numpy(),
            truth[index].numpy(),
            class_names,
            title=f"filter: {filter}"
            + (f" (threshold {threshold:.2f})" if filter == "fixed" else "")
            + f" | kept per class: {cov}",
        )
        foreground = labels > 0
        n_fg = int(foreground.sum())
        kept_fg = float((mask & foreground).sum()) / n_fg if n_fg else float("nan")
        return fig, {
            "coverage": quality["coverage"],
            "precision": quality["precision"],
            "kept": float(mask.float().mean()),
            "kept_foreground": kept_fg,
        }

    controls = {
        "filter": widgets.Dropdown(
            options=["none", "fixed", "over_expectation"], value="over_expectation", description="filter"
        ),
        "threshold": _slider("threshold (fixed)", threshold, 0.5, 0.999, 0.005),
        "index": widgets.IntSlider(value=0, min=0, max=len(images) - 1, description="image", continuous_update=False),
    }
    return Explorer(controls, draw, "Which pseudo-labels does each filter keep?")


def curve_explorer(rows: list[dict], title: str = "") -> Explorer:
    """Slider ``step`` over a run's logged training steps (``metrics.jsonl`` rows) -> the losses, the
    ramp-up weight λ(t), the kept share of pseudo-labels, the learning rate relative to its start and the
    validation Dice up to that step
    (at the last step: the run's learning curves).

    ``data`` holds the values at the chosen step: ``lambda`` (None for a run without an
    unsupervised loss), ``lambda_final`` (at the last logged step), ``kept_A``/``kept_B``
    and the best validation Dice of the ensemble so far.
    """
    import ipywidgets as widgets
    from matplotlib.ticker import MaxNLocator

    from coda_edu.viz.figures import LOSS_STYLES, MODEL_STYLES, legend_below, readable_log_axis

    train = [r for r in rows if r.get("kind") == "train"]
    val = [r for r in rows if r.get("kind") == "val"]
    if not train:
        raise ValueError("no training rows in the metrics")
    steps = [r["step"] for r in train]

    def series(key):
        return np.array([np.nan if r.get(key) is None else float(r[key]) for r in train])

    lam, kept_a, kept_b = series("lambda"), series("kept_A"), series("kept_B")
    has_lambda = bool(np.isfinite(lam).any())
    lr = series("lr")
    lr_rel = lr / lr[0] if np.isfinite(lr[0]) and lr[0] > 0 else np.full_like(lr, np.nan)  # eta(t) / eta_0

    def draw(step: int):
        upto = np.array(steps) <= step
        fig = Figure(figsize=(9, 8.2))  # two rows: readable at the width of a page (about 800 px)
        grid = fig.add_gridspec(2, 2, height_ratios=(1, 1))
        ax_l, ax_s = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])
        ax_d = fig.add_subplot(grid[1, :])
        for key, (color, ls) in LOSS_STYLES.items():
            values = series(key)
            if np.isfinite(values).any():
                ax_l.plot(steps, values, color=color, ls=ls, lw=0.8, alpha=0.25)
                ax_l.plot(np.array(steps)[upto], values[upto], color=color, ls=ls, lw=1.4, label=key)
        ax_l.axvline(step, color="0.5", lw=0.8)
        ax_l.set_yscale("log")
        ax_l.set_xlabel("training step")
        ax_l.set_ylabel("loss (log scale)")
        ax_l.set_title("losses", fontsize=10)
        legend_below(ax_l)
        for values, label, color, ls in (
            (lam, "λ(t), unsupervised weight", "black", "-"),
            (kept_a, "kept share of A's pseudo-labels", "0.35", "--"),
            (kept_b, "kept share of B's pseudo-labels", "0.35", ":"),
            (lr_rel, "learning rate / initial", "0.6", "-."),
        ):
            if np.isfinite(values).any():
                ax_s.plot(steps, values, color=color, ls=ls, lw=0.8, alpha=0.25)
                ax_s.plot(np.array(steps)[upto], values[upto], color=color, ls=ls, lw=1.6, label=label)
        if not has_lambda:
            ax_s.text(
                0.5,
                0.5,
                "no unsupervised loss in this run\n(method supervised)",
                ha="center",
                va="center",
                transform=ax_s.transAxes,
                fontsize=9,
            )
        ax_s.axvline(step, color="0.5", lw=0.8)
        ax_s.set_xlim(min(steps), max(steps))
        ax_s.set_ylim(-0.02, 1.05)
        ax_s.set_xlabel("training step")
        ax_s.set_ylabel("weight, share or ratio (0 to 1)")
        ax_s.set_title(f"schedules up to step {step}", fontsize=10)
        legend_below(ax_s)
        shown = [r for r in val if r["step"] <= step]
        best = None
        for model in ("A", "B", "ensemble"):
            values = [np.nan if r["dice"][model]["mean"] is None else r["dice"][model]["mean"] for r in shown]
            ax_d.plot([r["step"] for r in shown], values, marker="o", ms=3, lw=1, label=model, **MODEL_STYLES[model])
        scored = [
            (r["dice"]["ensemble"]["mean"], r["step"]) for r in shown if r["dice"]["ensemble"]["mean"] is not None
        ]
        if scored:
            best = max(scored)
            ax_d.plot([best[1]], [best[0]], marker="*", ms=12, color="black", ls="none", label="best so far (ensemble)")
        ax_d.set_xlim(min(steps), max(steps))
        ax_d.set_ylim(0, 1)
        ax_d.set_xlabel("training step")
        ax_d.set_ylabel("validation mean foreground Dice")
        ax_d.set_title("validation Dice up to this step", fontsize=10)
        legend_below(ax_d)
        for ax in (ax_l, ax_s, ax_d):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        readable_log_axis(ax_l.yaxis)
        if title:
            fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        i = int(np.searchsorted(steps, step, side="right")) - 1
        data = {
            "step": step,
            "lambda": float(lam[i]) if has_lambda and np.isfinite(lam[i]) else None,
            "lambda_final": float(lam[-1]) if has_lambda else None,
            "kept_A": None if np.isnan(kept_a[i]) else float(kept_a[i]),
            "kept_B": None if np.isnan(kept_b[i]) else float(kept_b[i]),
            "best_dice_so_far": None if best is None else float(best[0]),
            "best_step_so_far": None if best is None else int(best[1]),
            "steps": list(steps),
        }
        return fig, data

    control = widgets.SelectionSlider(options=steps, value=steps[-1], description="step", continuous_update=False)
    return Explorer({"step": control}, draw, "The run, step by step")


def comparison_explorer(
    sources: dict[str, dict],
    cls: str | None = None,
    baseline: str | None = None,
    question: dict | None = None,
) -> PlotlyExplorer:
    """Menus ``source``, ``cls`` and ``baseline`` over collected runs -> per method the Dice of
    the class over seeds, and its difference to the baseline paired by seed.

    ``sources``: a label ("pre-run, 5 seeds: ...", "your runs") -> ``{"rows": rows as
    coda_course.analysis.collect_runs gives them, "split": ..., "checkpoint": ..., "model": ...}``.
    A std is drawn only where it exists (two seeds or more). ``data``: ``methods`` (method ->
    mean, std or None, n, values) and ``paired`` (method -> the dict of
    :func:`coda_course.analysis.paired`); ``question`` is kept in ``data`` for the prediction
    exercise (which source, class, method and baseline it asks about).
    """
    from .analysis import paired
    from .plotly_figures import points_figure

    if not sources:
        raise ValueError("no runs to compare")
    labels = list(sources)
    methods_of = {s: list(dict.fromkeys(r["method"] for r in sources[s]["rows"])) for s in labels}
    classes = list(dict.fromkeys(r["class"] for s in labels for r in sources[s]["rows"] if r["class"] != "mean"))
    classes.append("mean")
    baselines = list(dict.fromkeys(m for s in labels for m in methods_of[s]))

    def values_of(source: str, method: str, c: str) -> dict:
        src = sources[source]
        by_seed = {
            r["seed"]: r["dice"]
            for r in src["rows"]
            if r["method"] == method
            and r["class"] == c
            and r["split"] == src["split"]
            and r["checkpoint"] == src.get("checkpoint", "best")
            and r["model"] == src.get("model", "ensemble")
            and r.get("dice") is not None
            and r["dice"] == r["dice"]
        }
        values = [by_seed[k] for k in sorted(by_seed)]
        n = len(values)
        mean = float(np.mean(values)) if n else None
        return {"values": values, "mean": mean, "std": float(np.std(values, ddof=1)) if n > 1 else None, "n": n}

    def draw(source: str, cls: str, baseline: str):
        src = sources[source]
        methods = methods_of[source]
        stats = {m: values_of(source, m, cls) for m in methods}
        pairs = {}
        for m in methods:
            if m == baseline:
                continue
            p = paired(
                src["rows"], m, baseline, cls, src["split"], src.get("checkpoint", "best"), src.get("model", "ensemble")
            )
            if p["n"]:
                pairs[m] = p
        single = [m for m, v in stats.items() if v["n"] == 1]
        note = f"one seed ({', '.join(single)}): no spread measured, so no ± bar" if single else None
        where = f"{src['split']} Dice of the {src.get('model', 'ensemble')}, checkpoint {src.get('checkpoint', 'best')}"
        fig = points_figure(
            methods,
            stats,
            {m: {"values": p["diffs"], "mean": p["mean"], "std": p["std"]} for m, p in pairs.items()},
            f"{cls} Dice (dots: seeds; ◆ mean ± std)",
            f"minus {baseline}, paired by seed" if baseline in methods else f"no {baseline} runs here",
            f"{source}: {where}",
            note=note,
        )
        return fig, {
            "source": source,
            "cls": cls,
            "baseline": baseline,
            "split": src["split"],
            "methods": stats,
            "paired": pairs,
            "question": question,
        }

    choices = {
        "source": Choice(labels, kind="menu", label="runs"),
        "cls": Choice(classes, kind="menu", label="class", default=classes.index(cls) if cls in classes else 0),
        "baseline": Choice(
            baselines,
            kind="menu",
            label="paired with",
            default=baselines.index(baseline) if baseline in baselines else 0,
        ),
    }
    return PlotlyExplorer(choices, draw, "Methods over seeds: one class, paired differences")


def training_explorer(runs: list, methods: list[str] | None = None, cls: str | None = None) -> PlotlyExplorer:
    """Menus ``cls`` and ``stage`` over packed runs (:class:`coda_course.course_pack.PackedRun`, several
    seeds per variant) -> left, the class's pseudo-label share divided by its labeled frequency
    over the whole training (each seed smoothed over 5 logged steps; line: the mean over seeds,
    band: their range; 1 = on target); right, the
    class's test Dice per variant (dots: seeds, ◆ mean ± std).

    ``stage`` "after" reads the pseudo-labels the networks learn from (after alignment),
    "before" the argmax before alignment. ``data``: per variant ``late`` (the ratio over the
    last 20 % of steps, mean over seeds, or None without pseudo-labels) and ``dice`` (values,
    mean, std).
    """
    from .analysis import late_mean
    from .plotly_figures import curves_figure

    methods = methods or list(dict.fromkeys(r.variant for r in runs))
    names = runs[0].class_names
    foreground = [c for c in names[1:]]
    stages = {"after": "pseudo-labels learnt from (after alignment)", "before": "argmax before alignment"}

    def draw(cls: str, stage: str):
        steps, values, late, dice = {}, {}, {}, {}
        for m in methods:
            mine = [r for r in runs if r.variant == m]
            curves = [r.share_ratio(cls, stage) for r in mine]
            curves = [c for c in curves if c is not None]
            if curves:
                steps[m] = [np.asarray(c[0]) for c in curves]
                values[m] = [np.asarray(c[1], dtype=float) for c in curves]
                late[m] = float(np.mean([late_mean(c[0], c[1]) for c in curves]))
            else:
                late[m] = None
            scores = [d for d in (r.dice(cls) for r in mine) if d is not None]
            if scores:
                dice[m] = {
                    "values": scores,
                    "mean": float(np.mean(scores)),
                    "std": float(np.std(scores, ddof=1)) if len(scores) > 1 else None,
                    "n": len(scores),
                }
        seeds = len({r.seed for r in runs})
        fig = curves_figure(
            steps,
            values,
            dice,
            methods,
            cls,
            f"pre-run, {seeds} seeds: the {cls} over whole trainings ({stages[stage]})",
            "share / labeled frequency (1 = on target)",
        )
        return fig, {"cls": cls, "stage": stage, "late": late, "dice": dice}

    choices = {
        "cls": Choice(
            foreground, kind="menu", label="class", default=foreground.index(cls) if cls in foreground else 0
        ),
        "stage": Choice(list(stages), labels=list(stages.values()), kind="menu", label="shares of"),
    }
    return PlotlyExplorer(choices, draw, "Alignment readings over whole trainings and seeds")
