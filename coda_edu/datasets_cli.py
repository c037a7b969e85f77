"""``coda-edu data check``: open a dataset the way training does and report what was found.

Every file is read and checked (truncated/corrupt files, missing keys, shape
mismatches, label values out of range, NaN/inf intensities, lists naming missing
cases), so a broken download is found in minutes, not hours into training. The
download and preprocessing scripts live in ``data_scripts/``.
"""

from __future__ import annotations

import time
from pathlib import Path


def add_cli(sub) -> None:
    p = sub.add_parser("data", help="check a real dataset (download/preprocess: see data_scripts/)")
    data_sub = p.add_subparsers(dest="data_command", metavar="ACTION", parser_class=type(p))
    check = data_sub.add_parser("check", help="open a dataset as training would, checking every file")
    check.add_argument("--dataset", required=True, metavar="NAME", help="the dataset to check (a data.name value)")
    check.add_argument("--root", help="dataset folder (default: $CODA_EDU_DATA_DIR/<the dataset's folder>)")
    check.add_argument("--config", metavar="FILE", help="YAML config whose data section is used")
    check.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides")
    p.set_defaults(handler=run)


def run(args) -> int:
    import numpy as np

    from .config import load_config
    from .errors import CodaEduError
    from .registry import DATASETS

    if getattr(args, "data_command", None) != "check":
        raise CodaEduError("usage: coda-edu data check --dataset NAME [--root DIR]")
    if args.config is not None and Path(args.config).is_dir():
        raise CodaEduError(f"config file '{args.config}' is a folder, not a file")
    spec = DATASETS.get(args.dataset)  # an unknown name is a one-line error listing the datasets
    overrides = [f"data.name={args.dataset}"] + ([f"data.root={args.root}"] if args.root else []) + args.overrides
    for default in spec.check_defaults:  # what this dataset needs to open (LA: a validation carve-out)
        key = default.split("=", 1)[0]
        if not any(o.split("=", 1)[0].strip() == key for o in args.overrides):
            overrides.append(default)
    cfg = load_config(args.config, overrides)
    from .data import load_dataset

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
