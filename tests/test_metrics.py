import math

import numpy as np
import pytest
import torch

from coda_edu.metrics import (
    case_metrics,
    confusion_matrix,
    dice_iou,
    nan_summary,
    scores_from_confusion,
    surface_distances,
)


def square(size=20, top=5, left=5, side=6):
    m = np.zeros((size, size), bool)
    m[top : top + side, left : left + side] = True
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


def test_surface_voxels_are_the_mask_minus_its_erosion():
    from coda_edu.metrics import surface_voxels

    m = square(size=10, top=2, left=2, side=4)
    surface = surface_voxels(m)
    assert surface.sum() == 12 and not surface[3:5, 3:5].any()  # a 4x4 square: its ring of 12, no inside
    edge = np.zeros((6, 6), bool)
    edge[:, :2] = True  # touching the border: the array's outside counts as outside the mask
    assert surface_voxels(edge)[:, 0].all() and surface_voxels(edge)[:, 1].all()


def _monai_surface_distances(pred, ref, spacing):
    import warnings

    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    p = torch.from_numpy(pred)[None, None].float()
    g = torch.from_numpy(ref)[None, None].float()
    spacing = None if spacing is None else [float(v) for v in spacing]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hd95 = compute_hausdorff_distance(p, g, include_background=True, percentile=95, spacing=spacing)
        asd = compute_average_surface_distance(p, g, include_background=True, symmetric=True, spacing=spacing)
    return float(hd95.item()), float(asd.item())


@pytest.mark.parametrize("dims", [2, 3])
def test_surface_distances_agree_with_monai_on_random_blobs(dims):
    """The bounding-box distance transform gives MONAI's HD95 and ASD: blobs of every size, some
    touching the array's border, isotropic and anisotropic spacing."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(dims)
    compared = 0
    for trial in range(40):
        shape = tuple(int(n) for n in rng.integers(6, 28 if dims == 3 else 70, size=dims))
        pred = gaussian_filter(rng.random(shape), 1.5) > rng.uniform(0.45, 0.56)
        ref = gaussian_filter(rng.random(shape), 1.5) > rng.uniform(0.45, 0.56)
        if not pred.any() or not ref.any():
            continue
        spacing = None if trial % 3 == 0 else tuple(rng.uniform(0.5, 10.0, size=dims))
        ours = surface_distances(pred, ref, spacing)
        theirs = _monai_surface_distances(pred, ref, spacing)
        assert ours == pytest.approx(theirs, rel=1e-4, abs=1e-4), (trial, shape, spacing)
        compared += 1
    assert compared >= 30


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


def test_missed_structures_are_counted_and_penalised():
    from coda_edu.evaluate import aggregate, format_table
    from coda_edu.metrics import image_diagonal

    ref = np.zeros((2, 20, 20), np.int64)
    ref[0][square()] = 1
    ref[1][square()] = 1
    pred = ref.copy()
    pred[1] = 0  # case 1 misses the structure entirely
    out = case_metrics(pred[:1], ref[:1], ["bg", "one"])
    assert out["one"]["missed"] is False
    assert out["one"]["hd95_pen"] == out["one"]["hd95"] == 0.0
    missed = case_metrics(pred[1:], ref[1:], ["bg", "one"], spacing=(2.0, 1.0, 1.0))
    assert missed["one"]["missed"] is True and math.isnan(missed["one"]["hd95"])
    assert missed["one"]["hd95_pen"] == pytest.approx(image_diagonal((1, 20, 20), (2.0, 1.0, 1.0)))
    assert image_diagonal((3, 4)) == pytest.approx(5.0)
    rows = []
    for model in ("A", "B", "ensemble"):
        for i, p in enumerate((pred[:1], pred[1:])):
            rows.append(
                {"case": i, "model": model, "class": "one", **case_metrics(p, ref[i : i + 1], ["bg", "one"])["one"]}
            )
    rec = next(r for r in aggregate(rows, ["bg", "one"]) if r["model"] == "A" and r["class"] == "one")
    assert rec["n_missed"] == 1 and rec["hd95_n_nan"] == 1
    assert rec["hd95"] == 0.0  # the NaN rule alone flatters the miss ...
    assert rec["hd95_pen"] == pytest.approx(image_diagonal((1, 20, 20)) / 2)  # ... the penalised mean does not
    assert "(1m)" in format_table([r for r in aggregate(rows, ["bg", "one"])], ["bg", "one"], "hd95")


def test_evaluation_resizes_images_like_the_training_pools():
    # Regression (issue 9): evaluation shrank slices without antialiasing while the
    # training pools are antialiased (data.base.resize_slices), a train/test mismatch.
    from coda_edu.data.base import resize_slices
    from coda_edu.device import Precision
    from coda_edu.evaluate import predict_slices

    seen = []

    class Spy(torch.nn.Module):
        def forward(self, x):
            seen.append(x.clone())
            return torch.zeros(x.shape[0], 2, *x.shape[2:])

    rng = np.random.default_rng(0)
    volume = rng.random((1, 2, 96, 96)).astype(np.float32)  # noisy: aliasing shows
    predict_slices([Spy()], volume, (32, 32), torch.device("cpu"), Precision("cpu", None))
    expected, _ = resize_slices(((volume[:, d], None) for d in range(2)), 2, (32, 32), labeled=False)
    assert torch.allclose(seen[0], expected, atol=1e-5)


def test_keep_largest_components_removes_blobs_away_from_the_organ():
    import torch

    from coda_edu.evaluate import keep_largest_components

    pred = torch.zeros(3, 10, 10, dtype=torch.long)
    pred[:, 2:6, 2:6] = 2  # the organ: a class-2 block across all slices
    pred[:, 3:5, 3:5] = 3  # with class 3 inside it
    pred[1, 8:10, 8:10] = 1  # a class-1 blob away from it
    pred[0, 0, 9] = 3  # a stray class-3 voxel
    out = keep_largest_components(pred, 4)
    assert (out[:, 2:6, 2:6] == pred[:, 2:6, 2:6]).all()
    assert int((out == 1).sum()) == 0 and int((out == 3).sum()) == 3 * 4
    # a split class keeps its largest part only; no background map: unchanged
    pred[2, 3:5, 3:5] = 2
    pred[0, 3, 3] = 2
    assert int((keep_largest_components(pred, 4) == 3).sum()) == 4 + 3
    assert torch.equal(keep_largest_components(pred, 4, background=None), pred)


def _largest_components_on_the_whole_map(pred: np.ndarray, num_classes: int, background: int) -> np.ndarray:
    """The rule of keep_largest_components written out on the whole map (no bounding box)."""
    from scipy import ndimage

    def largest(mask):
        parts, count = ndimage.label(mask)
        if count == 0:
            return mask
        sizes = np.bincount(parts.ravel())
        sizes[0] = 0
        return parts == sizes.argmax()

    heart = largest(pred != background)
    out = np.full_like(pred, background)
    for k in range(num_classes):
        if k != background:
            out[largest(heart & (pred == k))] = k
    return out


@pytest.mark.parametrize("shape", [(40, 50), (6, 30, 34)])
def test_keep_largest_components_on_its_bounding_box_equals_the_whole_map(shape):
    from scipy.ndimage import gaussian_filter

    from coda_edu.postprocess import keep_largest_components

    rng = np.random.default_rng(len(shape))
    for trial in range(25):
        field = gaussian_filter(rng.random(shape), 1.2)
        pred = np.digitize(field, np.quantile(field, [0.6, 0.75, 0.9])).astype(np.int64)  # classes 0..3
        if trial % 5 == 0:
            pred[:] = 0  # nothing predicted
        background = int(trial % 2) if trial % 5 else 0  # also a background that is not class 0
        ours = keep_largest_components(torch.from_numpy(pred), 4, background).numpy()
        assert np.array_equal(ours, _largest_components_on_the_whole_map(pred, 4, background)), trial
