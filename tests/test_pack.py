"""coda-edu data pack / unpack: a compact, verified transfer format that the loaders read like the original."""

import io
import json
import lzma
import os
import shutil
import subprocess
import sys
import zipfile

import h5py
import numpy as np
import pytest

from coda_course.pack import MARKER, dequantise, quantise, read_manifest, unpack
from coda_edu.cli import main
from coda_edu.config import load_config
from coda_edu.data import load_dataset
from coda_edu.errors import DataError
from coda_edu.io import STAGING_MARKER
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
    assert "no checksum" in __import__("coda_course.pack", fromlist=["x"]).describe_source(dest)


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


# --------------------------------------------------------------------------- issue 21: crafted and interrupted packs


def craft(pack, header=None, edit=None, payload=None):
    """Rewrite a pack: another header line, an edited manifest or another payload (its checksum kept valid)."""
    data = pack.read_bytes()
    manifest, offset = read_manifest(pack)
    body = data[offset:] if payload is None else payload
    if payload is not None:
        import hashlib

        manifest["payload"].update(bytes=len(body), sha256=hashlib.sha256(body).hexdigest())
    if edit is not None:
        edit(manifest)
    text = json.dumps(manifest).encode()
    pack.write_bytes((header if header is not None else b"CODA-EDU-PACK 1 %d\n" % len(text)) + text + body)


def unpack_line(pack, dest, capsys, *extra):
    assert main(["data", "unpack", str(pack), "--out", str(dest), "--no-progress", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("coda-edu: error: ") and err.count("\n") == 1, err
    return err


def entry(path, array="a0"):
    return {"path": path, "kind": "bytes", "array": array}


@pytest.mark.parametrize(
    "header, words",
    [
        (b"CODA-EDU-PACK 1 99999999999999999999\n", "manifest length"),  # OverflowError
        (b"CODA-EDU-PACK 1 -5\n", "manifest length"),  # ValueError
    ],
)
def test_a_crafted_header_is_one_line(packed, tmp_path, capsys, header, words):
    craft(packed, header=header)
    assert words in unpack_line(packed, tmp_path / "dest", capsys)
    assert not (tmp_path / "dest" / "ACDC").exists()


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda m: m.update(folder="."), "folder '.' is not a plain folder name"),  # OSError
        (lambda m: m.update(folder="a/b"), "is not a plain folder name"),
        (lambda m: m.update(files=[entry("x"), entry("x/y")]), "'x/y' lies inside 'x'"),  # FileExistsError
        (lambda m: m.update(files=[entry("x/y"), entry("x")]), "'x/y' lies inside 'x'"),
        (lambda m: m.update(files=[entry("x"), entry("x")]), "names 'x' twice"),
        (lambda m: m.update(files=[entry("./x")]), "not a plain relative path"),
        (lambda m: m["files"][0].update(array=7), "damaged"),
        (
            lambda m: m.update(
                files=[
                    m["files"][-1]
                    | {"datasets": [{"key": "image", "array": "a0", "dtype": "<f4", "lo": "abc", "hi": 1.0}]}
                ]
            ),
            "lo/hi",
        ),  # ValueError
        (lambda m: m.update(files=["just a string"]), "damaged"),
    ],
)
def test_a_crafted_manifest_is_one_line_and_writes_nothing(packed, tmp_path, capsys, edit, words):
    craft(packed, edit=edit)
    assert words in unpack_line(packed, tmp_path / "dest", capsys)
    assert not (tmp_path / "dest").exists() or [p.name for p in (tmp_path / "dest").iterdir()] == []


def test_unpack_into_a_link_is_refused(packed, tmp_path, capsys):
    # F4: OUT/ACDC a symlink gave NotADirectoryError
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "ACDC").symlink_to(target)
    assert "is a link" in unpack_line(packed, tmp_path / "dest", capsys)
    assert list(target.iterdir()) == [] and (tmp_path / "dest" / "ACDC").is_symlink()


def test_a_killed_unpack_leaves_nothing_the_next_one_does_not_clean(packed, tmp_path):
    # F4: a killed unpack left .ACDC.unpacking-* folders (53 MB, 165 MB) that the next unpack kept
    dest = tmp_path / "dest"
    script = (
        "import os, signal, sys\n"
        "from coda_course import pack\n"
        "real = pack._restore_v1\n"
        "def killed(*a, **k):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "pack._restore_v1 = killed\n"
        f"pack.unpack({str(packed)!r}, {str(dest)!r}, progress=False)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == -9
    left = [p for p in dest.iterdir()]
    assert len(left) == 1 and (left[0] / STAGING_MARKER).is_file()  # the killed unpack's staging folder
    mine = dest / ".ACDC.unpacking-mine"  # named like one, but without coda-edu's marker: not touched
    mine.mkdir()
    (mine / "keep.txt").write_text("keep")
    unpack(packed, dest, progress=False, log=lambda s: None)
    assert sorted(p.name for p in dest.iterdir()) == [".ACDC.unpacking-mine", "ACDC"]
    assert (mine / "keep.txt").read_text() == "keep"


def bomb_payload(megabytes):
    """An xz stream of an .npz holding one array of zeros: a few kB that unpack to ``megabytes`` MB."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        with zf.open("a0.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array(fh, np.zeros(megabytes << 20, np.uint8), allow_pickle=False)
    return lzma.compress(buf.getvalue(), preset=9)


def test_unpack_bounds_what_it_writes(packed, tmp_path, capsys):
    # F4: a 32 KB pack expanded to 200 MB with no limit
    craft(packed, payload=bomb_payload(200), edit=lambda m: m.update(files=[entry("big.bin")]))
    assert packed.stat().st_size < 64 << 10
    dest = tmp_path / "dest"
    err = unpack_line(packed, dest, capsys)
    assert "would unpack to more than" in err and "--max-gb" in err
    written = sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file() and p != packed)
    assert written < 20 << 20 and not dest.exists() or [p.name for p in dest.iterdir()] == []
    # with a limit that allows it, it unpacks
    assert main(["data", "unpack", str(packed), "--out", str(dest), "--no-progress", "--max-gb", "1"]) == 0
    assert (dest / "ACDC" / "big.bin").stat().st_size == 200 << 20


def test_pack_never_follows_a_link_out_of_the_dataset(tmp_path, capsys):
    # F4: a link to a system file was packed
    src = tmp_path / "ACDC"
    src.mkdir()
    make_acdc(src, patients=2, slices=1)
    secret = tmp_path / "secret.txt"
    secret.write_text("not data")
    (src / "notes.txt").symlink_to(secret)
    out = tmp_path / "acdc.cepack"
    assert main(["data", "pack", "acdc", "--root", str(src), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "notes.txt' is a link to" in err and "outside" in err
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    (src / "notes.txt").unlink()
    (src / "data" / "more").symlink_to(tmp_path, target_is_directory=True)
    assert main(["data", "pack", "acdc", "--root", str(src), "--out", str(out), "--no-progress"]) == 2
    assert "more' is a link to" in capsys.readouterr().err and not out.exists()
    (src / "data" / "more").unlink()
    (src / "gone.txt").symlink_to(src / "nothing-here")
    assert main(["data", "pack", "acdc", "--root", str(src), "--out", str(out), "--no-progress"]) == 2
    assert "gone.txt' is a link to nothing" in capsys.readouterr().err and not out.exists()


def test_pack_does_not_overwrite_a_file_silently(tmp_path, capsys):
    # F4: an existing --out file was overwritten silently
    src = tmp_path / "ACDC"
    src.mkdir()
    make_acdc(src, patients=2, slices=1)
    out = tmp_path / "thesis.pdf"
    out.write_text("my thesis")
    args = ["data", "pack", "acdc", "--root", str(src), "--out", str(out), "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already exists" in err and "--force" in err
    assert out.read_text() == "my thesis"
    assert main([*args, "--force"]) == 0 and read_manifest(out)[0]["folder"] == "ACDC"
    assert "replaced" in capsys.readouterr().out


def test_a_killed_pack_leaves_nothing_the_next_one_does_not_clean(tmp_path):
    src = tmp_path / "ACDC"
    src.mkdir()
    make_acdc(src, patients=2, slices=1)
    out = tmp_path / "out" / "acdc.cepack"
    out.parent.mkdir()
    script = (
        "import os, signal\n"
        "from coda_course import pack\n"
        "def killed(*a, **k):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "pack._sha256 = killed\n"
        f"pack.pack_folder({str(src)!r}, {str(out)!r}, dataset='acdc', folder='ACDC', progress=False)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == -9 and len(list(out.parent.iterdir())) == 1
    assert main(["data", "pack", "acdc", "--root", str(src), "--out", str(out), "--no-progress"]) == 0
    assert [p.name for p in out.parent.iterdir()] == ["acdc.cepack"]
    assert os.path.getsize(out) > 0
