"""Loaders on the real data subsets in $CODA_EDU_DATA_DIR (CI: ../shared/data); skipped with a reason elsewhere."""

import numpy as np
import pytest
import torch

from coda_edu.config import load_config
from coda_edu.data import load_dataset
from coda_edu.data.acdc import labeled_patients_of, training_slices
from coda_edu.data.readers import read_list
from tests.conftest import real_data_root


@pytest.fixture(scope="module")
def acdc_root():
    return real_data_root("ACDC")


@pytest.mark.parametrize("n, slices", [(3, 68), (7, 136), (14, 256)])
def test_acdc_first_patients_reproduce_the_common_slice_counts(acdc_root, n, slices):
    cfg = load_config(None, [f"data.labeled_patients={n}"])
    train_cases = read_list(acdc_root / "train.list")
    patients, labeled = labeled_patients_of(cfg, train_cases)
    assert len(patients) == 70 and labeled == patients[:n]
    names, _ = training_slices(acdc_root, train_cases)
    assert sum(name.split("_")[0] in set(labeled) for name in names) == slices
    assert names[:slices] == [nm for nm in names if nm.split("_")[0] in set(labeled)]


def test_acdc_random_selection_is_seeded_and_by_patient(acdc_root):
    train_cases = read_list(acdc_root / "train.list")
    a = labeled_patients_of(
        load_config(None, ["data.labeled_patients=7", "data.labeled_selection=random", "seed=3"]), train_cases
    )[1]
    b = labeled_patients_of(
        load_config(None, ["data.labeled_patients=7", "data.labeled_selection=random", "seed=3"]), train_cases
    )[1]
    c = labeled_patients_of(
        load_config(None, ["data.labeled_patients=7", "data.labeled_selection=random", "seed=4"]), train_cases
    )[1]
    assert a == b and a != c and len(set(a)) == 7


@pytest.fixture(scope="module")
def acdc(acdc_root):
    return load_dataset(load_config(None, ["data.name=acdc", "data.labeled_patients=7", "data.image_size=[64, 64]"]))


def test_acdc_dataset(acdc):
    assert len(acdc.labeled) == 136 and len(acdc.labeled) + len(acdc.unlabeled) == 1312
    assert not set(acdc.labeled.ids) & set(acdc.unlabeled.ids)
    assert acdc.labeled.images.shape[1:] == (1, 64, 64)
    assert len(acdc.val) == 20 and acdc.test == []  # the test patients are held back in the subset
    case = acdc.val[0]
    assert case.image.ndim == 4 and case.label.shape == case.image.shape[1:]
    assert set(np.unique(case.label)) <= {0, 1, 2, 3}
    assert acdc.protocol["splits"]["val"]["sha256"] and acdc.protocol["splits"]["test"]["available"] is False
    assert acdc.unit == "voxel"  # the common h5 layout has no spacing


def test_acdc_short_training_run_and_protocol(acdc, tmp_path):
    from coda_edu.train import train

    cfg = load_config(
        None,
        [
            "data.name=acdc",
            "data.labeled_patients=7",
            "data.image_size=[64, 64]",
            "model.base_width=4",
            "model.levels=4",
            "train.iterations=4",
            "train.val_every=4",
            "train.batch_size=4",
            "train.labeled_batch_size=2",
            "eval.distances=false",
        ],
    )
    result = train(cfg, tmp_path / "acdc", progress=False, log=lambda s: None, data=acdc)
    protocol = result.evaluation["protocol"]
    assert protocol["evaluated"]["splits"] == {"val": 20, "test": "not available"}
    assert protocol["dataset"]["labeled_slices"] == 136
    assert "volume" in protocol["inference"]
    assert {r["split"] for r in result.evaluation["records"]} == {"val"}


def test_la_loader_on_real_files():
    real_data_root("LA")
    cfg = load_config(
        None, ["data.name=la", "data.labeled_patients=4", "data.val_patients=2", "data.image_size=[16, 32, 32]"]
    )
    data = load_dataset(cfg)
    assert len(data.labeled) == 4 and len(data.unlabeled) == 10 and len(data.val) == 2
    assert data.unit == "mm" and data.val[0].spacing == (0.625, 0.625, 0.625)
    case = data.val[0]
    assert case.image.shape[1] == 88  # (Z, Y, X): the 88 slices come first
    assert set(np.unique(case.label)) == {0, 1}
    x, y = data.labeled.batch(torch.tensor([0, 1, 2]), torch.Generator().manual_seed(0))
    assert x.shape == (3, 1, 16, 32, 32) and y.shape == (3, 16, 32, 32)
    assert torch.isfinite(x).all()


def test_la_short_training_with_sliding_window(tmp_path):
    real_data_root("LA")
    from coda_edu.train import train

    cfg = load_config(
        None,
        [
            "data.name=la",
            "data.labeled_patients=2",
            "data.val_patients=1",
            "data.image_size=[32, 48, 48]",
            "model.base_width=2",
            "model.levels=3",
            "train.iterations=2",
            "train.val_every=2",
            "train.batch_size=2",
            "train.labeled_batch_size=1",
            "eval.distances=false",
            "eval.overlap=0",
        ],
    )
    result = train(cfg, tmp_path / "la", progress=False, log=lambda s: None)
    assert "sliding window" in result.evaluation["protocol"]["inference"]
    assert result.evaluation["protocol"]["units"]["hd95"] == "mm"


def test_cadis_real_frame_and_task_groupings(tmp_path):
    from coda_edu.data.cadis import TASKS, read_frame, task_lookup

    root = real_data_root("CaDIS")
    image_path = root / "Video01" / "Images" / "Video1_frame000090.png"
    label_path = root / "Video01" / "Labels" / "Video1_frame000090.png"
    counts = {}
    for task, n_classes in ((1, 8), (2, 17), (3, 25)):
        image, label = read_frame(image_path, label_path, task_lookup(task))
        assert len(TASKS[task]) == n_classes
        assert image.shape == (3, 540, 960) and label.shape == (540, 960)
        assert set(np.unique(label)) <= set(range(n_classes)) | {255}
        counts[task] = int((label == 255).sum())
    assert counts[1] == 0  # task I keeps every id
    from PIL import Image

    raw = np.asarray(Image.open(label_path))
    assert counts[3] == int((raw >= 25).sum())  # task III ignores ids 25..35


def test_cadis_split_by_video_on_a_copied_tree(tmp_path):
    """The real frame copied into videos of each split exercises the standard video split."""
    import shutil

    root = real_data_root("CaDIS")
    for video in (1, 3, 5, 12):
        for kind in ("Images", "Labels"):
            dst = tmp_path / f"Video{video:02d}" / kind
            dst.mkdir(parents=True)
            shutil.copy(root / "Video01" / kind / "Video1_frame000090.png", dst / f"Video{video}_frame000090.png")
    cfg = load_config(
        None, ["data.name=cadis", f"data.root={tmp_path}", "data.labeled_patients=1", "data.image_size=[64, 96]"]
    )
    data = load_dataset(cfg)
    assert data.protocol["labeled_cases"] == ["Video01"]
    assert data.unlabeled.ids == ["Video03"]
    assert [c.case_id.split("/")[0] for c in data.val] == ["Video05"]
    assert [c.case_id.split("/")[0] for c in data.test] == ["Video12"]
    assert data.background is False and data.ignore_index == 255 and data.num_classes == 17
    x, y = data.labeled.batch(torch.tensor([0]))
    assert x.shape == (1, 3, 64, 96) and 0 <= x.min() and x.max() <= 1


def test_cadis_class_shares_from_frame_index():
    from coda_edu.data.cadis import frame_index_class_shares

    root = real_data_root("CaDIS")
    shares = frame_index_class_shares(root / "frame_index.csv", task=1)
    assert abs(sum(shares.values()) - 1) < 1e-9
    assert shares["Cornea"] > shares["Instrument"] > 0
