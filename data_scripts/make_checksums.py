"""Regenerate the checksum manifests in data_scripts/checksums/ from a folder of real data.

Usage::

    python data_scripts/make_checksums.py [--data-dir DIR] [--dataset acdc] [--dataset la --out-dir OTHER]

DIR (default ``$CODA_EDU_DATA_DIR``) holds ACDC/ and LA/ in the coda-edu layout, as
written by ``acdc.py download`` / ``la.py download`` or the project's test subset.
Each manifest lists ``<sha256>  <path relative to the dataset folder>``, the format of
``sha256sum``, so ``cd ROOT && sha256sum -c data_scripts/checksums/acdc.sha256`` also works.

What is hashed:

- ACDC: the .list files and every .h5 under data/ (slices and volumes);
- LA: every 2018LA_Seg_Training Set/<ID>/mri_norm2.h5, but not train.list, because the
  test subset's train.list names only its 16 cases while the release's names 80.

The committed acdc.sha256 was made from the coda-edu test subset, which holds the ACDC
training and validation patients; acdc.py reports every other file as "unverified (no
known checksum)". The committed la.sha256 holds all 100 LA case files of the UA-MT
release (checksums/README.md says where they come from), so it is not regenerated from a
subset: ``--dataset la`` writes only into another ``--out-dir`` (to hash a copy of your
own), and the default is ``--dataset acdc``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional

from _common import CHECKSUMS, DataError, Parser, manifest_sums, run_cli, say, write_manifest

LA_FOLDER = "2018LA_Seg_Training Set"


def acdc_files(root: Path) -> list[str]:
    """The .list files and every .h5 under data/, relative to ROOT."""
    files = sorted(root.glob("*.list")) + sorted((root / "data").glob("**/*.h5"))
    return [p.relative_to(root).as_posix() for p in files]


def la_files(root: Path) -> list[str]:
    """Every case's mri_norm2.h5, relative to ROOT (not train.list: the subset's names only 16 cases)."""
    return [p.relative_to(root).as_posix() for p in sorted((root / LA_FOLDER).glob("*/mri_norm2.h5"))]


DATASETS = {"acdc": ("ACDC", acdc_files), "la": ("LA", la_files)}


def make(data_dir: Path, name: str, out_dir: Path) -> Path:
    """Hash one dataset's files and write ``out_dir/<name>.sha256``."""
    folder, lister = DATASETS[name]
    root = data_dir / folder
    files = lister(root) if root.is_dir() else []
    if not files:
        raise DataError(f"no {folder} files found in '{root}'")
    out = out_dir / f"{name}.sha256"
    if name == "la" and out.resolve() == (CHECKSUMS / "la.sha256").resolve():
        raise DataError(
            f"'{out}' holds the checksums of all 100 LA cases of the release (see checksums/README.md); "
            f"write the checksums of your copy elsewhere with --out-dir"
        )
    write_manifest(out, manifest_sums(root, files, desc=folder))
    say(f"wrote {out} ({len(files)} files)")
    return out


def main(argv: Optional[list[str]] = None) -> int:
    """Parse ``argv`` and run the chosen command; errors are turned into one line by ``run_cli``."""
    parser = Parser(
        prog="make_checksums.py",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("CODA_EDU_DATA_DIR"),
        help="folder holding ACDC/ and LA/ (default: $CODA_EDU_DATA_DIR)",
    )
    parser.add_argument("--dataset", action="append", choices=sorted(DATASETS), help="default: acdc")
    parser.add_argument("--out-dir", default=str(CHECKSUMS), help="default: %(default)s")
    args = parser.parse_args(argv)
    if not args.data_dir:
        raise DataError("no data folder: pass --data-dir or set CODA_EDU_DATA_DIR")
    for name in args.dataset or ["acdc"]:
        make(Path(args.data_dir).expanduser(), name, Path(args.out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
