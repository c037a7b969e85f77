"""``coda-edu data check``: open a dataset the way training does and report what was found;
``coda-edu data pack`` / ``unpack``: move a dataset to another machine (:mod:`coda_course.pack`).

Every file is read and checked (truncated/corrupt files, missing keys, shape
mismatches, label values out of range, NaN/inf intensities, lists naming missing
cases), so a broken download is found in minutes, not hours into training. The
download and preprocessing scripts live in ``data_scripts/``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def add_cli(sub) -> None:
    from coda_edu.config import add_config_options

    p = sub.add_parser("data", help="check a real dataset (download/preprocess: see data_scripts/)")
    data_sub = p.add_subparsers(dest="data_command", metavar="ACTION", parser_class=type(p))
    check = data_sub.add_parser("check", help="open a dataset as training would, checking every file")
    check.add_argument("--dataset", required=True, metavar="NAME", help="the dataset to check (a data.name value)")
    check.add_argument("--root", help="dataset folder (default: $CODA_EDU_DATA_DIR/<the dataset's folder>)")
    add_config_options(check, "YAML config whose data section is used")
    pack = data_sub.add_parser("pack", help="pack a dataset folder into one compact, verified file")
    pack.add_argument("dataset", metavar="DATASET", help="the dataset to pack (a data.name value, e.g. acdc)")
    pack.add_argument("--out", required=True, metavar="FILE", help="the pack to write (e.g. acdc.cepack)")
    pack.add_argument("--root", help="dataset folder (default: $CODA_EDU_DATA_DIR/<the dataset's folder>)")
    pack.add_argument(
        "--images", choices=("u8", "exact"), default="u8", help="float images: 8-bit per file (default) or exact"
    )
    pack.add_argument("--level", type=int, choices=range(10), default=6, metavar="0-9", help="xz preset (default 6)")
    pack.add_argument("--force", action="store_true", help="replace FILE if it exists")
    pack.add_argument("--no-progress", action="store_true", help="no progress bar")
    unpack = data_sub.add_parser("unpack", help="unpack a pack into DIR/<dataset folder> (checksum checked first)")
    unpack.add_argument(
        "pack", metavar="FILE", help="a file made by 'coda-edu data pack' (or ../shared/gpu's ACDC pack)"
    )
    unpack.add_argument("--out", required=True, metavar="DIR", help="data folder: then export CODA_EDU_DATA_DIR=DIR")
    unpack.add_argument(
        "--max-gb",
        type=float,
        metavar="GB",
        help="write at most GB gigabytes (default: 100 times the pack's size, a limit against decompression bombs)",
    )
    unpack.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args) -> int:
    from coda_edu.errors import CodaEduError

    command = getattr(args, "data_command", None)
    if command == "pack":
        from .pack import pack_dataset, summary

        out = Path(args.out)
        if out.is_dir():
            raise CodaEduError(f"--out '{out}' is a folder; name the pack file to write")
        existed = os.path.lexists(out)
        manifest = pack_dataset(
            args.dataset,
            out,
            root=args.root,
            images=args.images,
            level=args.level,
            progress=not args.no_progress,
            force=args.force,
        )
        print(summary(manifest, out) + (" (replaced the earlier file, --force)" if existed else ""))
        return 0
    if command == "unpack":
        from .pack import unpack

        if args.max_gb is not None and not (0 < args.max_gb < 1e9):
            raise CodaEduError(f"--max-gb must be a positive number of gigabytes, got {args.max_gb}")
        max_bytes = int(args.max_gb * 1e9) if args.max_gb is not None else None
        unpack(args.pack, args.out, progress=not args.no_progress, max_bytes=max_bytes)
        return 0
    if command != "check":
        raise CodaEduError("usage: coda-edu data check|pack|unpack ... (see coda-edu data --help)")
    return check(args)


def check(args) -> int:
    import numpy as np

    from coda_edu.config import load_config
    from coda_edu.errors import CodaEduError
    from coda_edu.registry import DATASETS

    if args.config is not None and Path(args.config).is_dir():
        raise CodaEduError(f"config file '{args.config}' is a folder, not a file")
    spec = DATASETS.get(args.dataset)  # an unknown name is a one-line error listing the datasets
    overrides = [f"data.name={args.dataset}"] + ([f"data.root={args.root}"] if args.root else []) + args.overrides
    for default in spec.check_defaults:  # what this dataset needs to open (LA: a validation carve-out)
        key = default.split("=", 1)[0]
        if not any(o.split("=", 1)[0].strip() == key for o in args.overrides):
            overrides.append(default)
    cfg = load_config(args.config, overrides)
    from coda_edu.data import load_dataset

    start = time.perf_counter()
    data = load_dataset(cfg)
    print(f"ok: {data.summary()}  ({time.perf_counter() - start:.1f} s)")
    for name, pool in (("labeled", data.labeled), ("unlabeled", data.unlabeled)):
        if pool.labels is None or len(pool) == 0:
            continue
        labels = pool.labels.reshape(-1).long()
        if data.ignore_index is not None:
            labels = labels[labels != data.ignore_index]
        counts = np.bincount(labels.numpy(), minlength=data.num_classes)[: data.num_classes]
        shares = ", ".join(f"{c} {v:.3%}" for c, v in zip(data.class_names, counts / max(counts.sum(), 1)))
        print(f"  {name} pixel shares: {shares}")
    print(f"  labeled cases: {', '.join(map(str, data.protocol.get('labeled_cases', [])))}")
    return 0
