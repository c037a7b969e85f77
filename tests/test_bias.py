"""The minority bias of pseudo-labels and what the alignment readings do to it (coda_course.bias)."""

import math

import pytest
import torch

from coda_course.bias import READINGS, align_pool, share_bias

CLASSES = ["background", "RV", "LV"]


def biased_pool(seed=0):
    """A pool where class 1 covers 10 % of the pixels but a timid predictor gives it the
    largest probability on only a part of them (under-predicted in the argmax)."""
    g = torch.Generator().manual_seed(seed)
    truth = torch.zeros(16, 24, 24, dtype=torch.long)
    truth[:, 2:10, 2:10] = 2  # 11 % class 2
    truth[:, 12:20, 14:21] = 1  # ~10 % class 1
    logits = torch.randn(16, 3, 24, 24, generator=g) * 0.6
    logits += 2.0 * torch.nn.functional.one_hot(truth, 3).movedim(-1, 1)
    logits[:, 0] += 0.9  # the majority class wins close calls
    logits[:, 1] -= 0.6  # the minority class loses them
    return torch.softmax(logits, 1), truth


def test_share_bias_measures_an_under_predicted_class():
    probs, truth = biased_pool()
    rows = {r["class"]: r for r in share_bias(probs, truth, CLASSES)}
    rv = rows["RV"]
    assert rv["true"] == pytest.approx(float((truth == 1).float().mean()))
    assert rv["share"] < rv["true"] and rv["ratio"] < 0.8
    assert rv["precision"] > 0.9 and rv["recall"] < 0.8  # what is kept is right; much is missed
    assert sum(r["share"] for r in rows.values()) == pytest.approx(1.0)
    assert sum(r["mass"] for r in rows.values()) == pytest.approx(1.0)
    assert rv["dice"] == pytest.approx(2 * rv["precision"] * rv["recall"] / (rv["precision"] + rv["recall"]), rel=1e-6)


def test_hard_readings_reduce_the_bias_on_the_pool():
    probs, truth = biased_pool()
    labels_l = truth[:4]  # the "labeled" part: its label frequencies are the target
    probs_l = probs[:4]
    base = {r["class"]: r for r in share_bias(probs, truth, CLASSES)}["RV"]
    results = {}
    for reading in READINGS:
        aligned = align_pool(reading, probs, probs_l, labels_l)
        assert torch.allclose(aligned.sum(1), torch.ones_like(aligned[:, 0]), atol=1e-5)
        results[reading] = {r["class"]: r for r in share_bias(aligned, truth, CLASSES)}["RV"]
    assert results["none"]["share"] == base["share"]
    for reading in ("hard_counts", "argmax_share"):
        assert abs(results[reading]["share"] - base["true"]) < 0.7 * abs(base["share"] - base["true"])
        assert results[reading]["dice"] > base["dice"]
    assert abs(results["argmax_share"]["ratio"] - 1.0) < 0.05
    # the soft reading barely moves it: its target is the network's own (equally biased) mass
    assert abs(results["predictions"]["share"] - base["share"]) < abs(results["argmax_share"]["share"] - base["share"])


def test_unknown_reading_is_named():
    probs, truth = biased_pool()
    with pytest.raises(ValueError, match="unknown alignment reading 'soft'"):
        align_pool("soft", probs, probs[:2], truth[:2])


def test_share_bias_of_an_absent_class_is_nan_not_zero():
    probs, truth = biased_pool()
    rows = share_bias(probs, torch.zeros_like(truth), CLASSES)
    assert math.isnan(rows[1]["ratio"]) and math.isnan(rows[1]["recall"])
