import math

import pytest
import torch

from coda_edu.diagnostics import mask_coverage
from coda_edu.method.filtering import (
    class_expectations,
    ema_expectations,
    fixed_threshold_mask,
    image_class_expectations,
    over_expectation_mask,
    restrict_to_classes,
)
from coda_edu.method.readings import OverExpectationOptions, keep_over_expectation


def hand_made():
    # 2 x 4 pixels; class 0 confidences 0.5, 0.75, 1.0 (mean 0.75); class 1 0.5, 0.625 (mean 0.5625);
    # class 2 a single pixel 0.875 (mean 0.875); class 3 absent.
    confidence = torch.tensor([[[0.5, 0.75, 1.0, 0.5], [0.625, 0.875, 0.75, 0.75]]])
    labels = torch.tensor([[[0, 0, 0, 1], [1, 2, 4, 4]]])
    return confidence, labels


def test_class_expectations_are_class_means():
    confidence, labels = hand_made()
    e = class_expectations(confidence, labels, 5)
    assert torch.allclose(e[[0, 1, 2, 4]], torch.tensor([0.75, 0.5625, 0.875, 0.75]))
    assert math.isnan(e[3])


def test_over_expectation_mask_keeps_exactly_pixels_at_or_above_their_class_expectation():
    confidence, labels = hand_made()
    mask = over_expectation_mask(confidence, labels, class_expectations(confidence, labels, 5))
    expected = torch.tensor([[[False, True, True, False], [True, True, True, True]]])
    assert torch.equal(mask, expected)


def test_equal_confidences_are_all_kept_despite_rounding():
    confidence = torch.full((1, 3, 3), 0.1)  # mean of 0.1s is not exactly 0.1 in floating point
    labels = torch.zeros(1, 3, 3, dtype=torch.long)
    assert over_expectation_mask(confidence, labels, class_expectations(confidence, labels, 2)).all()


def test_fixed_threshold_and_minority_classes():
    confidence, labels = hand_made()
    fixed = fixed_threshold_mask(confidence, 0.8)
    assert torch.equal(fixed, confidence >= 0.8)
    # The fixed threshold drops every pixel of class 1, the over-expectation mask keeps its better half.
    assert not fixed[labels == 1].any()
    oe = over_expectation_mask(confidence, labels, class_expectations(confidence, labels, 5))
    assert oe[labels == 1].any()


def test_mask_coverage_per_class():
    confidence, labels = hand_made()
    mask = over_expectation_mask(confidence, labels, class_expectations(confidence, labels, 5))
    cov = mask_coverage(mask, labels, 5)
    assert torch.allclose(cov[[0, 1, 2, 4]], torch.tensor([2 / 3, 0.5, 1.0, 1.0]))
    assert math.isnan(cov[3])


def test_nan_expectation_keeps_pixel_and_ema_handles_absent_classes():
    confidence = torch.tensor([[[0.3, 0.9]]])
    labels = torch.tensor([[[0, 1]]])
    mask = over_expectation_mask(confidence, labels, torch.tensor([float("nan"), 0.95]))
    assert torch.equal(mask, torch.tensor([[[True, False]]]))
    running = torch.tensor([0.5, float("nan"), 0.7])
    batch = torch.tensor([0.9, 0.6, float("nan")])
    out = ema_expectations(running, batch, 0.5)
    assert torch.allclose(out, torch.tensor([0.7, 0.6, 0.7]))


def test_image_expectations_keep_the_better_half_of_a_faint_image():
    # Image 0 has a confident class 1 (0.9, 1.0), image 1 a faint one (0.4, 0.6): against the batch's
    # class-1 mean (0.725) the faint image loses both pixels; against its own mean (0.5) it keeps 0.6.
    confidence = torch.tensor([[[0.9, 1.0, 0.8]], [[0.4, 0.6, 0.7]]])
    labels = torch.tensor([[[1, 1, 0]], [[1, 1, 0]]])
    e = image_class_expectations(confidence, labels, 3)
    assert e.shape == (2, 3)
    assert torch.allclose(e[:, :2], torch.tensor([[0.8, 0.95], [0.7, 0.5]]))
    assert math.isnan(e[0, 2]) and math.isnan(e[1, 2])
    batch = over_expectation_mask(confidence, labels, class_expectations(confidence, labels, 3))
    assert not batch[1][labels[1] == 1].any()
    per_image = over_expectation_mask(confidence, labels, e)
    assert torch.equal(per_image, torch.tensor([[[False, True, True]], [[False, True, True]]]))


def test_filter_restricted_to_the_majority_or_the_minority_classes():
    # Class 0 has the most pixels (3): its verdicts stand (0.5 dropped, 0.75 and 1.0 kept); the dropped
    # class-1 pixel (0.5 < 0.5625) is kept again, and so is every other non-majority pixel.
    confidence, labels = hand_made()
    mask = over_expectation_mask(confidence, labels, class_expectations(confidence, labels, 5))
    majority = restrict_to_classes(mask, labels, 5, "majority")
    assert torch.equal(majority[labels == 0], mask[labels == 0])
    assert majority[labels != 0].all() and not mask[labels != 0].all()
    # the majority is counted, not assumed to be class 0: with class 4 the largest it is the one filtered
    labels_4 = torch.tensor([[[4, 4, 4, 1], [1, 2, 0, 0]]])
    mask_4 = over_expectation_mask(confidence, labels_4, class_expectations(confidence, labels_4, 5))
    kept = restrict_to_classes(mask_4, labels_4, 5, "majority")
    assert torch.equal(kept[labels_4 == 4], mask_4[labels_4 == 4]) and not mask_4[labels_4 == 4].all()
    assert kept[labels_4 != 4].all()
    # 'minority' is the complement: the majority's pixels all kept, every other class keeps the verdict
    minority = restrict_to_classes(mask, labels, 5, "minority")
    assert minority[labels == 0].all() and not mask[labels == 0].all()
    assert torch.equal(minority[labels != 0], mask[labels != 0])
    assert torch.equal(restrict_to_classes(mask, labels, 5, "all"), mask)
    with pytest.raises(ValueError, match="'majority' or 'minority'"):
        restrict_to_classes(mask, labels, 5, "rare")


def test_the_filter_reading_switches_between_all_and_majority():
    confidence, labels = hand_made()
    paper, _ = keep_over_expectation(confidence, labels, 5, None, OverExpectationOptions())
    beyond, _ = keep_over_expectation(confidence, labels, 5, None, OverExpectationOptions(filter_classes="majority"))
    assert torch.equal(paper, over_expectation_mask(confidence, labels, class_expectations(confidence, labels, 5)))
    assert torch.equal(beyond, restrict_to_classes(paper, labels, 5, "majority"))
    assert beyond.sum() > paper.sum()
