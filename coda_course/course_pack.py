"""The course pack: runs trained once, shipped in the repository, read by the notebooks.

A laptop cannot train five seeds of six methods during a lesson, so the runs whose
lessons need them are trained once (``coda-edu course pack``) and kept in
``course_pack/`` next to ``configs/``::

    course_pack/groups.yaml           the recipe: groups of runs (config, overrides, variants, seeds)
    course_pack/manifest.json         what was built: per group its runs, per file its SHA-256 and size
    course_pack/<group>/<run>.json.gz per run: the resolved config, the logged curves the notebooks
                                      plot (thinned), the validation Dice per step, eval.json's records
    course_pack/<group>/<run>.weights with ``weights`` in the recipe: networks A and B (8-bit weights)

:func:`build` is resumable: a run already in the pack (same resolved config, intact) is
skipped, a finished run folder in the work folder is read instead of retrained, an
interrupted one is resumed; every run is packed (and the manifest rewritten, atomically)
the moment it is done. ``--runs-from DIR`` reads run folders trained elsewhere, matched by
their resolved config (device and thread count aside). :class:`CoursePack` reads a group
and refuses a damaged pack with one line (a :class:`~coda_edu.errors.CodaEduError`).

Weights are stored compactly and without pickle: every floating-point tensor with at least
two dimensions and 1,024 values (the convolutions) as int8 with one float32 scale per
output channel (symmetric, the largest magnitude maps to 127), the small tensors (biases,
batch-norm parameters and statistics) as float16, integer tensors as int64; all in one
gzip stream with a JSON header. The packed networks are therefore close to, not equal
to, the trained ones; the records in the run's file are those of the trained networks.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from coda_edu.errors import CodaEduError
from coda_edu.io import atomic_write, atomic_write_text, sha256_file

REPO = Path(__file__).resolve().parents[1]
PACK_ENV = "CODA_EDU_COURSE_PACK"
FORMAT = "coda-edu course pack 1"
MANIFEST = "manifest.json"
RECIPE = "groups.yaml"
#: per-network curves kept from metrics.jsonl (suffix _A and _B); one value per class unless noted
CURVES = ("pi_l", "pi_u", "pi_gt", "shares_before", "shares_after", "coverage")
SCALARS = ("kept_A", "kept_B", "lambda", "loss")  # one number per step
MAX_POINTS = 100  # logged training steps kept per run (evenly spaced, first and last included)


class PackError(CodaEduError):
    """A course pack that is missing, damaged or does not hold what was asked for."""


# --------------------------------------------------------------------------- the recipe
@dataclass(frozen=True)
class RunSpec:
    """One run of a group: its variant (a label and config overrides) and seed."""

    group: str
    variant: str
    seed: int
    config_file: Optional[str]
    overrides: tuple[str, ...]

    @property
    def run_id(self) -> str:
        return f"{slug(self.variant)}-seed{self.seed}"

    def config(self):
        from coda_edu.config import load_config, preset_path, resolve

        path = preset_path(self.config_file) if self.config_file else None
        return resolve(load_config(path, list(self.overrides)))


@dataclass
class GroupSpec:
    name: str
    title: str
    config: Optional[str]
    overrides: list[str]
    seeds: list[int]
    variants: dict[str, list[str]]
    weights: Optional[str] = None  # "best" or "last": pack that checkpoint's networks
    minority_class: Optional[str] = None
    requires_data: Optional[str] = None  # a folder of $CODA_EDU_DATA_DIR the runs need
    evidence: Optional[str] = None  # rows of benchmarks/evidence the runs must reproduce
    build: bool = True  # built by `coda-edu course pack` without --group

    def runs(self) -> list[RunSpec]:
        return [
            RunSpec(self.name, label, seed, self.config, tuple(self.overrides + list(extra) + [f"seed={seed}"]))
            for label, extra in self.variants.items()
            for seed in self.seeds
        ]


def slug(text: str) -> str:
    """``"coda, argmax share"`` -> ``"coda_argmax_share"`` (file names of runs)."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def pack_root(root: str | os.PathLike | None = None) -> Path:
    """The pack folder: ``root``, else ``$CODA_EDU_COURSE_PACK``, else ``course_pack/`` of the repository."""
    return Path(root or os.environ.get(PACK_ENV) or REPO / "course_pack")


def read_recipe(root: str | os.PathLike | None = None) -> dict[str, GroupSpec]:
    """The groups of ``<pack>/groups.yaml``; one-line errors for a missing or malformed file."""
    import yaml

    path = pack_root(root) / RECIPE
    if not path.is_file():
        raise PackError(f"course pack recipe '{path}' not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise PackError(f"course pack recipe '{path}' is not valid YAML ({str(exc).splitlines()[0]})") from None
    groups = data.get("groups") if isinstance(data, dict) else None
    if not isinstance(groups, dict) or not groups:
        raise PackError(f"course pack recipe '{path}' has no 'groups' mapping")
    known = {f for f in GroupSpec.__dataclass_fields__ if f != "name"}
    out = {}
    for name, entry in groups.items():
        where = f"course pack recipe '{path}', group '{name}'"
        if not isinstance(entry, dict):
            raise PackError(f"{where}: expected a mapping")
        unknown = set(entry) - known
        if unknown:
            raise PackError(f"{where}: unknown key(s) {sorted(unknown)} (known: {sorted(known)})")
        variants = entry.get("variants")
        if not isinstance(variants, dict) or not variants:
            raise PackError(f"{where}: 'variants' must map labels to lists of KEY=VALUE overrides")
        seeds = entry.get("seeds")
        if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
            raise PackError(f"{where}: 'seeds' must be a list of integers")
        for label, extra in [("overrides", entry.get("overrides", []))] + [
            (f"variant '{k}'", v) for k, v in variants.items()
        ]:
            if not isinstance(extra, list) or not all(isinstance(o, str) and "=" in o for o in extra):
                raise PackError(f"{where}: {label} must be a list of KEY=VALUE strings")
        if entry.get("weights") not in (None, "best", "last"):
            raise PackError(f"{where}: 'weights' must be 'best' or 'last'")
        out[name] = GroupSpec(
            name=name,
            title=str(entry.get("title", name)),
            config=entry.get("config"),
            overrides=list(entry.get("overrides", [])),
            seeds=list(seeds),
            variants={str(k): list(v) for k, v in variants.items()},
            weights=entry.get("weights"),
            minority_class=entry.get("minority_class"),
            requires_data=entry.get("requires_data"),
            evidence=entry.get("evidence"),
            build=bool(entry.get("build", True)),
        )
    return out


# --------------------------------------------------------------------------- packing one run
def thin(n: int, keep: int = MAX_POINTS) -> list[int]:
    """Indices of at most ``keep`` of ``n`` evenly spaced items, the first and the last included."""
    if n <= keep:
        return list(range(n))
    return sorted({round(i * (n - 1) / (keep - 1)) for i in range(keep)})


def curves_of(metrics: list[dict]) -> dict[str, Any]:
    """The logged training curves the notebooks plot, as columns (thinned), and every validation."""
    train = [r for r in metrics if r.get("kind") == "train"]
    train = [train[i] for i in thin(len(train))]
    keys = [f"{c}_{n}" for c in CURVES for n in ("A", "B")] + list(SCALARS)
    columns: dict[str, Any] = {"step": [r["step"] for r in train]}
    for key in keys:
        if any(key in r for r in train):
            columns[key] = [r.get(key) for r in train]
    val = [r for r in metrics if r.get("kind") == "val"]
    validation = {"step": [r["step"] for r in val], "dice": {}}
    for model in ("A", "B", "ensemble"):
        classes = list(val[0]["dice"][model]) if val else []
        validation["dice"][model] = {c: [r["dice"][model].get(c) for r in val] for c in classes}
    return {"train": columns, "validation": validation}


def _gzip_bytes(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=9) as fh:  # mtime 0: same bytes every build
        fh.write(data)
    return buffer.getvalue()


def encode_weights(state: dict) -> bytes:
    """``{"model_a": state_dict, "model_b": state_dict}`` -> compact, pickle-free bytes (see the module)."""
    import torch

    header, chunks, offset = {}, [], 0
    for net, sd in state.items():
        for name, tensor in sd.items():
            t = tensor.detach().cpu()
            entry: dict[str, Any] = {"shape": list(t.shape)}
            if t.is_floating_point() and t.ndim >= 2 and t.numel() >= 1024:
                flat = t.double().reshape(t.shape[0], -1)
                scale = flat.abs().amax(dim=1) / 127.0
                scale = torch.where(scale > 0, scale, torch.ones_like(scale)).float()
                q = torch.round(flat / scale.double()[:, None]).clamp(-127, 127).to(torch.int8)
                parts = [("int8", q.numpy().tobytes()), ("scale", scale.numpy().astype("<f4").tobytes())]
                entry["kind"] = "int8"
            elif t.is_floating_point():
                parts = [("data", t.numpy().astype("<f2").tobytes())]
                entry["kind"] = "float16"
            else:
                parts = [("data", t.numpy().astype("<i8").tobytes())]
                entry["kind"] = "int64"
            for part, raw in parts:
                entry[part] = [offset, len(raw)]
                chunks.append(raw)
                offset += len(raw)
            header[f"{net}/{name}"] = entry
    head = json.dumps(header, sort_keys=True).encode()
    return _gzip_bytes(struct.pack("<Q", len(head)) + head + b"".join(chunks))


def decode_weights(data: bytes) -> dict[str, dict]:
    """The inverse of :func:`encode_weights`: float32 state dicts (int8 tensors dequantised)."""
    import numpy as np
    import torch

    raw = gzip.decompress(data)
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    body = memoryview(raw)[8 + n :]
    out: dict[str, dict] = {}
    for key, entry in header.items():
        net, name = key.split("/", 1)
        shape = entry["shape"]

        def part(which, dtype, e=entry):
            start, length = e[which]
            return np.frombuffer(body[start : start + length], dtype=dtype)

        if entry["kind"] == "int8":
            q = part("int8", np.int8).astype(np.float32).reshape(shape[0], -1)
            scale = part("scale", "<f4").astype(np.float32)
            value = torch.from_numpy((q * scale[:, None]).reshape(shape))
        elif entry["kind"] == "float16":
            value = torch.from_numpy(part("data", "<f2").astype(np.float32).reshape(shape))
        else:
            value = torch.from_numpy(part("data", "<i8").copy().reshape(shape))
        out.setdefault(net, {})[name] = value
    return out


def pack_run(spec: RunSpec, group: GroupSpec, run_dir: Path, root: Path) -> dict[str, str]:
    """Write the pack files of a finished run folder; returns {kind: path relative to the pack}."""
    from coda_edu.config import resolve
    from coda_edu.run_folder import RunFolder

    run = RunFolder(run_dir)
    cfg = resolve(run.read_config())
    evaluation = run.read_eval()
    record = {
        "format": FORMAT,
        "group": group.name,
        "run": spec.run_id,
        "variant": spec.variant,
        "method": cfg.method.name,
        "seed": cfg.seed,
        "overrides": list(spec.overrides),
        "config": cfg.to_dict(),
        "curves": curves_of(run.read_metrics()),
        "records": evaluation["records"],
        "protocol": evaluation.get("protocol", {}),
        "timing": evaluation.get("timing", {}),
        "machine": evaluation.get("machine", {}),
    }
    files = {}
    rel = f"{group.name}/{spec.run_id}.json.gz"
    payload = _gzip_bytes(json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=False).encode())
    atomic_write(root / rel, lambda tmp: tmp.write_bytes(payload))
    files["run"] = rel
    if group.weights:
        state = run.load_checkpoint(group.weights)
        weights = encode_weights({"model_a": state["model_a"], "model_b": state["model_b"]})
        meta = {"checkpoint": group.weights, "data": state.get("data")}
        blob = struct.pack("<Q", len(json.dumps(meta))) + json.dumps(meta).encode() + weights
        rel_w = f"{group.name}/{spec.run_id}.weights"
        atomic_write(root / rel_w, lambda tmp: tmp.write_bytes(blob))
        files["weights"] = rel_w
    return files


# --------------------------------------------------------------------------- the manifest
def read_manifest(root: Path) -> dict:
    path = root / MANIFEST
    if not path.is_file():
        return {"format": FORMAT, "groups": {}, "files": {}}
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PackError(
            f"course pack manifest '{path}' is damaged (not valid JSON): rebuild it with coda-edu course pack"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise PackError(f"course pack manifest '{path}' is not a '{FORMAT}' manifest")
    return manifest


def write_manifest(root: Path, manifest: dict) -> None:
    atomic_write_text(root / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def file_entry(root: Path, rel: str) -> dict:
    path = root / rel
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


def verify_files(root: Path, manifest: dict, rels: Iterable[str]) -> None:
    """Every file in ``rels`` exists with the size and SHA-256 the manifest gives (one-line error otherwise)."""
    for rel in rels:
        entry = manifest["files"].get(rel)
        path = root / rel
        if entry is None:
            raise PackError(f"course pack '{root}': '{rel}' is not in {MANIFEST} (damaged manifest?)")
        if not path.is_file():
            raise PackError(f"course pack '{root}': '{rel}' is missing; rebuild it with coda-edu course pack")
        if path.stat().st_size != entry["bytes"] or sha256_file(path) != entry["sha256"]:
            raise PackError(
                f"course pack '{root}': '{rel}' does not match its SHA-256 in {MANIFEST} (damaged or edited); "
                f"rebuild it with coda-edu course pack"
            )


# --------------------------------------------------------------------------- reading
@dataclass
class PackedRun:
    """One run of the pack: what its file holds (see the module docstring)."""

    group: str
    run_id: str
    variant: str
    method: str
    seed: int
    config: dict
    curves: dict
    records: list[dict]
    protocol: dict = field(default_factory=dict, repr=False)
    weights_path: Optional[Path] = field(default=None, repr=False)

    @property
    def class_names(self) -> list[str]:
        return list(self.protocol.get("classes", []))

    def dice(self, cls: str, split: str = "test", checkpoint: str = "best", model: str = "ensemble") -> Optional[float]:
        """The Dice of one eval record (None when the run has no such record)."""
        for r in self.records:
            if (r["split"], r["checkpoint"], r["model"], r["class"]) == (split, checkpoint, model, cls):
                return r["dice"]
        return None

    def share_ratio(self, cls: str, stage: str = "after") -> Optional[tuple[list[int], list[float]]]:
        """Per logged step, the pseudo-label share of ``cls`` divided by its labeled frequency in the
        batch (``shares_after``/``shares_before`` over ``pi_gt``), the mean of networks A and B;
        None for a run that logs no pseudo-labels (supervised)."""
        import numpy as np

        train = self.curves["train"]
        c = self.class_names.index(cls)
        ratios = []
        for net in ("A", "B"):
            shares, target = train.get(f"shares_{stage}_{net}"), train.get(f"pi_gt_{net}")
            if not shares or not target:
                continue
            ratios.append(
                [
                    s[c] / t[c] if s is not None and t is not None and s[c] is not None and t[c] else float("nan")
                    for s, t in zip(shares, target)
                ]
            )
        if not ratios:
            return None
        return list(train["step"]), [float(v) for v in np.nanmean(np.asarray(ratios, dtype=float), axis=0)]

    def rows(self) -> list[dict]:
        """One row per eval record, as :func:`coda_course.analysis.collect_runs` gives them (method = the variant)."""
        data = self.config["data"]
        labeled = data["labeled_patients"] if data.get("labeled_fraction") is None else data["labeled_fraction"]
        return [
            {
                "run": self.run_id,
                "path": f"course pack: {self.group}/{self.run_id}",
                "method": self.variant,
                "dataset": data["name"],
                "labeled": labeled,
                "seed": self.seed,
                "source": "pre-run",
                **r,
            }
            for r in self.records
        ]

    def load_data(self):
        """``(config, data)`` of the run: its resolved config and its dataset, loaded again (the synthetic
        phantoms are generated from the config's seed, so they are the images the run trained on)."""
        from coda_edu.config import from_dict, resolve
        from coda_edu.data import load_dataset

        cfg = resolve(from_dict(self.config))
        return cfg, load_dataset(cfg)

    def load_pair(self, device: str = "cpu"):
        """Networks A and B from the packed weights, in eval mode (8-bit weights: close to the trained ones)."""
        from coda_edu.config import from_dict
        from coda_edu.models import build_pair

        if self.weights_path is None:
            raise PackError(f"the course pack holds no networks for {self.group}/{self.run_id}")
        blob = self.weights_path.read_bytes()
        (n,) = struct.unpack("<Q", blob[:8])
        meta = json.loads(blob[8 : 8 + n])
        state = decode_weights(blob[8 + n :])
        cfg = from_dict(self.config)
        model_a, model_b = build_pair(cfg, int(meta["data"]["in_channels"]), int(meta["data"]["num_classes"]))
        model_a.load_state_dict(state["model_a"])
        model_b.load_state_dict(state["model_b"])
        return model_a.to(device).eval(), model_b.to(device).eval()


class CoursePack:
    """The pack at ``root`` (default: :func:`pack_root`); every group is verified when it is read."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = pack_root(root)
        if not (self.root / MANIFEST).is_file():
            raise PackError(f"no course pack at '{self.root}' (no {MANIFEST}): build it with coda-edu course pack")
        self.manifest = read_manifest(self.root)

    def groups(self) -> list[str]:
        return sorted(self.manifest["groups"])

    def group_files(self, group: str) -> list[str]:
        entry = self.manifest["groups"].get(group)
        if entry is None:
            have = ", ".join(self.groups()) or "none"
            raise PackError(
                f"the course pack at '{self.root}' has no group '{group}' (it has: {have}); "
                f"build it with coda-edu course pack --group {group}"
            )
        return [rel for run in entry["runs"].values() for rel in run["files"].values()]

    def info(self, group: str) -> dict:
        """The group's manifest entry (title, config, seeds, variants, minority class, runs)."""
        self.group_files(group)
        return self.manifest["groups"][group]

    def runs(self, group: str) -> list[PackedRun]:
        """The group's runs, checksums verified, in the recipe's order of variants, then by seed."""
        files = self.group_files(group)
        verify_files(self.root, self.manifest, files)
        out = []
        for run_id, entry in self.manifest["groups"][group]["runs"].items():
            rel = entry["files"]["run"]
            try:
                record = json.loads(gzip.decompress((self.root / rel).read_bytes()))
            except (OSError, EOFError, ValueError):
                raise PackError(f"course pack '{self.root}': '{rel}' cannot be read (damaged)") from None
            weights = entry["files"].get("weights")
            out.append(
                PackedRun(
                    group=group,
                    run_id=run_id,
                    variant=record["variant"],
                    method=record["method"],
                    seed=record["seed"],
                    config=record["config"],
                    curves=record["curves"],
                    records=record["records"],
                    protocol=record.get("protocol", {}),
                    weights_path=self.root / weights if weights else None,
                )
            )
        order = self.manifest["groups"][group].get("variant_order") or []
        return sorted(out, key=lambda r: (order.index(r.variant) if r.variant in order else len(order), r.seed))

    def rows(self, group: str) -> list[dict]:
        return [row for run in self.runs(group) for row in run.rows()]

    def size(self) -> int:
        """Bytes of the pack's files (manifest and recipe included)."""
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())


def load_group(group: str, root: str | os.PathLike | None = None) -> list[PackedRun]:
    """The verified runs of ``group`` (one-line :class:`PackError` for a missing or damaged pack)."""
    return CoursePack(root).runs(group)


# --------------------------------------------------------------------------- building
def same_run(a: dict, b: dict) -> list[str]:
    """Config keys at which two resolved configs differ, the execution keys (device, threads) aside,
    and the ``method.*`` keys that the (same) method of both does not read (a supervised run is the
    same run whatever ``method.mix`` says). Both are read through today's config tree first, so a key
    added since a run was packed counts at its default (every new key's default keeps the old
    behaviour), as it does for a run folder."""
    from coda_edu.config import from_dict, resolve
    from coda_edu.registry import METHODS
    from coda_edu.run_folder import config_differences, without_execution_keys

    a, b = (resolve(from_dict(c)).to_dict() for c in (a, b))
    differ = config_differences(without_execution_keys(a), without_execution_keys(b))
    name = a["method"]["name"]
    if name != b["method"]["name"] or name not in METHODS.names():
        return differ
    read = {"name", *METHODS.get(name).keys()}
    return [key for key in differ if not key.startswith("method.") or key.split(".", 1)[1] in read]


def _finished(run_dir: Path, weights: Optional[str]) -> bool:
    from coda_edu.run_folder import RunFolder

    return RunFolder(run_dir).is_finished(weights, metrics=True)


def _folders_by_config(runs_from: Optional[Path]) -> list[tuple[Path, dict]]:
    """Finished run folders below ``runs_from`` with their resolved configs."""
    if runs_from is None:
        return []
    from coda_edu.config import resolve
    from coda_edu.run_folder import RunFolder

    from .analysis import find_runs

    out = []
    for path in find_runs(runs_from):
        try:
            out.append((path, resolve(RunFolder(path).read_config()).to_dict()))
        except CodaEduError:
            continue
    return out


def _data_available(name: str) -> bool:
    root = os.environ.get("CODA_EDU_DATA_DIR")
    return bool(root) and (Path(root) / name).is_dir()


def build(
    groups: Optional[list[str]] = None,
    root: str | os.PathLike | None = None,
    work: str | os.PathLike = "runs/course-pack",
    runs_from: str | os.PathLike | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, int]:
    """Build or complete the pack; returns counts of runs ``kept`` (already packed), ``read``
    (packed from an existing run folder) and ``trained``."""
    from coda_edu.config import resolve
    from coda_edu.run_folder import RunFolder
    from coda_edu.train import train

    from .protocol import code_version

    root = pack_root(root)
    recipe = read_recipe(root)
    unknown = [g for g in groups or [] if g not in recipe]
    if unknown:
        raise PackError(f"no group {unknown[0]!r} in '{root / RECIPE}' (groups: {', '.join(recipe)})")
    chosen = groups or [name for name, g in recipe.items() if g.build]
    manifest = read_manifest(root)
    found = _folders_by_config(Path(runs_from) if runs_from else None)
    counts = {"kept": 0, "read": 0, "trained": 0}
    start = time.perf_counter()
    for name in chosen:
        group = recipe[name]
        specs = group.runs()
        entry = manifest["groups"].setdefault(name, {})
        entry.update(
            {
                "title": group.title,
                "config": group.config,
                "overrides": group.overrides,
                "seeds": group.seeds,
                "variants": group.variants,
                "variant_order": list(group.variants),  # the recipe's order (the manifest's keys are sorted)
                "minority_class": group.minority_class,
                "weights": group.weights,
            }
        )
        packed = entry.setdefault("runs", {})
        for stale in set(packed) - {s.run_id for s in specs}:  # a run dropped from the recipe
            for rel in packed.pop(stale)["files"].values():
                manifest["files"].pop(rel, None)
                (root / rel).unlink(missing_ok=True)
        for i, spec in enumerate(specs, 1):
            where = f"[pack] {name} {i}/{len(specs)} {spec.run_id}"
            cfg = spec.config()
            wanted = cfg.to_dict()
            have = packed.get(spec.run_id)
            if have and not same_run(have["config"], wanted):
                try:
                    verify_files(root, manifest, have["files"].values())
                    log(f"{where}: in the pack")
                    counts["kept"] += 1
                    continue
                except PackError as exc:
                    log(f"{where}: packed files are damaged ({exc}); packing again")
            folder = Path(work) / name / spec.run_id
            match = next((p for p, c in found if not same_run(c, wanted) and _finished(p, group.weights)), None)
            trained_here = match is None  # the work folder's runs are trained by this command, on this machine
            if match is None and RunFolder(folder).config_path.is_file():
                differ = same_run(resolve(RunFolder(folder).read_config()).to_dict(), wanted)
                if differ:
                    raise PackError(
                        f"{where}: the run folder '{folder}' is another run (its config differs at "
                        f"{', '.join(differ[:6])}); move it away or choose another --work"
                    )
            if match is not None:
                folder = match
                counts["read"] += 1
            elif not _finished(folder, group.weights):
                if group.requires_data and not _data_available(group.requires_data):
                    raise PackError(
                        f"{where}: not packed and no finished run folder found, and training it needs the "
                        f"{group.requires_data} data ($CODA_EDU_DATA_DIR/{group.requires_data}); pass "
                        f"--runs-from DIR with the trained runs, or set CODA_EDU_DATA_DIR"
                    )
                resume = RunFolder(folder).kind() == "run"
                log(
                    f"{where}: {'resuming' if resume else 'training'} ({cfg.train.iterations} steps) in {folder}",
                )
                t0 = time.perf_counter()
                train(None if resume else cfg, folder, resume=resume, progress=progress, log=lambda s: None)
                counts["trained"] += 1
                log(f"{where}: trained in {time.perf_counter() - t0:.0f} s")
            else:
                counts["read"] += 1
            files = pack_run(spec, group, folder, root)
            for rel in files.values():
                manifest["files"][rel] = file_entry(root, rel)
            packed[spec.run_id] = {
                "variant": spec.variant,
                "seed": spec.seed,
                "config": wanted,
                "files": files,
                "source": str(folder),
                "trained_on": cpu_fingerprint() if trained_here else None,
            }
            manifest["built"] = {
                "date": time.strftime("%Y-%m-%d"),
                "code": code_version(),
                "torch": _torch_version(),
            }
            write_manifest(root, manifest)  # after every run: an interrupted build keeps what it packed
            log(f"{where}: packed ({', '.join(files.values())})")
        write_manifest(root, manifest)  # the group's description follows the recipe even when every run is kept
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    log(
        f"[pack] done in {time.perf_counter() - start:.0f} s: {counts['kept']} already packed, {counts['read']} read "
        f"from run folders, {counts['trained']} trained; {root} holds {total / 1e6:.2f} MB"
    )
    return counts


def _torch_version() -> str:
    import torch

    return torch.__version__


def cpu_fingerprint() -> dict:
    """What a CPU run's float sums depend on beyond the config: the CPU model, the kernels torch
    picks for it and the torch version. A run retrained on a machine with another fingerprint is
    the same training up to rounding, which grows over the steps (the exact check needs the same)."""
    import platform

    import torch

    model, fields = platform.processor() or platform.machine(), {}
    try:  # Linux: the model name, and the family and model numbers (a virtual machine may hide the name)
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "cpu family", "model") and key not in fields:
                fields[key] = value.strip()
            if not line.strip() and fields:
                break
    except OSError:
        pass
    if "model name" in fields:
        model = fields["model name"]
        if "cpu family" in fields and "model" in fields:
            model += f" (family {fields['cpu family']}, model {fields['model']})"
    return {"cpu": model, "capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__}


def check(root: str | os.PathLike | None = None) -> list[str]:
    """Verify every group of the pack; returns one line per group (raises :class:`PackError` on damage)."""
    pack = CoursePack(root)
    lines = []
    for group in pack.groups():
        runs = pack.runs(group)
        lines.append(f"{group}: {len(runs)} run{'s' * (len(runs) != 1)} intact")
    lines.append(f"{pack.root}: {pack.size() / 1e6:.2f} MB")
    return lines


# --------------------------------------------------------------------------- summaries the notebooks use
def default_coda_variant(runs: list[PackedRun]) -> Optional[str]:
    """The variant that trains Co-DA as ``coda-edu train`` does: the default reading and filter, and none
    of the options beyond the paper (a key a packed config lacks counts at its default)."""
    from coda_edu.config import Config, resolve

    default = resolve(Config()).method
    keys = ("alignment", "filter", "mix", "unsupervised_loss", "ema_teacher", "strong_intensity")
    for run in runs:
        m = run.config["method"]
        if m["name"] == default.name and all(m.get(k, getattr(default, k)) == getattr(default, k) for k in keys):
            return run.variant
    return None


# --------------------------------------------------------------------------- command line
def add_cli(sub) -> None:
    p = sub.add_parser("course", help="the course pack: runs trained once for the notebooks (build, check)")
    course = p.add_subparsers(dest="course_action", metavar="ACTION")
    b = course.add_parser("pack", help="build or complete course_pack/ (resumable: packed runs are kept)")
    b.add_argument("--group", action="append", default=[], help="a group of course_pack/groups.yaml (repeatable)")
    b.add_argument("--work", default="runs/course-pack", help="where runs train (default: runs/course-pack)")
    b.add_argument("--runs-from", metavar="DIR", help="read finished run folders below DIR, matched by config")
    b.add_argument("--pack", metavar="DIR", help="the pack folder (default: course_pack/ of the repository)")
    b.add_argument("--no-progress", action="store_true", help="no progress bars")
    c = course.add_parser("check", help="verify the pack's checksums; print its groups and size")
    c.add_argument("--pack", metavar="DIR", help="the pack folder (default: course_pack/ of the repository)")
    p.set_defaults(handler=handle)


def handle(args) -> int:
    if args.course_action == "pack":
        if args.runs_from and not Path(args.runs_from).is_dir():
            raise PackError(f"--runs-from '{args.runs_from}' is not a folder")
        build(args.group or None, args.pack, args.work, args.runs_from, progress=not args.no_progress)
        return 0
    if args.course_action == "check":
        for line in check(args.pack):
            print(line)
        return 0
    raise PackError("usage: coda-edu course pack|check")
