"""Helpers shared by the data scripts in this folder.

- :func:`run_cli` turns every user-fixable problem into one line ``error: ...`` and exit
  status 2 (never a traceback);
- :class:`Staging` is the one folder, ``ROOT/.coda-edu-staging/``, where the scripts write
  every unfinished file before renaming it into place; a later run removes it only when
  it holds the scripts' marker and its run is gone, and the scripts delete nothing else;
- :func:`fetch_all` downloads files into the staging folder and renames them into place
  only after their SHA-256 matches the manifest (or, for files the manifest does not
  know, after they were read back successfully), so an interrupted run leaves nothing
  half-written and a re-run skips what is already there;
- :func:`read_manifest` / :func:`write_manifest` handle ``checksums/*.sha256``, written
  in the format of ``sha256sum`` (``<hex>  <relative path>``);
- :func:`read_nrrd` reads the NRRD files of the LA challenge (raw or gzip encoding);
- :func:`write_h5` writes an image/label pair atomically in the common HDF5 layout.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import http.client
import json
import os
import re
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn, Optional

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CHECKSUMS = HERE / "checksums"

try:  # run from a checkout that was not pip-installed
    import coda_edu  # noqa: F401
except ImportError:
    sys.path.insert(0, str(REPO))

from coda_edu.errors import CodaEduError, DataError  # noqa: E402
from coda_edu.io import (  # noqa: E402
    MB,
    STAGING_MARKER,
    mark_staging,
    read_small_text,
    sha256_file,
    staging_state,
)
from coda_edu.progress import progress_bar  # noqa: E402

STAGING = ".coda-edu-staging"
MANIFEST_LIMIT = 16 * MB


class UsageError(CodaEduError):
    """A bad command line (argparse's message, kept on one line)."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors become one ``error:`` line and exit status 2."""

    def error(self, message: str):
        raise UsageError(f"{message} (see {self.prog} --help)")


def run_cli(main: Callable[[Optional[list[str]]], Optional[int]], argv: Optional[list[str]] = None) -> int:
    """Run ``main(argv)``; print user-fixable problems as one ``error:`` line and return 2."""
    try:
        return main(argv) or 0
    except CodaEduError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # permission denied, disk full, ... while writing outputs
        where = f" '{exc.filename}'" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


def progress(iterable: Optional[Iterable] = None, *, total: Optional[int] = None, desc: str = "", unit: str = "file"):
    """A tqdm bar on stderr when it is a terminal (kept out of logs and captured output)."""
    return progress_bar(iterable, total=total, desc=desc, unit=unit, enabled=sys.stderr.isatty())


def say(message: str) -> None:
    """A progress or summary line on stdout."""
    print(message, flush=True)


def shorten(names: list[str], shown: int = 3) -> str:
    """``a, b, c and 7 more`` for long lists in one-line messages."""
    head = ", ".join(names[:shown])
    return head + (f" and {len(names) - shown} more" if len(names) > shown else "")


# --------------------------------------------------------------------------- manifests


def read_manifest(path: Path) -> dict[str, str]:
    """``{relative path: sha256}`` from a ``sha256sum``-style file."""
    text = read_small_text(path, what="checksum manifest", limit=MANIFEST_LIMIT, error=DataError)
    entries = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = re.fullmatch(r"([0-9a-f]{64}) [ *](.+)", line)
        if not m:
            raise DataError(f"file '{path}' line {number}: expected '<sha256>  <path>', got {line[:60]!r}")
        entries[m.group(2)] = m.group(1)
    return entries


def write_manifest(path: Path, entries: dict[str, str]) -> None:
    """Write ``{relative path: sha256}`` sorted by path (through a staging folder beside it)."""
    text = "".join(f"{sha}  {rel}\n" for rel, sha in sorted(entries.items()))
    with Staging(path.parent) as staging:
        staging.write(path, lambda tmp: tmp.write_text(text))


def manifest_sums(root: Path, relpaths: list[str], desc: str) -> dict[str, str]:
    """SHA-256 of each ``root / rel`` (with a progress bar)."""
    return {rel: sha256_file(root / rel) for rel in progress(relpaths, desc=desc)}


def checksum_problems(root: Path, manifest: dict[str, str], present: list[str]) -> list[str]:
    """Problems with the files the manifest names; prints how many verified and how many it does not know."""
    problems = []
    for rel, sha in progress(sorted(manifest.items()), desc="checksums"):
        path = root / rel
        if not path.is_file():
            problems.append(f"'{rel}' is missing")
        elif sha256_file(path) != sha:
            problems.append(f"'{rel}' differs from the release (SHA-256 mismatch)")
    unknown = [rel for rel in present if rel not in manifest]
    say(f"checksums: {len(manifest) - len(problems)} file(s) verified, {len(unknown)} unverified (no known checksum)")
    return problems


def report_problems(root: Path, problems: list[str], hint: str = "") -> NoReturn:
    """Print the problems (the first 20) and fail with one summary line."""
    for line in problems[:20]:
        say(f"problem: {line}")
    if len(problems) > 20:
        say(f"problem: ... and {len(problems) - 20} more")
    raise DataError(f"verify found {len(problems)} problem(s) in '{root}'{hint}")


# --------------------------------------------------------------------------- staging


class Staging:
    """``ROOT/.coda-edu-staging/``: where a script writes every unfinished file (``with Staging(root) as s``).

    Each output is written (or downloaded) into this folder and renamed into place when
    complete, so a killed run leaves its unfinished files only here. The folder holds a
    marker file naming the process that made it. On entry, a folder left by a run that is
    gone is deleted, but only when it holds the marker: a folder of that name without it is
    refused, never touched, and nothing outside the staging folder is ever deleted by name
    (a ``thesis.partial`` or ``notes.tmp-42`` beside the data is the user's). On exit the
    folder is removed.
    """

    def __init__(self, root: Path):
        self.folder = Path(root) / STAGING
        self._count = 0

    def __enter__(self) -> Staging:
        self._remove_leftovers()
        self.folder.mkdir(parents=True)
        mark_staging(self.folder)
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)  # made by __enter__

    def _remove_leftovers(self) -> None:
        folder = self.folder
        if not os.path.lexists(folder):
            return
        state = staging_state(folder)
        if state == "foreign":
            raise DataError(
                f"'{folder}' exists but was not made by these scripts (it holds no {STAGING_MARKER}); the "
                f"scripts write their unfinished files there and delete only a folder they made: move it away"
            )
        if state == "running":
            raise DataError(
                f"'{folder.parent}' is in use by another run of the data scripts (its staging folder "
                f"'{folder}' belongs to a running process); wait for it to end"
            )
        shutil.rmtree(folder)
        say("removed the unfinished files of an interrupted run")

    def path(self, name: str) -> Path:
        """A new file name in the staging folder (``name`` keeps it readable)."""
        self._count += 1
        return self.folder / f"{self._count}-{name}"

    def write(self, path: Path, write: Callable[[Path], None]) -> None:
        """Call ``write(tmp)`` for a new file (or folder) in the staging folder, then rename it to ``path``."""
        tmp = self.path(path.name)
        try:
            write(tmp)
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, path)
        finally:
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp)
            elif os.path.lexists(tmp):
                tmp.unlink()

    def write_text(self, path: Path, text: str) -> None:
        self.write(path, lambda tmp: tmp.write_text(text))

    def write_json(self, path: Path, obj) -> None:
        self.write_text(path, json.dumps(obj, indent=2) + "\n")


# --------------------------------------------------------------------------- downloads


def as_url(base: str) -> str:
    """A URL for ``base``; a plain local folder becomes a ``file://`` URL."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", base):
        return base.rstrip("/") + "/"
    return Path(base).expanduser().resolve().as_uri() + "/"


def join_url(base: str, rel: str) -> str:
    """``base`` + ``rel`` with the path quoted (spaces in LA's folder name)."""
    return base + urllib.parse.quote(rel)


@dataclass
class Item:
    """One file to fetch: where from, where to, and its known SHA-256 (None if unknown)."""

    url: str
    dest: Path
    rel: str
    sha256: Optional[str]


@dataclass
class FetchReport:
    downloaded: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: how many were downloaded, already present, and unverified (with the first names)."""
        text = f"{len(self.downloaded)} downloaded, {len(self.present)} already present and valid"
        if self.unverified:
            text += (
                f"; {len(self.unverified)} unverified (no known checksum), checked only by reading them: "
                f"{shorten(self.unverified)}"
            )
        return text


def _download(url: str, partial: Path) -> str:
    """Stream ``url`` into ``partial``; return its SHA-256. Raises DataError on any failure."""
    digest = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
            length = response.headers.get("Content-Length")
            while True:
                block = response.read(1 << 20)
                if not block:
                    break
                digest.update(block)
                out.write(block)
                received += len(block)
        if length is not None and received != int(length):
            raise DataError(f"download of '{url}' was cut off after {received} of {length} bytes; re-run to retry")
    except urllib.error.HTTPError as exc:
        raise DataError(f"could not download '{url}': HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise DataError(f"could not download '{url}': {exc.reason}") from None
    except (http.client.HTTPException, ConnectionError, TimeoutError) as exc:
        raise DataError(
            f"download of '{url}' failed after {received} bytes ({type(exc).__name__}); re-run to retry"
        ) from None
    return digest.hexdigest()


def fetch(item: Item, check: Callable[[Path], None], staging: Staging) -> None:
    """Download one item into the staging folder; verify; rename into place. Nothing is left on failure."""
    staging.write(item.dest, lambda partial: _fetch_into(item, check, partial))


def _fetch_into(item: Item, check: Callable[[Path], None], partial: Path) -> None:
    """Download ``item`` into ``partial`` and check it (a DataError when it does not verify)."""
    got = _download(item.url, partial)
    if item.sha256 is not None and got != item.sha256:
        raise DataError(
            f"file '{item.rel}': SHA-256 of the download from '{item.url}' is {got[:12]}..., "
            f"the manifest expects {item.sha256[:12]}...; the file was not kept (a changed or "
            f"broken mirror; re-run to retry)"
        )
    if item.sha256 is None:
        try:
            check(partial)
        except DataError as exc:
            detail = str(exc).replace(f"file '{partial}': ", "")
            raise DataError(
                f"file '{item.rel}' downloaded from '{item.url}' is unusable ({detail}); the file was not kept"
            ) from None


def is_valid(item: Item, check: Callable[[Path], None]) -> bool:
    """Whether an existing destination file verifies (checksum, or readable when none is known)."""
    if not item.dest.is_file():
        return False
    if item.sha256 is not None:
        return sha256_file(item.dest) == item.sha256
    try:
        check(item.dest)
    except DataError:
        return False
    return True


def fetch_all(items: list[Item], check: Callable[[Path], None], desc: str, staging: Staging) -> FetchReport:
    """Fetch every item that is not already present and valid; a re-run downloads nothing new."""
    report = FetchReport()
    for item in progress(items, desc=desc):
        if is_valid(item, check):
            report.present.append(item.rel)
        else:
            fetch(item, check, staging)
            report.downloaded.append(item.rel)
        if item.sha256 is None:
            report.unverified.append(item.rel)
    return report


# --------------------------------------------------------------------------- HDF5


def write_h5(staging: Staging, path: Path, image: np.ndarray, label: np.ndarray) -> None:
    """Write ``image`` and ``label`` (gzip level 4, as the common releases) through the staging folder."""
    import h5py

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as fh:
            fh.create_dataset("image", data=image, compression="gzip", compression_opts=4)
            fh.create_dataset("label", data=label, compression="gzip", compression_opts=4)

    staging.write(path, write)


# --------------------------------------------------------------------------- NRRD

NRRD_TYPES = {
    "int8": "i1",
    "signed char": "i1",
    "int8_t": "i1",
    "uint8": "u1",
    "uchar": "u1",
    "unsigned char": "u1",
    "uint8_t": "u1",
    "int16": "i2",
    "short": "i2",
    "short int": "i2",
    "signed short": "i2",
    "signed short int": "i2",
    "int16_t": "i2",
    "uint16": "u2",
    "ushort": "u2",
    "unsigned short": "u2",
    "unsigned short int": "u2",
    "uint16_t": "u2",
    "int32": "i4",
    "int": "i4",
    "signed int": "i4",
    "int32_t": "i4",
    "uint32": "u4",
    "uint": "u4",
    "unsigned int": "u4",
    "uint32_t": "u4",
    "int64": "i8",
    "longlong": "i8",
    "long long": "i8",
    "long long int": "i8",
    "int64_t": "i8",
    "uint64": "u8",
    "ulonglong": "u8",
    "unsigned long long": "u8",
    "unsigned long long int": "u8",
    "uint64_t": "u8",
    "float": "f4",
    "double": "f8",
}


def _nrrd_header(path: Path, blob: bytes) -> tuple[dict[str, str], bytes]:
    """The header fields (lower-case keys) and the bytes after the blank line that ends the header."""
    if not blob.startswith(b"NRRD000"):
        raise DataError(f"file '{path}': not an NRRD file (no 'NRRD000x' magic line)")
    end = blob.find(b"\n\n")
    if end < 0:
        raise DataError(f"file '{path}': NRRD header has no terminating blank line (truncated?)")
    fields = {}
    for line in blob[:end].decode("latin-1").splitlines()[1:]:
        if not line or line.startswith("#") or ":=" in line:
            continue  # comments and key/value pairs
        key, sep, value = line.partition(": ")
        if not sep:
            raise DataError(f"file '{path}': malformed NRRD header line '{line[:60]}'")
        fields[key.strip().lower()] = value.strip()
    return fields, blob[end + 2 :]


def _nrrd_field(path: Path, fields: dict[str, str], name: str) -> str:
    """A required header field, or a one-line error naming it."""
    if name not in fields:
        raise DataError(f"file '{path}': NRRD header lacks the required field '{name}'")
    return fields[name]


def read_nrrd(path: Path) -> tuple[np.ndarray, dict[str, str]]:
    """An attached-data NRRD file (raw or gzip encoding) as an array in file axis order.

    NRRD stores the first axis fastest, so ``sizes: X Y Z`` gives an ``(X, Y, Z)`` array
    (the order pynrrd returns by default). Detached data files, byte/line skips and
    other encodings (ascii, hex, bzip2) are refused with a one-line error.
    """
    if not path.is_file():
        raise DataError(f"file '{path}' does not exist")
    fields, body = _nrrd_header(path, path.read_bytes())
    for unsupported in ("data file", "datafile", "byte skip", "byteskip", "line skip", "lineskip"):
        if unsupported in fields and fields[unsupported] != "0":
            raise DataError(f"file '{path}': NRRD field '{unsupported}: {fields[unsupported]}' is not supported")
    kind = _nrrd_field(path, fields, "type").lower()
    if kind not in NRRD_TYPES:
        raise DataError(f"file '{path}': NRRD field 'type: {kind}' is not supported")
    dtype = np.dtype(NRRD_TYPES[kind])
    try:
        sizes = tuple(int(s) for s in _nrrd_field(path, fields, "sizes").split())
    except ValueError:
        raise DataError(f"file '{path}': NRRD field 'sizes: {fields['sizes']}' is not a list of integers") from None
    if len(sizes) != int(_nrrd_field(path, fields, "dimension")):
        raise DataError(f"file '{path}': NRRD 'sizes' has {len(sizes)} values but 'dimension' is {fields['dimension']}")
    if dtype.itemsize > 1:
        endian = _nrrd_field(path, fields, "endian").lower()
        if endian not in ("little", "big"):
            raise DataError(f"file '{path}': NRRD field 'endian: {endian}' must be little or big")
        dtype = dtype.newbyteorder("<" if endian == "little" else ">")
    encoding = _nrrd_field(path, fields, "encoding").lower()
    if encoding in ("gzip", "gz"):
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"file '{path}': gzip data is truncated or corrupt ({type(exc).__name__})") from None
    elif encoding != "raw":
        raise DataError(f"file '{path}': NRRD field 'encoding: {encoding}' is not supported (raw and gzip only)")
    expected = int(np.prod(sizes)) * dtype.itemsize
    if len(body) != expected:
        raise DataError(
            f"file '{path}': NRRD data has {len(body)} bytes, sizes {sizes} of type '{kind}' need "
            f"{expected} (truncated or corrupt)"
        )
    return np.frombuffer(body, dtype=dtype).reshape(sizes, order="F"), fields
