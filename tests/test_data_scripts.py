"""The scripts in data_scripts/: downloads with checksums, preprocessing, safe extraction and verification.

Downloads are served from tiny fake mirrors built in tmp_path (a local HTTP server in a
thread, or file:// URLs); the ACDC raw-NIfTI path is tested on NIfTI files made from real
volumes (skipped without $CODA_EDU_DATA_DIR); LA and CaDIS use files the tests write.
Error cases run the scripts as subprocesses and check for one ``error:`` line and exit 2.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import json
import subprocess
import sys
import threading
import zipfile
from io import BytesIO
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from coda_edu.config import load_config
from coda_edu.data import load_dataset
from coda_edu.errors import DataError
from coda_edu.io import process_start
from tests.conftest import REPO, real_data_root

SCRIPTS = REPO / "data_scripts"
sys.path.insert(0, str(SCRIPTS))
import acdc as acdc_script  # noqa: E402
import cadis as cadis_script  # noqa: E402
import la as la_script  # noqa: E402
import make_checksums  # noqa: E402

import _common  # noqa: E402

# --------------------------------------------------------------------------- helpers


def run_script(name: str, *args) -> subprocess.CompletedProcess:
    """Run ``python data_scripts/<name>.py ARGS`` as a user would."""
    return subprocess.run(
        [sys.executable, str(SCRIPTS / f"{name}.py"), *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def run_inline(module, capsys, *args) -> tuple[int, str, str]:
    """Run a script's main in this process (same error handling as the command line): (status, stdout, stderr)."""
    capsys.readouterr()
    status = _common.run_cli(module.main, [str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_error(status: int, err: str, *fragments: str) -> None:
    assert status == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def sha256_bytes(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_h5(path: Path, image: np.ndarray, label: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as fh:
        fh.create_dataset("image", data=image)
        fh.create_dataset("label", data=label)


def tiny_pair(shape, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random(shape, dtype=np.float32), rng.integers(0, classes, shape).astype(np.uint8)


def write_manifest(path: Path, root: Path, rels) -> Path:
    path.write_text("".join(f"{sha256_bytes(root / rel)}  {rel}\n" for rel in rels))
    return path


class MirrorHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder, records every request, and cuts off the files listed in ``server.cut``."""

    def do_GET(self):
        self.server.requests.append(self.path)
        if self.path in self.server.cut:
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 400)
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    """``serve(folder)`` -> (server, base URL) of a local HTTP server in a thread."""
    servers = []

    def start(folder: Path):
        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(MirrorHandler, directory=str(folder))
        )
        server.requests, server.cut = [], set()
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server, f"http://127.0.0.1:{server.server_port}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------- ACDC download


def make_acdc_mirror(tmp_path: Path) -> tuple[Path, Path]:
    """A fake 3DCardiac + SSL4MIS mirror with the real split (one tiny slice per training case).

    Returns (mirror folder, manifest) where the manifest knows everything but the test files.
    """
    mirror = tmp_path / "mirror"
    data, lists = mirror / "3DCardiac" / "data" / "ACDC" / "data", mirror / "SSL4MIS" / "data" / "ACDC"
    lists.mkdir(parents=True)
    train, val, test = (
        acdc_script.cases_of(p)
        for p in (acdc_script.TRAIN_PATIENTS, acdc_script.VAL_PATIENTS, acdc_script.TEST_PATIENTS)
    )
    slices = [f"{case}_slice_1" for case in train]
    for name, names in (("train.list", train), ("val.list", val), ("test.list", test), ("train_slices.list", slices)):
        (lists / name).write_text("\n".join(names) + "\n")
    for i, name in enumerate(slices):
        write_h5(data / f"{name}.h5", *tiny_pair((6, 5), 4, i))
    for i, name in enumerate(val + test):
        write_h5(data / f"{name}.h5", *tiny_pair((3, 6, 5), 4, 1000 + i))
    manifest = tmp_path / "acdc.sha256"
    known = {f"data/slices/{n}.h5": data / f"{n}.h5" for n in slices} | {f"data/{n}.h5": data / f"{n}.h5" for n in val}
    known |= {name: lists / name for name in ("train.list", "val.list", "train_slices.list")}
    manifest.write_text("".join(f"{sha256_bytes(path)}  {rel}\n" for rel, path in known.items()))
    return mirror, manifest


def acdc_download_args(out: Path, base: str, manifest: Path) -> list:
    return [
        "download",
        "--out",
        out,
        "--base-url",
        base + "3DCardiac/data/ACDC/",
        "--lists-url",
        base + "SSL4MIS/data/ACDC/",
        "--manifest",
        manifest,
    ]


def test_acdc_download_lays_out_verifies_and_second_run_downloads_nothing(tmp_path, serve, capsys):
    mirror, manifest = make_acdc_mirror(tmp_path)
    server, url = serve(mirror)
    out = tmp_path / "ACDC"
    status, stdout, err = run_inline(acdc_script, capsys, *acdc_download_args(out, url, manifest))
    assert status == 0, err
    assert (
        "lists: 4 downloaded" in stdout
        and "1 unverified (no known checksum), checked only by reading them: test.list" in stdout
    )
    assert "h5 files: 200 downloaded" in stdout and "40 unverified (no known checksum)" in stdout  # the test volumes
    assert len(list((out / "data" / "slices").glob("*.h5"))) == 140 and len(list((out / "data").glob("*.h5"))) == 60
    same = mirror / "3DCardiac" / "data" / "ACDC" / "data" / "patient003_frame01_slice_1.h5"
    assert sha256_bytes(out / "data" / "slices" / "patient003_frame01_slice_1.h5") == sha256_bytes(same)
    assert not list(out.rglob("*.partial"))

    status, stdout, err = run_inline(acdc_script, capsys, "verify", "--root", out, "--manifest", manifest)
    assert status == 0, stdout + err
    assert "unverified (no known checksum)" in stdout and "ok: no problems found" in stdout
    cfg = load_config(
        None, ["data.name=acdc", f"data.root={out}", "data.labeled_patients=7", "data.image_size=[16, 16]"]
    )
    data = load_dataset(cfg)
    assert len(data.labeled) == 14 and len(data.unlabeled) == 126 and len(data.val) == 20 and len(data.test) == 40

    server.requests.clear()
    status, stdout, err = run_inline(acdc_script, capsys, *acdc_download_args(out, url, manifest))
    assert status == 0, err
    assert server.requests == [] and "0 downloaded" in stdout


def test_acdc_download_rejects_a_wrong_checksum_and_keeps_nothing(tmp_path):
    mirror, manifest = make_acdc_mirror(tmp_path)
    bad = "data/slices/patient050_frame02_slice_1.h5"
    write_h5(
        mirror / "3DCardiac" / "data" / "ACDC" / "data" / "patient050_frame02_slice_1.h5", *tiny_pair((6, 5), 4, 99)
    )
    out = tmp_path / "ACDC"
    result = run_script("acdc", *acdc_download_args(out, mirror.as_uri() + "/", manifest))
    assert_one_line_error(result.returncode, result.stderr, f"file '{bad}'", "SHA-256", "not kept")
    assert not (out / bad).exists() and not list(out.rglob("*.partial"))
    assert (out / "data" / "slices" / "patient099_frame01_slice_1.h5").is_file()  # earlier files stay


def leave_staging(out: Path, *files: str) -> Path:
    """What a run killed with SIGKILL leaves: its staging folder (marker of a dead pid) with unfinished files."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    staging = out / _common.STAGING
    staging.mkdir(parents=True)
    (staging / _common.STAGING_MARKER).write_text(json.dumps({"pid": dead.pid, "pid_start": None}))
    for name in files:
        (staging / name).write_bytes(b"half a file")
    return staging


def test_acdc_download_restarts_interrupted_files(tmp_path, serve, capsys):
    mirror, manifest = make_acdc_mirror(tmp_path)
    server, url = serve(mirror)
    out = tmp_path / "ACDC"
    target = out / "data" / "slices" / "patient003_frame01_slice_1.h5"

    server.cut.add("/3DCardiac/data/ACDC/data/patient003_frame01_slice_1.h5")
    status, _, err = run_inline(acdc_script, capsys, *acdc_download_args(out, url, manifest))
    assert_one_line_error(status, err, "was cut off after 400 of 1000 bytes", "re-run")
    assert not target.exists() and not (out / _common.STAGING).exists()

    # A killed run leaves its unfinished files in its own staging folder: removed, and the files fetched again.
    staging = leave_staging(out, "7-patient003_frame01_slice_1.h5", "8-spacing.json")
    server.cut.clear()
    status, stdout, err = run_inline(acdc_script, capsys, *acdc_download_args(out, url, manifest))
    assert status == 0, err
    assert "removed the unfinished files of an interrupted run" in stdout
    assert not staging.exists()
    assert sha256_bytes(target) == sha256_bytes(mirror / "3DCardiac" / "data" / "ACDC" / "data" / target.name)


def test_downloads_never_delete_the_users_files(tmp_path, serve, capsys):
    # F5: 'download --out EXISTING_DIR' deleted the user's thesis.partial and notes.tmp-42 ("unfinished files")
    mirror, manifest = make_acdc_mirror(tmp_path)
    _, url = serve(mirror)
    out = tmp_path / "mine"
    mine = {
        out / "thesis.partial": b"my thesis",
        out / "notes.tmp-42": b"my notes",
        out / "data" / "slices" / "draft.h5.partial": b"a draft",
        out / "data" / "x.tmp-1": b"x",
    }
    for path, data in mine.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    status, stdout, err = run_inline(acdc_script, capsys, *acdc_download_args(out, url, manifest))
    assert status == 0, err
    assert "removed" not in stdout
    assert all(path.read_bytes() == data for path, data in mine.items())
    assert not (out / _common.STAGING).exists()  # the scripts' own staging folder is gone after a run


def test_a_staging_folder_the_scripts_did_not_make_is_refused_and_kept(tmp_path, serve, capsys):
    mirror, manifest = make_acdc_mirror(tmp_path)
    _, url = serve(mirror)
    out = tmp_path / "ACDC"
    (out / _common.STAGING).mkdir(parents=True)
    (out / _common.STAGING / "mine.txt").write_text("x")
    status, _, err = run_inline(acdc_script, capsys, *acdc_download_args(out, url, manifest))
    assert_one_line_error(status, err, _common.STAGING, "was not made by these scripts")
    assert (out / _common.STAGING / "mine.txt").read_text() == "x"


def test_a_staging_folder_in_use_by_a_live_run_is_refused(tmp_path, serve, capsys):
    mirror, manifest = make_acdc_mirror(tmp_path)
    _, url = serve(mirror)
    out = tmp_path / "ACDC"
    holder = subprocess.Popen(["sleep", "60"])
    try:
        staging = out / _common.STAGING
        staging.mkdir(parents=True)
        marker = {"pid": holder.pid, "pid_start": process_start(holder.pid)}
        (staging / _common.STAGING_MARKER).write_text(json.dumps(marker))
        status, _, err = run_inline(acdc_script, capsys, *acdc_download_args(out, url, manifest))
        assert_one_line_error(status, err, "is in use by another run of the data scripts")
        assert (staging / _common.STAGING_MARKER).is_file()
    finally:
        holder.kill()
        holder.wait()


def test_verify_with_a_manifest_that_is_not_utf8_is_one_line(tmp_path):
    # F6: acdc.py verify --manifest on a non-UTF-8 file gave a UnicodeDecodeError traceback
    (tmp_path / "ACDC").mkdir()
    manifest = tmp_path / "bad.sha256"
    manifest.write_bytes(b"\xff\xfe" + b"\x00garbage" * 10)
    for script in ("acdc", "la"):
        result = run_script(script, "verify", "--root", tmp_path / "ACDC", "--manifest", manifest)
        assert_one_line_error(result.returncode, result.stderr, f"'{manifest}' is not UTF-8 text")


def test_acdc_download_reports_http_errors_in_one_line(tmp_path, serve, capsys):
    (tmp_path / "empty").mkdir()
    _, url = serve(tmp_path / "empty")
    status, _, err = run_inline(acdc_script, capsys, *acdc_download_args(tmp_path / "ACDC", url, tmp_path / "none"))
    assert_one_line_error(status, err, "checksum manifest", "does not exist")
    manifest = tmp_path / "empty.sha256"
    manifest.write_text("")
    status, _, err = run_inline(acdc_script, capsys, *acdc_download_args(tmp_path / "ACDC", url, manifest))
    assert_one_line_error(status, err, "train.list", "HTTP 404")


# --------------------------------------------------------------------------- ACDC preprocess


def save_nifti(path: Path, volume_dhw: np.ndarray, spacing_xyz) -> None:
    """A (D, H, W) volume as NIfTI (X, Y, Z) with the given voxel size."""
    import nibabel as nib

    nib.Nifti1Image(np.ascontiguousarray(volume_dhw.transpose(2, 1, 0)), np.diag([*spacing_xyz, 1.0])).to_filename(path)


def make_raw_patient(raw: Path, patient: int, frames: dict[int, tuple[np.ndarray, np.ndarray]], spacing_xyz) -> None:
    """RAW/patientNNN/ with Info.cfg and one image/_gt pair per frame number (ED first)."""
    folder = raw / f"patient{patient:03d}"
    folder.mkdir(parents=True)
    ed, es = frames
    (folder / "Info.cfg").write_text(f"ED: {ed}\nES: {es}\nGroup: NOR\nHeight: 170.0\nNbFrame: 30\nWeight: 70.0\n")
    for frame, (image, label) in frames.items():
        save_nifti(folder / f"patient{patient:03d}_frame{frame:02d}.nii.gz", image, spacing_xyz)
        save_nifti(folder / f"patient{patient:03d}_frame{frame:02d}_gt.nii.gz", label, spacing_xyz)


def read_pair(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with h5py.File(path, "r") as fh:
        return fh["image"][()], fh["label"][()]


def stacked_slices(root: Path, case: str) -> tuple[np.ndarray, np.ndarray]:
    """A training case's volume, rebuilt from its slices in the release (slice k = volume[k - 1])."""
    paths = sorted((root / "data" / "slices").glob(f"{case}_slice_*.h5"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    pairs = [read_pair(p) for p in paths]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


@pytest.mark.real_data
def test_acdc_preprocess_rebuilds_real_volumes_from_nifti(tmp_path, capsys):
    real = real_data_root("ACDC")
    raw, out = tmp_path / "raw", tmp_path / "ACDC"
    volumes = {
        2: {
            1: read_pair(real / "data" / "patient002_frame01.h5"),
            12: read_pair(real / "data" / "patient002_frame02.h5"),
        }
    }
    for patient in (3, 4):
        volumes[patient] = {
            1: stacked_slices(real, f"patient{patient:03d}_frame01"),
            9: stacked_slices(real, f"patient{patient:03d}_frame02"),
        }
    spacings = {2: (1.25, 1.5, 10.0), 3: (1.5625, 1.5625, 5.0), 4: (1.4, 1.4, 10.0)}
    for patient, frames in volumes.items():
        make_raw_patient(raw, patient, frames, spacings[patient])

    status, stdout, err = run_inline(acdc_script, capsys, "preprocess", "--raw", raw, "--out", out, "--size-check")
    assert status == 0, stdout + err
    assert "6 case(s) written" in stdout and "size check: the slice counts of 4 case(s) match" in stdout
    # The release's files are per-volume min-max normalised already, so preprocessing gives them back exactly.
    image, label = read_pair(out / "data" / "patient002_frame02.h5")
    assert image.dtype == np.float32 and label.dtype == np.uint8
    np.testing.assert_allclose(image, volumes[2][12][0], atol=1e-6)
    np.testing.assert_array_equal(label, volumes[2][12][1])
    for k in (1, 5):
        image, label = read_pair(out / "data" / "slices" / f"patient003_frame02_slice_{k}.h5")
        real_image, real_label = read_pair(real / "data" / "slices" / f"patient003_frame02_slice_{k}.h5")
        np.testing.assert_allclose(image, real_image, atol=1e-6)
        np.testing.assert_array_equal(label, real_label)
    spacing = json.loads((out / "spacing.json").read_text())
    assert spacing["patient002_frame01"] == [10.0, 1.5, 1.25] and spacing["patient003_frame02"] == [5.0, 1.5625, 1.5625]
    # train.list keeps the standard order (patient004 comes before patient003 there); no test patient, no test.list.
    assert (out / "train.list").read_text().split() == [
        "patient004_frame01",
        "patient004_frame02",
        "patient003_frame01",
        "patient003_frame02",
    ]
    assert (out / "val.list").read_text().split() == ["patient002_frame01", "patient002_frame02"]
    assert not (out / "test.list").exists()
    slices = (out / "train_slices.list").read_text().split()
    assert len(slices) == sum(len(volumes[p][f][0]) for p in (3, 4) for f in volumes[p])

    cfg = load_config(
        None, ["data.name=acdc", f"data.root={out}", "data.labeled_patients=1", "data.image_size=[32, 32]"]
    )
    data = load_dataset(cfg)
    assert len(data.labeled) + len(data.unlabeled) == len(slices) and len(data.val) == 2 and data.unit == "mm"
    status, stdout, _ = run_inline(acdc_script, capsys, "verify", "--root", out, "--skip-checksums")
    assert status == 0 and "ok: no problems found" in stdout
    status, stdout, _ = run_inline(acdc_script, capsys, "preprocess", "--raw", raw, "--out", out)
    assert status == 0 and "0 case(s) written, 6 already done" in stdout


def test_acdc_preprocess_errors_are_one_line(tmp_path):
    raw = tmp_path / "raw"
    result = run_script("acdc", "preprocess", "--raw", raw, "--out", tmp_path / "out")
    assert_one_line_error(result.returncode, result.stderr, f"'{raw}' does not exist", acdc_script.REGISTER_URL)

    frames = {
        1: (np.random.default_rng(0).random((3, 8, 6)).astype(np.float32), np.ones((3, 8, 6), np.uint8)),
        5: (np.random.default_rng(1).random((3, 8, 6)).astype(np.float32), np.ones((3, 8, 6), np.uint8)),
    }
    make_raw_patient(raw, 1, frames, (1.0, 1.0, 10.0))
    broken = raw / "patient001" / "patient001_frame05.nii.gz"
    broken.write_bytes(broken.read_bytes()[:200])
    result = run_script("acdc", "preprocess", "--raw", raw, "--out", tmp_path / "out")
    assert_one_line_error(result.returncode, result.stderr, f"file '{broken}'", "not a readable NIfTI file")
    assert not list((tmp_path / "out").rglob("*.coda-edu-tmp-*")) and not (tmp_path / "out" / _common.STAGING).exists()


def test_acdc_size_check_names_cases_that_differ():
    manifest = {f"data/slices/patient003_frame01_slice_{k}.h5": "0" * 64 for k in range(1, 11)}
    acdc_script.size_check({"patient003_frame01": 10, "patient002_frame01": 8}, manifest)
    with pytest.raises(DataError, match="patient003_frame01 has 9 slices, the release 10"):
        acdc_script.size_check({"patient003_frame01": 9}, manifest)


# --------------------------------------------------------------------------- LA

NRRD_TYPES = {np.dtype(np.int16): "short", np.dtype(np.uint8): "uchar", np.dtype(np.float32): "float"}


def write_nrrd(path: Path, array: np.ndarray, encoding: str = "raw", extra: str = "") -> None:
    """A minimal attached NRRD file (first axis fastest, little endian)."""
    header = (
        f"NRRD0004\n# written by the coda-edu tests\ntype: {NRRD_TYPES[array.dtype]}\ndimension: {array.ndim}\n"
        f"space: left-posterior-superior\nsizes: {' '.join(map(str, array.shape))}\n"
        f"space directions: (0.625,0,0) (0,0.625,0) (0,0,0.625)\nendian: little\nencoding: {encoding}\n{extra}\n"
    )
    body = array.astype(array.dtype.newbyteorder("<")).tobytes(order="F")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header.encode() + (gzip.compress(body) if encoding == "gzip" else body))


LA_CASES = ("TESTCASE000000000001", "TESTCASE000000000002", "UPT6DX9IQY9JAZ7HJKA7")


def make_la_raw(raw: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Three raw cases (160 x 170 x 4), raw and gzip encodings, masks of 0/255 with room for every margin."""
    cases = {}
    for i, case in enumerate(LA_CASES):
        rng = np.random.default_rng(i)
        image = rng.integers(0, 400, (160, 170, 4)).astype(np.int16)
        mask = np.zeros((160, 170, 4), np.uint8)
        mask[50 + i : 110, 60 : 110 - i, 1:3] = 255
        image[mask > 0] += 300
        write_nrrd(raw / case / "lgemri.nrrd", image, "gzip" if i % 2 else "raw")
        write_nrrd(raw / case / "laendo.nrrd", mask, "raw" if i % 2 else "gzip")
        cases[case] = (image, mask)
    return cases


def test_nrrd_reader_reads_raw_and_gzip_in_file_axis_order(tmp_path):
    array = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5) - 20
    for encoding in ("raw", "gzip"):
        write_nrrd(tmp_path / f"{encoding}.nrrd", array, encoding)
        read, fields = _common.read_nrrd(tmp_path / f"{encoding}.nrrd")
        np.testing.assert_array_equal(read, array)
        assert fields["encoding"] == encoding
    big = tmp_path / "big.nrrd"
    big.write_bytes(
        b"NRRD0005\ntype: float\ndimension: 1\nsizes: 2\nendian: big\nencoding: raw\n\n"
        + np.array([1.5, -2.0], ">f4").tobytes()
    )
    np.testing.assert_array_equal(_common.read_nrrd(big)[0], [1.5, -2.0])


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("truncated_raw", "NRRD data has 100 bytes"),
        ("truncated_gzip", "gzip data is truncated or corrupt"),
        ("bzip2", "field 'encoding: bzip2' is not supported"),
        ("detached", "field 'data file: other.raw' is not supported"),
        ("no_sizes", "lacks the required field 'sizes'"),
        ("not_nrrd", "not an NRRD file"),
    ],
)
def test_nrrd_reader_refuses_broken_files_in_one_line(tmp_path, breakage, message):
    path = tmp_path / "x.nrrd"
    array = np.zeros((10, 10, 2), np.int16)
    if breakage == "truncated_raw":
        write_nrrd(path, array)
        path.write_bytes(path.read_bytes()[:-300])
    elif breakage == "truncated_gzip":
        write_nrrd(path, array, "gzip")
        path.write_bytes(path.read_bytes()[:-10])
    elif breakage == "bzip2":
        write_nrrd(path, array, "bzip2")
    elif breakage == "detached":
        write_nrrd(path, array, extra="data file: other.raw\n")
    elif breakage == "no_sizes":
        path.write_bytes(b"NRRD0004\ntype: short\ndimension: 1\nendian: little\nencoding: raw\n\n\x00\x00")
    else:
        path.write_bytes(b"P5 10 10 255\n")
    with pytest.raises(DataError) as info:
        _common.read_nrrd(path)
    assert message in str(info.value) and f"file '{path}'" in str(info.value) and "\n" not in str(info.value)


def test_la_preprocess_crops_around_the_label_reproducibly(tmp_path, capsys):
    raw = tmp_path / "raw"
    cases = make_la_raw(raw)
    outs = {name: tmp_path / name for name in ("seed1", "seed1_again", "seed2")}
    for name, out in outs.items():
        status, stdout, err = run_inline(
            la_script, capsys, "preprocess", "--raw", raw, "--out", out, "--seed", 2 if name == "seed2" else 1
        )
        assert status == 0, err
    crops = {name: json.loads((out / "crop.json").read_text()) for name, out in outs.items()}
    assert crops["seed1"] == crops["seed1_again"]
    assert any(crops["seed1"][c] != crops["seed2"][c] for c in LA_CASES)  # the margins differ across seeds
    for case, (image, mask) in cases.items():
        out_image, out_label = read_pair(outs["seed1"] / la_script.CASE_FOLDER / case / "mri_norm2.h5")
        again = read_pair(outs["seed1_again"] / la_script.CASE_FOLDER / case / "mri_norm2.h5")
        np.testing.assert_array_equal(out_image, again[0])
        (x0, x1), (y0, y1) = crops["seed1"][case]["x"], crops["seed1"][case]["y"]
        assert out_image.shape == (x1 - x0, y1 - y0, 4) and x1 - x0 >= 112 and y1 - y0 >= 112  # z kept whole
        assert out_label.dtype == np.uint8 and out_label.sum() == (mask > 0).sum()  # the whole atrium is inside
        crop = image[x0:x1, y0:y1].astype(np.float64)
        np.testing.assert_allclose(out_image, (crop - crop.mean()) / crop.std(), atol=1e-5)
        assert abs(float(out_image.mean())) < 1e-4 and abs(float(out_image.std()) - 1) < 1e-4
        xs, ys = np.nonzero(mask.any(axis=(1, 2)))[0], np.nonzero(mask.any(axis=(0, 2)))[0]
        assert 10 <= xs.min() - x0 - (112 - (xs.max() - xs.min() + 1)) // 2 <= 19  # documented margin 10..19
        assert 10 <= y1 - ys.max() - 1 - (112 - (ys.max() - ys.min() + 1)) // 2 <= 19

    out = outs["seed1"]
    assert (out / "train.list").read_text().split() == list(LA_CASES[:2])
    assert (out / "test.list").read_text().split() == [LA_CASES[2]]
    cfg = load_config(
        None, ["data.name=la", f"data.root={out}", "data.labeled_patients=1", "data.image_size=[8, 32, 32]"]
    )
    data = load_dataset(cfg)
    assert len(data.labeled) == 1 and len(data.unlabeled) == 1 and len(data.test) == 1
    status, stdout, _ = run_inline(la_script, capsys, "verify", "--root", out, "--skip-checksums")
    assert status == 0 and "ok: no problems found" in stdout
    status, stdout, _ = run_inline(la_script, capsys, "preprocess", "--raw", raw, "--out", out, "--seed", 1)
    assert status == 0 and "0 case(s) written, 3 already done" in stdout
    status, _, err = run_inline(la_script, capsys, "preprocess", "--raw", raw, "--out", out, "--seed", 2)
    assert_one_line_error(status, err, "was built with --seed 1")


def test_la_preprocess_errors_are_one_line(tmp_path, capsys):
    raw = tmp_path / "raw"
    result = run_script("la", "preprocess", "--raw", raw, "--out", tmp_path / "out", "--seed", 0)
    assert_one_line_error(result.returncode, result.stderr, f"'{raw}' does not exist", la_script.CHALLENGE_URL)
    make_la_raw(raw)
    broken = raw / LA_CASES[1] / "lgemri.nrrd"  # gzip encoded
    broken.write_bytes(broken.read_bytes()[:-50])
    status, _, err = run_inline(la_script, capsys, "preprocess", "--raw", raw, "--out", tmp_path / "out", "--seed", 0)
    assert_one_line_error(status, err, f"file '{broken}'", "truncated or corrupt")


@pytest.mark.parametrize(
    "crops",
    [b"[" * 100_000 + b"]" * 100_000, b"\xff\xfe\x00", b'{"X": {"seed": 1e999}}', b'{"X": {"seed": "s"}}'],
)
def test_la_preprocess_with_a_damaged_crop_record_is_one_line(tmp_path, capsys, crops):
    raw, out = tmp_path / "raw", tmp_path / "out"
    make_la_raw(raw)
    out.mkdir()
    (out / "crop.json").write_bytes(crops)
    status, _, err = run_inline(la_script, capsys, "preprocess", "--raw", raw, "--out", out, "--seed", 0)
    assert_one_line_error(status, err, "crop.json")


def make_la_mirror(tmp_path: Path, train=None, test=None) -> tuple[Path, list[str], list[str]]:
    """A fake UA-MT data/ folder with the usual split (80 training and 20 test cases)."""
    mirror = tmp_path / "UA-MT" / "data"
    others = [f"TRAIN{i:015d}" for i in range(80 - len(la_script.FIRST_TRAIN_IDS))]
    train = train if train is not None else [*la_script.FIRST_TRAIN_IDS, *others]
    test = test if test is not None else list(la_script.TEST_IDS)
    mirror.mkdir(parents=True)
    (mirror / "train.list").write_text("\n".join(train) + "\n")
    (mirror / "test.list").write_text("\n".join(test) + "\n")
    for i, case in enumerate(train + test):
        if "/" not in case:
            write_h5(mirror / la_script.CASE_FOLDER / case / "mri_norm2.h5", *tiny_pair((5, 4, 3), 2, i))
    return mirror, train, test


def test_la_download_is_pinned_to_a_commit():
    assert len(la_script.MIRROR_COMMIT) == 40 and la_script.MIRROR_COMMIT in la_script.MIRROR_URL
    assert "/HEAD/" not in la_script.MIRROR_URL
    assert la_script.build_parser().parse_args(["download", "--out", "x"]).base_url == la_script.MIRROR_URL


def test_la_download_refuses_files_without_a_checksum_unless_allowed(tmp_path, serve, capsys):
    mirror, train, test = make_la_mirror(tmp_path)
    manifest = write_manifest(
        tmp_path / "la.sha256", mirror, [la_script.case_rel(c) for c in la_script.FIRST_TRAIN_IDS]
    )
    server, url = serve(tmp_path / "UA-MT")
    out = tmp_path / "LA"
    args = ["download", "--out", out, "--base-url", url + "data/", "--manifest", manifest]
    status, stdout, err = run_inline(la_script, capsys, *args)
    assert_one_line_error(status, err, "84 of 100 case files have no known checksum", "--allow-unverified")
    assert "is ready" not in stdout and not (out / la_script.CASE_FOLDER).exists()  # no case file was fetched

    status, stdout, err = run_inline(la_script, capsys, *args, "--allow-unverified")
    assert status == 0, err
    assert "lists: 0 downloaded, 2 already present and valid; 2 unverified (no known checksum)" in stdout
    assert "h5 files: 100 downloaded, 0 already present and valid; 84 unverified (no known checksum)" in stdout
    assert "NOT VERIFIED: 84 case file(s)" in stdout and "is ready" not in stdout
    assert "/data/2018LA_Seg_Training%20Set/" in server.requests[-1]
    status, stdout, err = run_inline(la_script, capsys, "verify", "--root", out, "--manifest", manifest)
    assert status == 2 and "84 case file(s) have no known checksum" in stdout
    status, stdout, _ = run_inline(
        la_script, capsys, "verify", "--root", out, "--manifest", manifest, "--allow-unverified"
    )
    assert status == 0 and "ok: no problems found" in stdout
    server.requests.clear()
    assert run_inline(la_script, capsys, *args, "--allow-unverified")[0] == 0 and server.requests == []


def test_la_download_with_every_checksum_known_is_ready(tmp_path, serve, capsys):
    mirror, train, test = make_la_mirror(tmp_path)
    manifest = write_manifest(tmp_path / "la.sha256", mirror, [la_script.case_rel(c) for c in train + test])
    _, url = serve(tmp_path / "UA-MT")
    out = tmp_path / "LA"
    status, stdout, err = run_inline(
        la_script, capsys, "download", "--out", out, "--base-url", url + "data/", "--manifest", manifest
    )
    assert status == 0, err
    assert (
        "h5 files: 100 downloaded, 0 already present and valid" in stdout
        and "unverified" not in stdout.split("h5 files")[1]
    )
    assert "LA is ready in" in stdout and "every case file verified" in stdout


@pytest.mark.parametrize(
    "bad_id, fragment",
    [
        ("../../escaped_case", "is not a plain case name"),
        ("/tmp/absolute_case", "is not a plain case name"),
        ("lowercase0000000000x", "not case ids of the challenge"),
        ("SHORT", "not case ids of the challenge"),
    ],
)
def test_la_download_refuses_case_ids_that_are_not_challenge_ids(tmp_path, serve, capsys, bad_id, fragment):
    others = [f"TRAIN{i:015d}" for i in range(80 - len(la_script.FIRST_TRAIN_IDS) - 1)]
    mirror, train, test = make_la_mirror(tmp_path, train=[*la_script.FIRST_TRAIN_IDS, *others, bad_id])
    manifest = write_manifest(
        tmp_path / "la.sha256", mirror, [la_script.case_rel(c) for c in train + test if "/" not in c]
    )
    _, url = serve(tmp_path / "UA-MT")
    out = tmp_path / "work" / "LA"
    status, stdout, err = run_inline(
        la_script,
        capsys,
        "download",
        "--out",
        out,
        "--base-url",
        url + "data/",
        "--manifest",
        manifest,
        "--allow-unverified",
    )
    assert_one_line_error(status, err, fragment)
    assert "is ready" not in stdout
    assert not (out / la_script.CASE_FOLDER).exists()
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["LA"]  # nothing written beside --out
    assert not Path("/tmp/absolute_case").exists()


# --------------------------------------------------------------------------- CaDIS


def png_bytes(array: np.ndarray) -> bytes:
    buffer = BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def cadis_frames() -> dict[str, bytes]:
    """Archive members: 2 frames in each of Video01, Video03 (training) and Video05 (validation), plus clutter."""
    members = {"CaDISv2/README.txt": b"not a frame", "__MACOSX/CaDISv2/Video01/Images/._x.png": b"resource fork"}
    for video in (1, 3, 5):
        for frame in (10, 20):
            rng = np.random.default_rng(video * 100 + frame)
            label = rng.integers(0, 36, (12, 16)).astype(np.uint8)
            name = f"Video{video}_frame{frame:06d}.png"
            members[f"CaDISv2/Video{video:02d}/Images/{name}"] = png_bytes(
                rng.integers(0, 255, (12, 16, 3)).astype(np.uint8)
            )
            members[f"CaDISv2/Video{video:02d}/Labels/{name}"] = png_bytes(label)
    return members


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def write_index(path: Path, frames: list[str]) -> Path:
    rows = ["img_path,lbl_path,blacklisted"] + [f"{f},{f.replace('/Images/', '/Labels/')},0" for f in frames]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_cadis_extract_is_safe_resumable_and_verified(tmp_path, capsys):
    archive = make_zip(tmp_path / "CaDIS.zip", cadis_frames())
    out = tmp_path / "CaDIS"
    status, stdout, err = run_inline(cadis_script, capsys, "extract", "--archive", archive, "--out", out)
    assert status == 0, err
    assert "3 video(s) extracted, 0 already present; 6 frames" in stdout and "skipped 2 archive member(s)" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["Video01", "Video03", "Video05"]
    assert (out / "Video03" / "Labels" / "Video3_frame000020.png").read_bytes() == cadis_frames()[
        "CaDISv2/Video03/Labels/Video3_frame000020.png"
    ]

    index = write_index(
        out / "frame_index.csv", [f"Video{v:02d}/Images/Video{v}_frame{f:06d}.png" for v in (1, 3, 5) for f in (10, 20)]
    )
    status, stdout, err = run_inline(cadis_script, capsys, "verify", "--root", out)
    assert status == 0, stdout + err
    assert "Video05: 2 frames" in stdout and "6 frames listed, 0 of them missing" in stdout
    data = load_dataset(
        load_config(None, ["data.name=cadis", f"data.root={out}", "data.labeled_patients=1", "data.image_size=[8, 8]"])
    )
    assert len(data.labeled) == 2 and len(data.unlabeled) == 2 and len(data.val) == 2

    # Resuming: a killed run left a half video in its staging folder and no final folder. A folder
    # '.partial' of the user's is not the scripts' and is left alone (F5: it was deleted).
    (out / "Video05").rename(tmp_path / "moved")
    staging = leave_staging(out)
    (staging / "1-Video05" / "Images").mkdir(parents=True)
    (staging / "1-Video05" / "Images" / "junk.png").write_bytes(b"half")
    (out / ".partial").mkdir()
    (out / ".partial" / "mine.txt").write_text("mine")
    status, stdout, err = run_inline(
        cadis_script,
        capsys,
        "extract",
        "--archive",
        archive,
        "--out",
        out,
        "--sha256",
        hashlib.sha256(archive.read_bytes()).hexdigest(),
    )
    assert status == 0, err
    assert "archive SHA-256 matches" in stdout and "1 video(s) extracted, 2 already present" in stdout
    assert "removed the unfinished files of an interrupted run" in stdout
    assert not staging.exists() and not (out / "Video05" / "Images" / "junk.png").exists()
    assert (out / ".partial" / "mine.txt").read_text() == "mine"
    (out / ".partial" / "mine.txt").unlink()
    (out / ".partial").rmdir()

    status, _, err = run_inline(
        cadis_script, capsys, "extract", "--archive", archive, "--out", out, "--sha256", "ab" * 32
    )
    assert_one_line_error(status, err, "SHA-256 is", "not the expected abab")
    write_index(index, ["Video01/Images/Video1_frame000010.png", "Video09/Images/Video9_frame000500.png"])
    status, stdout, err = run_inline(cadis_script, capsys, "verify", "--root", out)
    assert_one_line_error(status, err, "verify found 1 problem(s)")
    assert "lists 1 frame(s) missing" in stdout and "Video09/Images/Video9_frame000500.png" in stdout


def test_cadis_refuses_unsafe_unpaired_and_broken_archives(tmp_path, capsys):
    evil = make_zip(tmp_path / "evil.zip", {**cadis_frames(), "CaDISv2/../../evil.png": b"x"})
    result = run_script("cadis", "extract", "--archive", evil, "--out", tmp_path / "out")
    assert_one_line_error(result.returncode, result.stderr, "member 'CaDISv2/../../evil.png' contains '..'")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.png").exists()

    absolute = make_zip(tmp_path / "abs.zip", {"/tmp/Video01/Images/a.png": b"x"})
    status, _, err = run_inline(cadis_script, capsys, "extract", "--archive", absolute, "--out", tmp_path / "out")
    assert_one_line_error(status, err, "is an absolute path")

    members = cadis_frames()
    del members["CaDISv2/Video03/Labels/Video3_frame000010.png"]
    unpaired = make_zip(tmp_path / "unpaired.zip", members)
    status, _, err = run_inline(cadis_script, capsys, "extract", "--archive", unpaired, "--out", tmp_path / "out")
    assert_one_line_error(
        status, err, "Video03: 1 file(s) in Images/ have no match in Labels/ (Video3_frame000010.png)"
    )
    assert not (tmp_path / "out" / "Video03").exists()

    (tmp_path / "truncated.zip").write_bytes(evil.read_bytes()[:100])
    status, _, err = run_inline(
        cadis_script, capsys, "extract", "--archive", tmp_path / "truncated.zip", "--out", tmp_path / "out"
    )
    assert_one_line_error(status, err, "not a readable zip file")

    members = cadis_frames()
    members["CaDISv2/Video01/Labels/Video1_frame000020.png"] = members["CaDISv2/Video01/Labels/Video1_frame000020.png"][
        :60
    ]
    status, _, err = run_inline(
        cadis_script, capsys, "extract", "--archive", make_zip(tmp_path / "bad.zip", members), "--out", tmp_path / "bad"
    )
    assert status == 0, err
    status, stdout, err = run_inline(cadis_script, capsys, "verify", "--root", tmp_path / "bad")
    assert_one_line_error(status, err, "verify found 1 problem(s)")
    assert "Video1_frame000020.png': not a readable PNG" in stdout


@pytest.mark.parametrize(
    "name, reason",
    [
        ("C:/Video01/Images/a.png", "is an absolute path"),
        ("CaDIS\\Video01\\Images\\a.png", "contains a backslash"),
        ("CaDIS/Video01/../../a.png", "contains '..'"),
        ("CaDIS/Video01/Images/link.png", "is a symbolic link"),
        ("CaDIS/Video01/Images/a.png", None),
    ],
)
def test_cadis_unsafe_member_names(name, reason):
    info = zipfile.ZipInfo(name)
    if name.endswith("link.png"):
        info.external_attr = 0o120777 << 16
    assert cadis_script.unsafe_reason(info) == reason


def test_cadis_without_a_command_says_where_to_get_the_archive(capsys):
    status, stdout, _ = run_inline(cadis_script, capsys)
    assert status == 0 and cadis_script.DOI_URL in stdout and "licence" in stdout and "extract --archive" in stdout


@pytest.mark.real_data
def test_cadis_real_frame_through_a_zip(tmp_path, capsys):
    real = real_data_root("CaDIS")
    name = "Video1_frame000090.png"
    members = {
        f"CaDIS/Video01/{kind}/{name}": (real / "Video01" / kind / name).read_bytes() for kind in ("Images", "Labels")
    }
    out = tmp_path / "CaDIS"
    status, _, err = run_inline(
        cadis_script, capsys, "extract", "--archive", make_zip(tmp_path / "c.zip", members), "--out", out
    )
    assert status == 0, err
    status, stdout, err = run_inline(cadis_script, capsys, "verify", "--root", out, "--index", real / "frame_index.csv")
    assert_one_line_error(status, err, "verify found 1 problem(s)")
    assert "Video01: 1 frames" in stdout and "4670 frames listed, 4669 of them missing" in stdout


# --------------------------------------------------------------------------- manifests and real subsets


def test_make_checksums_writes_sha256sum_manifests(tmp_path, capsys):
    data = tmp_path / "data"
    write_h5(data / "ACDC" / "data" / "slices" / "patient003_frame01_slice_1.h5", *tiny_pair((4, 4), 4, 0))
    write_h5(data / "ACDC" / "data" / "patient002_frame01.h5", *tiny_pair((2, 4, 4), 4, 1))
    (data / "ACDC" / "train.list").write_text("patient003_frame01\n")
    write_h5(data / "LA" / la_script.CASE_FOLDER / "CASE1" / "mri_norm2.h5", *tiny_pair((4, 4, 2), 2, 2))
    (data / "LA" / "train.list").write_text("CASE1\n")
    sums = ["--out-dir", tmp_path / "sums"]
    status, _, err = run_inline(
        make_checksums, capsys, "--data-dir", data, *sums, "--dataset", "acdc", "--dataset", "la"
    )
    assert status == 0, err
    acdc_lines = (tmp_path / "sums" / "acdc.sha256").read_text().splitlines()
    assert [line.split("  ", 1)[1] for line in acdc_lines] == [
        "data/patient002_frame01.h5",
        "data/slices/patient003_frame01_slice_1.h5",
        "train.list",
    ]
    assert acdc_lines[2] == f"{sha256_bytes(data / 'ACDC' / 'train.list')}  train.list"
    assert _common.read_manifest(tmp_path / "sums" / "la.sha256") == {
        "2018LA_Seg_Training Set/CASE1/mri_norm2.h5": sha256_bytes(
            data / "LA" / la_script.CASE_FOLDER / "CASE1" / "mri_norm2.h5"
        )
    }
    status, _, err = run_inline(make_checksums, capsys, "--data-dir", tmp_path / "nothing")
    assert_one_line_error(status, err, "no ACDC files found")
    # the committed LA manifest holds the release's 100 checksums: a subset never replaces it
    committed = (SCRIPTS / "checksums" / "la.sha256").read_bytes()
    status, _, err = run_inline(make_checksums, capsys, "--data-dir", data, "--dataset", "la")
    assert_one_line_error(status, err, "holds the checksums of all 100 LA cases")
    assert (SCRIPTS / "checksums" / "la.sha256").read_bytes() == committed


@pytest.mark.real_data
@pytest.mark.parametrize("dataset", ["acdc", "la"])
def test_committed_manifests_verify_the_real_subsets(dataset, capsys):
    root = real_data_root(dataset.upper())
    module = {"acdc": acdc_script, "la": la_script}[dataset]
    status, stdout, err = run_inline(module, capsys, "verify", "--root", root)
    assert status == 0, stdout + err
    assert "unverified" in stdout and "ok: no problems found" in stdout


# --------------------------------------------------------------------------- LA: the release's 100 checksums

LA_MANIFEST = SCRIPTS / "checksums" / "la.sha256"


def committed_la_ids() -> list[str]:
    rels = _common.read_manifest(LA_MANIFEST)
    ids = [rel.split("/")[1] for rel in rels]
    assert all(rel == la_script.case_rel(case) for rel, case in zip(rels, ids))
    return ids


def test_the_la_manifest_knows_all_100_cases_of_the_release():
    ids = committed_la_ids()
    assert len(ids) == len(set(ids)) == 100 and all(la_script.CASE_ID.fullmatch(c) for c in ids)
    assert set(la_script.TEST_IDS) <= set(ids) and set(la_script.FIRST_TRAIN_IDS) <= set(ids)
    readme = (SCRIPTS / "checksums" / "README.md").read_text()
    assert "yulequan/UA-MT" in readme and la_script.MIRROR_COMMIT in readme


def la_release_mirror(tmp_path: Path, case_file) -> Path:
    """A fake UA-MT data/ folder with the release's split (the 100 ids of the committed manifest);
    ``case_file(case, path)`` writes each case file."""
    ids = committed_la_ids()
    test = list(la_script.TEST_IDS)
    train, _ = la_script.split_lists(ids)
    mirror = tmp_path / "UA-MT" / "data"
    mirror.mkdir(parents=True)
    (mirror / "train.list").write_text("\n".join(train) + "\n")
    (mirror / "test.list").write_text("\n".join(test) + "\n")
    for case in ids:
        path = mirror / la_script.case_rel(case)
        path.parent.mkdir(parents=True)
        case_file(case, path)
    return mirror


def test_la_download_verifies_every_case_against_the_committed_manifest(tmp_path, capsys, monkeypatch):
    # A mocked transport that serves, for each case file, bytes whose digest it reports as the release's:
    # what counts here is that all 100 case files are checked against a known checksum, none unverified.
    expected = _common.read_manifest(LA_MANIFEST)
    mirror = la_release_mirror(tmp_path, lambda case, path: write_h5(path, *tiny_pair((5, 4, 3), 2, 0)))
    checked = []
    real_download = _common._download

    def download(url, partial):
        got = real_download(url, partial)
        rel = next((rel for rel in expected if url.endswith(rel.replace(" ", "%20"))), None)
        if rel is None:
            return got  # a list
        checked.append(rel)
        return expected[rel]

    monkeypatch.setattr(_common, "_download", download)
    out = tmp_path / "LA"
    status, stdout, err = run_inline(la_script, capsys, "download", "--out", out, "--base-url", mirror.as_uri() + "/")
    assert status == 0, err
    assert sorted(checked) == sorted(expected) and len(checked) == 100
    assert "h5 files: 100 downloaded, 0 already present and valid" in stdout and "NOT VERIFIED" not in stdout
    assert "LA is ready in" in stdout and "every case file verified" in stdout


def test_la_download_keeps_no_case_file_that_differs_from_the_release(tmp_path, capsys):
    mirror = la_release_mirror(tmp_path, lambda case, path: write_h5(path, *tiny_pair((5, 4, 3), 2, 0)))
    out = tmp_path / "LA"
    status, stdout, err = run_inline(la_script, capsys, "download", "--out", out, "--base-url", mirror.as_uri() + "/")
    assert_one_line_error(status, err, f"'{la_script.case_rel(la_script.FIRST_TRAIN_IDS[0])}'", "SHA-256", "not kept")
    assert not list((out / la_script.CASE_FOLDER).glob("*/*.h5")) and not (out / _common.STAGING).exists()


@pytest.mark.real_data
def test_the_real_la_cases_match_the_committed_manifest(tmp_path, capsys):
    # the 16 real cases are downloaded (from a local mirror) and verified; the first fake case is refused
    root = real_data_root("LA")
    real = {p.parent.name: p for p in (root / la_script.CASE_FOLDER).glob("*/mri_norm2.h5")}
    assert len(real) == 16

    def case_file(case, path):
        if case in real:
            path.write_bytes(real[case].read_bytes())
        else:
            write_h5(path, *tiny_pair((5, 4, 3), 2, 0))

    mirror = la_release_mirror(tmp_path, case_file)
    out = tmp_path / "LA"
    status, _, err = run_inline(la_script, capsys, "download", "--out", out, "--base-url", mirror.as_uri() + "/")
    assert_one_line_error(status, err, "SHA-256", "not kept")
    kept = sorted(p.parent.name for p in (out / la_script.CASE_FOLDER).glob("*/mri_norm2.h5"))
    assert kept == sorted(real)  # the 16 real cases come first in train.list and verified
    status, stdout, err = run_inline(la_script, capsys, "verify", "--root", root)
    assert status == 0, stdout + err
    assert "checksums: 16 file(s) verified" in stdout
