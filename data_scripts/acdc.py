"""ACDC: download the common preprocessed release, or build it from the raw NIfTI release, and verify it.

Usage::

    python data_scripts/acdc.py download   --out ROOT [--base-url URL] [--lists-url URL]
    python data_scripts/acdc.py preprocess --raw RAW --out ROOT [--size-check]
    python data_scripts/acdc.py verify     --root ROOT [--skip-checksums]

Both ``download`` and ``preprocess`` write the layout that ``coda_edu.data.acdc`` reads::

    ROOT/train.list, val.list, test.list     cases patientNNN_frame01 (ED) / patientNNN_frame02 (ES)
    ROOT/train_slices.list                   <case>_slice_<k> of the training cases
    ROOT/data/slices/<case>_slice_<k>.h5     image (H, W) float32 in [0, 1], label (H, W) uint8 0..3
    ROOT/data/<case>.h5                      image, label (D, H, W)
    ROOT/spacing.json                        {case: [dz, dy, dx]} in mm (preprocess only)

The split is the standard one of the common release: 70 training, 10 validation and 20
test patients of patient001..patient100 (TRAIN_PATIENTS / VAL_PATIENTS below, in the
order of its lists; the test patients are the remaining 20).

download
    Fetches the h5 files of the widely used preprocessed release (SSL4MIS) from its GitHub
    mirror antares0811/3DCardiac, folder data/ACDC/data/ (flat: the 1312 training slices and
    the 60 volumes of the validation and test patients), and the four split lists, which
    that mirror does not carry, from HiLab-git/SSL4MIS, folder data/ACDC/. Both are pinned
    to a commit (MIRROR_URL, LISTS_URL). Slices go to data/slices/, volumes to data/.
    Every file is checked against data_scripts/checksums/acdc.sha256 (made by
    make_checksums.py from the coda-edu test subset, which holds the training and
    validation files and lists); the files it does not know (test.list and the test
    patients' volumes) are downloaded, read back with the checked readers and reported as
    "unverified (no known checksum)". The lists must name exactly the standard split.

preprocess
    Builds the same layout from the raw ACDC release (registration required). For each
    patient 001..100 found in RAW (RAW/patientNNN/, or one or two folder levels below RAW,
    e.g. RAW/training/patientNNN/):

    1. Info.cfg gives the end-diastolic (ED) and end-systolic (ES) frame numbers; the ED
       frame becomes case patientNNN_frame01 and the ES frame patientNNN_frame02, as in
       the common release (there, frame01 always has the larger left ventricle).
    2. patientNNN_frameMM.nii.gz and patientNNN_frameMM_gt.nii.gz are read with nibabel
       and transposed from NIfTI (X, Y, Z) to (Z, Y, X) = (D, H, W).
    3. The image is min-max normalised per volume, (x - min) / (max - min), to float32 in
       [0, 1]; the label is checked to hold ids 0..3 and stored as uint8. Nothing is
       resampled or cropped: slices keep their native in-plane size.
    4. data/slices/<case>_slice_<k>.h5 holds volume slice k - 1 (k counts from 1, as in
       the release), then data/<case>.h5 the whole volume (gzip, keys image and label).
       Unlike the release, which has slices only for training patients and volumes only
       for the others, both are written for every case.
    5. spacing.json gets [dz, dy, dx] from the NIfTI header's voxel sizes.
    6. train.list and val.list list the present patients in the standard order, test.list
       in ascending order; train_slices.list lists the training slices in train.list
       order, k ascending.

    ``--size-check`` compares each case's slice count with the common release (known for
    the training cases from the checksum manifest) and fails on any difference.

verify
    Checks every file named in the manifest (missing or different files are problems),
    counts files it does not know as unverified, checks the lists against the standard
    split, and reads every slice and volume the lists name with coda-edu's checked
    readers. Use ``--skip-checksums`` for a folder built by ``preprocess``, whose files
    differ byte-wise from the release.

Re-running any command skips outputs that already exist and verify; files are written
in ROOT/.coda-edu-staging/ and renamed into place, so an interrupted run can simply be
repeated (it removes that folder, and nothing else).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Optional

import numpy as np

from _common import (
    CHECKSUMS,
    DataError,
    Item,
    Parser,
    Staging,
    as_url,
    checksum_problems,
    fetch_all,
    join_url,
    progress,
    read_manifest,
    report_problems,
    run_cli,
    say,
    shorten,
    write_h5,
)
from coda_edu.data.acdc import load_spacing, training_slices
from coda_edu.data.readers import check_pair, read_h5, read_list, read_nifti

MIRROR_URL = (
    "https://raw.githubusercontent.com/antares0811/3DCardiac/673e5ad05c1c9c2a29ddc969af84184fbca40a75/data/ACDC/"
)
LISTS_URL = "https://raw.githubusercontent.com/HiLab-git/SSL4MIS/0119796967386a1a1909e3b6481c1a8736bdeda7/data/ACDC/"
REGISTER_URL = "https://humanheart-project.creatis.insa-lyon.fr/database/"
MANIFEST = CHECKSUMS / "acdc.sha256"
NUM_CLASSES = 4
FRAMES = ("01", "02")  # ED, ES
LIST_NAMES = ("train.list", "val.list", "test.list", "train_slices.list")

#: The standard split of the common release, in the order of its train.list and val.list.
TRAIN_PATIENTS = (
    99,
    38,
    50,
    100,
    58,
    21,
    49,
    20,
    72,
    40,
    60,
    89,
    4,
    56,
    98,
    96,
    31,
    18,
    94,
    47,
    48,
    55,
    97,
    74,
    43,
    41,
    63,
    37,
    95,
    54,
    26,
    88,
    32,
    69,
    6,
    71,
    12,
    73,
    61,
    17,
    25,
    10,
    57,
    29,
    51,
    5,
    36,
    46,
    62,
    34,
    76,
    92,
    70,
    77,
    67,
    3,
    91,
    16,
    14,
    44,
    42,
    90,
    53,
    27,
    35,
    86,
    23,
    9,
    79,
    15,
)
VAL_PATIENTS = (28, 85, 82, 87, 19, 30, 78, 45, 2, 39)
TEST_PATIENTS = tuple(sorted(set(range(1, 101)) - set(TRAIN_PATIENTS) - set(VAL_PATIENTS)))
SPLITS = {"train.list": TRAIN_PATIENTS, "val.list": VAL_PATIENTS, "test.list": TEST_PATIENTS}


def cases_of(patients) -> list[str]:
    """Case names (ED then ES frame) of the given patient numbers."""
    return [f"patient{p:03d}_frame{f}" for p in patients for f in FRAMES]


def check_h5(path: Path) -> None:
    """Read an h5 file with the checked reader (for files without a known checksum)."""
    read_h5(path, NUM_CLASSES)


def check_list(path: Path) -> None:
    """A split list must be readable and non-empty."""
    read_list(path)


def split_problems(lists: dict[str, list[str]], complete: bool) -> list[str]:
    """How the lists disagree with the standard split (all cases required when ``complete``)."""
    problems = []
    for name, names in lists.items():
        if name not in SPLITS:
            continue
        expected = cases_of(SPLITS[name])
        foreign = [n for n in names if n not in expected]
        if foreign:
            problems.append(f"{name} names {shorten(foreign)}, not {name.split('.')[0]} cases of the standard split")
        missing = [n for n in expected if n not in names]
        if complete and missing:
            problems.append(f"{name} lacks {shorten(missing)} of the standard split")
    train = set(lists.get("train.list", []))
    stray = [n for n in lists.get("train_slices.list", []) if n.rsplit("_slice_", 1)[0] not in train]
    if stray:
        problems.append(f"train_slices.list names {shorten(stray)}, whose cases are not in train.list")
    return problems


# --------------------------------------------------------------------------- download


def download(args) -> int:
    """The ``download`` command (see the module docstring)."""
    root = Path(args.out).expanduser()
    manifest = read_manifest(Path(args.manifest))
    with Staging(root) as staging:
        return download_into(root, manifest, args, staging)


def download_into(root: Path, manifest: dict[str, str], args, staging: Staging) -> int:
    lists_url, base_url = as_url(args.lists_url), as_url(args.base_url)
    list_items = [Item(join_url(lists_url, name), root / name, name, manifest.get(name)) for name in LIST_NAMES]
    lists_report = fetch_all(list_items, check_list, "ACDC lists", staging)
    lists = {name: read_list(root / name) for name in LIST_NAMES}
    problems = split_problems(lists, complete=True)
    if problems:
        raise DataError(
            f"the lists in '{root}' do not match the standard split: {problems[0]} "
            f"(delete the .list files there to fetch them again)"
        )

    def item(name: str, rel: str) -> Item:
        return Item(join_url(base_url, f"data/{name}.h5"), root / rel, rel, manifest.get(rel))

    items = [item(n, f"data/slices/{n}.h5") for n in lists["train_slices.list"]]
    items += [item(n, f"data/{n}.h5") for n in lists["val.list"] + lists["test.list"]]
    data_report = fetch_all(items, check_h5, "ACDC files", staging)
    say(f"lists: {lists_report.summary()}")
    say(f"h5 files: {data_report.summary()}")
    say(
        f"ACDC is ready in '{root}' ({len(lists['train_slices.list'])} training slices, "
        f"{len(lists['val.list'])} validation and {len(lists['test.list'])} test volumes)"
    )
    return 0


# --------------------------------------------------------------------------- preprocess


def find_patients(raw: Path) -> dict[int, Path]:
    """Patient folders (patientNNN) in RAW or one or two folder levels below it."""
    found: dict[int, Path] = {}
    for pattern in ("patient[0-9][0-9][0-9]", "*/patient[0-9][0-9][0-9]", "*/*/patient[0-9][0-9][0-9]"):
        for folder in sorted(raw.glob(pattern)):
            if folder.is_dir():
                found.setdefault(int(folder.name[7:]), folder)
    return found


def missing_raw_message(raw: Path) -> str:
    """The one-line error for a missing or empty raw folder: what is wrong and where to get the data."""
    state = (
        "does not exist"
        if not raw.exists()
        else "is a file (extract the archive first)"
        if raw.is_file()
        else "has no patientNNN/ folders"
    )
    return (
        f"raw ACDC folder '{raw}' {state}: register at {REGISTER_URL}, download the ACDC dataset "
        f"(NIfTI, training patients 001-100), extract it and pass the folder holding patient001/ "
        f"(or a parent such as .../database/) with --raw"
    )


def read_info(folder: Path) -> tuple[int, int]:
    """(ED, ES) frame numbers from ``Info.cfg``."""
    path = folder / "Info.cfg"
    if not path.is_file():
        raise DataError(f"file '{path}' does not exist (it names the ED and ES frames)")
    pairs = (line.split(":", 1) for line in path.read_text(errors="replace").splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in pairs}
    try:
        return int(fields["ED"]), int(fields["ES"])
    except (KeyError, ValueError):
        raise DataError(f"file '{path}': needs integer 'ED:' and 'ES:' lines") from None


def nifti_path(folder: Path, frame: int, suffix: str = "") -> Path:
    """``<folder>/<patient>_frameMM<suffix>.nii.gz`` (or ``.nii`` when only that exists)."""
    stem = f"{folder.name}_frame{frame:02d}{suffix}"
    gz = folder / f"{stem}.nii.gz"
    return gz if gz.exists() or not (folder / f"{stem}.nii").exists() else folder / f"{stem}.nii"


def load_frame(image_path: Path, label_path: Path) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """(image (D, H, W) float32 in [0, 1], label (D, H, W) uint8, spacing [dz, dy, dx]) of one frame."""
    image, zooms = read_nifti(image_path)
    label, _ = read_nifti(label_path)
    if image.ndim != 3:
        raise DataError(f"file '{image_path}': expected a 3D volume, got shape {image.shape}")
    image, label = image.transpose(2, 1, 0), label.transpose(2, 1, 0)
    check_pair(label_path, image, label, NUM_CLASSES)
    lo, hi = float(image.min()), float(image.max())
    if hi <= lo:
        raise DataError(f"file '{image_path}': image is constant ({lo}), so it cannot be min-max normalised")
    image = (image.astype(np.float64) - lo) / (hi - lo)
    return (
        np.ascontiguousarray(image, dtype=np.float32),
        np.ascontiguousarray(label, dtype=np.uint8),
        [zooms[2], zooms[1], zooms[0]],
    )


def slice_path(root: Path, case: str, k: int) -> Path:
    """``ROOT/data/slices/<case>_slice_<k>.h5``."""
    return root / "data" / "slices" / f"{case}_slice_{k}.h5"


def write_case(staging: Staging, root: Path, case: str, image: np.ndarray, label: np.ndarray) -> None:
    """The slices first, then the volume, whose presence marks the case as done."""
    for k in range(image.shape[0]):
        write_h5(staging, slice_path(root, case, k + 1), image[k], label[k])
    write_h5(staging, root / "data" / f"{case}.h5", image, label)


def done_depth(root: Path, case: str, spacing: dict) -> Optional[int]:
    """The slice count of a case a previous run finished (readable volume, all slices, spacing), else None."""
    volume = root / "data" / f"{case}.h5"
    if case not in spacing or not volume.is_file():
        return None
    try:
        depth = read_h5(volume, NUM_CLASSES, image_ndim=3)[0].shape[0]
    except DataError:
        return None
    return depth if all(slice_path(root, case, k).is_file() for k in range(1, depth + 1)) else None


def write_lists(staging: Staging, root: Path, present: set[int], depths: dict[str, int]) -> None:
    """train/val/test lists of the present patients and train_slices.list; a split with none is removed."""
    for name, patients in SPLITS.items():
        chosen = [p for p in (sorted(patients) if name == "test.list" else patients) if p in present]
        if chosen:
            staging.write_text(root / name, "\n".join(cases_of(chosen)) + "\n")
        else:
            (root / name).unlink(missing_ok=True)
            say(f"note: no {name.split('.')[0]} patient in the raw data, so {name} was not written")
    slices = [
        f"{case}_slice_{k}"
        for case in cases_of(p for p in TRAIN_PATIENTS if p in present)
        for k in range(1, depths[case] + 1)
    ]
    if slices:
        staging.write_text(root / "train_slices.list", "\n".join(slices) + "\n")


def release_slice_counts(manifest: dict[str, str]) -> dict[str, int]:
    """Slices per case in the common release, from the manifest's data/slices/ entries."""
    counts: Counter = Counter()
    for rel in manifest:
        m = re.fullmatch(r"data/slices/(.+)_slice_\d+\.h5", rel)
        if m:
            counts[m.group(1)] += 1
    return dict(counts)


def size_check(depths: dict[str, int], manifest: dict[str, str]) -> None:
    """Fail when a case's slice count differs from the common release's."""
    known = release_slice_counts(manifest)
    compared = [c for c in depths if c in known]
    wrong = [f"{c} has {depths[c]} slices, the release {known[c]}" for c in compared if depths[c] != known[c]]
    if wrong:
        raise DataError(f"size check: {len(wrong)} case(s) differ from the common release: {shorten(wrong)}")
    say(
        f"size check: the slice counts of {len(compared)} case(s) match the common release "
        f"({len(depths) - len(compared)} case(s) have no reference count)"
    )


def preprocess(args) -> int:
    """The ``preprocess`` command (see the module docstring)."""
    raw, root = Path(args.raw).expanduser(), Path(args.out).expanduser()
    found = find_patients(raw)
    patients = {p: folder for p, folder in found.items() if 1 <= p <= 100}
    if not patients:
        raise DataError(missing_raw_message(raw))
    outside = sorted(set(found) - set(patients))
    if outside:
        say(f"note: ignoring {len(outside)} patient(s) outside patient001..patient100 (not in the common split)")
    absent = sorted(set(range(1, 101)) - set(patients))
    if absent:
        say(
            f"note: {len(absent)} of the 100 patients are not in '{raw}' "
            f"({shorten([f'patient{p:03d}' for p in absent])}); the lists name only the others"
        )
    spacing = {case: list(v) for case, v in load_spacing(root).items()}
    depths: dict[str, int] = {}
    written = 0
    with Staging(root) as staging:
        for patient in progress(sorted(patients), desc="ACDC patients", unit="patient"):
            folder = patients[patient]
            for tag, frame in zip(FRAMES, read_info(folder)):
                case = f"patient{patient:03d}_frame{tag}"
                depth = done_depth(root, case, spacing)
                if depth is None:
                    image_path, label_path = nifti_path(folder, frame), nifti_path(folder, frame, "_gt")
                    image, label, spacing[case] = load_frame(image_path, label_path)
                    write_case(staging, root, case, image, label)
                    depth, written = image.shape[0], written + 1
                depths[case] = depth
            staging.write_json(root / "spacing.json", spacing)
        write_lists(staging, root, set(patients), depths)
    say(f"ACDC: {written} case(s) written, {len(depths) - written} already done, in '{root}'")
    if args.size_check:
        size_check(depths, read_manifest(Path(args.manifest)))
    return 0


# --------------------------------------------------------------------------- verify


def read_problems(root: Path, lists: dict[str, list[str]]) -> tuple[list[str], int, int]:
    """(problems, slices read, volumes read) when reading every file the lists name."""
    problems = []
    try:
        slices, _ = training_slices(root, lists["train.list"])
    except DataError as exc:
        problems.append(str(exc))
        slices = []
    volumes = lists["val.list"] + lists.get("test.list", [])
    files = [(root / "data" / "slices" / f"{n}.h5", 2) for n in slices]
    files += [(root / "data" / f"{n}.h5", 3) for n in volumes]
    for path, ndim in progress(files, desc="reading"):
        try:
            read_h5(path, NUM_CLASSES, image_ndim=ndim)
        except DataError as exc:
            problems.append(str(exc))
    return problems, len(slices), len(volumes)


def verify(args) -> int:
    """The ``verify`` command (see the module docstring)."""
    root = Path(args.root).expanduser()
    if not root.is_dir():
        raise DataError(f"folder '{root}' does not exist")
    problems, hint = [], ""
    if not args.skip_checksums:
        present = [p.relative_to(root).as_posix() for p in [*root.glob("*.list"), *(root / "data").glob("**/*.h5")]]
        problems = checksum_problems(root, read_manifest(Path(args.manifest)), present)
        if any("SHA-256" in p for p in problems):
            hint = (
                " (re-run download to replace files that differ; a folder built by 'preprocess' differs "
                "byte-wise from the release: use --skip-checksums)"
            )
    lists = {}
    for name in LIST_NAMES:
        try:
            names = read_list(root / name, required=name in ("train.list", "val.list"))
        except DataError as exc:  # without the lists nothing else can be checked
            report_problems(root, problems + [str(exc)], hint)
        if names is not None:
            lists[name] = names
    problems += split_problems(lists, complete=False)
    found, slices, volumes = read_problems(root, lists)
    problems += found
    patients = {name: len({n.split("_")[0] for n in names}) for name, names in lists.items() if name in SPLITS}
    say(
        f"ACDC in '{root}': "
        + ", ".join(f"{name} {n} of {len(SPLITS[name])} patients" for name, n in patients.items())
        + f"; read {slices} training slices and {volumes} volumes"
    )
    if problems:
        report_problems(root, problems, hint)
    say("ok: no problems found")
    return 0


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    """The command line, with the module docstring as the --help epilog."""
    parser = Parser(
        prog="acdc.py",
        description="Download, preprocess or verify ACDC for coda-edu.",
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    manifest = dict(default=str(MANIFEST), help="checksum manifest (default: %(default)s)")

    d = sub.add_parser("download", help="fetch the common preprocessed release from its GitHub mirror")
    d.add_argument("--out", required=True, help="dataset folder to create or complete")
    d.add_argument(
        "--base-url",
        default=MIRROR_URL,
        help="mirror folder holding data/<name>.h5, a URL or a local folder (default: %(default)s)",
    )
    d.add_argument(
        "--lists-url",
        default=LISTS_URL,
        help="folder holding the four .list files, a URL or a local folder (default: %(default)s)",
    )
    d.add_argument("--manifest", **manifest)
    d.set_defaults(func=download)

    p = sub.add_parser("preprocess", help="build the layout from the raw ACDC NIfTI release")
    p.add_argument("--raw", required=True, help="folder of the extracted raw release (holding patientNNN/)")
    p.add_argument("--out", required=True, help="dataset folder to create or complete")
    p.add_argument("--size-check", action="store_true", help="compare slice counts with the common release")
    p.add_argument("--manifest", **manifest)
    p.set_defaults(func=preprocess)

    v = sub.add_parser("verify", help="check checksums, lists and every file")
    v.add_argument("--root", required=True, help="dataset folder")
    v.add_argument("--skip-checksums", action="store_true", help="for a folder built by preprocess")
    v.add_argument("--manifest", **manifest)
    v.set_defaults(func=verify)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    """Parse ``argv`` and run the chosen command; errors are turned into one line by ``run_cli``."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(run_cli(main))
