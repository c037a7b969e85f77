"""Broken real-data files are found when a dataset is opened and reported in one line naming the file."""

import subprocess

import h5py
import numpy as np
import pytest
from PIL import Image

from coda_edu.config import load_config
from coda_edu.data import load_dataset
from coda_edu.errors import DataError
from tests.conftest import cli_command


def write_h5(path, image, label):
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as fh:
        if image is not None:
            fh.create_dataset("image", data=image)
        if label is not None:
            fh.create_dataset("label", data=label)


def make_acdc(root, patients=3, slices=2, volume_cases=("patient090_frame01",)):
    """A tiny ACDC tree in the preprocessed layout with valid files."""
    rng = np.random.default_rng(0)
    cases = [f"patient{p:03d}_frame01" for p in range(1, patients + 1)]
    (root / "train.list").write_text("\n".join(cases) + "\n")
    (root / "val.list").write_text("\n".join(volume_cases) + "\n")
    names = []
    for case in cases:
        for k in range(slices):
            label = np.zeros((24, 20), np.uint8)
            label[8:14, 6:12] = rng.integers(1, 4)
            write_h5(root / "data" / "slices" / f"{case}_slice_{k}.h5", rng.random((24, 20), np.float32), label)
            names.append(f"{case}_slice_{k}")
    (root / "train_slices.list").write_text("\n".join(names) + "\n")
    for case in volume_cases:
        label = np.zeros((3, 24, 20), np.uint8)
        label[:, 8:14, 6:12] = 3
        write_h5(root / "data" / f"{case}.h5", rng.random((3, 24, 20), np.float32), label)
    return cases


def acdc_config(root, *extra):
    return load_config(
        None, ["data.name=acdc", f"data.root={root}", "data.labeled_patients=1", "data.image_size=[16, 16]", *extra]
    )


def test_valid_tiny_tree_loads(tmp_path):
    make_acdc(tmp_path)
    data = load_dataset(acdc_config(tmp_path))
    assert len(data.labeled) == 2 and len(data.unlabeled) == 4 and len(data.val) == 1


def corrupt(kind, root):
    """Break the tiny tree in one way; returns the path the message must name and a message fragment."""
    slice_path = root / "data" / "slices" / "patient002_frame01_slice_1.h5"
    volume_path = root / "data" / "patient090_frame01.h5"
    if kind == "truncated":
        data = slice_path.read_bytes()
        slice_path.write_bytes(data[: len(data) // 2])
        return slice_path, "not a readable HDF5 file (truncated or corrupt"
    if kind == "not_hdf5":
        slice_path.write_text("hello")
        return slice_path, "not a readable HDF5 file"
    if kind == "missing_key":
        write_h5(slice_path, np.zeros((24, 20), np.float32), None)
        return slice_path, "missing key 'label' (has: image)"
    if kind == "shape_mismatch":
        write_h5(slice_path, np.zeros((24, 20), np.float32), np.zeros((24, 21), np.uint8))
        return slice_path, "image shape (24, 20) does not match label shape (24, 21)"
    if kind == "label_range":
        label = np.zeros((24, 20), np.uint8)
        label[0, 0] = 7
        write_h5(slice_path, np.zeros((24, 20), np.float32), label)
        return slice_path, "label values 7 are outside the class range 0..3"
    if kind == "nan":
        image = np.zeros((24, 20), np.float32)
        image[3, 3] = np.nan
        image[4, 4] = np.inf
        write_h5(slice_path, image, np.zeros((24, 20), np.uint8))
        return slice_path, "image has 2 non-finite values (NaN or inf)"
    if kind == "volume_nan":
        image = np.zeros((3, 24, 20), np.float32)
        image[0, 0, 0] = np.nan
        write_h5(volume_path, image, np.zeros((3, 24, 20), np.uint8))
        return volume_path, "non-finite"
    if kind == "missing_case":
        (root / "val.list").write_text("patient090_frame01\npatient091_frame01\n")
        return root / "data" / "patient091_frame01.h5", "val.list names 'patient091_frame01' but"
    if kind == "missing_slices":
        with open(root / "train.list", "a") as fh:
            fh.write("patient077_frame01\n")
        return root / "data" / "slices", "train.list names 'patient077_frame01' but"
    if kind == "empty_list":
        (root / "train.list").write_text("\n")
        return root / "train.list", "is empty"
    raise ValueError(kind)


KINDS = [
    "truncated",
    "not_hdf5",
    "missing_key",
    "shape_mismatch",
    "label_range",
    "nan",
    "volume_nan",
    "missing_case",
    "missing_slices",
    "empty_list",
]


@pytest.mark.parametrize("kind", KINDS)
def test_broken_acdc_files_fail_at_open_with_one_line(tmp_path, kind):
    make_acdc(tmp_path)
    path, fragment = corrupt(kind, tmp_path)
    with pytest.raises(DataError) as info:
        load_dataset(acdc_config(tmp_path))
    message = str(info.value)
    assert str(path) in message and fragment in message
    assert "\n" not in message


@pytest.mark.parametrize("kind", ["truncated", "label_range", "missing_case"])
def test_cli_reports_broken_files_with_status_2(tmp_path, kind):
    make_acdc(tmp_path)
    path, fragment = corrupt(kind, tmp_path)
    for command in (
        ["data", "check", "--dataset", "acdc", "--root", str(tmp_path), "--set", "data.labeled_patients=1"],
        [
            "train",
            "--set",
            "data.name=acdc",
            "--set",
            f"data.root={tmp_path}",
            "--set",
            "data.labeled_patients=1",
            "--out",
            str(tmp_path / "run"),
        ],
    ):
        done = subprocess.run(cli_command() + command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in done.stderr
        assert fragment in lines[0] and str(path) in lines[0]


def test_empty_labeled_set_and_all_labeled(tmp_path):
    make_acdc(tmp_path)
    with pytest.raises(DataError, match="training split has only 3"):
        load_dataset(acdc_config(tmp_path, "data.labeled_patients=5"))
    with pytest.raises(DataError, match="no unlabeled slices"):
        load_dataset(acdc_config(tmp_path, "data.labeled_patients=3"))


def test_missing_data_dir_is_explained(tmp_path, monkeypatch):
    monkeypatch.delenv("CODA_EDU_DATA_DIR", raising=False)
    with pytest.raises(DataError, match="set data.root or CODA_EDU_DATA_DIR"):
        load_dataset(load_config(None, ["data.name=acdc"]))
    monkeypatch.setenv("CODA_EDU_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="ACDC' does not exist"):
        load_dataset(load_config(None, ["data.name=acdc"]))


def make_cadis(root, bad=None):
    for video in (1, 3, 5):
        for kind in ("Images", "Labels"):
            (root / f"Video{video:02d}" / kind).mkdir(parents=True)
        image = (np.random.default_rng(video).random((18, 32, 3)) * 255).astype(np.uint8)
        label = np.zeros((18, 32), np.uint8)
        label[4:10, 4:10] = 4
        Image.fromarray(image).save(root / f"Video{video:02d}" / "Images" / f"Video{video}_frame000010.png")
        Image.fromarray(label).save(root / f"Video{video:02d}" / "Labels" / f"Video{video}_frame000010.png")
    image_path = root / "Video03" / "Images" / "Video3_frame000010.png"
    label_path = root / "Video03" / "Labels" / "Video3_frame000010.png"
    if bad == "truncated_png":
        data = image_path.read_bytes()
        image_path.write_bytes(data[: len(data) // 3])
        return image_path, "not a readable PNG (truncated or corrupt"
    if bad == "label_range":
        label = np.zeros((18, 32), np.uint8)
        label[0, 0] = 40
        Image.fromarray(label).save(label_path)
        return label_path, "label values 40 are outside the class range 0..35"
    if bad == "size_mismatch":
        Image.fromarray(np.zeros((18, 30), np.uint8)).save(label_path)
        return label_path, "does not match label shape (18, 30)"
    if bad == "missing_label":
        label_path.unlink()
        return label_path, "has no label file"
    if bad == "rgb_label":
        Image.fromarray(np.zeros((18, 32, 3), np.uint8)).save(label_path)
        return label_path, "label PNG must be single-channel"
    return None, None


@pytest.mark.parametrize("bad", ["truncated_png", "label_range", "size_mismatch", "missing_label", "rgb_label"])
def test_broken_cadis_frames(tmp_path, bad):
    path, fragment = make_cadis(tmp_path, bad)
    cfg = load_config(
        None, ["data.name=cadis", f"data.root={tmp_path}", "data.labeled_patients=1", "data.image_size=[16, 32]"]
    )
    with pytest.raises(DataError) as info:
        load_dataset(cfg)
    assert str(path) in str(info.value) and fragment in str(info.value)


def test_valid_cadis_tree(tmp_path):
    make_cadis(tmp_path)
    cfg = load_config(
        None, ["data.name=cadis", f"data.root={tmp_path}", "data.labeled_patients=1", "data.image_size=[16, 32]"]
    )
    data = load_dataset(cfg)
    assert len(data.labeled) == 1 and len(data.unlabeled) == 1 and len(data.val) == 1 and data.test == []


@pytest.mark.parametrize(
    "index, fragment",
    [
        (b"\xff\xfeimg_path\n\x00\x9c", "not UTF-8 text"),
        (b"img_path,blacklisted\n" + b"x" * 200_000 + b",0\n", "not a readable CSV file"),  # csv's field limit
    ],
)
def test_a_broken_cadis_frame_index_is_one_line(tmp_path, index, fragment):
    # every file the project reads is treated as hostile: frame_index.csv gave a traceback
    make_cadis(tmp_path)
    (tmp_path / "frame_index.csv").write_bytes(index)
    cfg = load_config(
        None, ["data.name=cadis", f"data.root={tmp_path}", "data.labeled_patients=1", "data.image_size=[16, 32]"]
    )
    with pytest.raises(DataError, match="frame_index.csv") as info:
        load_dataset(cfg)
    assert fragment in str(info.value)


def test_broken_la_case(tmp_path):
    folder = tmp_path / "2018LA_Seg_Training Set"
    for case in ("AAA", "BBB", "CCC"):
        write_h5(folder / case / "mri_norm2.h5", np.zeros((20, 18, 8), np.float32), np.zeros((20, 18, 8), np.uint8))
    (tmp_path / "train.list").write_text("AAA\nBBB\nCCC\nDDD\n")
    cfg = load_config(None, ["data.name=la", f"data.root={tmp_path}", "data.labeled_patients=1", "data.val_patients=1"])
    with pytest.raises(DataError, match="train.list names 'DDD' but .*DDD/mri_norm2.h5' does not exist"):
        load_dataset(cfg)
    label = np.zeros((20, 18, 8), np.uint8)
    label[0, 0, 0] = 2
    write_h5(folder / "DDD" / "mri_norm2.h5", np.zeros((20, 18, 8), np.float32), label)
    with pytest.raises(DataError, match="label values 2 are outside the class range 0..1"):
        load_dataset(cfg)


# --------------------------------------------------------------------------- split lists and sidecars (issue 11)


@pytest.mark.parametrize(
    "lists, fragment",
    [
        (
            {"val.list": "patient090_frame01\npatient002_frame01\n"},
            "patient 'patient002' (entry 'patient002_frame01') is in both train.list and val.list",
        ),
        (
            {"val.list": "patient090_frame01\npatient002_frame02\n"},
            "patient 'patient002' (entry 'patient002_frame02') is in both",
        ),
        ({"test.list": "patient001_frame01\n"}, "is in both train.list and test.list"),
        (
            {"train.list": "patient001_frame01\npatient002_frame01\npatient001_frame01\n"},
            "names 'patient001_frame01' twice",
        ),
    ],
)
def test_overlapping_splits_are_refused(tmp_path, lists, fragment):
    make_acdc(tmp_path)
    for name, text in lists.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(DataError) as info:
        load_dataset(acdc_config(tmp_path))
    assert fragment in str(info.value) and str(tmp_path) in str(info.value)


def test_la_train_and_test_lists_must_not_overlap(tmp_path):
    folder = tmp_path / "2018LA_Seg_Training Set"
    for case in ("AAA", "BBB", "CCC"):
        write_h5(folder / case / "mri_norm2.h5", np.zeros((20, 18, 8), np.float32), np.zeros((20, 18, 8), np.uint8))
    (tmp_path / "train.list").write_text("AAA\nBBB\nCCC\n")
    (tmp_path / "test.list").write_text("CCC\n")
    cfg = load_config(None, ["data.name=la", f"data.root={tmp_path}", "data.labeled_patients=1", "data.val_patients=1"])
    with pytest.raises(DataError, match="case 'CCC' is in both train.list and test.list"):
        load_dataset(cfg)


@pytest.mark.parametrize("entry", ["../escaped_case", "/etc/passwd", "..", "sub/../../x", "a\\b"])
def test_list_entries_must_stay_inside_the_dataset_root(tmp_path, entry):
    make_acdc(tmp_path)
    (tmp_path / "val.list").write_text(f"patient090_frame01\n{entry}\n")
    with pytest.raises(DataError) as info:
        load_dataset(acdc_config(tmp_path))
    message = str(info.value)
    assert f"val.list' line 2: {entry!r} is not a plain case name" in message and "\n" not in message


def test_non_utf8_list_is_one_line(tmp_path):
    make_acdc(tmp_path)
    (tmp_path / "train.list").write_bytes(b"patient001_frame01\n\xff\xfepatient002\n")
    done = subprocess.run(
        cli_command()
        + ["data", "check", "--dataset", "acdc", "--root", str(tmp_path), "--set", "data.labeled_patients=1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "train.list' is not UTF-8 text" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_unreadable_list_is_one_line(tmp_path, monkeypatch):
    from pathlib import Path

    make_acdc(tmp_path)
    real = Path.read_bytes

    def denied(self):
        if self.name == "val.list":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(DataError, match="val.list' cannot be read: permission denied"):
        load_dataset(acdc_config(tmp_path))


@pytest.mark.parametrize(
    "spacing, fragment",
    [
        ('{"patient090_frame01": [1.0, 1.5]}', "must be three finite numbers > 0"),
        ('{"patient090_frame01": [NaN, 1.5, 1.5]}', "must be three finite numbers > 0"),
        ('{"patient090_frame01": [0, 1.5, 1.5]}', "must be three finite numbers > 0"),
        ('{"patient090_frame01": [10, -1.5, 1.5]}', "must be three finite numbers > 0"),
        ('{"patient090_frame01": "10x1x1"}', "must be three finite numbers > 0"),
        ("[1, 2, 3]", "expected a JSON object"),
        ('{"patient090_frame01": [1, 2', "not valid JSON"),
        ('{"patient090_frame01": ' + "[" * 100_000 + "]" * 100_000 + "}", "not valid JSON"),  # RecursionError
        ('{"patient090_frame01": "' + "x" * 100_000 + '"}', "must be three finite numbers > 0"),
    ],
)
def test_bad_spacing_json_fails_data_check_and_loading(tmp_path, spacing, fragment):
    make_acdc(tmp_path)
    (tmp_path / "spacing.json").write_text(spacing)
    with pytest.raises(DataError) as info:
        load_dataset(acdc_config(tmp_path))
    assert fragment in str(info.value) and "spacing.json" in str(info.value)
    done = subprocess.run(
        cli_command()
        + ["data", "check", "--dataset", "acdc", "--root", str(tmp_path), "--set", "data.labeled_patients=1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr and fragment in done.stderr
    assert len(done.stderr) < 1000  # a bounded excerpt of the value, never the value whole


def test_valid_spacing_json_gives_mm(tmp_path):
    make_acdc(tmp_path)
    (tmp_path / "spacing.json").write_text('{"patient090_frame01": [10, 1.5, 1.5]}')
    data = load_dataset(acdc_config(tmp_path))
    assert data.val[0].spacing == (10.0, 1.5, 1.5) and data.unit == "mm"


def test_decompression_bomb_png_is_one_line(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    make_cadis(tmp_path)
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 100)  # the 18 x 32 frames now count as bombs
    cfg = load_config(
        None, ["data.name=cadis", f"data.root={tmp_path}", "data.labeled_patients=1", "data.image_size=[16, 32]"]
    )
    with pytest.raises(DataError, match="too large to open safely"):
        load_dataset(cfg)
