"""coda-edu data pack / unpack: a compact, verified transfer format that the loaders read like the original."""

import io
import json
import lzma
import shutil

import h5py
import numpy as np
import pytest

from coda_edu.cli import main
from coda_edu.config import load_config
from coda_edu.data import load_dataset
from coda_edu.data.pack import MARKER, dequantise, quantise, read_manifest, unpack
from coda_edu.errors import DataError
from tests.conftest import real_data_root
from tests.test_bad_input import make_acdc


def compare_trees(src, dst):
    """Every file of ``src`` is in ``dst``: bytes equal, HDF5 labels exact, images within half an 8-bit step.

    Returns the largest image error in units of (file range) / 255."""
    worst = 0.0
    files = [p for p in sorted(src.rglob("*")) if p.is_file()]
    assert files
    for path in files:
        other = dst / path.relative_to(src)
        assert other.is_file(), other
        if path.suffix != ".h5":
            assert other.read_bytes() == path.read_bytes(), path
            continue
        with h5py.File(path, "r") as a, h5py.File(other, "r") as b:
            assert set(a) == set(b)
            assert np.array_equal(a["label"][()], b["label"][()]) and b["label"].dtype == a["label"].dtype
            x, y = a["image"][()], b["image"][()]
            assert y.dtype == np.float32 and y.shape == x.shape
            span = float(x.max() - x.min())
            err = float(np.abs(x.astype(np.float64) - y).max())
            assert err <= 0.5 / 255 * span + 1e-6, (path, err, span)
            worst = max(worst, err / (span / 255) if span else 0.0)
    return worst


def test_quantise_is_within_half_a_step_of_the_range():
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(7, 33, 29)) * 3 + 1).astype(np.float32)
    q, lo, hi = quantise(x)
    assert q.dtype == np.uint8 and q.min() == 0 and q.max() == 255
    y = dequantise(q, lo, hi)
    assert np.abs(y.astype(np.float64) - x).max() <= (hi - lo) / 510 * (1 + 1e-6)
    assert y.min() == x.min() and y.max() == x.max()  # the range's ends come back exactly
    const = np.full((4, 4), 0.25, np.float32)
    assert np.array_equal(dequantise(*quantise(const)), const)


def test_pack_unpack_round_trip_loads_like_the_original(tmp_path, capsys):
    src = tmp_path / "src" / "ACDC"
    src.mkdir(parents=True)
    make_acdc(src)
    (src / "spacing.json").write_text(json.dumps({"patient090_frame01": [10.0, 1.5, 1.5]}))
    pack = tmp_path / "acdc.cepack"
    assert main(["data", "pack", "acdc", "--root", str(src), "--out", str(pack), "--no-progress"]) == 0
    assert "labels exact" in capsys.readouterr().out
    manifest, _ = read_manifest(pack)
    assert manifest["folder"] == "ACDC" and manifest["n_files"] == 11 and manifest["images"] == "u8"

    dest = tmp_path / "data"
    assert main(["data", "unpack", str(pack), "--out", str(dest), "--no-progress"]) == 0
    assert f"CODA_EDU_DATA_DIR={dest}" in capsys.readouterr().out
    compare_trees(src, dest / "ACDC")
    assert json.loads((dest / "ACDC" / MARKER).read_text())["sha256"] == manifest["payload"]["sha256"]

    def load(root):
        return load_dataset(
            load_config(
                None, ["data.name=acdc", f"data.root={root}", "data.labeled_patients=1", "data.image_size=[16, 16]"]
            )
        )

    a, b = load(src), load(dest / "ACDC")
    assert a.summary() == b.summary() and a.labeled.ids == b.labeled.ids and a.unit == b.unit == "mm"
    assert np.array_equal(a.val[0].label, b.val[0].label)
    assert np.abs(a.val[0].image - b.val[0].image).max() <= 0.5 / 255 + 1e-6

    # The same pack again: nothing to do; anything else in the way: refused in one line.
    assert main(["data", "unpack", str(pack), "--out", str(dest), "--no-progress"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    other = tmp_path / "other"
    (other / "ACDC").mkdir(parents=True)
    (other / "ACDC" / "mine.txt").write_text("keep")
    assert main(["data", "unpack", str(pack), "--out", str(other), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already exists" in err
    assert (other / "ACDC" / "mine.txt").read_text() == "keep"


def test_exact_images_come_back_bit_for_bit(tmp_path):
    src = tmp_path / "ACDC"
    src.mkdir()
    make_acdc(src, patients=2, slices=1)
    assert main(["data", "pack", "acdc", "--root", str(src), "--out", str(tmp_path / "p"), "--images", "exact"]) == 0
    dest = unpack(tmp_path / "p", tmp_path / "out", progress=False)
    for path in src.rglob("*.h5"):
        with h5py.File(path, "r") as a, h5py.File(dest / path.relative_to(src), "r") as b:
            assert np.array_equal(a["image"][()], b["image"][()])


@pytest.fixture
def packed(tmp_path):
    src = tmp_path / "src" / "ACDC"
    src.mkdir(parents=True)
    make_acdc(src)
    pack = tmp_path / "acdc.cepack"
    assert main(["data", "pack", "acdc", "--root", str(src), "--out", str(pack), "--no-progress"]) == 0
    return pack


def _damage(pack, how):
    data = bytearray(pack.read_bytes())
    _, offset = read_manifest(pack)
    if how == "flipped byte":
        data[offset + (len(data) - offset) // 2] ^= 0x55
    elif how == "truncated":
        del data[offset + (len(data) - offset) // 2 :]
    elif how == "not a pack":
        data = bytearray(b"hello, I am a text file\n" * 10)
    elif how == "unsafe path":
        head, rest = bytes(data[:offset]), bytes(data[offset:])
        manifest = json.loads(head.split(b"\n", 1)[1])
        manifest["files"][0]["path"] = "../escaped.list"
        text = json.dumps(manifest).encode()
        data = bytearray(b"CODA-EDU-PACK 1 %d\n" % len(text) + text + rest)
    pack.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "how, words",
    [
        ("flipped byte", "SHA-256 does not match"),
        ("truncated", "truncated"),
        ("not a pack", "not a coda-edu pack"),
        ("unsafe path", "not a plain relative path"),
    ],
)
def test_a_damaged_pack_is_one_line_and_writes_nothing(packed, tmp_path, capsys, how, words):
    _damage(packed, how)
    dest = tmp_path / "dest"
    assert main(["data", "unpack", str(packed), "--out", str(dest), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("coda-edu: error: ") and err.count("\n") == 1 and words in err, err
    assert not (dest / "ACDC").exists() and not (tmp_path / "escaped.list").exists()
    assert not dest.exists() or not [p for p in dest.iterdir()]  # no staging folder left behind


def test_pack_refuses_a_generated_dataset_and_a_missing_file(tmp_path, capsys):
    assert main(["data", "pack", "synthetic", "--out", str(tmp_path / "x")]) == 2
    assert "nothing to pack" in capsys.readouterr().err
    with pytest.raises(DataError, match="does not exist"):
        unpack(tmp_path / "missing.cepack", tmp_path / "out", progress=False)


def test_unpacks_the_shared_acdc_pack_format(tmp_path):
    """The older ../shared/gpu/acdc_trainval_u8.npz.xz layout: <path>::bytes, <path>::<key>[::u8], images q/255."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (3, 8, 6), dtype=np.uint8)
    label = rng.integers(0, 4, (3, 8, 6), dtype=np.uint8)
    arrays = {
        "val.list::bytes": np.frombuffer(b"patient090_frame01\n", np.uint8),
        "data/patient090_frame01.h5::image::u8": image,
        "data/patient090_frame01.h5::label": label,
    }
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    legacy = tmp_path / "acdc_trainval_u8.npz.xz"
    legacy.write_bytes(lzma.compress(buf.getvalue()))
    dest = unpack(legacy, tmp_path / "data", progress=False)
    assert dest == tmp_path / "data" / "ACDC"
    assert (dest / "val.list").read_text() == "patient090_frame01\n"
    with h5py.File(dest / "data" / "patient090_frame01.h5", "r") as fh:
        assert np.array_equal(fh["label"][()], label)
        assert np.allclose(fh["image"][()], image / 255.0) and fh["image"].dtype == np.float32
    assert "no checksum" in __import__("coda_edu.data.pack", fromlist=["x"]).describe_source(dest)


def test_real_acdc_subset_round_trip(tmp_path):
    """Part of the real ACDC (2 training patients' slices, 1 validation volume): labels exact, images within
    0.5/255 of each file's range, and the loader opens the unpacked copy."""
    root = real_data_root("ACDC")
    src = tmp_path / "src" / "ACDC"
    (src / "data" / "slices").mkdir(parents=True)
    cases = (root / "train.list").read_text().split()
    patients = list(dict.fromkeys(c.split("_")[0] for c in cases))[:2]
    train = [c for c in cases if c.split("_")[0] in patients]
    val = (root / "val.list").read_text().split()[:1]
    slices = [s for s in (root / "train_slices.list").read_text().split() if s.rsplit("_slice_", 1)[0] in train]
    for name in slices:
        shutil.copy(root / "data" / "slices" / f"{name}.h5", src / "data" / "slices")
    shutil.copy(root / "data" / f"{val[0]}.h5", src / "data")
    (src / "train.list").write_text("\n".join(train) + "\n")
    (src / "val.list").write_text("\n".join(val) + "\n")
    (src / "train_slices.list").write_text("\n".join(slices) + "\n")
    pack = tmp_path / "acdc.cepack"
    assert main(["data", "pack", "acdc", "--root", str(src), "--out", str(pack), "--no-progress", "--level", "1"]) == 0
    dest = unpack(pack, tmp_path / "data", progress=False)
    worst = compare_trees(src, dest)
    assert 0.4 < worst <= 0.5 + 1e-3  # half a step: the quantisation is used, and not exceeded
    data = load_dataset(
        load_config(
            None, ["data.name=acdc", f"data.root={dest}", "data.labeled_patients=1", "data.image_size=[64, 64]"]
        )
    )
    assert len(data.labeled) + len(data.unlabeled) == len(slices) and len(data.val) == 1
