"""LA (2018 Atrial Segmentation Challenge): download the UA-MT release, or build it from the raw NRRD files; verify.

Usage::

    python data_scripts/la.py download   --out ROOT [--base-url URL] [--allow-unverified]
    python data_scripts/la.py preprocess --raw RAW --out ROOT --seed S
    python data_scripts/la.py verify     --root ROOT [--skip-checksums] [--allow-unverified]

Both ``download`` and ``preprocess`` write the layout that ``coda_edu.data.la`` reads::

    ROOT/train.list, ROOT/test.list                  case ids, one per line
    ROOT/2018LA_Seg_Training Set/<ID>/mri_norm2.h5   image (X, Y, Z) float32, label (X, Y, Z) uint8 0/1
    ROOT/crop.json                                   preprocess only: the crop of each case and the seed

Split (the usual 80/20 of UA-MT): test.list holds the 20 ids of TEST_IDS below (UA-MT's
test list); train.list holds every other case, the 16 ids of FIRST_TRAIN_IDS first (the
cases of the coda-edu test subset, i.e. the usual "16 labeled" cases), then the others
in sorted order. For the 100 challenge training cases this is UA-MT's train.list.

download
    Fetches train.list, test.list and every case's mri_norm2.h5 from the data/ folder of
    the GitHub repository yulequan/UA-MT, pinned to commit MIRROR_COMMIT (MIRROR_URL).
    The lists must match the split above, and every case id must be a challenge id
    (CASE_ID: 20 upper-case letters and digits), so a list can never name a path outside
    --out. Every case file must have a SHA-256 in data_scripts/checksums/la.sha256, which
    holds all 100 case files of the release (see checksums/README.md for where they come
    from); each download is verified against it and a file that differs is not kept.
    With another --manifest that lacks some cases, the download is refused unless
    --allow-unverified is given: those cases are then downloaded, read back with the
    checked reader and reported as UNVERIFIED, and the closing line says so. "LA is
    ready" is printed only when every case file was verified.

preprocess
    Builds the layout from the raw challenge release: RAW/<ID>/lgemri.nrrd (LGE-MRI) and
    RAW/<ID>/laendo.nrrd (left atrium cavity mask), read with the small NRRD reader of
    _common.py (raw or gzip encoding) as (X, Y, Z) arrays. For each case:

    1. label = laendo > 0, as uint8 0/1 (the masks hold 0 and 255);
    2. the crop: the label's bounding box [a, b] (inclusive) on each of x and y, widened
       to at least MIN_EXTENT = 112 voxels by pad = max(112 - (b - a + 1), 0) // 2 on
       both sides, plus a random margin of 10..19 voxels on each side:
       lo = max(a - pad - m_lo, 0), hi = min(b + 1 + pad + m_hi, size) (half-open);
       z is kept whole;
    3. the four margins (m_lo, m_hi for x, then for y) are
       ``np.random.default_rng([S, key]).integers(10, 20, size=4)``, where S is --seed
       and key is the first 8 bytes of SHA-256(ID) as an unsigned integer, so a case's
       crop depends only on the seed and its id, not on which other cases are present;
    4. the cropped image is z-scored over the cropped volume, (x - mean) / std in
       float64, stored as float32;
    5. image and label are written (gzip) to <ID>/mri_norm2.h5 in (X, Y, Z) order, and
       the crop ([lo, hi) for x and y) with the seed to crop.json.

    This follows UA-MT's preprocessing (bounding box, at least 112 voxels, random margins
    of 10..19 in x/y, whole z, no resampling) with two documented differences: UA-MT
    z-scores the whole image before cropping, and draws its margins from numpy's global
    random state, so its crops cannot be reproduced exactly. A folder is built with one
    seed: re-running with another --seed into the same --out is refused.

verify
    Checks the case files the folder holds or its lists name against the manifest (so a
    subset of the 100 cases verifies too), the lists against the split, and reads every
    listed case with coda-edu's checked reader. A case file without a known checksum is
    a problem unless --allow-unverified is given. Use ``--skip-checksums`` for a folder
    built by ``preprocess``.

Re-running any command skips outputs that already exist and verify; files are written
in ROOT/.coda-edu-staging/ and renamed into place, so an interrupted run can simply be
repeated (it removes that folder, and nothing else).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
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
    read_nrrd,
    report_problems,
    run_cli,
    say,
    shorten,
    write_h5,
)
from coda_edu.data.la import CASE_FOLDER, read_case
from coda_edu.data.readers import check_pair, read_h5, read_list
from coda_edu.io import MB, parse_json, read_small_text

#: The UA-MT commit the download is pinned to. A public code index records data/train.list,
#: data/test.list and the case files at this commit; it could not be checked online when it
#: was pinned (no network), and the SHA-256 manifest, not the pin, is what verifies a file.
MIRROR_COMMIT = "80d0a34223266cb8e980529df21ea6b80d61335f"
MIRROR_URL = f"https://raw.githubusercontent.com/yulequan/UA-MT/{MIRROR_COMMIT}/data/"
#: A challenge case id: 20 upper-case letters and digits (e.g. 06SR5RBREL16DQ6M8LWS).
CASE_ID = re.compile(r"[0-9A-Z]{20}")
CHALLENGE_URL = "http://atriaseg2018.cardiacatlas.org/"
MANIFEST = CHECKSUMS / "la.sha256"
NUM_CLASSES = 2
MIN_EXTENT = 112
MARGIN = (10, 20)  # numpy integers(low, high): 10..19
TRAIN_SIZE = 80

#: UA-MT's test cases (its data/test.list).
TEST_IDS = (
    "ULHWPWKKLTE921LQLH1P",
    "UPT6DX9IQY9JAZ7HJKA7",
    "UTBUJIWZMKP64E3N73YC",
    "V0MZOWJ6MU3RMRCV9EXR",
    "VDOF02M8ZHEAADFMS6NP",
    "VG4C826RAAKVMV9BQLVD",
    "VIXBEFTNVHZWKAKURJBN",
    "VQ2L3WM8KEVF6L44E6G9",
    "WBG9WYZ1B25WDT5WAT8T",
    "WMDG2EFA6L2SNDZXIRU0",
    "WNPKE0W404QE9AELX1LR",
    "WSJB9P4JCXUVHBOYFVWL",
    "WW8F5CO4S4K5IM5Z7EXX",
    "X18LU5AOBNNDMLTA0JZL",
    "XYDLYJ5CS19FDBVLJIPI",
    "Y7ZU0B2APPF54WG6PDMF",
    "YDKD1HVHSME6NVMA8I39",
    "Z9GMG63CJLL0VW893BB1",
    "ZIJLJAVQV3FJ6JSQOH1E",
    "ZQPMJ4XEC5A4BISD45P1",
)
#: The first 16 training cases (the coda-edu test subset; the usual labeled 20 %).
FIRST_TRAIN_IDS = (
    "06SR5RBREL16DQ6M8LWS",
    "0RZDK210BSMWAA6467LU",
    "1D7CUD1955YZPGK8XHJX",
    "1GU15S0GJ6PFNARO469W",
    "1MHBF3G6DCPWHSKG7XCP",
    "23X6SY44VT9KFHR7S7OC",
    "2XL5HSFSE93RMOJDRGR4",
    "38CWS74285MFGZZXR09Z",
    "3C2QTUNI0852XV7ZH4Q1",
    "3DA0T2V6JJ2NLUAV6FWM",
    "4498CA6DZWELOXCBRYRF",
    "45C45I6IXAFGNRO067W9",
    "4CHFJGF6ZUM7CMZTNFQF",
    "4EPVTT1HPA8U60CDUKXE",
    "57SGAJMLCTCH92QUA0EE",
    "5BHTH9RHH3PQT913I59W",
)


def case_rel(case: str) -> str:
    """A case's h5 file, relative to ROOT (and to the mirror's data/ folder)."""
    return f"{CASE_FOLDER}/{case}/mri_norm2.h5"


def check_h5(path: Path) -> None:
    """Read an h5 file with the checked reader (for files without a known checksum)."""
    read_h5(path, NUM_CLASSES, image_ndim=3)


def check_list(path: Path) -> None:
    """A split list must be readable and non-empty."""
    read_list(path)


def split_lists(ids) -> tuple[list[str], list[str]]:
    """(train, test) ids by the documented rule."""
    ids = set(ids)
    test = sorted(ids & set(TEST_IDS))
    first = [c for c in FIRST_TRAIN_IDS if c in ids]
    return first + sorted(ids - set(test) - set(first)), test


def id_problems(train: list[str], test: list[str]) -> list[str]:
    """Case ids that are not challenge ids (anything that could be a path is refused)."""
    problems = []
    for list_name, names in (("train.list", train), ("test.list", test)):
        bad = [c for c in names if not CASE_ID.fullmatch(c)]
        if bad:
            problems.append(
                f"{list_name} names {shorten([repr(c) for c in bad])}, not case ids of the challenge "
                f"(20 upper-case letters and digits)"
            )
    return problems


def inside(root: Path, path: Path) -> bool:
    """Whether ``path`` stays inside ``root`` (after resolving '..' and links)."""
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def split_problems(train: list[str], test: list[str], complete: bool) -> list[str]:
    """How the lists disagree with the split (the release's exact sizes required when ``complete``)."""
    problems = id_problems(train, test)
    wrong_test = [c for c in test if c not in TEST_IDS]
    if wrong_test:
        problems.append(f"test.list names {shorten(wrong_test)}, not test cases of the usual split")
    in_both = [c for c in train if c in TEST_IDS]
    if in_both:
        problems.append(f"train.list names {shorten(in_both)}, which are test cases of the usual split")
    if complete:
        lacking = [c for c in FIRST_TRAIN_IDS if c not in train] + [c for c in TEST_IDS if c not in test]
        if lacking or len(train) != TRAIN_SIZE:
            problems.append(
                f"the lists name {len(train)} training and {len(test)} test cases, expected "
                f"{TRAIN_SIZE} and {len(TEST_IDS)}" + (f" (lacking {shorten(lacking)})" if lacking else "")
            )
    return problems


# --------------------------------------------------------------------------- download


def download(args) -> int:
    """The ``download`` command (see the module docstring)."""
    root = Path(args.out).expanduser()
    manifest = read_manifest(Path(args.manifest))
    with Staging(root) as staging:
        return download_into(root, manifest, args, staging)


def download_into(root: Path, manifest: dict[str, str], args, staging: Staging) -> int:
    base = as_url(args.base_url)
    list_items = [
        Item(join_url(base, name), root / name, name, manifest.get(name)) for name in ("train.list", "test.list")
    ]
    lists_report = fetch_all(list_items, check_list, "LA lists", staging)
    train, test = read_list(root / "train.list"), read_list(root / "test.list")
    problems = split_problems(train, test, complete=True)
    if problems:
        raise DataError(
            f"the lists in '{root}' do not match the usual split: {problems[0]} "
            f"(delete the .list files there to fetch them again)"
        )
    items = [
        Item(join_url(base, case_rel(c)), root / case_rel(c), case_rel(c), manifest.get(case_rel(c)))
        for c in train + test
    ]
    outside = [item.rel for item in items if not inside(root, item.dest)]
    if outside:  # cannot happen with valid ids; kept as the last guard before writing anything
        raise DataError(f"the lists in '{root}' name files outside it: {shorten(outside)}")
    unknown = [item.rel for item in items if item.sha256 is None]
    if unknown and not args.allow_unverified:
        raise DataError(
            f"{len(unknown)} of {len(items)} case files have no known checksum in '{args.manifest}' "
            f"(e.g. {unknown[0]}), so they cannot be verified; nothing was downloaded for them. Pass "
            f"--allow-unverified to download them anyway (checked only by reading them back)"
        )
    data_report = fetch_all(items, check_h5, "LA cases", staging)
    say(f"lists: {lists_report.summary()} (checked against the embedded split and the case-id pattern)")
    say(f"h5 files: {data_report.summary()}")
    if data_report.unverified:
        say(
            f"LA downloaded to '{root}' ({len(train)} training and {len(test)} test cases) but NOT VERIFIED: "
            f"{len(data_report.unverified)} case file(s) have no known checksum (--allow-unverified); they were "
            f"only read back with the checked reader"
        )
    else:
        say(f"LA is ready in '{root}' ({len(train)} training and {len(test)} test cases, every case file verified)")
    return 0


# --------------------------------------------------------------------------- preprocess


def find_cases(raw: Path) -> list[str]:
    """Ids of the case folders RAW/<ID>/ that hold lgemri.nrrd."""
    cases = sorted(p.parent.name for p in raw.glob("*/lgemri.nrrd"))
    if not cases:
        state = (
            "does not exist"
            if not raw.exists()
            else "is a file (extract the archive first)"
            if raw.is_file()
            else "has no <ID>/lgemri.nrrd case folders"
        )
        raise DataError(
            f"raw LA folder '{raw}' {state}: get the 2018 Atrial Segmentation Challenge training set "
            f"(100 cases, registration at {CHALLENGE_URL}) and pass the folder holding the case "
            f"folders <ID>/lgemri.nrrd and <ID>/laendo.nrrd with --raw"
        )
    return cases


def crop_margins(seed: int, case: str) -> np.ndarray:
    """The four random margins (x low, x high, y low, y high) of a case, from --seed and its id."""
    key = int.from_bytes(hashlib.sha256(case.encode()).digest()[:8], "big")
    return np.random.default_rng([seed, key]).integers(*MARGIN, size=4)


def axis_range(mask_axis: np.ndarray, size: int, m_lo: int, m_hi: int) -> list[int]:
    """[lo, hi) on one axis: the label's extent, widened to MIN_EXTENT, plus the margins, clipped."""
    a, b = int(mask_axis.min()), int(mask_axis.max())
    pad = max(MIN_EXTENT - (b - a + 1), 0) // 2
    return [max(a - pad - m_lo, 0), min(b + 1 + pad + m_hi, size)]


def crop_case(
    image: np.ndarray, label: np.ndarray, margins: np.ndarray, source: Path
) -> tuple[np.ndarray, np.ndarray, dict]:
    """(z-scored cropped image, cropped label, {"x": [lo, hi], "y": [lo, hi]}); ``source`` names the image file."""
    xs, ys, _ = np.nonzero(label)
    x = axis_range(xs, label.shape[0], int(margins[0]), int(margins[1]))
    y = axis_range(ys, label.shape[1], int(margins[2]), int(margins[3]))
    crop = image[x[0] : x[1], y[0] : y[1]].astype(np.float64)
    std = crop.std()
    if std == 0:
        raise DataError(f"file '{source}': the cropped image is constant, so it cannot be z-scored")
    crop = (crop - crop.mean()) / std
    return crop.astype(np.float32), np.ascontiguousarray(label[x[0] : x[1], y[0] : y[1]]), {"x": x, "y": y}


def load_case(raw: Path, case: str) -> tuple[np.ndarray, np.ndarray]:
    """(image, label 0/1) of a raw case, (X, Y, Z), checked."""
    image_path, mask_path = raw / case / "lgemri.nrrd", raw / case / "laendo.nrrd"
    image, _ = read_nrrd(image_path)
    mask, _ = read_nrrd(mask_path)
    if image.ndim != 3:
        raise DataError(f"file '{image_path}': expected a 3D volume, got shape {image.shape}")
    label = (mask > 0).astype(np.uint8)
    check_pair(mask_path, image, label, NUM_CLASSES)
    if not label.any():
        raise DataError(f"file '{mask_path}': the mask is empty, so there is no atrium to crop around")
    return image, label


def read_crops(root: Path, seed: int) -> dict:
    """crop.json of an earlier run, refused when it was made with another seed."""
    path = root / "crop.json"
    if not path.is_file():
        return {}
    try:
        crops = parse_json(read_small_text(path, what="crop record", limit=16 * MB, error=DataError))
        seeds = {int(entry["seed"]) for entry in crops.values()}
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
        raise DataError(f"file '{path}': not a crop record of la.py (delete it to rebuild the folder)") from None
    if seeds - {seed}:
        raise DataError(
            f"'{root}' was built with --seed {min(seeds - {seed})} (see crop.json); use that seed or another --out"
        )
    return crops


def is_done(root: Path, case: str, crops: dict) -> bool:
    """Whether an earlier run finished a case (recorded in crop.json and readable)."""
    if case not in crops:
        return False
    try:
        check_h5(root / case_rel(case))
    except DataError:
        return False
    return True


def write_lists(staging: Staging, root: Path, cases: list[str]) -> tuple[list[str], list[str]]:
    """train.list and test.list of the cases found; test.list is removed when none is a test case."""
    train, test = split_lists(cases)
    staging.write_text(root / "train.list", "\n".join(train) + "\n")
    if test:
        staging.write_text(root / "test.list", "\n".join(test) + "\n")
    else:
        (root / "test.list").unlink(missing_ok=True)
        say("note: none of the 20 usual test cases is in the raw data, so test.list was not written")
    return train, test


def preprocess(args) -> int:
    """The ``preprocess`` command (see the module docstring)."""
    raw, root = Path(args.raw).expanduser(), Path(args.out).expanduser()
    cases = find_cases(raw)
    crops = read_crops(root, args.seed)
    written = 0
    with Staging(root) as staging:
        for case in progress(cases, desc="LA cases", unit="case"):
            if is_done(root, case, crops):
                continue
            image, label = load_case(raw, case)
            crop, crop_label, box = crop_case(image, label, crop_margins(args.seed, case), raw / case / "lgemri.nrrd")
            write_h5(staging, root / case_rel(case), crop, crop_label)
            crops[case] = {**box, "seed": args.seed}
            staging.write_json(root / "crop.json", crops)
            written += 1
        train, test = write_lists(staging, root, cases)
    say(
        f"LA: {written} case(s) written, {len(cases) - written} already done; "
        f"{len(train)} training and {len(test)} test cases in '{root}'"
    )
    return 0


# --------------------------------------------------------------------------- verify


def verify(args) -> int:
    """The ``verify`` command (see the module docstring)."""
    root = Path(args.root).expanduser()
    if not root.is_dir():
        raise DataError(f"folder '{root}' does not exist")
    problems, hint = [], ""
    try:
        train = read_list(root / "train.list")
        test = read_list(root / "test.list", required=False) or []
        lists_problem = None
    except DataError as exc:  # without the lists only the checksums can be checked
        train, test, lists_problem = [], [], str(exc)
    if not args.skip_checksums:
        present = [p.relative_to(root).as_posix() for p in [*root.glob("*.list"), *(root / CASE_FOLDER).glob("*/*.h5")]]
        manifest = read_manifest(Path(args.manifest))
        # the manifest knows all 100 cases; a folder holding some of them (a subset) is checked for those
        wanted = set(present) | {case_rel(c) for c in train + test}
        problems = checksum_problems(root, {rel: sha for rel, sha in manifest.items() if rel in wanted}, present)
        unknown = [rel for rel in present if rel.endswith(".h5") and rel not in manifest]
        if unknown and not args.allow_unverified:
            problems.append(
                f"{len(unknown)} case file(s) have no known checksum ({shorten(unknown)}); pass "
                f"--allow-unverified to accept them after reading them back"
            )
        if any("SHA-256" in p for p in problems):
            hint = (
                " (re-run download to replace files that differ; a folder built by 'preprocess' differs "
                "byte-wise from the release: use --skip-checksums)"
            )
    if lists_problem is not None:
        report_problems(root, problems + [lists_problem], hint)
    problems += split_problems(train, test, complete=False)
    for case, list_name in progress(
        [(c, "train.list") for c in train] + [(c, "test.list") for c in test], desc="reading"
    ):
        try:
            read_case(root, case, list_name)
        except DataError as exc:
            problems.append(str(exc))
    say(f"LA in '{root}': {len(train)} training and {len(test)} test cases read")
    if problems:
        report_problems(root, problems, hint)
    say("ok: no problems found")
    return 0


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    """The command line, with the module docstring as the --help epilog."""
    parser = Parser(
        prog="la.py",
        description="Download, preprocess or verify LA for coda-edu.",
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    manifest = dict(default=str(MANIFEST), help="checksum manifest (default: %(default)s)")

    d = sub.add_parser("download", help="fetch the UA-MT preprocessed release from GitHub")
    d.add_argument("--out", required=True, help="dataset folder to create or complete")
    d.add_argument(
        "--base-url",
        default=MIRROR_URL,
        help="folder holding the lists and case folders, a URL or a local folder (default: %(default)s)",
    )
    d.add_argument("--manifest", **manifest)
    d.add_argument(
        "--allow-unverified",
        action="store_true",
        help="also download case files the manifest has no checksum for (read back, reported as unverified)",
    )
    d.set_defaults(func=download)

    p = sub.add_parser("preprocess", help="build the layout from the raw challenge NRRD files")
    p.add_argument("--raw", required=True, help="folder holding <ID>/lgemri.nrrd and <ID>/laendo.nrrd")
    p.add_argument("--out", required=True, help="dataset folder to create or complete")
    p.add_argument("--seed", required=True, type=int, help="seed of the random crop margins")
    p.set_defaults(func=preprocess)

    v = sub.add_parser("verify", help="check checksums, lists and every case")
    v.add_argument("--root", required=True, help="dataset folder")
    v.add_argument("--skip-checksums", action="store_true", help="for a folder built by preprocess")
    v.add_argument("--manifest", **manifest)
    v.add_argument("--allow-unverified", action="store_true", help="accept case files without a known checksum")
    v.set_defaults(func=verify)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    """Parse ``argv`` and run the chosen command; errors are turned into one line by ``run_cli``."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(run_cli(main))
