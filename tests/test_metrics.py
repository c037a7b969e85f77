import math

import numpy as np
import pytest
import torch

from coda_edu.metrics import case_metrics, confusion_matrix, dice_iou, nan_summary, scores_from_confusion, surface_distances


def square(size=20, top=5, left=5, side=6):
    m = np.zeros((size, size), bool)
    m[top:top + side, left:left + side] = True
    return m


def test_dice_iou_values_and_empty_policy():
    a, b = square(), square(left=8)
    dice, iou = dice_iou(a, b)
    assert dice == pytest.approx(2 * 18 / 72) and iou == pytest.approx(18 / 54)
    assert all(math.isnan(v) for v in dice_iou(np.zeros_like(a), np.zeros_like(a)))
    assert dice_iou(np.zeros_like(a), a) == (0.0, 0.0)


def test_surface_distances_with_spacing_and_empty_masks():
    a, b = square(), square(left=8)
    hd, asd = surface_distances(a, b)
    assert hd == pytest.approx(3.0) and 0 < asd <= 3.0
    hd_mm, _ = surface_distances(a, b, spacing=(1.0, 2.0))
    assert hd_mm == pytest.approx(6.0)
    assert all(math.isnan(v) for v in surface_distances(np.zeros_like(a), b))
    assert all(math.isnan(v) for v in surface_distances(a, np.zeros_like(a)))
    assert surface_distances(a, a) == (0.0, 0.0)


def test_case_metrics_flags_empty_masks():
    ref = np.zeros((2, 20, 20), np.int64)
    ref[0][square()] = 1
    pred = ref.copy()
    pred[1][square()] = 2  # class 2 predicted where the reference has none
    out = case_metrics(pred, ref, ["bg", "one", "two"])
    assert out["one"]["dice"] == 1.0 and out["one"]["hd95"] == 0.0
    assert out["two"]["dice"] == 0.0 and math.isnan(out["two"]["hd95"])
    assert out["two"]["empty_ref"] and not out["two"]["empty_pred"]


def test_confusion_matrix_and_scores():
    ref = torch.tensor([0, 0, 1, 1, 2, 255])
    pred = torch.tensor([0, 1, 1, 1, 0, 2])
    cm = confusion_matrix(pred, ref, 3, ignore_index=255)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    scores = scores_from_confusion(cm)
    assert scores["iou"][1] == pytest.approx(2 / 3) and scores["iou"][2] == 0.0


def test_nan_summary_counts():
    s = nan_summary([1.0, float("nan"), 3.0])
    assert s == {"mean": 2.0, "std": 1.0, "n": 2, "n_nan": 1}
