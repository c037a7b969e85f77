"""``coda-edu data pack`` / ``unpack``: move a dataset folder to another machine as one compact, verified file.

A pack holds every file of a dataset folder (``$CODA_EDU_DATA_DIR/ACDC``, ``LA``, ``CaDIS``):
the arrays of each HDF5 file, and every other file (split lists, ``spacing.json``, PNG
frames, CSV indexes) byte for byte. Unpacking rebuilds the same layout, so the loaders
read it as they read the original.

File format, version 1 (``*.cepack``)::

    CODA-EDU-PACK 1 <n>\\n        magic, format version, length of the manifest in bytes
    <n bytes>                    manifest: UTF-8 JSON (below)
    <rest>                       payload: an xz (lzma) stream of an uncompressed .npz (no pickles)

The manifest names the dataset and its folder, the payload's size and SHA-256 (checked
before anything is written on unpack), and for every file its path relative to the
dataset folder and where its contents are in the payload: ``{"path", "kind": "bytes",
"array"}`` or ``{"path", "kind": "h5", "datasets": [{"key", "array", "dtype", "lo",
"hi"}]}``.

Floating-point HDF5 datasets that are not integer-valued are quantised to 8 bits per
file (``--images u8``, the default): with ``lo``, ``hi`` the file's minimum and
maximum, ``q = round(255 (x - lo) / (hi - lo))`` is stored and unpacked as
``x' = lo + q (hi - lo) / 255``, so ``|x' - x| <= (hi - lo) / 510`` (half a step of the
file's own range). Labels, integer arrays and integer-valued floats are stored exactly;
``--images exact`` stores float images exactly too (larger). HDF5 attributes and the
files' internal compression are not kept (the loaders use neither).

``unpack`` also reads the older ``acdc_trainval_u8.npz.xz`` made by
``../shared/gpu/pack_acdc.py`` (an xz stream of an .npz whose keys are
``<path>::bytes``, ``<path>::<key>`` and ``<path>::<key>::u8``, images as ``q / 255``);
that format carries no checksum, so only its decompression and parsing are checked.

Every file a pack names is checked before anything is written: its manifest is read
with a bounded length, each entry must be a plain relative path that no other entry
repeats or lies inside, and the numbers it holds must be numbers. ``unpack`` writes at
most ``max_bytes`` (default :data:`MAX_EXPANSION` times the pack's size), so a small
crafted pack cannot fill the disk. ``pack`` never follows a link out of the dataset
folder and never replaces an existing file unless asked to (``force``). Both work in a
staging folder (``.<name>.packing-*`` / ``.<folder>.unpacking-*``) holding coda-edu's
marker; a later run deletes such folders that a killed run left, and nothing else.

Every problem (not a pack, truncated, checksum mismatch, an unsafe path, a destination
that holds something else) is one :class:`~coda_edu.errors.DataError` line.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import math
import os
import shutil
import zipfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Optional

import numpy as np

from coda_edu.errors import DataError, excerpt
from coda_edu.io import MB, make_staging, parse_json, read_small_text, remove_stale_staging

MAGIC = b"CODA-EDU-PACK"
VERSION = 1
XZ_MAGIC = b"\xfd7zXZ\x00"
MARKER = ".coda-edu-pack.json"  # written into an unpacked folder: where it came from (not packed again)
_CHUNK = 1 << 20
MANIFEST_LIMIT = 256 * MB  # a manifest names each file in a few hundred bytes
#: ``unpack`` writes at most this many times the pack's size by default (a real pack of the ACDC
#: subset unpacks to about 12 times its size; a decompression bomb to thousands of times).
MAX_EXPANSION = 100


# --------------------------------------------------------------------------- quantisation
def quantise(x: np.ndarray) -> tuple[np.ndarray, float, float]:
    """``(q, lo, hi)``: ``q = round(255 (x - lo) / (hi - lo))`` as uint8, with ``lo, hi`` = min, max of ``x``."""
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        return np.zeros(x.shape, np.uint8), lo, hi
    q = np.rint((x.astype(np.float64) - lo) * (255.0 / (hi - lo)))
    return np.clip(q, 0, 255).astype(np.uint8), lo, hi


def dequantise(q: np.ndarray, lo: float, hi: float, dtype: str = "float32") -> np.ndarray:
    """``x' = lo + q (hi - lo) / 255``: within ``(hi - lo) / 510`` of the packed values."""
    return (lo + q.astype(np.float64) * ((hi - lo) / 255.0)).astype(dtype)


def _integer_valued(x: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(x)) and np.array_equal(x, np.round(x)))


# --------------------------------------------------------------------------- paths
def _safe_relative(path: str, where: str) -> PurePosixPath:
    """A pack may only name files inside the destination folder: ``a/b``, never ``../x``, ``/x``, ``./x``."""
    if not isinstance(path, str) or not path or "\\" in path or "\0" in path:
        raise DataError(f"pack '{where}' is damaged or unsafe: entry {excerpt(path)} is not a plain relative path")
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise DataError(f"pack '{where}' is damaged or unsafe: entry {excerpt(path)} is not a plain relative path")
    return PurePosixPath(path)


def _check_paths(paths: list[str], where: str) -> None:
    """Every path once, and none inside another (``x`` and ``x/y`` cannot both be files)."""
    seen: set[str] = set()
    for path in paths:
        _safe_relative(path, where)
        if path in seen:
            raise DataError(f"pack '{where}' is damaged: it names {excerpt(path)} twice")
        seen.add(path)
    for path in paths:
        parts = path.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in seen:
                raise DataError(
                    f"pack '{where}' is damaged: entry {excerpt(path)} lies inside {excerpt('/'.join(parts[:i]))}, "
                    f"which is a file"
                )


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_entries(manifest: dict, where: str) -> None:
    """The file entries of a version-1 manifest, checked before anything is written."""
    damaged = f"pack '{where}' is damaged:"
    for entry in manifest["files"]:
        if not isinstance(entry, dict) or entry.get("kind") not in ("bytes", "h5"):
            raise DataError(f"{damaged} a file entry is not a 'bytes' or 'h5' entry ({excerpt(entry)})")
        name = excerpt(entry.get("path"))
        if entry["kind"] == "bytes":
            if not isinstance(entry.get("array"), str):
                raise DataError(f"{damaged} file entry {name} names no array")
            continue
        datasets = entry.get("datasets")
        if not isinstance(datasets, list):
            raise DataError(f"{damaged} file entry {name} has no list of datasets")
        for info in datasets:
            if not (isinstance(info, dict) and isinstance(info.get("key"), str) and isinstance(info.get("array"), str)):
                raise DataError(f"{damaged} file entry {name} has a dataset without key and array")
            try:
                kind = np.dtype(info.get("dtype")).kind
            except (TypeError, ValueError):
                kind = None
            if kind not in tuple("biuf"):
                raise DataError(f"{damaged} file entry {name}: dtype {excerpt(info.get('dtype'))} is not a number type")
            if ("lo" in info or "hi" in info) and not (
                _is_number(info.get("lo")) and _is_number(info.get("hi")) and info["lo"] <= info["hi"]
            ):
                raise DataError(f"{damaged} file entry {name}: lo/hi must be finite numbers with lo <= hi")
    _check_paths([entry["path"] for entry in manifest["files"]], where)


def _check_folder(folder, where: str) -> PurePosixPath:
    """The dataset folder a pack unpacks into: one plain name (``ACDC``), never ``.``, ``..`` or ``a/b``."""
    if not isinstance(folder, str) or folder in ("", ".", "..") or any(c in folder for c in "/\\\0"):
        raise DataError(f"pack '{where}' is damaged or unsafe: folder {excerpt(folder)} is not a plain folder name")
    return PurePosixPath(folder)


def dataset_folder(name: str, root: Optional[str] = None) -> tuple[Path, str]:
    """(the folder of dataset ``name``, its folder name under ``$CODA_EDU_DATA_DIR``)."""
    from coda_edu.data.readers import dataset_root
    from coda_edu.registry import DATASETS

    spec = DATASETS.get(name)
    if spec.folder is None:
        raise DataError(f"dataset '{name}' is generated in memory: there is nothing to pack")
    return dataset_root(root, spec.folder, name), spec.folder


# --------------------------------------------------------------------------- pack
def _h5_arrays(path: Path, images: str) -> list[tuple[str, np.ndarray, dict]]:
    """(key, array to store, manifest fields) for each dataset of an HDF5 file."""
    import h5py

    out = []
    try:
        with h5py.File(path, "r") as fh:
            for key in fh:
                node = fh[key]
                if not isinstance(node, h5py.Dataset):
                    raise DataError(f"file '{path}': '{key}' is an HDF5 group; pack handles flat files only")
                a = np.asarray(node[()])
                if a.dtype.kind not in "biuf":
                    raise DataError(f"file '{path}': dataset '{key}' has dtype {a.dtype}; pack handles numbers only")
                info = {"key": key, "dtype": a.dtype.str, "shape": list(a.shape)}
                if a.dtype.kind == "f" and images == "u8" and a.size and not _integer_valued(a):
                    if not np.all(np.isfinite(a)):
                        raise DataError(f"file '{path}': dataset '{key}' has NaN or inf values; cannot quantise")
                    a, info["lo"], info["hi"] = quantise(a)
                out.append((key, a, info))
    except DataError:
        raise
    except Exception as exc:  # h5py raises OSError/KeyError/RuntimeError for broken files
        raise DataError(f"file '{path}': not a readable HDF5 file ({type(exc).__name__})") from None
    return out


def _files_of(root: Path) -> list[Path]:
    """Every file under ``root``. A link is refused when it leads out of ``root`` or to a folder (pack never
    follows a link out of the dataset); a link to a file inside ``root`` is packed as that file."""
    files = []
    inside = root.resolve()
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + names):
            path = Path(folder) / name
            if not path.is_symlink():
                continue
            target = path.resolve()
            if path.is_dir() or not path.exists() or inside not in target.parents:
                what = "a folder" if path.is_dir() else "a file" if path.exists() else "nothing (a broken link)"
                where = "outside the dataset folder" if inside not in target.parents else "inside it"
                raise DataError(
                    f"'{path}' is a link to {what} {where} ('{target}'); pack never follows links out of the "
                    f"dataset or into folders: replace the link by a copy, or remove it"
                )
        for name in sorted(names):
            path = Path(folder) / name
            if path.parent == root and name == MARKER:
                continue
            files.append(path)
    if not files:
        raise DataError(f"folder '{root}' holds no files: nothing to pack")
    return files


def pack_folder(
    root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    dataset: str,
    folder: str,
    images: str = "u8",
    level: int = 6,
    progress: bool = True,
    force: bool = False,
) -> dict:
    """Pack every file under ``root`` into ``out``; returns the manifest. An existing ``out`` is replaced only
    with ``force``. The pack is made in a staging folder beside ``out`` and renamed into place."""
    from coda_edu.progress import progress_bar

    if images not in ("u8", "exact"):
        raise DataError(f"--images must be 'u8' or 'exact', got {excerpt(images)}")
    root, out = Path(root), Path(out)
    if os.path.lexists(out) and not force:
        raise DataError(f"--out '{out}' already exists; pass --force to replace it, or choose another file")
    if out.is_dir() or out.is_symlink():
        raise DataError(f"--out '{out}' is a folder or a link; name the pack file to write")
    files = _files_of(root)
    entries, max_error, n = [], 0.0, 0
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create '{out.parent}': {exc.strerror or exc}") from None
    prefix = f".{out.name}.packing-"
    remove_stale_staging(out.parent, prefix)
    staging = make_staging(out.parent, prefix)
    try:
        payload = staging / "payload.npz.xz"
        with lzma.open(payload, "wb", preset=level) as xz, zipfile.ZipFile(xz, "w", zipfile.ZIP_STORED) as zf:

            def put(array: np.ndarray) -> str:
                nonlocal n
                name, n = f"a{n}", n + 1
                with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.ascontiguousarray(array), allow_pickle=False)
                return name

            for path in progress_bar(files, desc="pack", enabled=progress, unit="file"):
                rel = path.relative_to(root).as_posix()
                if path.suffix == ".h5":
                    datasets = []
                    for _key, array, info in _h5_arrays(path, images):
                        info["array"] = put(array)
                        if "lo" in info:
                            max_error = max(max_error, (info["hi"] - info["lo"]) / 510)
                        datasets.append(info)
                    entries.append({"path": rel, "kind": "h5", "datasets": datasets})
                else:
                    entries.append(
                        {"path": rel, "kind": "bytes", "array": put(np.frombuffer(path.read_bytes(), np.uint8))}
                    )
        digest, size = _sha256(payload)
        manifest = {
            "format": VERSION,
            "dataset": dataset,
            "folder": folder,
            "source": str(root),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "coda_edu": __import__("coda_edu").__version__,
            "images": images,
            "image_rule": "per file: q = round(255 (x - lo) / (hi - lo)), x' = lo + q (hi - lo) / 255"
            if images == "u8"
            else "exact",
            "max_image_error": max_error,
            "n_files": len(entries),
            "payload": {"bytes": size, "sha256": digest, "encoding": "xz(npz)"},
            "files": entries,
        }
        head = json.dumps(manifest, separators=(",", ":")).encode("utf-8")

        whole = staging / out.name
        with open(whole, "wb") as fh, open(payload, "rb") as src:
            fh.write(MAGIC + f" {VERSION} {len(head)}\n".encode() + head)
            shutil.copyfileobj(src, fh, _CHUNK)
        os.replace(whole, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def pack_dataset(name: str, out, *, root: Optional[str] = None, **kwargs) -> dict:
    """Pack dataset ``name`` (its folder under ``$CODA_EDU_DATA_DIR``, or ``root``) into ``out``."""
    folder_path, folder = dataset_folder(name, root)
    return pack_folder(folder_path, out, dataset=name, folder=folder, **kwargs)


def _sha256(path: Path, limit: Optional[int] = None, offset: int = 0) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        fh.seek(offset)
        while True:
            block = fh.read(_CHUNK)
            if not block:
                break
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


# --------------------------------------------------------------------------- read
def read_manifest(path: str | os.PathLike) -> tuple[dict, int]:
    """(manifest, byte offset of the payload) of a version-1 pack; one-line errors otherwise."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"pack '{path}' does not exist" + (" (it is a folder)" if path.is_dir() else ""))
    with open(path, "rb") as fh:
        first = fh.readline(200)
        parts = first.split()
        if len(parts) != 3 or parts[0] != MAGIC or not first.endswith(b"\n"):
            raise DataError(f"'{path}' is not a coda-edu pack (no '{MAGIC.decode()}' header)")
        if parts[1] != str(VERSION).encode():
            raise DataError(
                f"pack '{path}' has format version {parts[1].decode(errors='replace')}; this coda-edu reads {VERSION}"
            )
        if not parts[2].isdigit() or len(parts[2]) > 12:
            raise DataError(f"pack '{path}' is damaged: the header's manifest length is not a byte count")
        length = int(parts[2])
        if length > min(MANIFEST_LIMIT, path.stat().st_size):
            raise DataError(
                f"pack '{path}' is damaged or truncated: the header's manifest length {length} is larger than "
                f"the file or {MANIFEST_LIMIT // MB} MB"
            )
        raw = fh.read(length)
        offset = fh.tell()
    if len(raw) != length:
        raise DataError(f"pack '{path}' is truncated: the manifest has {len(raw)} of {length} bytes")
    try:
        manifest = parse_json(raw.decode("utf-8"))
        ok = isinstance(manifest, dict) and isinstance(manifest.get("files"), list)
        payload = manifest.get("payload") if ok else None
        ok = (
            ok
            and isinstance(payload, dict)
            and isinstance(payload.get("sha256"), str)
            and isinstance(payload.get("bytes"), int)
            and "folder" in manifest
        )
    except (ValueError, UnicodeDecodeError):
        ok = False
    if not ok:
        raise DataError(f"pack '{path}' is damaged: its manifest is not valid JSON with files, folder and payload")
    _check_folder(manifest["folder"], str(path))
    _check_entries(manifest, str(path))
    return manifest, offset


class _Budget:
    """What ``unpack`` may still write; a one-line error naming the limit once it is spent."""

    def __init__(self, limit: int, where: str):
        self.left, self.limit, self.where = limit, limit, where

    def spend(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise DataError(
                f"pack '{self.where}' would unpack to more than {self.limit / 1e9:.3g} GB ({MAX_EXPANSION} times "
                f"its size by default, a limit against decompression bombs); nothing was kept. If you trust it, "
                f"pass --max-gb with its unpacked size"
            )


def _load_npz(path: Path, where: str) -> np.lib.npyio.NpzFile:
    try:
        return np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise DataError(
            f"pack '{where}' is damaged: the payload is not a readable .npz ({type(exc).__name__})"
        ) from None


def _decompress(src, target: Path, where: str, budget: _Budget) -> None:
    try:
        with lzma.open(src, "rb") as xz, open(target, "wb") as fh:
            while block := xz.read(_CHUNK):
                budget.spend(len(block))
                fh.write(block)
    except (lzma.LZMAError, EOFError) as exc:
        raise DataError(f"pack '{where}' is damaged or truncated: the xz stream does not decompress ({exc})") from None


def _array(npz, name: str, where: str) -> np.ndarray:
    try:
        return npz[name]
    except KeyError:
        raise DataError(f"pack '{where}' is damaged: the payload has no array '{name}'") from None
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"pack '{where}' is damaged: array '{name}' cannot be read ({type(exc).__name__})") from None


def _write_h5(path: Path, datasets: dict[str, np.ndarray], budget: _Budget) -> None:
    import h5py

    budget.spend(sum(a.nbytes for a in datasets.values()))
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as fh:
        for key, array in datasets.items():
            fh.create_dataset(key, data=array)


def _write_bytes(path: Path, array: np.ndarray, budget: _Budget) -> None:
    budget.spend(array.nbytes)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(array.tobytes())


def _restore_v1(manifest: dict, npz, dest: Path, where: str, bar, budget: _Budget) -> None:
    for entry in manifest["files"]:  # checked by read_manifest
        rel = _safe_relative(entry["path"], where)
        if entry["kind"] == "bytes":
            _write_bytes(dest / rel, _array(npz, entry["array"], where), budget)
        else:
            arrays = {}
            for info in entry["datasets"]:
                a = _array(npz, info["array"], where)
                if "lo" in info:
                    a = dequantise(a, float(info["lo"]), float(info["hi"]), info["dtype"])
                arrays[info["key"]] = a
            _write_h5(dest / rel, arrays, budget)
        bar.update(1)


def _restore_legacy(npz, dest: Path, where: str, bar, budget: _Budget) -> int:
    groups: dict[str, list[tuple[str, str]]] = {}
    for name in npz.files:
        rel, sep, rest = name.partition("::")
        if not sep:
            raise DataError(f"pack '{where}' is not a shared ACDC pack: array {excerpt(name)} has no '::' in its name")
        groups.setdefault(rel, []).append((rest, name))
    _check_paths(list(groups), where)
    bar.reset(total=len(groups))
    for rel, items in groups.items():
        path = dest / _safe_relative(rel, where)
        if items[0][0] == "bytes":
            _write_bytes(path, _array(npz, items[0][1], where), budget)
        else:
            arrays = {}
            for rest, name in items:
                key, _, kind = rest.partition("::")
                a = _array(npz, name, where)
                arrays[key] = a.astype(np.float32) / 255.0 if kind == "u8" else a
            _write_h5(path, arrays, budget)
        bar.update(1)
    return len(groups)


def _is_legacy(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(len(XZ_MAGIC)) == XZ_MAGIC


def describe_source(root: str | os.PathLike) -> str:
    """Where a dataset folder came from: a pack (with its image rule and checksum) or original files."""
    marker = Path(root) / MARKER
    if not marker.is_file():
        return f"original files in {root}"
    try:
        info = _read_marker(marker)
    except (ValueError, DataError):
        return f"unpacked in {root} (its {MARKER} is unreadable)"
    if info.get("format") == "shared-acdc-u8":
        return f"8-bit packed (../shared/gpu/pack_acdc.py format, no checksum: {info.get('pack')})"
    kind = "8-bit packed" if info.get("images") == "u8" else "packed (exact images)"
    sha = str(info.get("sha256"))[:12]
    return f"{kind} (coda-edu pack {info.get('pack')}, payload sha256 {sha}, made {info.get('created')})"


def unpack(
    path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    progress: bool = True,
    log: Callable[[str], None] = print,
    max_bytes: Optional[int] = None,
) -> Path:
    """Unpack ``path`` into ``out/<folder>`` (``out`` is what ``$CODA_EDU_DATA_DIR`` should name).

    The payload's SHA-256 is checked before anything is written; files are written into
    a staging folder renamed into place at the end, so an interrupted unpack leaves
    nothing half-written (and the next unpack into ``out`` removes that folder). At most
    ``max_bytes`` are written (default: :data:`MAX_EXPANSION` times the pack's size).
    Unpacking the same pack again into a folder it made is a no-op. Returns the dataset folder.
    """
    from coda_edu.progress import progress_bar

    path, out = Path(path), Path(out)
    if not path.is_file():
        raise DataError(f"pack '{path}' does not exist" + (" (it is a folder)" if path.is_dir() else ""))
    legacy = _is_legacy(path)
    if legacy:
        manifest, offset = {"folder": "ACDC", "format": "shared-acdc-u8"}, 0
        digest = None
    else:
        manifest, offset = read_manifest(path)
        expected = manifest["payload"]
        digest, size = _sha256(path, offset=offset)
        if size != expected.get("bytes"):
            raise DataError(
                f"pack '{path}' is truncated or damaged: payload has {size} bytes, "
                f"the manifest says {expected.get('bytes')}"
            )
        if digest != expected["sha256"]:
            raise DataError(f"pack '{path}' is damaged: the payload's SHA-256 does not match its manifest")
    folder = _check_folder(manifest["folder"], str(path))
    dest = out / folder
    if dest.is_symlink():
        raise DataError(f"destination '{dest}' is a link; unpack writes only a real folder: remove the link first")
    if dest.exists():
        if digest is not None and _same_pack(dest, digest):
            log(f"{dest} already holds this pack (sha256 {digest[:12]}): nothing to do")
            return dest
        if not dest.is_dir() or any(dest.iterdir()):
            raise DataError(
                f"destination '{dest}' already exists and is not this pack's unpacked folder: "
                f"remove it or choose another --out"
            )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create '{out}': {exc.strerror or exc}") from None
    prefix = f".{folder.name}.unpacking-"
    for stale in remove_stale_staging(out, prefix):
        log(f"removed {stale}, left by an interrupted unpack")
    budget = _Budget(max_bytes if max_bytes is not None else MAX_EXPANSION * path.stat().st_size, str(path))
    staging = make_staging(out, prefix)
    try:
        npz_path = staging / ".payload.npz"
        with open(path, "rb") as fh:
            fh.seek(offset)
            _decompress(fh, npz_path, str(path), budget)
        tree = staging / "tree"
        with _load_npz(npz_path, str(path)) as npz:
            n = 0 if legacy else len(manifest["files"])
            bar = progress_bar(total=n, desc="unpack", enabled=progress, unit="file")
            try:
                if legacy:
                    n = _restore_legacy(npz, tree, str(path), bar, budget)
                else:
                    _restore_v1(manifest, npz, tree, str(path), bar, budget)
            finally:
                bar.close()
        marker = {k: v for k, v in manifest.items() if k != "files"}
        marker.update(pack=str(path), sha256=digest, unpacked=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        (tree / MARKER).write_text(json.dumps(marker, indent=1) + "\n")
        if dest.is_dir():
            dest.rmdir()  # empty (checked above)
        os.replace(tree, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"unpacked {n} files -> {dest}  (use: export CODA_EDU_DATA_DIR={out})")
    return dest


def _read_marker(path: Path) -> dict:
    info = parse_json(read_small_text(path, what="pack marker", limit=MB, error=DataError))
    if not isinstance(info, dict):
        raise ValueError("not a JSON object")
    return info


def _same_pack(dest: Path, digest: str) -> bool:
    try:
        return _read_marker(dest / MARKER).get("sha256") == digest
    except (ValueError, DataError):
        return False


def summary(manifest: dict, path: str | os.PathLike) -> str:
    """One line describing a pack just written."""
    size = Path(path).stat().st_size
    rule = (
        f"images 8-bit (max error {manifest['max_image_error']:.2e})" if manifest["images"] == "u8" else "images exact"
    )
    return (
        f"packed {manifest['n_files']} files of {manifest['source']} -> {path} ({size / 1e6:.1f} MB; {rule}; "
        f"labels exact; payload sha256 {manifest['payload']['sha256'][:12]})"
    )


__all__ = ["pack_dataset", "pack_folder", "unpack", "read_manifest", "describe_source", "quantise", "dequantise"]
