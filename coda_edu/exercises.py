"""Notebook exercises: reference answers and checks that explain what is wrong.

Two kinds of exercise:

- **code**: the student writes a small function; ``check(name, fn)`` runs it on prepared
  inputs, compares it with coda-edu's own implementation and prints a verdict with a
  hint. The inputs are chosen so that each typical mistake gives a different result
  from the right answer (and gets its own hint); float answers are compared with a
  relative tolerance that accepts float32 arithmetic.
- **prediction**: the student writes down a guess (a short string) *before* moving a
  widget's control; ``check_prediction(name, guess, explorer)`` computes the right
  answer from the same explorer (the same data the figure shows, through
  ``explorer.data_at``) and says whether the guess was right and why.

Checks never raise, so a notebook whose exercise is not done yet still runs to the
end, and they return None, so a check cell echoes nothing but its message
(:func:`grade` and :func:`grade_prediction` return the verdict, for tests).
``solution(name)`` and ``predicted(name, explorer)`` give the reference answers (the
notebooks use them when executed with ``solutions=True``, as CI does).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from .method.alignment import align_distribution, class_shares
from .method.filtering import class_expectations, over_expectation_mask

RTOL = 1e-5  # relative tolerance for float answers: float32 arithmetic passes
ATOL = 1e-6


@dataclass
class Verdict:
    ok: bool
    message: str

    def __bool__(self) -> bool:
        return self.ok


def _close(a, b) -> bool:
    return bool(
        np.allclose(
            np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), rtol=RTOL, atol=ATOL, equal_nan=True
        )
    )


# --------------------------------------------------------------------------- reference answers
def _class_shares(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    counts = torch.bincount(labels.reshape(-1).long(), minlength=num_classes).float()
    return counts / counts.sum()


def _align(probs: torch.Tensor, pi_l: torch.Tensor, pi_u: torch.Tensor, alpha: float) -> torch.Tensor:
    weights = (pi_l / pi_u) ** alpha  # one weight per class
    scaled = probs * weights.view(1, -1, 1, 1)  # re-weight every pixel's prediction
    return scaled / scaled.sum(dim=1, keepdim=True)  # and make it a distribution again


def _over_expectation_mask(confidence: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    keep = torch.zeros_like(confidence, dtype=torch.bool)
    for k in range(num_classes):
        in_class = labels == k
        if in_class.any():
            expected = confidence[in_class].mean()  # the class's expected confidence
            keep |= in_class & (confidence >= expected)
    return keep


def _mean_dice(records: list[dict], model: str, split: str = "test", checkpoint: str = "best") -> float:
    for r in records:
        if r["model"] == model and r["split"] == split and r["checkpoint"] == checkpoint and r["class"] == "mean":
            return r["dice"]
    raise KeyError(model)


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), (float(arr.std(ddof=1)) if len(arr) > 1 else float("nan"))


SOLUTIONS: dict[str, Callable] = {
    "class_shares": _class_shares,
    "alignment": _align,
    "over_expectation_mask": _over_expectation_mask,
    "mean_dice": _mean_dice,
    "mean_std": _mean_std,
}


def solution(name: str) -> Callable:
    """The reference answer of exercise ``name``."""
    return SOLUTIONS[name]


# --------------------------------------------------------------------------- checks
def _call(fn: Callable, *args):
    import warnings

    try:
        with warnings.catch_warnings():  # e.g. numpy's "degrees of freedom <= 0" for one seed: expected here
            warnings.simplefilter("ignore")
            return fn(*args), None
    except NotImplementedError:
        return None, "not done yet: replace the `raise NotImplementedError` with your code."
    except Exception as exc:  # a student's bug: explain, never crash the notebook
        return None, f"your function raised {type(exc).__name__}: {exc}"


def _tensor(out) -> Optional[torch.Tensor]:
    try:
        return torch.as_tensor(
            np.asarray(out.detach().cpu() if isinstance(out, torch.Tensor) else out, dtype=np.float64)
        )
    except (TypeError, ValueError):
        return None


def _grade_class_shares(fn) -> Verdict:
    # 2 images of 16x16 with 4 classes; class 3 does not occur (its share must be 0)
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (2, 16, 16), generator=g)
    labels[labels == 3] = 0
    out, err = _call(fn, labels, 4)
    if err:
        return Verdict(False, err)
    out = _tensor(out)
    if out is None:
        return Verdict(False, "return a tensor (or array) of numbers, one share per class.")
    out = out.reshape(-1)
    expected = class_shares(labels, 4).double()
    if out.numel() == 3:
        return Verdict(
            False,
            "class 3 does not occur here, but it still needs its share (0): "
            "use torch.bincount(..., minlength=num_classes).",
        )
    if out.numel() != 4:
        return Verdict(
            False, f"return one share per class (4 values here, also for absent classes), got {out.numel()}."
        )
    if _close(out, expected):
        return Verdict(True, "your shares match coda_edu.method.class_shares.")
    counts = torch.bincount(labels.reshape(-1), minlength=4).double()
    if _close(out, counts):
        return Verdict(False, "these are pixel counts: divide by the number of pixels so the shares sum to 1.")
    if _close(out, counts / counts[1:].sum()) or _close(out[1:], counts[1:] / counts[1:].sum()):
        return Verdict(False, "divide by the number of *all* pixels (background included), not the foreground ones.")
    if _close(out, counts / 4):
        return Verdict(False, "divide by the number of pixels, not by the number of classes.")
    if not math.isclose(float(out.sum()), 1.0, rel_tol=1e-4):
        return Verdict(False, f"shares must sum to 1, yours sum to {float(out.sum()):.4f}.")
    return Verdict(False, f"expected {expected.numpy().round(4)}, got {out.numpy().round(4)}.")


def _grade_alignment(fn) -> Verdict:
    g = torch.Generator().manual_seed(1)
    probs = torch.softmax(torch.randn(2, 3, 4, 4, generator=g) * 2, dim=1)
    pi_l = torch.tensor([0.6, 0.3, 0.1])
    pi_u = torch.tensor([0.8, 0.15, 0.05])
    out, err = _call(fn, probs, pi_l, pi_u, 1.0)
    if err:
        return Verdict(False, err)
    out = _tensor(out)
    if out is None:
        return Verdict(False, "return a tensor shaped like probs.")
    if tuple(out.shape) != tuple(probs.shape):
        return Verdict(False, f"keep the shape (N, C, H, W) = {tuple(probs.shape)}, got {tuple(out.shape)}.")

    def ref(a, b, alpha):
        return align_distribution(probs, a, b, alpha, eps=0.0).double()

    if _close(out, ref(pi_l, pi_u, 1.0)):
        half, err = _call(fn, probs, pi_l, pi_u, 0.5)
        half = None if err else _tensor(half)
        if half is None or not _close(half, ref(pi_l, pi_u, 0.5)):
            if half is not None and _close(half, ref(pi_l, pi_u, 1.0)):
                return Verdict(
                    False,
                    "correct for alpha = 1, but alpha = 0.5 gives the same result: raise the ratio "
                    "to the power alpha (a factor alpha on every weight cancels in the normalisation).",
                )
            return Verdict(
                False, "correct for alpha = 1 but not for alpha = 0.5: raise the ratio pi_l / pi_u to the power alpha."
            )
        return Verdict(True, "your alignment matches coda_edu.method.align_distribution (alpha 1 and 0.5).")
    if not _close(out.sum(1), torch.ones(2, 4, 4)):
        if _close(out, probs.double() * (pi_l / pi_u).double().view(1, -1, 1, 1)):
            return Verdict(False, "the weighting is right; now divide by the sum over classes so each pixel sums to 1.")
        return Verdict(False, "each pixel's aligned probabilities must sum to 1 over the classes (dim=1).")
    if _close(out, ref(pi_u, pi_l, 1.0)):
        return Verdict(False, "the ratio is upside down: weight class c by pi_l(c) / pi_u(c).")
    return Verdict(
        False, "the result differs from coda_edu.method.align_distribution; check the weights and the normalisation."
    )


# Confidences and pseudo-labels of two 2x3 images. The per-class expectations (0.9375,
# 0.625, 0.625) differ from the global mean (0.729) and from the per-image means of class
# 1, two class-2 pixels sit exactly at their class's expectation, and class 3 is absent.
_OE_CONFIDENCE = torch.tensor([[[1.0, 0.875, 0.5], [0.5, 0.625, 0.625]], [[1.0, 0.875, 0.75], [0.75, 0.5, 0.75]]])
_OE_LABELS = torch.tensor([[[0, 0, 1], [1, 2, 2]], [[0, 0, 1], [1, 2, 2]]])


def _grade_over_expectation_mask(fn) -> Verdict:
    confidence, labels, k = _OE_CONFIDENCE.clone(), _OE_LABELS.clone(), 4
    expectations = class_expectations(confidence, labels, k)
    expected = over_expectation_mask(confidence, labels, expectations)
    out, err = _call(fn, confidence, labels, k)
    if err:
        return Verdict(False, err)
    try:
        out = torch.as_tensor(np.asarray(out.cpu() if isinstance(out, torch.Tensor) else out)).bool()
    except (TypeError, ValueError):
        return Verdict(False, "return a boolean mask shaped like the confidence.")
    if out.shape != expected.shape:
        return Verdict(False, f"return a boolean mask shaped like the confidence {tuple(confidence.shape)}.")
    if torch.equal(out, expected):
        return Verdict(True, "your mask keeps exactly the pixels at or above their class's expected confidence.")
    wrong = {
        "the expectation is per class: compare each pixel with the mean confidence of the pixels with the same "
        "pseudo-label, not with the mean over all pixels.": confidence >= confidence.mean(),
        "use >= : a pixel exactly at its class's expectation is kept.": confidence > expectations[labels],
        "the expectation of a class is its mean confidence over the whole batch, not per image.": torch.stack(
            [_over_expectation_mask(c[None], lab[None], k)[0] for c, lab in zip(confidence, labels)]
        ),
        "keep the pixels at or *above* the expectation, not below.": confidence <= expectations[labels],
    }
    for hint, mask in wrong.items():
        if torch.equal(out, mask):
            return Verdict(False, hint)
    return Verdict(False, f"expected {expected.int().tolist()}, got {out.int().tolist()}.")


def _dice_records() -> list[dict]:
    """eval.json-like records where every wrong filter finds a *different* number, listed before the right one."""
    rows = [
        ("A", "test", "best", "RV", 0.5),
        ("A", "val", "best", "mean", 0.1),
        ("A", "test", "last", "mean", 0.2),
        ("B", "test", "best", "mean", 0.8),
        ("ensemble", "test", "best", "mean", 0.82),
        ("A", "test", "best", "mean", 0.7),
        ("ensemble", "val", "best", "mean", 0.3),
    ]
    return [{"split": s, "checkpoint": ck, "model": m, "class": c, "dice": v} for m, s, ck, c, v in rows]


def _grade_mean_dice(fn) -> Verdict:
    records = _dice_records()
    hints = {
        0.5: "that is the RV class: filter on class == 'mean'.",
        0.1: "that is the validation split: filter on split == 'test'.",
        0.2: "that is the last checkpoint: filter on checkpoint == 'best'.",
        0.8: "that is model B: filter on the model you were asked for.",
        0.82: "that is the ensemble: filter on the model you were asked for.",
        0.3: "that is the validation split: filter on split == 'test'.",
    }
    for model, right in (("A", 0.7), ("ensemble", 0.82)):
        out, err = _call(fn, [dict(r) for r in records], model)
        if err:
            return Verdict(False, err)
        try:
            value = float(out)
        except (TypeError, ValueError):
            return Verdict(False, f"return one number (the Dice), got {type(out).__name__}.")
        if not math.isclose(value, right, rel_tol=RTOL):
            hint = next((h for v, h in hints.items() if math.isclose(value, v, rel_tol=RTOL)), None)
            return Verdict(False, f"for model '{model}': " + (hint or f"expected {right}, got {out!r}."))
    return Verdict(True, "you picked the test / best / mean record of the model asked for.")


def _grade_mean_std(fn) -> Verdict:
    values = [0.70, 0.74, 0.66]
    out, err = _call(fn, list(values))
    if err:
        return Verdict(False, err)
    try:
        mean, std = (float(v) for v in out)
    except (TypeError, ValueError):
        return Verdict(False, "return a pair (mean, std).")
    sample, population = float(np.std(values, ddof=1)), float(np.std(values))
    if math.isclose(mean, sample, rel_tol=RTOL) and math.isclose(std, 0.70, rel_tol=RTOL):
        return Verdict(False, "the order is (mean, std), yours is (std, mean).")
    if not math.isclose(mean, 0.70, rel_tol=RTOL):
        return Verdict(False, f"the mean of {values} is 0.70, got {mean}.")
    if math.isclose(std, population, rel_tol=RTOL):
        return Verdict(False, "that is the population std (ddof=0); over a few seeds use the sample std (ddof=1).")
    if math.isclose(std, sample**2, rel_tol=RTOL) or math.isclose(std, population**2, rel_tol=RTOL):
        return Verdict(False, "that is the variance: take its square root.")
    if math.isclose(std, sample / math.sqrt(len(values)), rel_tol=RTOL):
        return Verdict(False, "that is the standard error of the mean (std / sqrt(n)); report the std itself.")
    if not math.isclose(std, sample, rel_tol=RTOL):
        return Verdict(False, f"expected std {sample:.4f}, got {std}.")
    one, err = _call(fn, [0.7])
    if err:
        return Verdict(False, f"with a single seed: {err}")
    try:
        one_std = float(one[1])
    except (TypeError, ValueError, IndexError):
        return Verdict(False, "with a single seed, still return a pair (mean, nan).")
    if not math.isnan(one_std):
        return Verdict(
            False,
            "right for three seeds; with a single seed there is no spread to measure: the sample "
            "std is undefined, return float('nan') (tables print it as n/a), not "
            f"{one_std}.",
        )
    return Verdict(True, "mean and sample standard deviation over seeds (undefined for one seed).")


GRADERS: dict[str, Callable[[Callable], Verdict]] = {
    "class_shares": _grade_class_shares,
    "alignment": _grade_alignment,
    "over_expectation_mask": _grade_over_expectation_mask,
    "mean_dice": _grade_mean_dice,
    "mean_std": _grade_mean_std,
}
CHECKS = GRADERS  # the names of the code exercises


def _print(verdict: Verdict) -> None:
    print(("✔ correct: " if verdict.ok else "✘ not yet: ") + verdict.message)


def grade(name: str, fn: Callable) -> Verdict:
    """Run the student's ``fn`` for exercise ``name`` and return the verdict (no printing)."""
    return GRADERS[name](fn)


def check(name: str, fn: Callable) -> None:
    """Run the student's ``fn`` for exercise ``name``; print a verdict and a hint. Returns None (nothing echoed)."""
    _print(grade(name, fn))


# --------------------------------------------------------------------------- predictions
@dataclass
class Prediction:
    """A "predict, then move the control" question.

    ``answer(explorer)`` computes the right choice from the explorer's own data (through
    ``explorer.data_at``) and returns ``(choices accepted, explanation)``; an empty tuple
    means the question has no answer for this run (any guess passes, the explanation
    says why)."""

    question: str
    choices: tuple[str, ...]
    answer: Callable[[Any], tuple[tuple[str, ...], str]]


def _ratio_band(ratio: float) -> str:
    return "a" if ratio < 3 else ("b" if ratio <= 30 else "c")


def _answer_rv_shrink(explorer) -> tuple[tuple[str, ...], str]:
    low = explorer.data_at(imbalance=0.0)["shares"]["RV"]
    high = explorer.data_at(imbalance=1.0)["shares"]["RV"]
    ratio = low / high if high > 0 else math.inf
    return (_ratio_band(ratio),), (
        f"the RV covers {low:.2%} of the pixels at imbalance 0 and {high:.2%} at imbalance 1: {ratio:.1f} times less."
    )


def _answer_alpha_lesion(explorer) -> tuple[tuple[str, ...], str]:
    n = len(explorer.data["aligned"])
    before = explorer.data_at(alpha=0.0)["shares_after"][2]
    after = explorer.data_at(alpha=1.0)["shares_after"][2]
    word = "same" if abs(after - before) < 0.5 / n else ("up" if after > before else "down")
    name = explorer.data.get("class_names", ["", "", "the third class"])[2]
    return (word,), (
        f"the share of pixels whose pseudo-label is {name} goes from {before:.1%} at alpha 0 to {after:.1%} at alpha 1."
    )


def _answer_filter_foreground(explorer) -> tuple[tuple[str, ...], str]:
    threshold = explorer.values()["threshold"]
    fixed = explorer.data_at(filter="fixed")["kept_foreground"]
    oe = explorer.data_at(filter="over_expectation")["kept_foreground"]
    if math.isnan(fixed) or math.isnan(oe):
        return (), "no pixel has a foreground pseudo-label in this run, so neither filter keeps any."
    told = (
        f"with the fixed threshold {threshold:.2f}, {fixed:.1%} of the foreground pseudo-labels are kept; "
        f"over-expectation keeps {oe:.1%}."
    )
    if math.isclose(fixed, oe, abs_tol=1e-9):
        return ("fixed", "over_expectation"), told + " Both keep the same share here."
    return (("fixed",) if fixed > oe else ("over_expectation",)), told


def _answer_rampup(explorer) -> tuple[tuple[str, ...], str]:
    steps = explorer.data["steps"]
    final = explorer.data_at(step=steps[-1])["lambda_final"]
    if final is None or final <= 0:
        return (), "this run has no unsupervised loss (λ is not logged): run it with a semi-supervised method."
    target = steps[-1] / 4
    quarter = min(steps, key=lambda s: abs(s - target))
    value = explorer.data_at(step=quarter)["lambda"]
    ratio = value / final
    band = "a" if ratio < 0.25 else ("b" if ratio <= 0.75 else "c")
    return (band,), (
        f"at step {quarter} (about a quarter of the {steps[-1]} steps) λ is {value:.3f}, "
        f"{ratio:.0%} of its final value {final:.3f}."
    )


def _answer_finding(explorer) -> tuple[tuple[str, ...], str]:
    amounts = list(explorer.controls["labeled"].options)
    smallest = amounts[0]
    methods = explorer.data_at(labeled=smallest)["methods"]
    if len(methods) < 2:
        return (), f"only one method was run with {smallest} labeled: there is nothing to compare."
    (m1, s1), (m2, s2) = sorted(methods.items(), key=lambda kv: -kv[1]["mean"])[:2]
    diff = s1["mean"] - s2["mean"]
    told = f"with {smallest} labeled, {m1} has {s1['mean']:.3f} and {m2} {s2['mean']:.3f} (difference {diff:.3f})"
    if s1["std"] is None or s2["std"] is None:
        return ("cannot tell",), told + "; one of them has a single seed, so there is no spread to compare with."
    spread = max(s1["std"], s2["std"])
    return (("finding",) if diff > spread else ("noise",)), told + f"; the larger of their std is {spread:.3f}."


PREDICTIONS: dict[str, Prediction] = {
    "rv_shrink": Prediction(
        "How many times smaller is the RV's pixel share at imbalance 1 than at imbalance 0? "
        "'a' less than 3 times, 'b' 3 to 30 times, 'c' more than 30 times",
        ("a", "b", "c"),
        _answer_rv_shrink,
    ),
    "alpha_lesion": Prediction(
        "When alpha goes from 0 to 1, does the share of 'lesion' pseudo-labels go 'up', 'down' or stay the 'same'?",
        ("up", "down", "same"),
        _answer_alpha_lesion,
    ),
    "filter_foreground": Prediction(
        "Which filter keeps a larger share of the foreground pseudo-labels: 'fixed' (at the threshold on the slider) "
        "or 'over_expectation'?",
        ("fixed", "over_expectation"),
        _answer_filter_foreground,
    ),
    "rampup": Prediction(
        "At a quarter of the training steps, how large is λ(t) compared with its final value? "
        "'a' less than a quarter, 'b' a quarter to three quarters, 'c' more than three quarters",
        ("a", "b", "c"),
        _answer_rampup,
    ),
    "finding": Prediction(
        "At the smallest labeled amount, is the difference between the two best methods a 'finding' (larger than "
        "the larger of their standard deviations), 'noise' (not larger), or can you not tell ('cannot tell')?",
        ("finding", "noise", "cannot tell"),
        _answer_finding,
    ),
}


def predicted(name: str, explorer) -> str:
    """The right answer of prediction ``name``, computed from ``explorer`` (for ``solutions=True``)."""
    accepted, _ = PREDICTIONS[name].answer(explorer)
    return accepted[0] if accepted else PREDICTIONS[name].choices[0]


def grade_prediction(name: str, guess: Any, explorer) -> Verdict:
    """Compare a student's ``guess`` with what ``explorer`` shows (no printing)."""
    question = PREDICTIONS[name]
    if guess is None or (isinstance(guess, str) and not guess.strip()):
        return Verdict(False, "not done yet: write your prediction first, then move the control and look.")
    guess = str(guess).strip().strip("'\"").lower().replace(" ", "_")
    choices = {c.lower().replace(" ", "_"): c for c in question.choices}
    if guess not in choices:
        return Verdict(False, f"answer with one of {', '.join(repr(c) for c in question.choices)}.")
    try:
        accepted, why = question.answer(explorer)
    except Exception as exc:  # the explorer cannot answer: say so, never crash the notebook
        return Verdict(False, f"the explorer could not compute the answer ({type(exc).__name__}: {exc}).")
    if not accepted:
        return Verdict(True, f"no right or wrong here: {why}")
    if choices[guess] in accepted:
        return Verdict(True, f"'{choices[guess]}'. {why[0].upper()}{why[1:]}")
    return Verdict(False, f"the figure shows '{accepted[0]}': {why} Move the control to see it.")


def check_prediction(name: str, guess: Any, explorer) -> None:
    """Print whether ``guess`` matches what ``explorer`` shows, and why. Returns None (nothing echoed)."""
    _print(grade_prediction(name, guess, explorer))
