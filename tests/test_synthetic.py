import numpy as np
import pytest

from coda_edu.config import load_config
from coda_edu.data import load_dataset
from coda_edu.data.synthetic import generate_phantoms, pixel_class_shares


def test_phantoms_are_seeded_and_labelled():
    a_img, a_lab = generate_phantoms(4, 6, 48, seed=3)
    b_img, b_lab = generate_phantoms(4, 6, 48, seed=3)
    c_img, _ = generate_phantoms(4, 6, 48, seed=4)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_lab, b_lab)
    assert not np.array_equal(a_img, c_img)
    assert a_img.shape == (4, 6, 48, 48) and a_img.dtype == np.float32
    assert a_img.min() >= 0 and a_img.max() <= 1
    assert set(np.unique(a_lab)) == {0, 1, 2, 3}


def test_structures_are_cardiac_like():
    img, lab = generate_phantoms(6, 8, 64, imbalance=0.3, seed=0)
    # LV blood is brighter than the myocardium around it
    assert img[lab == 3].mean() > img[lab == 2].mean() + 0.2
    # basal slices show the RV, the most apical ones do not (an empty-reference case)
    assert (lab[:, 0] == 1).any(axis=(1, 2)).all()
    assert not (lab[:, -1] == 1).any()
    # the LV shrinks towards the apex
    lv = (lab == 3).sum(axis=(2, 3)).mean(0)
    assert lv[0] > lv[-1]


def test_imbalance_knob_shrinks_the_foreground():
    shares = [pixel_class_shares(generate_phantoms(10, 6, 64, imbalance=k, seed=1)[1], 4) for k in (0.0, 0.5, 1.0)]
    background = [s[0] for s in shares]
    assert background[0] < background[1] < background[2]
    rv_to_lv = [s[1] / s[3] for s in shares]
    assert rv_to_lv[0] > rv_to_lv[2]


def test_rare_class_is_rare():
    _, lab = generate_phantoms(20, 8, 64, rare_class=True, seed=2)
    shares = pixel_class_shares(lab, 5)
    assert 0 < shares[4] < 0.2 * shares[2]


def test_split_by_patient(tiny_config):
    data = load_dataset(tiny_config)
    labeled, unlabeled = set(data.labeled.ids), set(data.unlabeled.ids)
    val, test = {c.case_id for c in data.val}, {c.case_id for c in data.test}
    assert len(labeled) == 2
    for a, b in [
        (labeled, unlabeled),
        (labeled, val),
        (labeled, test),
        (unlabeled, val),
        (unlabeled, test),
        (val, test),
    ]:
        assert not a & b
    assert len(data.labeled) == 2 * 4  # slices of the labeled patients
    assert data.val[0].image.shape == (1, 4, 32, 32)
    assert data.protocol["labeled_cases"] == sorted(labeled)


def test_random_labeled_selection_is_seeded():
    from tests.conftest import tiny_overrides

    a = load_dataset(load_config(None, tiny_overrides(**{"data.labeled_selection": "random", "seed": 1})))
    b = load_dataset(load_config(None, tiny_overrides(**{"data.labeled_selection": "random", "seed": 1})))
    assert a.protocol["labeled_cases"] == b.protocol["labeled_cases"]


def test_volumetric_variant():
    from tests.conftest import tiny_overrides

    cfg = load_config(None, tiny_overrides(**{"data.name": "synthetic3d", "data.synthetic.slices_per_patient": 8}))
    data = load_dataset(cfg)
    assert data.spatial_dims == 3 and data.eval_mode == "volume"
    x, y = data.labeled.batch(__import__("torch").tensor([0, 1]))
    assert x.shape == (2, 1, 8, 32, 32) and y.shape == (2, 8, 32, 32)


def test_too_many_labeled_patients_is_a_clear_error():
    from coda_edu.errors import DataError
    from tests.conftest import tiny_overrides

    with pytest.raises(DataError, match="data.labeled_patients"):
        load_dataset(load_config(None, tiny_overrides(**{"data.labeled_patients": 50})))
