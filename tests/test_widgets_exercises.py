"""Widget builders react to their controls; exercise checks explain mistakes and accept the solutions."""

import numpy as np
import pytest
import torch

from coda_course import exercises, widgets
from coda_edu.viz.figures import figure_png


def changes(explorer, control, value, key):
    before_png, before = figure_png(explorer.figure), explorer.data[key]
    explorer.controls[control].value = value
    assert explorer.redraws == 1
    after_png, after = figure_png(explorer.figure), explorer.data[key]
    assert before_png != after_png
    return before, after


def test_imbalance_explorer_updates_shares():
    explorer = widgets.imbalance_explorer(seed=0, patients=4, slices=4)
    before, after = changes(explorer, "imbalance", 0.9, "shares")
    assert after["background"] > before["background"]


def test_simplex_explorer_alpha_zero_is_identity():
    from coda_edu.viz.simplex import toy_predictions

    probs, truth = toy_predictions(120, seed=1)
    pi_l = np.bincount(truth, minlength=3) / len(truth)
    explorer = widgets.simplex_explorer(probs, pi_l, ["bg", "organ", "lesion"])
    aligned_full = explorer.data["aligned"]
    explorer.controls["alpha"].value = 0.0
    assert np.allclose(explorer.data["aligned"], probs, atol=1e-6)
    assert not np.allclose(aligned_full, probs)


def test_alignment_explorer_momentum_and_alpha():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(16, 3, 8, 8, generator=g) + torch.tensor([2.0, 0, 0]).view(1, 3, 1, 1), 1)
    marginals = torch.stack([probs[i : i + 4].mean((0, 2, 3)) for i in range(0, 16, 4)])
    targets = {"predictions": probs.mean((0, 2, 3)), "labels": torch.tensor([0.6, 0.25, 0.15])}
    explorer = widgets.alignment_explorer(marginals, probs, targets, ["bg", "a", "b"], truth=probs.argmax(1))
    before, after = changes(explorer, "momentum", 0.0, "pi_u")
    assert torch.allclose(torch.as_tensor(after), marginals[-1], atol=1e-6)  # momentum 0: the last batch
    explorer.controls["target"].value = "labels"
    assert explorer.data["after"][0] < explorer.data["before"][0]  # towards the less background-heavy target
    assert explorer.data["accuracy_before"] == 1.0
    explorer.controls["alpha"].value = 0.0
    assert np.allclose(explorer.data["after"], explorer.data["before"])


def test_mask_explorer_filters_differ():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(3, 3, 16, 16, generator=g) * 2, 1)
    truth = probs.argmax(1)
    images = np.random.default_rng(0).random((3, 16, 16))
    explorer = widgets.mask_explorer(images, probs, truth, ["bg", "a", "b"])
    kept_oe = explorer.data["kept"]
    explorer.controls["filter"].value = "none"
    assert explorer.data["kept"] == 1.0 and kept_oe < 1.0
    explorer.controls["filter"].value = "fixed"
    kept_fixed = explorer.data["kept"]
    explorer.controls["threshold"].value = 0.6
    assert explorer.data["kept"] > kept_fixed
    explorer.controls["index"].value = 2
    assert explorer.redraws == 4


# --------------------------------------------------------------------------- explorers: display and parameters
def test_explorer_shows_one_output_and_redraws_in_place(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: shown.append((a, k)))
    explorer = widgets.imbalance_explorer(seed=0, patients=2, slices=4, imbalance=0.8)
    assert explorer.controls["imbalance"].value == 0.8  # the notebook parameter is the initial position
    explorer.show()
    bundles = [a[0] for a, k in shown if k.get("raw")]
    assert len(bundles) == 1, "the figure must not be displayed a second time outside the widget"
    bundle = bundles[0]
    assert "application/vnd.jupyter.widget-view+json" in bundle and "image/png" in bundle
    assert not bundle["text/plain"].startswith("VBox(")
    figures = [a for a, k in shown if not k.get("raw")]
    assert len(figures) == 1  # the figure, drawn into the Output widget below the controls
    shown.clear()
    cleared = []
    monkeypatch.setattr(explorer.output, "clear_output", lambda wait=False: cleared.append(wait))
    explorer.controls["imbalance"].value = 0.2
    assert cleared == [True] and len(shown) == 1 and shown[0][0][0] is explorer.figure


def test_widgets_take_the_notebook_parameters_as_initial_values():
    from coda_edu.viz.simplex import toy_predictions

    probs, truth = toy_predictions(60, seed=1)
    simplex = widgets.simplex_explorer(
        probs, np.bincount(truth, minlength=3) / 60, ["bg", "organ", "lesion"], alpha=0.3
    )
    assert simplex.controls["alpha"].value == 0.3
    probs_t = torch.softmax(torch.randn(8, 3, 4, 4), 1)
    marginals = torch.stack([probs_t[i : i + 4].mean((0, 2, 3)) for i in range(0, 8, 4)])
    explorer = widgets.alignment_explorer(
        marginals, probs_t, {"predictions": probs_t.mean((0, 2, 3))}, ["bg", "a", "b"], momentum=0.5, alpha=0.4
    )
    assert explorer.controls["alpha"].value == 0.4 and explorer.controls["momentum"].value == 0.5


def test_data_at_leaves_the_controls_alone():
    explorer = widgets.imbalance_explorer(seed=0, patients=2, slices=4)
    shares = explorer.data_at(imbalance=1.0)["shares"]
    assert explorer.controls["imbalance"].value == 0.5 and explorer.redraws == 0
    assert shares["background"] > explorer.data["shares"]["background"]
    with pytest.raises(KeyError):
        explorer.data_at(alfa=1.0)


# --------------------------------------------------------------------------- code exercises
@pytest.mark.parametrize("name", list(exercises.CHECKS))
def test_solutions_pass_and_stubs_do_not(name, capsys):
    assert exercises.grade(name, exercises.solution(name)).ok

    def stub(*args):
        raise NotImplementedError

    verdict = exercises.grade(name, stub)
    assert not verdict.ok and "not done yet" in verdict.message
    assert exercises.check(name, stub) is None  # a check cell echoes nothing but its message
    assert "✘ not yet: not done yet" in capsys.readouterr().out


def rejected(name, fn, hint):
    verdict = exercises.grade(name, fn)
    assert not verdict.ok, f"{name}: a wrong answer passed"
    assert hint in verdict.message, verdict.message


def accepted(name, fn):
    verdict = exercises.grade(name, fn)
    assert verdict.ok, verdict.message


def test_class_shares_exercise():
    rejected("class_shares", lambda labels, k: torch.bincount(labels.reshape(-1), minlength=k).float(), "pixel counts")
    rejected("class_shares", lambda labels, k: torch.bincount(labels.reshape(-1)).float() / labels.numel(), "minlength")
    rejected(
        "class_shares",
        lambda labels, k: torch.bincount(labels.reshape(-1), minlength=k).float() / (labels > 0).sum(),
        "background included",
    )
    # the named mistakes of a NumPy habit and of a skipped background
    rejected("class_shares", lambda labels, k: torch.bincount(labels.reshape(-1), minlength=k) / labels.size, "numel()")
    rejected("class_shares", lambda labels, k: torch.bincount(labels.reshape(-1), minlength=k) / labels.size(), "shape")
    rejected("class_shares", lambda labels, k: torch.bincount(labels.reshape(-1), minlength=k) / len(labels), "len(")
    rejected(
        "class_shares",
        lambda labels, k: torch.stack([(labels == c).float().mean() for c in range(1, k)]),
        "left out the background",
    )
    # float32, float64, numpy and in-place answers are all accepted
    accepted("class_shares", lambda labels, k: torch.bincount(labels.reshape(-1), minlength=k).float() / labels.numel())
    accepted("class_shares", lambda labels, k: np.bincount(labels.numpy().ravel(), minlength=k) / labels.numel())

    def in_place(labels, k):
        n = labels.numel()
        labels.clamp_(0, k - 1)  # changes the input: the grader must not care
        return torch.bincount(labels.view(-1), minlength=k).double().div_(n)

    accepted("class_shares", in_place)


def align(probs, pi_l, pi_u, alpha, power=True, normalise=True, dtype=torch.float32, eps=0.0, view=True):
    w = ((pi_l + eps) / (pi_u + eps)) ** alpha if power else alpha * (pi_l / pi_u)
    w = w.to(dtype)
    out = probs.to(dtype) * (w.view(1, -1, 1, 1) if view else w)
    return out / out.sum(1, keepdim=True) if normalise else out


def test_alignment_exercise():
    rejected("alignment", lambda p, pl, u, a: align(p, pl, u, a, normalise=False), "divide by the sum over classes")
    rejected("alignment", lambda p, pl, u, a: align(p, u, pl, a), "upside down")
    rejected("alignment", lambda p, pl, u, a: align(p, pl, u, 1.0), "same result: raise the ratio to the power alpha")
    rejected("alignment", lambda p, pl, u, a: align(p, pl, u, a, power=False), "cancels in the normalisation")
    rejected("alignment", lambda p, pl, u, a: align(p, pl, u, a**2), "not for alpha = 0.5")
    rejected("alignment", lambda p, pl, u, a: align(p, pl, u, a, view=False), "view(1, -1, 1, 1)")
    rejected("alignment", lambda p, pl, u, a: align(p, pl, u, a, eps=0.01), "epsilon = 0.01 added to pi_l and pi_u")
    rejected("alignment", lambda p, pl, u, a: align(p, pl, u + 1e-3, a), "epsilon = 0.001 added to pi_u only")
    accepted("alignment", align)  # float32
    accepted("alignment", lambda p, pl, u, a: align(p, pl, u, a, dtype=torch.float64))
    accepted("alignment", lambda p, pl, u, a: align(p, pl, u, a, eps=1e-6))  # the library's epsilon

    def in_place(probs, pi_l, pi_u, alpha):  # probs.mul_(w): changes the input, returns the right answer
        probs.mul_(((pi_l / pi_u) ** alpha).view(1, -1, 1, 1))
        return probs.div_(probs.sum(1, keepdim=True))

    accepted("alignment", in_place)


def test_alignment_exercise_catches_a_missing_view_that_does_not_raise():
    # A function that reshapes correctly only when W differs from C (a broadcasting "fix" by trial)
    def lucky(probs, pi_l, pi_u, alpha):
        w = (pi_l / pi_u) ** alpha
        out = probs * (w if probs.shape[-1] == w.numel() else w.view(1, -1, 1, 1))
        return out / out.sum(1, keepdim=True)

    rejected("alignment", lucky, "multiply the width, not the classes")


def test_over_expectation_fixture_separates_every_mistake():
    from coda_course.exercises import _OE_CONFIDENCE, _OE_LABELS, over_expectation_mistakes
    from coda_edu.method import class_expectations, over_expectation_mask

    conf, labels = _OE_CONFIDENCE, _OE_LABELS
    right = over_expectation_mask(conf, labels, class_expectations(conf, labels, 4))
    masks = list(over_expectation_mistakes(conf, labels, 4).values())
    assert len(masks) == 8
    for i, mask in enumerate(masks):
        assert not torch.equal(mask, right), i
        assert not any(torch.equal(mask, other) for other in masks[i + 1 :]), i


def test_over_expectation_exercise_names_each_mistake():
    from coda_edu.method import class_expectations

    def loop(statistic, classes=range(4), strict=False):
        def fn(c, lab, k):
            keep = torch.zeros_like(c, dtype=torch.bool)
            for j in classes:
                sel = lab == j
                if sel.any():
                    ref = statistic(c[sel])
                    keep |= sel & ((c > ref) if strict else (c >= ref))
            return keep

        return fn

    rejected("over_expectation_mask", lambda c, lab, k: c >= c.mean(), "not with the mean over all pixels")
    rejected("over_expectation_mask", loop(torch.mean, strict=True), "use >=")
    rejected(
        "over_expectation_mask",
        lambda c, lab, k: torch.stack([loop(torch.mean)(ci[None], li[None], k)[0] for ci, li in zip(c, lab)]),
        "whole batch",
    )
    rejected("over_expectation_mask", lambda c, lab, k: c <= class_expectations(c, lab, k)[lab], "not below")
    rejected("over_expectation_mask", loop(torch.median), "median")
    rejected("over_expectation_mask", loop(lambda v: torch.quantile(v, 0.5)), "median")
    rejected("over_expectation_mask", loop(torch.mean, classes=range(1, 4)), "background (class 0)")
    rejected("over_expectation_mask", loop(torch.max), "maximum")

    def float32_loop(conf, labels, k):
        keep = torch.zeros_like(conf, dtype=torch.bool)
        for c in range(k):
            sel = labels == c
            if sel.any():
                keep |= sel & (conf.float() >= conf.float()[sel].mean())
        return keep

    accepted("over_expectation_mask", float32_loop)
    accepted(
        "over_expectation_mask", lambda c, lab, k: c.double() >= class_expectations(c, lab, k).double()[lab] - 1e-6
    )


def test_mean_dice_exercise_names_the_forgotten_filter_in_any_order():
    def first(records, model, skip=()):
        want = {"split": "test", "checkpoint": "best", "model": model, "class": "mean"}
        return next(r["dice"] for r in records if all(r[f] == v for f, v in want.items() if f not in skip))

    def last(records, model, skip=()):  # a loop without break: the last matching record wins
        value = None
        want = {"split": "test", "checkpoint": "best", "model": model, "class": "mean"}
        for r in records:
            if all(r[f] == v for f, v in want.items() if f not in skip):
                value = r["dice"]
        return value

    for pick in (first, last):
        rejected("mean_dice", lambda records, model, p=pick: p(records, model, ("checkpoint",)), "checkpoint == 'best'")
        rejected("mean_dice", lambda records, model, p=pick: p(records, model, ("split",)), "split == 'test'")
        rejected("mean_dice", lambda records, model, p=pick: p(records, model, ("class",)), "class == 'mean'")
        rejected("mean_dice", lambda records, model, p=pick: p(records, model, ("model",)), "the model you were asked")
        accepted("mean_dice", lambda records, model, p=pick: p(records, model))
    rejected("mean_dice", lambda records, model: records[0]["dice"], "filter on")
    rejected("mean_dice", lambda records, model: 0.7, "expected")  # a hard-coded number
    accepted("mean_dice", lambda records, model: np.float32(exercises.solution("mean_dice")(records, model)))

    def sorts_in_place(records, model):  # reorders its input: the grader's own records stay intact
        records.sort(key=lambda r: r["dice"])
        return exercises.solution("mean_dice")(records, model)

    accepted("mean_dice", sorts_in_place)


def test_mean_std_exercise():
    def sample(v):
        return (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else None)

    rejected("mean_std", lambda v: (float(np.mean(v)), float(np.std(v))), "ddof")
    rejected("mean_std", lambda v: (float(np.mean(v)), float(np.var(v, ddof=1))), "variance")
    rejected("mean_std", lambda v: (float(np.mean(v)), float(np.std(v, ddof=1) / np.sqrt(len(v)))), "standard error")
    rejected("mean_std", lambda v: (float(np.std(v, ddof=1)), float(np.mean(v))), "order")
    rejected("mean_std", lambda v: (float(np.median(v)), sample(v)[1]), "median")
    rejected("mean_std", lambda v: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0), "None")
    rejected("mean_std", lambda v: (float(np.mean(v)), float(np.std(v, ddof=1))), "not NaN")  # numpy: nan for one
    rejected("mean_std", lambda v: (torch.tensor(v).mean(), torch.tensor(v).std()), "not NaN")
    accepted("mean_std", sample)
    accepted(
        "mean_std",
        lambda v: (
            np.float32(np.mean(np.float32(v))),
            np.float32(np.std(np.float32(v), ddof=1)) if len(v) > 1 else None,
        ),
    )


def test_mean_std_convention_is_the_one_of_summarize():
    from coda_course.analysis import summarize

    rows = [
        {
            "method": "m",
            "labeled": 1,
            "split": "test",
            "checkpoint": "best",
            "model": "ensemble",
            "class": "mean",
            "dice": 0.7,
        }
    ]
    assert summarize(rows)[0]["std"] is None and exercises.solution("mean_std")([0.7]) == (0.7, None)


def test_crashing_answers_are_explained(capsys):
    def crashes(*args):
        raise ValueError("boom")

    assert exercises.check("mean_dice", crashes) is None
    assert "raised ValueError: boom" in capsys.readouterr().out


# --------------------------------------------------------------------------- prediction exercises
class FakeExplorer:
    """An explorer whose data are given: proves that answers are computed, not hard-coded."""

    def __init__(self, table, controls=None, data=None):
        self.table, self.controls, self.data = table, controls or {}, data or {}

    def data_at(self, **values):
        return self.table(**values)

    def values(self):
        return {k: c.value for k, c in self.controls.items()}


def predictions_pass(name, explorer, wrong, hint):
    right = exercises.predicted(name, explorer)
    verdict = exercises.grade_prediction(name, right, explorer)
    assert verdict.ok, verdict.message
    verdict = exercises.grade_prediction(name, wrong, explorer)
    assert not verdict.ok and hint in verdict.message, verdict.message
    assert not exercises.grade_prediction(name, "", explorer).ok
    assert "answer with one of" in exercises.grade_prediction(name, "maybe", explorer).message
    return right


def test_prediction_rv_shrink_follows_the_explorer():
    explorer = widgets.imbalance_explorer(seed=0, patients=3, slices=4)
    right = predictions_pass("rv_shrink", explorer, "a", "times less")
    assert right == "b"  # the phantoms: about 12 times less
    fake = FakeExplorer(lambda imbalance: {"shares": {"RV": 0.02 if imbalance == 0 else 0.015}})
    assert exercises.predicted("rv_shrink", fake) == "a"


def test_prediction_alpha_lesion_follows_the_explorer():
    from coda_edu.viz.simplex import toy_predictions

    probs, truth = toy_predictions(200, seed=0)
    explorer = widgets.simplex_explorer(probs, np.bincount(truth, minlength=3) / 200, ["background", "organ", "lesion"])
    right = exercises.predicted("alpha_lesion", explorer)
    after = explorer.data_at(alpha=1.0)["shares_after"][2]
    before = explorer.data_at(alpha=0.0)["shares_after"][2]
    assert right == ("up" if after > before else "down" if after < before else "same")
    predictions_pass("alpha_lesion", explorer, "down" if right != "down" else "up", "figure shows")
    fake = FakeExplorer(
        lambda alpha: {"shares_after": [0.5, 0.3, 0.2 if alpha == 0 else 0.1]}, data={"aligned": [0] * 100}
    )
    assert exercises.predicted("alpha_lesion", fake) == "down"


def test_prediction_filter_foreground_follows_the_explorer():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(3, 3, 16, 16, generator=g) * 2, 1)
    explorer = widgets.mask_explorer(np.zeros((3, 16, 16)), probs, probs.argmax(1), ["bg", "a", "b"], threshold=0.95)
    right = predictions_pass("filter_foreground", explorer, "fixed", "figure shows")
    assert right == "over_expectation"
    explorer.controls["threshold"].value = 0.5  # a low threshold keeps more than the expectation does
    assert exercises.predicted("filter_foreground", explorer) == "fixed"


def test_prediction_rampup_follows_the_metrics():
    rows = [
        {"kind": "train", "step": s, "lambda": min(1.0, s / 40) ** 2, "kept_A": 0.5, "kept_B": 0.5}
        for s in range(2, 42, 2)
    ]
    rows += [
        {"kind": "val", "step": s, "dice": {m: {"mean": 0.1 * s / 10} for m in ("A", "B", "ensemble")}}
        for s in (20, 40)
    ]
    explorer = widgets.curve_explorer(rows)
    right = predictions_pass("rampup", explorer, "c", "final value")
    assert right == "a"  # (10/40)^2 = 6 % of the final value
    before = figure_png(explorer.figure)
    explorer.controls["step"].value = 10
    assert figure_png(explorer.figure) != before and explorer.data["lambda"] == pytest.approx(0.0625)
    supervised = widgets.curve_explorer([{"kind": "train", "step": s, "loss": 1.0} for s in (1, 2, 3)])
    assert "no right or wrong" in exercises.grade_prediction("rampup", "a", supervised).message


def comparison_rows(values, cls="RV"):
    out = []
    for (method, seed), dice in values.items():
        for c, v in ((cls, dice - 0.1), ("mean", dice)):
            out.append(
                {
                    "method": method,
                    "labeled": 8,
                    "seed": seed,
                    "split": "test",
                    "checkpoint": "best",
                    "model": "ensemble",
                    "class": c,
                    "dice": v,
                }
            )
    return out


def comparison(values, question_method="coda"):
    rows = comparison_rows(values)
    question = {"source": "pre-run", "cls": "RV", "method": question_method, "baseline": "supervised"}
    return widgets.comparison_explorer(
        {"pre-run": {"rows": rows, "split": "test"}}, cls="RV", baseline="supervised", question=question
    )


def test_prediction_finding_follows_the_paired_differences():
    # coda − supervised per seed: +0.02, −0.01, +0.03: mean +0.013, std 0.021 -> noise
    noisy = comparison(
        {
            ("coda", 0): 0.62,
            ("coda", 1): 0.65,
            ("coda", 2): 0.71,
            ("supervised", 0): 0.60,
            ("supervised", 1): 0.66,
            ("supervised", 2): 0.68,
        }
    )
    assert predictions_pass("finding", noisy, "finding", "seeds ahead") == "noise"
    # +0.20, +0.22, +0.19: a finding, although the methods' own stds (0.05) are larger than... nothing: paired
    clear = comparison(
        {
            ("coda", 0): 0.80,
            ("coda", 1): 0.72,
            ("coda", 2): 0.89,
            ("supervised", 0): 0.60,
            ("supervised", 1): 0.50,
            ("supervised", 2): 0.70,
        }
    )
    assert exercises.predicted("finding", clear) == "finding"
    single = comparison({("coda", 0): 0.8, ("supervised", 0): 0.5})
    assert exercises.predicted("finding", single) == "cannot tell"
    assert single.data["methods"]["coda"]["std"] is None and single.data["paired"]["coda"]["std"] is None


def test_comparison_explorer_menus_change_the_figure_and_draw_no_spread_for_one_seed():
    from coda_course.static import MIME, figure_json, spec_state

    explorer = comparison({("coda", 0): 0.8, ("coda", 1): 0.7, ("supervised", 0): 0.5, ("cps", 0): 0.6})
    before = figure_json(explorer.figure)
    explorer.controls["baseline"].value = "cps"
    assert explorer.redraws == 1 and figure_json(explorer.figure) != before
    assert explorer.data["paired"]["coda"]["n"] == 1

    def spreads(fig):
        return [
            (t["xaxis"], t["name"], t["error_x"]["array"])
            for t in figure_json(fig)["data"]
            if t.get("error_x", {}).get("array")
        ]

    # only coda has two seeds: its Dice gets a ± bar; no paired difference has two seeds, so none there
    assert spreads(explorer.figure) == [("x", "coda", [pytest.approx(0.0707, abs=1e-3)])]
    explorer.controls["baseline"].value = "supervised"
    assert spreads(explorer.figure) == [("x", "coda", [pytest.approx(0.0707, abs=1e-3)])]
    spec = explorer._repr_mimebundle_()[MIME]
    assert [c["name"] for c in spec["controls"]] == ["source", "cls", "baseline"]
    assert len(spec["states"]) == 1 * 2 * 3
    assert spec_state(spec, baseline=0) != spec_state(spec, baseline=1)


def test_prediction_checks_echo_nothing(capsys):
    explorer = widgets.imbalance_explorer(seed=0, patients=2, slices=4)
    assert exercises.check_prediction("rv_shrink", "", explorer) is None
    assert "write your prediction first" in capsys.readouterr().out


def test_summarize_has_no_std_for_one_seed():
    from coda_course.analysis import summarize

    rows = [
        {
            "method": "coda",
            "labeled": 2,
            "split": "test",
            "checkpoint": "best",
            "model": "ensemble",
            "class": "mean",
            "dice": 0.5,
        }
    ]
    assert summarize(rows)[0]["std"] is None


def test_scratch_run_dirs_are_new_at_every_call():
    # Running a notebook's cells again in the same kernel must train a fresh illustration
    # run, not meet the previous run's folder (which a run folder refuses to overwrite).
    from coda_course.analysis import SCRATCH, scratch_run_dir

    first, second = scratch_run_dir("nb02-seed0"), scratch_run_dir("nb02-seed0")
    assert first != second and first.parent == second.parent
    assert first.parent.name == SCRATCH and first.name.startswith("nb02-seed0-")


def test_progress_bar_in_a_kernel_keeps_one_output(monkeypatch):
    """Inside a Jupyter kernel every refresh of a bar replaces one display output (a display handle)."""
    import IPython.display

    from coda_edu import progress

    calls = []

    class Handle:
        def update(self, bundle, raw=False):
            calls.append(("update", bundle["text/plain"]))

    def display(bundle, raw=False, display_id=False):
        calls.append(("display", bundle["text/plain"]))
        return Handle()

    monkeypatch.setattr(IPython.display, "display", display)
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    bar = progress.progress_bar(total=5, desc="steps")
    for _ in range(5):
        bar.update(1)
    bar.close()
    assert [kind for kind, _ in calls].count("display") == 1 and len(calls) >= 2
    assert calls[-1][1].startswith("steps: 100%|") and "\r" not in calls[-1][1]


def test_learning_curves_of_a_one_step_run_draw_without_a_zero_width_axis():
    import warnings

    from coda_edu.viz.figures import plot_learning_curves

    dice = {m: {"mean": 0.5} for m in ("A", "B", "ensemble")}
    rows = [{"kind": "train", "step": 2, "loss": 1.0, "lambda": 0.1}, {"kind": "val", "step": 2, "dice": dice}]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns on identical x limits
        fig = plot_learning_curves(rows)
    assert [ax.get_xlim() for ax in fig.axes[:3]] == [(1.0, 3.0)] * 3
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["1", "2", "3"]
    rows.append({"kind": "train", "step": 4, "loss": 0.9, "lambda": 0.2})
    assert plot_learning_curves(rows).axes[0].get_xlim() == (2.0, 4.0)
