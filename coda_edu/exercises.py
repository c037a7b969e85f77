"""Notebook exercises: reference answers and checks that explain what is wrong.

In a notebook the student writes a small function; ``check(name, fn)`` runs it on
prepared inputs, compares it with coda-edu's own implementation and prints a verdict
with a hint. It never raises, so a notebook whose exercise is not done yet still
runs to the end. ``solution(name)`` returns the reference answer (the notebooks use it
when executed with ``solutions=True``, as CI does).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from .method.alignment import align_distribution, class_shares
from .method.filtering import class_expectations, over_expectation_mask


# --------------------------------------------------------------------------- reference answers
def _class_shares(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    counts = torch.bincount(labels.reshape(-1).long(), minlength=num_classes).float()
    return counts / counts.sum()


def _align(probs: torch.Tensor, pi_l: torch.Tensor, pi_u: torch.Tensor, alpha: float) -> torch.Tensor:
    weights = (pi_l / pi_u) ** alpha                      # one weight per class
    scaled = probs * weights.view(1, -1, 1, 1)            # re-weight every pixel's prediction
    return scaled / scaled.sum(dim=1, keepdim=True)       # and make it a distribution again


def _over_expectation_mask(confidence: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    keep = torch.zeros_like(confidence, dtype=torch.bool)
    for k in range(num_classes):
        in_class = labels == k
        if in_class.any():
            expected = confidence[in_class].mean()        # the class's expected confidence
            keep |= in_class & (confidence >= expected)
    return keep


def _mean_dice(records: list[dict], model: str, split: str = "test", checkpoint: str = "best") -> float:
    for r in records:
        if r["model"] == model and r["split"] == split and r["checkpoint"] == checkpoint and r["class"] == "mean":
            return r["dice"]
    raise KeyError(model)


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


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
def _report(ok: bool, message: str) -> bool:
    print(("✔ correct: " if ok else "✘ not yet: ") + message)
    return ok


def _call(fn: Callable, *args):
    try:
        return fn(*args), None
    except NotImplementedError:
        return None, "not done yet: replace the `raise NotImplementedError` with your code."
    except Exception as exc:  # a student's bug: explain, never crash the notebook
        return None, f"your function raised {type(exc).__name__}: {exc}"


def _check_class_shares(fn) -> bool:
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (2, 16, 16), generator=g)
    labels[labels == 3] = 0  # class 3 absent: its share must be 0
    out, err = _call(fn, labels, 4)
    if err:
        return _report(False, err)
    out = torch.as_tensor(out, dtype=torch.float64).reshape(-1)
    expected = class_shares(labels, 4).double()
    if out.numel() != 4:
        return _report(False, f"return one share per class (4 values here, also for absent classes), got {out.numel()}.")
    if torch.allclose(out, expected, atol=1e-6):
        return _report(True, "your shares match coda_edu.method.class_shares.")
    if math.isclose(float(out.sum()), labels.numel(), rel_tol=1e-6):
        return _report(False, "these are pixel counts: divide by the number of pixels so the shares sum to 1.")
    if not math.isclose(float(out.sum()), 1.0, rel_tol=1e-4):
        return _report(False, f"shares must sum to 1, yours sum to {float(out.sum()):.4f}.")
    return _report(False, f"expected {expected.numpy().round(4)}, got {out.numpy().round(4)}.")


def _check_alignment(fn) -> bool:
    g = torch.Generator().manual_seed(1)
    probs = torch.softmax(torch.randn(2, 3, 4, 4, generator=g) * 2, dim=1)
    pi_l = torch.tensor([0.6, 0.3, 0.1])
    pi_u = torch.tensor([0.8, 0.15, 0.05])
    out, err = _call(fn, probs, pi_l, pi_u, 1.0)
    if err:
        return _report(False, err)
    out = torch.as_tensor(out, dtype=torch.float32)
    if out.shape != probs.shape:
        return _report(False, f"keep the shape (N, C, H, W) = {tuple(probs.shape)}, got {tuple(out.shape)}.")
    expected = align_distribution(probs, pi_l, pi_u, 1.0, eps=0.0)
    if not torch.allclose(out.sum(1), torch.ones(2, 4, 4), atol=1e-4):
        unnorm = probs * (pi_l / pi_u).view(1, -1, 1, 1)
        if torch.allclose(out, unnorm, atol=1e-5):
            return _report(False, "the weighting is right; now divide by the sum over classes so each pixel sums to 1.")
        return _report(False, "each pixel's aligned probabilities must sum to 1 over the classes (dim=1).")
    inverted = align_distribution(probs, pi_u, pi_l, 1.0, eps=0.0)
    if torch.allclose(out, inverted, atol=1e-5):
        return _report(False, "the ratio is upside down: weight class c by pi_l(c) / pi_u(c).")
    if not torch.allclose(out, expected, atol=1e-5):
        return _report(False, "the result differs from coda_edu.method.align_distribution; check the weights and the normalisation.")
    half, _ = _call(fn, probs, pi_l, pi_u, 0.5)
    if half is None or not torch.allclose(torch.as_tensor(half), align_distribution(probs, pi_l, pi_u, 0.5, eps=0.0), atol=1e-5):
        return _report(False, "correct for alpha = 1 but not for alpha = 0.5: raise the ratio to the power alpha.")
    return _report(True, "your alignment matches coda_edu.method.align_distribution (alpha 1 and 0.5).")


def _check_over_expectation_mask(fn) -> bool:
    confidence = torch.tensor([[[0.5, 0.75, 1.0, 0.5], [0.625, 0.875, 0.75, 0.75]]])
    labels = torch.tensor([[[0, 0, 0, 1], [1, 2, 1, 1]]])
    expected = over_expectation_mask(confidence, labels, class_expectations(confidence, labels, 3))
    out, err = _call(fn, confidence, labels, 3)
    if err:
        return _report(False, err)
    out = torch.as_tensor(out).bool()
    if out.shape != expected.shape:
        return _report(False, f"return a boolean mask shaped like the confidence {tuple(confidence.shape)}.")
    if torch.equal(out, expected):
        return _report(True, "your mask keeps exactly the pixels at or above their class's expected confidence.")
    strict = confidence > class_expectations(confidence, labels, 3)[labels]
    if torch.equal(out, strict):
        return _report(False, "use >= : a pixel exactly at its class's expectation is kept.")
    global_mean = confidence >= confidence.mean()
    if torch.equal(out, global_mean):
        return _report(False, "the expectation is per class: compare with the mean confidence of the pixels of the same pseudo-class.")
    return _report(False, f"expected {expected.int().tolist()}, got {out.int().tolist()}.")


def _check_mean_dice(fn) -> bool:
    records = [{"split": "test", "checkpoint": "best", "model": m, "class": c, "dice": v}
               for m, c, v in (("A", "mean", 0.7), ("B", "mean", 0.8), ("ensemble", "mean", 0.82), ("A", "RV", 0.5))]
    records.append({"split": "val", "checkpoint": "best", "model": "A", "class": "mean", "dice": 0.1})
    records.append({"split": "test", "checkpoint": "last", "model": "A", "class": "mean", "dice": 0.2})
    out, err = _call(fn, records, "A")
    if err:
        return _report(False, err)
    if out == 0.7:
        return _report(True, "you picked the test / best / mean record of model A.")
    hints = {0.1: "that is the validation split: filter on split == 'test'.", 0.2: "that is the last checkpoint: filter on checkpoint == 'best'.",
             0.5: "that is the RV class: filter on class == 'mean'."}
    return _report(False, hints.get(out, f"expected 0.7, got {out!r}."))


def _check_mean_std(fn) -> bool:
    values = [0.70, 0.74, 0.66]
    out, err = _call(fn, values)
    if err:
        return _report(False, err)
    try:
        mean, std = out
    except (TypeError, ValueError):
        return _report(False, "return a pair (mean, std).")
    if not math.isclose(mean, 0.70, abs_tol=1e-9):
        return _report(False, f"the mean of {values} is 0.70, got {mean}.")
    if math.isclose(std, float(np.std(values)), abs_tol=1e-9):
        return _report(False, "that is the population std (ddof=0); over a few seeds use the sample std (ddof=1).")
    if math.isclose(std, float(np.std(values, ddof=1)), abs_tol=1e-9):
        return _report(True, "mean and sample standard deviation over seeds.")
    return _report(False, f"expected std {np.std(values, ddof=1):.4f}, got {std}.")


CHECKS: dict[str, Callable] = {
    "class_shares": _check_class_shares,
    "alignment": _check_alignment,
    "over_expectation_mask": _check_over_expectation_mask,
    "mean_dice": _check_mean_dice,
    "mean_std": _check_mean_std,
}


def check(name: str, fn: Callable) -> bool:
    """Run the student's ``fn`` for exercise ``name``; print a verdict and a hint; return whether it is right."""
    return CHECKS[name](fn)
