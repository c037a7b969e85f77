"""CaDIS (Cataract Dataset for Image Segmentation): where to get it, safe resumable extraction, verification.

Usage::

    python data_scripts/cadis.py [fetch-instructions]
    python data_scripts/cadis.py extract --archive ZIP --out ROOT [--sha256 HEX]
    python data_scripts/cadis.py verify  --root ROOT [--index frame_index.csv]

CaDIS is one zip archive on figshare (doi 10.6084/m9.figshare.14154554); downloading it
means accepting its licence on that page, so this script does not download it.
``fetch-instructions`` (also the default without a command) says where to get it.

extract
    Writes the layout that ``coda_edu.data.cadis`` reads::

        ROOT/VideoNN/Images/<frame>.png    RGB frames
        ROOT/VideoNN/Labels/<frame>.png    class ids 0..35, same file name

    Every member name is checked first: absolute paths, drive letters, backslashes,
    '..' components and symbolic links are refused (nothing is written outside ROOT).
    PNG members whose path ends in VideoNN/Images/<file> or VideoNN/Labels/<file> are
    taken, whatever folders come before (the archive's top folder name is not assumed);
    other members are counted and skipped. Each video must have the same file names in
    Images/ and Labels/. A video is extracted into the staging folder
    ROOT/.coda-edu-staging/ and renamed to ROOT/VideoNN when complete, so an interrupted
    run leaves no half video (the next run removes that folder, and nothing else), and a
    re-run skips videos whose files already match the archive (names and sizes).
    ``--sha256 HEX`` first checks the archive's SHA-256; coda-edu does not know an
    official checksum of the CaDIS archive, so this is only for a value you trust.

verify
    Reads every frame with coda-edu's checked reader (RGB image, single-channel label
    with ids 0..35, same size), reports the frames per video and, when a frame index
    exists (--index, else ROOT/frame_index.csv), checks that every frame it lists
    exists, reporting the missing ones. Exits with status 2 on any problem.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import re
import shutil
import sys
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Optional

import numpy as np

from _common import DataError, Parser, Staging, progress, report_problems, run_cli, say, shorten

DOI_URL = "https://doi.org/10.6084/m9.figshare.14154554"
INDEX_URL = "https://github.com/RViMLab/MICCAI2021_Cataract_semantic_segmentation (file data/data.csv)"
KINDS = ("Images", "Labels")
VIDEO = re.compile(r"Video0*(\d+)")

INSTRUCTIONS = f"""\
CaDIS (Cataract Dataset for Image Segmentation; Grammatikopoulou et al., Medical Image Analysis 2021)
is distributed as one zip archive on figshare:

    {DOI_URL}

1. Open that page, read and accept the licence, and download the archive.
2. Extract it into the coda-edu layout (safe and resumable; re-run it if interrupted):

    python data_scripts/cadis.py extract --archive /path/to/the/archive.zip --out $CODA_EDU_DATA_DIR/CaDIS

   Add --sha256 HEX only with a checksum you trust: coda-edu does not know an official one.
3. Optional: the frame index with per-class pixel counts and the blacklist of mislabelled
   frames is data/data.csv of {INDEX_URL};
   save it as $CODA_EDU_DATA_DIR/CaDIS/frame_index.csv.
4. Check everything:

    python data_scripts/cadis.py verify --root $CODA_EDU_DATA_DIR/CaDIS
"""


def fetch_instructions(args) -> int:
    """Print where to get the archive and what to run next."""
    print(INSTRUCTIONS, end="")
    return 0


# --------------------------------------------------------------------------- extract


def archive_sha256(path: Path) -> str:
    """SHA-256 of a (large) file, with a progress bar over its bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh, progress(total=path.stat().st_size, desc="SHA-256", unit="B") as bar:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def unsafe_reason(info: zipfile.ZipInfo) -> Optional[str]:
    """Why a member must not be extracted, or None."""
    name = info.filename
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "is an absolute path"
    if ".." in PurePosixPath(name).parts:
        return "contains '..'"
    if (info.external_attr >> 16) & 0o170000 == 0o120000:
        return "is a symbolic link"
    return None


def frame_target(name: str) -> Optional[tuple[str, str, str]]:
    """(video folder, Images|Labels, file name) of a frame member, or None for any other member."""
    parts = PurePosixPath(name).parts
    if len(parts) < 3 or not VIDEO.fullmatch(parts[-3]) or parts[-2] not in KINDS:
        return None
    if not parts[-1].lower().endswith(".png") or parts[-1].startswith(".") or parts[0] == "__MACOSX":
        return None
    return parts[-3], parts[-2], parts[-1]


def plan(archive: Path, zf: zipfile.ZipFile) -> tuple[dict[str, dict[tuple[str, str], zipfile.ZipInfo]], int]:
    """Frame members per video folder, and how many other members are skipped; refuses unsafe names."""
    videos: dict[str, dict[tuple[str, str], zipfile.ZipInfo]] = {}
    skipped = 0
    for info in zf.infolist():
        reason = unsafe_reason(info)
        if reason:
            raise DataError(f"archive '{archive}': member '{info.filename}' {reason}; refusing to extract")
        if info.is_dir():
            continue
        target = frame_target(info.filename)
        if target is None:
            skipped += 1
            continue
        video, kind, name = target
        videos.setdefault(video, {})[(kind, name)] = info
    if not videos:
        raise DataError(
            f"archive '{archive}' has no VideoNN/Images/*.png members: is it the CaDIS archive? "
            f"(see 'cadis.py fetch-instructions')"
        )
    return videos, skipped


def check_pairs(where: str, names_by_kind: dict[str, set[str]]) -> None:
    """Images/ and Labels/ must hold the same file names."""
    images, labels = names_by_kind.get("Images", set()), names_by_kind.get("Labels", set())
    if images != labels:
        lonely = sorted(images - labels) or sorted(labels - images)
        side, other = ("Images", "Labels") if images - labels else ("Labels", "Images")
        raise DataError(f"{where}: {len(lonely)} file(s) in {side}/ have no match in {other}/ ({shorten(lonely)})")


def matches(folder: Path, members: dict[tuple[str, str], zipfile.ZipInfo]) -> bool:
    """Whether an extracted video folder holds exactly the archive's files, with their sizes."""
    found = {(kind, p.name): p.stat().st_size for kind in KINDS for p in (folder / kind).glob("*") if p.is_file()}
    return found == {key: info.file_size for key, info in members.items()}


def extract_video(
    archive: Path,
    zf: zipfile.ZipFile,
    out: Path,
    video: str,
    members: dict[tuple[str, str], zipfile.ZipInfo],
    bar,
    staging: Staging,
) -> None:
    """Extract one video into the staging folder, then rename it to out/<video>."""
    staging.write(out / video, lambda partial: extract_members(archive, zf, partial, members, bar))


def extract_members(
    archive: Path, zf: zipfile.ZipFile, partial: Path, members: dict[tuple[str, str], zipfile.ZipInfo], bar
) -> None:
    for (kind, name), info in sorted(members.items()):
        target = partial / kind / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with zf.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise DataError(
                f"archive '{archive}': member '{info.filename}' is corrupt ({type(exc).__name__}: {exc})"
            ) from None
        bar.update(1)


def extract(args) -> int:
    """The ``extract`` command (see the module docstring)."""
    archive, out = Path(args.archive).expanduser(), Path(args.out).expanduser()
    if not archive.is_file():
        raise DataError(
            f"archive '{archive}' does not exist: download CaDIS from {DOI_URL} (accept the licence) "
            f"and pass its path with --archive (see 'cadis.py fetch-instructions')"
        )
    if args.sha256:
        got = archive_sha256(archive)
        if got != args.sha256.lower():
            raise DataError(f"archive '{archive}': SHA-256 is {got}, not the expected {args.sha256.lower()}")
        say("archive SHA-256 matches")
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(
            f"archive '{archive}': not a readable zip file (truncated or corrupt: {type(exc).__name__})"
        ) from None
    with zf:
        videos, skipped = plan(archive, zf)
        for video, members in videos.items():
            names: dict[str, set[str]] = {}
            for kind, name in members:
                names.setdefault(kind, set()).add(name)
            check_pairs(f"archive '{archive}': {video}", names)
        done = []
        total = sum(len(m) for m in videos.values())
        with Staging(out) as staging, progress(total=total, desc="extracting") as bar:
            for video in sorted(videos, key=lambda v: int(VIDEO.fullmatch(v).group(1))):
                final = out / video
                if final.exists():
                    if not matches(final, videos[video]):
                        raise DataError(
                            f"folder '{final}' exists but differs from the archive; move it away and re-run"
                        )
                    done.append(video)
                    bar.update(len(videos[video]))
                    continue
                extract_video(archive, zf, out, video, videos[video], bar, staging)
    frames = sum(len(m) for m in videos.values()) // 2
    say(
        f"CaDIS: {len(videos) - len(done)} video(s) extracted, {len(done)} already present; {frames} frames in "
        f"'{out}'" + (f"; skipped {skipped} archive member(s) outside VideoNN/Images|Labels" if skipped else "")
    )
    return 0


# --------------------------------------------------------------------------- verify


def read_index(path: Path) -> list[dict]:
    """Rows of a frame index (columns img_path and lbl_path, relative to ROOT)."""
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"file '{path}': not a readable CSV file ({type(exc).__name__})") from None
    if rows and not {"img_path", "lbl_path"} <= set(rows[0]):
        raise DataError(f"file '{path}': needs the columns 'img_path' and 'lbl_path'")
    return rows


def frame_problems(root: Path) -> tuple[list[str], dict[str, int]]:
    """(problems, frames per video) after reading every frame."""
    from coda_edu.data.cadis import read_frame  # the loader's checked reader (imported here: it loads torch)

    identity = np.arange(256, dtype=np.uint8)
    videos = sorted(
        (p for p in root.iterdir() if p.is_dir() and VIDEO.fullmatch(p.name)),
        key=lambda p: int(VIDEO.fullmatch(p.name).group(1)),
    )
    if not videos:
        return [f"'{root}' has no VideoNN/ folders"], {}
    problems, counts, pairs = [], {}, []
    for video in videos:
        names = {kind: {p.name for p in (video / kind).glob("*.png")} for kind in KINDS}
        try:
            check_pairs(f"folder '{video}'", names)
        except DataError as exc:
            problems.append(str(exc))
        common = sorted(names["Images"] & names["Labels"])
        counts[video.name] = len(common)
        pairs += [(video / "Images" / n, video / "Labels" / n) for n in common]
    for image, label in progress(pairs, desc="reading frames", unit="frame"):
        try:
            read_frame(image, label, identity)
        except DataError as exc:
            problems.append(str(exc))
    return problems, counts


def index_problems(root: Path, index: Path) -> list[str]:
    """Frames the index lists that are not in ROOT."""
    rows = read_index(index)
    missing = [
        row["img_path"]
        for row in rows
        if not ((root / row["img_path"]).is_file() and (root / row["lbl_path"]).is_file())
    ]
    say(f"{index.name}: {len(rows)} frames listed, {len(missing)} of them missing (image or label)")
    return (
        [f"{index.name} lists {len(missing)} frame(s) missing from '{root}': {shorten(missing, 5)}"] if missing else []
    )


def verify(args) -> int:
    """The ``verify`` command (see the module docstring)."""
    root = Path(args.root).expanduser()
    if not root.is_dir():
        raise DataError(f"folder '{root}' does not exist (see 'cadis.py fetch-instructions')")
    problems, counts = frame_problems(root)
    for video, n in counts.items():
        say(f"{video}: {n} frames")
    say(f"CaDIS in '{root}': {sum(counts.values())} frames in {len(counts)} video(s)")
    index = Path(args.index).expanduser() if args.index else root / "frame_index.csv"
    if args.index and not index.is_file():
        raise DataError(f"frame index '{index}' does not exist")
    if index.is_file():
        problems += index_problems(root, index)
    if problems:
        report_problems(root, problems)
    say("ok: no problems found")
    return 0


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    """The command line, with the module docstring as the --help epilog."""
    parser = Parser(
        prog="cadis.py",
        description="Get, extract and verify CaDIS for coda-edu.",
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parser.set_defaults(func=fetch_instructions)
    sub.add_parser("fetch-instructions", help="where to get the archive (the default)").set_defaults(
        func=fetch_instructions
    )

    e = sub.add_parser("extract", help="extract the archive safely and resumably")
    e.add_argument("--archive", required=True, help="the CaDIS zip archive")
    e.add_argument("--out", required=True, help="dataset folder to create or complete")
    e.add_argument("--sha256", help="check the archive against this SHA-256 first")
    e.set_defaults(func=extract)

    v = sub.add_parser("verify", help="read every frame and check the frame index")
    v.add_argument("--root", required=True, help="dataset folder")
    v.add_argument("--index", help="frame index CSV (default: ROOT/frame_index.csv when present)")
    v.set_defaults(func=verify)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    """Parse ``argv`` and run the chosen command; errors are turned into one line by ``run_cli``."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(run_cli(main))
