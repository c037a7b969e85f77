"""Notebook exercises: reference answers and checks that explain what is wrong.

Two kinds of exercise:

- **code**: the student writes a small function; ``check(name, fn)`` runs it on prepared
  inputs, compares it with coda-edu's own implementation and prints a verdict with a
  hint. The inputs are chosen so that each typical mistake gives a different result
  from the right answer (and gets its own hint); float answers are compared with a
  relative tolerance that accepts float32 arithmetic. Every call gets fresh copies of
  the inputs (a function that works in place, ``probs.mul_(w)``, is graded on what it
  returns, and the reference is computed on the untouched inputs), and where the order of
  the inputs could hide a mistake (the records of ``mean_dice``) the function is called
  with more than one order.
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

from coda_edu.method.alignment import align_distribution, class_shares
from coda_edu.method.filtering import class_expectations, over_expectation_mask

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


def _mean_std(values: list[float]) -> tuple[float, Optional[float]]:
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), (float(arr.std(ddof=1)) if len(arr) > 1 else None)  # None: no spread (one seed)


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
def _call(fn: Callable, *args, hints: Optional[Callable[[Exception], Optional[str]]] = None):
    """``fn`` on deep copies of ``args``: ``(result, None)``, or ``(None, message)`` when it raises
    (``hints`` may name the mistake behind an exception)."""
    import copy
    import warnings

    args = copy.deepcopy(args)  # the student's function may change its inputs in place
    try:
        with warnings.catch_warnings():  # e.g. numpy's "degrees of freedom <= 0" for one seed: expected here
            warnings.simplefilter("ignore")
            return fn(*args), None
    except NotImplementedError:
        return None, "not done yet: replace the `raise NotImplementedError` with your code."
    except Exception as exc:  # a student's bug: explain, never crash the notebook
        named = hints(exc) if hints is not None else None
        return None, named or f"your function raised {type(exc).__name__}: {exc}"


def _tensor(out) -> Optional[torch.Tensor]:
    try:
        return torch.as_tensor(
            np.asarray(out.detach().cpu() if isinstance(out, torch.Tensor) else out, dtype=np.float64)
        )
    except (TypeError, ValueError):
        return None


def _class_shares_hint(exc: Exception) -> Optional[str]:
    text = str(exc)
    if isinstance(exc, TypeError) and ("method" in text or "builtin_function" in text):
        return "`labels.size` is a method in PyTorch (in NumPy it is a number): count the pixels with `labels.numel()`."
    if isinstance(exc, TypeError) and "Size" in text:
        return "`labels.size()` is the shape, not the number of pixels: count them with `labels.numel()`."
    return None


def _grade_class_shares(fn) -> Verdict:
    # 2 images of 16x16 with 4 classes; class 3 does not occur (its share must be 0)
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (2, 16, 16), generator=g)
    labels[labels == 3] = 0
    out, err = _call(fn, labels, 4, hints=_class_shares_hint)
    if err:
        return Verdict(False, err)
    out = _tensor(out)
    if out is None:
        return Verdict(False, "return a tensor (or array) of numbers, one share per class.")
    out = out.reshape(-1)
    expected = class_shares(labels, 4).double()
    counts = torch.bincount(labels.reshape(-1), minlength=4).double()
    if out.numel() == 3:
        if _close(out, expected[1:]) or _close(out, counts[1:] / counts[1:].sum()):
            return Verdict(
                False, "you left out the background (class 0): return one share for every class, 0 included."
            )
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
    if _close(out, counts):
        return Verdict(False, "these are pixel counts: divide by the number of pixels so the shares sum to 1.")
    if _close(out, counts / counts[1:].sum()) or _close(out[1:], counts[1:] / counts[1:].sum()):
        return Verdict(False, "divide by the number of *all* pixels (background included), not the foreground ones.")
    if _close(out, counts / 4):
        return Verdict(False, "divide by the number of pixels, not by the number of classes.")
    if _close(out, counts / len(labels)):
        return Verdict(
            False,
            f"`len(labels)` is the size of the first dimension only ({len(labels)} images here), not the "
            "number of pixels: divide by `labels.numel()`.",
        )
    if _close(out[1:], expected[1:]) and not _close(out[0], expected[0]):
        return Verdict(False, "the background's share (class 0) is wrong: it is a class like the others.")
    if not math.isclose(float(out.sum()), 1.0, rel_tol=1e-4):
        return Verdict(False, f"shares must sum to 1, yours sum to {float(out.sum()):.4f}.")
    return Verdict(False, f"expected {expected.numpy().round(4)}, got {out.numpy().round(4)}.")


#: the epsilon of coda_edu.method.align_distribution (method.eps); an answer with it or without one passes
ALIGN_EPS = 1e-6


def _alignment_hint(exc: Exception) -> Optional[str]:
    text = str(exc)
    if isinstance(exc, RuntimeError) and "must match the size of tensor" in text:
        return (
            "a (C,) vector multiplies the *last* dimension (W) of an (N, C, H, W) tensor: reshape the weights "
            "to (1, C, 1, 1) with `weights.view(1, -1, 1, 1)` so that they multiply the class dimension."
        )
    return None


def _grade_alignment(fn) -> Verdict:
    g = torch.Generator().manual_seed(1)
    probs = torch.softmax(torch.randn(2, 3, 4, 4, generator=g) * 2, dim=1)  # W = 4 differs from C = 3
    square = torch.softmax(torch.randn(1, 3, 3, 3, generator=g) * 2, dim=1)  # W = C: a missing view does not raise
    pi_l = torch.tensor([0.6, 0.3, 0.1])
    pi_u = torch.tensor([0.8, 0.15, 0.05])

    def ref(p, a, b, alpha, eps=0.0, eps_num=None):
        num = a + (eps if eps_num is None else eps_num)
        w = (num.double() / (b + eps).double()) ** alpha
        out = p.double() * w.view(1, -1, 1, 1)
        return out / out.sum(1, keepdim=True)

    def right(out, p, alpha):  # the library's alignment, without or with its epsilon
        return any(_close(out, align_distribution(p, pi_l, pi_u, alpha, eps=e).double()) for e in (0.0, ALIGN_EPS))

    out, err = _call(fn, probs, pi_l, pi_u, 1.0, hints=_alignment_hint)
    if err:
        return Verdict(False, err)
    out = _tensor(out)
    if out is None:
        return Verdict(False, "return a tensor shaped like probs.")
    if tuple(out.shape) != tuple(probs.shape):
        return Verdict(False, f"keep the shape (N, C, H, W) = {tuple(probs.shape)}, got {tuple(out.shape)}.")
    if right(out, probs, 1.0):
        half, err = _call(fn, probs, pi_l, pi_u, 0.5, hints=_alignment_hint)
        half = None if err else _tensor(half)
        if half is None or not right(half, probs, 0.5):
            if half is not None and right(half, probs, 1.0):
                return Verdict(
                    False,
                    "correct for alpha = 1, but alpha = 0.5 gives the same result: raise the ratio "
                    "to the power alpha (a factor alpha on every weight cancels in the normalisation).",
                )
            return Verdict(
                False, "correct for alpha = 1 but not for alpha = 0.5: raise the ratio pi_l / pi_u to the power alpha."
            )
        sq, err = _call(fn, square, pi_l, pi_u, 1.0, hints=_alignment_hint)
        sq = None if err else _tensor(sq)
        if sq is None or not right(sq, square, 1.0):
            wrong = square.double() * (pi_l / pi_u).double()  # the weights broadcast against the last dimension
            if sq is not None and _close(sq, wrong / wrong.sum(1, keepdim=True)):
                return Verdict(
                    False,
                    "right for this input, but on a 3x3 image the weights multiply the width, not the classes: "
                    "reshape them to (1, C, 1, 1) with `weights.view(1, -1, 1, 1)`.",
                )
            return Verdict(False, "right for one input but not for a (1, 3, 3, 3) one: " + (err or "check the shapes."))
        return Verdict(True, "your alignment matches coda_edu.method.align_distribution (alpha 1 and 0.5).")
    if not _close(out.sum(1), torch.ones(2, 4, 4)):
        if _close(out, probs.double() * (pi_l / pi_u).double().view(1, -1, 1, 1)):
            return Verdict(False, "the weighting is right; now divide by the sum over classes so each pixel sums to 1.")
        return Verdict(False, "each pixel's aligned probabilities must sum to 1 over the classes (dim=1).")
    if _close(out, ref(probs, pi_u, pi_l, 1.0)):
        return Verdict(False, "the ratio is upside down: weight class c by pi_l(c) / pi_u(c).")
    for eps in (1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0):
        for where, kw in (("both", {"eps": eps}), ("pi_u", {"eps": eps, "eps_num": 0.0}), ("pi_l", {"eps_num": eps})):
            if _close(out, ref(probs, pi_l, pi_u, 1.0, **kw)):
                added = "to pi_l and pi_u" if where == "both" else f"to {where} only"
                return Verdict(
                    False,
                    f"your result matches epsilon = {eps:g} added {added}: epsilon only guards against a zero "
                    f"marginal, so it must be tiny (coda-edu uses {ALIGN_EPS:g}, or leave it out) and go into "
                    "both pi_l and pi_u.",
                )
    return Verdict(
        False, "the result differs from coda_edu.method.align_distribution; check the weights and the normalisation."
    )


# Confidences and pseudo-labels of two 2x4 images. The per-class expectations (0.87, 0.614,
# 0.625) differ from the global mean, from the per-image means and from the class medians,
# a class-2 pixel sits exactly at its class's expectation, and class 3 is absent: each
# typical mistake keeps another set of pixels (tests/test_widgets_exercises.py checks it).
_OE_CONFIDENCE = torch.tensor(
    [[[1.0, 0.9, 0.5, 0.75], [0.625, 0.7, 0.3, 0.5]], [[0.6, 0.98, 0.75, 0.62], [0.8, 0.5, 0.75, 0.65]]]
)
_OE_LABELS = torch.tensor([[[0, 0, 2, 2], [2, 1, 1, 2]], [[0, 0, 2, 1], [1, 2, 2, 1]]])


def _class_loop(confidence, labels, num_classes, statistic, classes=None, compare=None) -> torch.Tensor:
    """Keep a pixel when ``compare(confidence, statistic(its class's confidences))``: the shape of every answer."""
    compare = compare or (lambda a, b: a >= b)
    keep = torch.zeros_like(confidence, dtype=torch.bool)
    for k in range(num_classes) if classes is None else classes:
        in_class = labels == k
        if in_class.any():
            keep |= in_class & compare(confidence, statistic(confidence[in_class]))
    return keep


def over_expectation_mistakes(confidence: torch.Tensor, labels: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
    """The masks of the typical wrong answers, by their hint (the grader's fixture makes them all differ)."""
    expectations = class_expectations(confidence, labels, k)
    return {
        "the expectation is per class: compare each pixel with the mean confidence of the pixels with the same "
        "pseudo-label, not with the mean over all pixels.": confidence >= confidence.mean(),
        "use >= : a pixel exactly at its class's expectation is kept.": confidence > expectations[labels],
        "the expectation of a class is its mean confidence over the whole batch, not per image.": torch.stack(
            [_class_loop(c[None], lab[None], k, torch.mean)[0] for c, lab in zip(confidence, labels)]
        ),
        "keep the pixels at or *above* the expectation, not below.": confidence <= expectations[labels],
        "that is the median of the class's confidences: the expectation is their mean.": _class_loop(
            confidence, labels, k, torch.median
        ),
        "that is the (interpolated) median of the class's confidences: the expectation is their mean.": _class_loop(
            confidence, labels, k, lambda v: torch.quantile(v.float(), 0.5)
        ),
        "the background (class 0) is a class too: its pixels at or above its expectation are kept.": _class_loop(
            confidence, labels, k, torch.mean, classes=range(1, k)
        ),
        "that keeps only each class's most confident pixels: compare with the class's mean, not its maximum.": (
            _class_loop(confidence, labels, k, torch.max)
        ),
    }


def _grade_over_expectation_mask(fn) -> Verdict:
    confidence, labels, k = _OE_CONFIDENCE, _OE_LABELS, 4
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
    for hint, mask in over_expectation_mistakes(confidence, labels, k).items():
        if torch.equal(out, mask):
            return Verdict(False, hint)
    return Verdict(False, f"expected {expected.int().tolist()}, got {out.int().tolist()}.")


def _dice_records() -> list[dict]:
    """eval.json-like records, one per (split, checkpoint, model, class), each with its own Dice value,
    so that the value a function returns names the record it picked."""
    rows, value = [], 0.11
    for split in ("val", "test"):
        for checkpoint in ("last", "best"):
            for model in ("A", "B", "ensemble"):
                for cls in ("RV", "mean"):
                    rows.append({"split": split, "checkpoint": checkpoint, "model": model, "class": cls})
    order = [5, 17, 23, 0, 21, 9, 14, 2, 19, 11, 7, 22, 16, 3, 12, 20, 1, 8, 18, 6, 15, 10, 4, 13]
    out = []
    for i in order:  # a fixed shuffle: no filter is implied by the position of a record
        out.append({**rows[i], "dice": round(value, 2)})
        value += 0.03
    return out


_FILTER_HINTS = {
    "split": "filter on split == 'test'",
    "checkpoint": "filter on checkpoint == 'best'",
    "model": "filter on the model you were asked for",
    "class": "filter on class == 'mean'",
}


def _grade_mean_dice(fn) -> Verdict:
    records = _dice_records()
    orders = {"as given": records, "in reverse order": list(reversed(records))}
    for model in ("A", "ensemble"):
        right = _mean_dice(records, model)
        for order, given in orders.items():
            out, err = _call(fn, given, model)
            if err:
                return Verdict(False, err)
            try:
                value = float(out)
            except (TypeError, ValueError):
                return Verdict(False, f"return one number (the Dice), got {type(out).__name__}.")
            if math.isclose(value, right, rel_tol=RTOL):
                continue
            picked = next((r for r in records if math.isclose(value, r["dice"], rel_tol=RTOL)), None)
            if picked is None:
                return Verdict(False, f"for model '{model}': expected {right}, got {out!r}.")
            want = {"split": "test", "checkpoint": "best", "model": model, "class": "mean"}
            missed = [f for f in want if picked[f] != want[f]]
            which = ", ".join(f"{f} '{picked[f]}'" for f in missed)
            where = "" if order == "as given" else " (with the records in another order: your answer depends on it)"
            return Verdict(
                False,
                f"for model '{model}'{where}: that is the record of {which}: "
                + "; ".join(_FILTER_HINTS[f] for f in missed)
                + ".",
            )
    return Verdict(
        True, "you picked the test / best / mean record of the model asked for, in any order of the records."
    )


def _grade_mean_std(fn) -> Verdict:
    values = [0.58, 0.71, 0.74, 0.69]  # mean 0.68, median 0.70
    out, err = _call(fn, list(values))
    if err:
        return Verdict(False, err)
    try:
        mean, std = (float(v) for v in out)
    except (TypeError, ValueError):
        return Verdict(False, "return a pair (mean, std).")
    true_mean = float(np.mean(values))
    sample, population = float(np.std(values, ddof=1)), float(np.std(values))
    if math.isclose(mean, sample, rel_tol=RTOL) and math.isclose(std, true_mean, rel_tol=RTOL):
        return Verdict(False, "the order is (mean, std), yours is (std, mean).")
    if math.isclose(mean, float(np.median(values)), rel_tol=RTOL):
        return Verdict(False, f"that is the median of {values}; the mean is their sum divided by their number.")
    if not math.isclose(mean, true_mean, rel_tol=RTOL):
        return Verdict(False, f"the mean of {values} is {true_mean:.2f}, got {mean}.")
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
        one_mean, one_std = one
        one_mean = float(one_mean)
    except (TypeError, ValueError):
        return Verdict(False, "with a single seed, still return a pair (mean, None).")
    if one_std is not None:
        try:
            shown = float(one_std)
        except (TypeError, ValueError):
            shown = one_std
        if isinstance(shown, float) and math.isnan(shown):
            return Verdict(
                False,
                "right for several seeds; with a single seed return None as the std, not NaN: None is the "
                "convention of coda_course.analysis.summarize and of 05's table (printed n/a).",
            )
        return Verdict(
            False,
            "right for several seeds; with a single seed there is no spread to measure: the sample std is "
            f"undefined, return None (05's table prints it as n/a), not {shown!r}.",
        )
    if not math.isclose(one_mean, 0.7, rel_tol=RTOL):
        return Verdict(False, f"with a single seed the mean is that seed's value (0.7), got {one_mean}.")
    return Verdict(True, "mean and sample standard deviation over seeds (None for one seed: no spread measured).")


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
    q = explorer.data.get("question") or {}
    if not {"source", "cls", "method", "baseline"} <= set(q):
        return (), "this explorer names no pair of methods to compare."
    data = explorer.data_at(source=q["source"], cls=q["cls"], baseline=q["baseline"])
    p = data["paired"].get(q["method"])
    told = f"in '{q['source']}', on {q['cls']}, {q['method']} − {q['baseline']}"
    if p is None or not p["n"]:
        return ("cannot tell",), told + ": no seed was run with both."
    if p["std"] is None:
        return ("cannot tell",), told + f" is {p['mean']:+.3f} from a single seed: no spread to compare it with."
    word = "finding" if abs(p["mean"]) > p["std"] else "noise"
    return (word,), told + (
        f", paired over {p['n']} seeds: {p['mean']:+.3f} ± {p['std']:.3f} ({p['positive']} of {p['n']} seeds ahead)."
    )


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
        "Is the difference between a method and a baseline on one class, paired by seed, a 'finding' (its mean "
        "larger than its standard deviation over seeds), 'noise' (not larger), or can you not tell ('cannot tell')?",
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
