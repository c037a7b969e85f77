"""Small file helpers: atomic writes, JSON that is valid JSON, JSON-lines logs.

Results are never written in place: each writer writes ``NAME.coda-edu-tmp-<pid>`` in the
same folder and renames it over ``NAME`` (``os.replace`` is atomic on POSIX and
Windows), so a killed process leaves either the old file or the new one.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import json
import math
import os
import re
import shutil
import socket
import stat
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Optional

import yaml

try:  # POSIX only: used to serialise taking over a stale lock
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


#: The name of a file being written (``NAME.coda-edu-tmp-<pid>``): coda-edu's own naming, so that a
#: file of the user's named like a temporary file (``notes.tmp-42``) is never taken for a leftover.
TMP_SUFFIX = ".coda-edu-tmp-"


def _tmp_path(path: Path) -> Path:
    return path.with_name(f"{path.name}{TMP_SUFFIX}{os.getpid()}")


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` and rename ``tmp`` over ``path``; clean up on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno == errno.ENOSPC and not exc.filename:  # name the file whose write failed
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from None
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def to_jsonable(obj: Any, digits: int | None = None) -> Any:
    """NaN/inf become ``None`` (JSON has no NaN); tensors and numpy values become lists/floats; with
    ``digits``, floats are rounded to that many significant digits (smaller files for figures)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, digits) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return to_jsonable(obj.tolist(), digits)
    if isinstance(obj, float):
        if not math.isfinite(obj):
            return None
        return obj if digits is None else float(f"{obj:.{digits}g}")
    if isinstance(obj, Path):
        return str(obj)
    return obj


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return parse_json(Path(path).read_text())


# --------------------------------------------------------------------------- reading files that may be hostile

MB = 1 << 20


def read_small_text(path: str | os.PathLike, *, what: str, limit: int, error: type) -> str:
    """The UTF-8 text of a small file (a config, a manifest, a lock, an index), or one ``error`` line:
    missing, a folder, unreadable, larger than ``limit`` bytes (never read whole) or not UTF-8."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except FileNotFoundError:
        raise error(f"{what} '{path}' does not exist") from None
    except IsADirectoryError:
        raise error(f"{what} '{path}' is a folder, not a file") from None
    except OSError as exc:
        raise error(f"{what} '{path}' cannot be read: {exc.strerror or exc}") from None
    if len(data) > limit:
        size = f"{limit // MB} MB" if limit >= MB else f"{limit} bytes"
        raise error(f"{what} '{path}' is larger than {size}, too large for a {what} (damaged or not one?)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} '{path}' is not UTF-8 text (byte {exc.start} cannot be decoded)") from None


def parse_json(text: str | bytes) -> Any:
    """``json.loads``, with nesting too deep for Python's recursion a ``ValueError`` like any other bad JSON."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


class YAMLRefused(yaml.YAMLError):
    """YAML that coda-edu does not read (an alias, a duplicate key, nesting too deep); ``problem`` and
    ``problem_mark`` as in PyYAML's own errors."""

    def __init__(self, problem: str, mark=None):
        super().__init__(problem)
        self.problem, self.problem_mark = problem, mark


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases (``*name``: no exponential expansion) and without
    duplicate keys (the later one would silently replace the earlier one)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise YAMLRefused(
                "YAML aliases (*name) are not accepted; write the values out", self.peek_event().start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable: the safe constructor refuses it itself
                continue
            if duplicate:
                from .errors import excerpt

                raise YAMLRefused(f"duplicate key {excerpt(key)}", key_node.start_mark)
        return super().construct_mapping(node, deep)


def load_yaml(text: str) -> Any:
    """YAML read safely (no objects, no aliases, no duplicate keys); ``yaml.YAMLError`` otherwise."""
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except RecursionError:
        raise YAMLRefused("YAML nested too deeply") from None


def append_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Append rows and flush them to disk (a crash loses at most the rows being written)."""
    with open(path, "a") as fh:
        for row in rows:
            fh.write(json.dumps(to_jsonable(row), allow_nan=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path: str | os.PathLike, warn: Optional[Callable[[str], None]] = None) -> list[dict]:
    """The rows of a JSON-lines file, read tolerantly.

    A torn last line (a run killed while appending) is dropped silently. A damaged line
    elsewhere is skipped and reported through ``warn`` (default: a Python warning), so
    one bad line never hides the rows after it.
    """
    rows = []
    path = Path(path)
    if not path.exists():
        return rows
    lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for i, line in enumerate(lines):
        line = line.strip()
        if not line:
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict):
            rows.append(row)
        elif i != last:  # a torn last line is expected after a kill; anything else is reported
            message = f"'{path}' line {i + 1} is damaged (not a JSON object): skipped"
            if warn is not None:
                warn(message)
            else:
                warnings.warn(message, stacklevel=2)
    return rows


def truncate_jsonl(
    path: str | os.PathLike, keep: Callable[[dict], bool], warn: Optional[Callable[[str], None]] = None
) -> None:
    """Rewrite a JSON-lines file atomically with only the rows ``keep`` accepts (used on resume)."""
    rows = [r for r in read_jsonl(path, warn=warn) if keep(r)]
    atomic_write_text(path, "".join(json.dumps(r, allow_nan=False) + "\n" for r in rows))


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- run-folder lock

LOCK_NAME = ".lock"
_TMP_RE = re.compile(re.escape(TMP_SUFFIX) + r"(\d+)$")


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (a zombie counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def process_start(pid: int) -> Optional[int]:
    """When process ``pid`` started (clock ticks since boot, from ``/proc``; None where unknown): with the
    pid it names one process, so a lock whose pid was reused by another process is recognised."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as fh:
            text = fh.read(4096).decode("ascii", "replace")
        return int(text.rsplit(")", 1)[1].split()[19])  # field 22 (starttime); fields 3.. follow the ")"
    except (OSError, ValueError, IndexError):
        return None


# --------------------------------------------------------------------------- staging folders

#: The file that marks a staging folder as coda-edu's: the pid and start time of the process that made it.
STAGING_MARKER = ".coda-edu-staging.json"


def mark_staging(folder: Path) -> Path:
    """Write coda-edu's marker into ``folder`` (a new, empty folder this process made) and return it."""
    info = {"made_by": "coda-edu", "pid": os.getpid(), "pid_start": process_start(os.getpid())}
    (Path(folder) / STAGING_MARKER).write_text(json.dumps(info) + "\n")
    return Path(folder)


def make_staging(parent: Path, prefix: str) -> Path:
    """A new staging folder ``parent/<prefix><random>`` holding coda-edu's marker."""
    return mark_staging(Path(tempfile.mkdtemp(prefix=prefix, dir=parent)))


def staging_state(folder: Path) -> str:
    """``"foreign"`` (not a folder holding coda-edu's marker: never touched), ``"running"`` (its process
    still runs) or ``"stale"`` (its process is gone, or its pid now names another process: safe to delete)."""
    folder = Path(folder)
    marker = folder / STAGING_MARKER
    if folder.is_symlink() or not folder.is_dir() or marker.is_symlink() or not marker.is_file():
        return "foreign"
    try:
        with open(marker, "rb") as fh:
            info = parse_json(fh.read(4096))
        pid, started = info.get("pid"), info.get("pid_start")
    except (OSError, ValueError, AttributeError):
        return "stale"  # ours, but its marker was cut short: the process died while writing it
    if not isinstance(pid, int) or isinstance(pid, bool):
        return "stale"
    if pid == os.getpid() or not pid_alive(pid):
        return "stale" if pid != os.getpid() else "running"
    now = process_start(pid)
    return "stale" if isinstance(started, int) and now is not None and now != started else "running"


def remove_stale_staging(parent: Path, prefix: str) -> list[Path]:
    """Delete the staging folders ``parent/<prefix>*`` that coda-edu processes now gone left behind (only
    folders holding coda-edu's marker; anything else named like them is left alone)."""
    removed = []
    if not Path(parent).is_dir():
        return removed
    for folder in sorted(Path(parent).glob(f"{glob.escape(prefix)}*")):
        if staging_state(folder) == "stale":
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def remove_stale_tmp(folders: Iterable[str | os.PathLike]) -> list[Path]:
    """Delete ``NAME.coda-edu-tmp-<pid>`` leftovers of writers that are no longer running; returns what was
    removed."""
    removed = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            m = _TMP_RE.search(path.name)
            if not m or not path.is_file():
                continue
            pid = int(m.group(1))
            if pid == os.getpid() or pid_alive(pid):
                continue
            try:
                path.unlink()
                removed.append(path)
            except FileNotFoundError:
                pass
    return removed


def warn_line(message: str) -> None:
    """Print a one-line warning on stderr (the CLI's style: ``coda-edu: warning: ...``)."""
    sys.stderr.write(f"coda-edu: warning: {' '.join(str(message).split())}\n")
    sys.stderr.flush()


class RunLock:
    """An exclusive lock on a run folder: ``RUN/.lock``, created with O_CREAT | O_EXCL.

    The file holds the owner's pid, host name, command and start time (JSON). A second
    writer gets a one-line :class:`~coda_edu.errors.RunFolderError` naming the holder. A
    lock left by a process that no longer runs on this host is stale: it is taken over
    with a warning. Locks from another host are never taken over (its processes cannot
    be checked from here). Use as a context manager, or call :meth:`release`.
    """

    def __init__(self, run_dir: str | os.PathLike, command: str, warn: Optional[Callable[[str], None]] = None):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.command = command
        self.warn = warn or warn_line
        self.held = False

    def _holder(self) -> Optional[dict]:
        try:
            with open(self.path, "rb") as fh:
                info = parse_json(fh.read(4096))
            return info if isinstance(info, dict) else {}
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}

    def _check_is_file(self) -> None:
        """A ``.lock`` that is not a regular file (a folder, a link, a device) was not written by coda-edu:
        it is neither read nor removed."""
        from .errors import RunFolderError

        try:
            mode = os.lstat(self.path).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISREG(mode):
            kind = "a folder" if stat.S_ISDIR(mode) else "a link" if stat.S_ISLNK(mode) else "not a regular file"
            raise RunFolderError(
                f"'{self.path}' is not a lock file written by coda-edu ({kind}); coda-edu does not remove it: "
                f"move it away if no coda-edu command is using '{self.run_dir}'"
            )

    def _stale_reason(self, info: dict) -> Optional[str]:
        """Why the lock ``info`` is stale (its process is gone, or its pid now names another process),
        or None while its holder may still run (or runs on another host, where it cannot be checked)."""
        pid, host = info.get("pid"), info.get("host")
        if host != socket.gethostname() or not isinstance(pid, int) or pid == os.getpid():
            return None
        if not pid_alive(pid):
            return "no longer running"
        started = info.get("pid_start")
        now = process_start(pid)
        if isinstance(started, int) and now is not None and now != started:
            return f"pid {pid} now belongs to another process"
        return None

    def _refuse(self, info: dict):
        from .errors import RunFolderError

        raise RunFolderError(
            f"run folder '{self.run_dir}' is in use by pid {info.get('pid', '?')} on {info.get('host', '?')} "
            f"('{info.get('command', '?')}', since {info.get('started', '?')}); wait for it to end, or delete "
            f"'{self.path}' if that process is gone"
        )

    def _try_create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command,
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "pid_start": process_start(os.getpid()),
        }
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(info) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return True

    def acquire(self) -> RunLock:
        from .errors import RunFolderError

        self._check_is_file()
        try:
            if self._try_create():
                self.held = True
                return self
        except OSError as exc:
            raise RunFolderError(f"cannot lock run folder '{self.run_dir}': {exc.strerror or exc}") from None
        # Someone holds it, or a killed process left it: decide under a short lock on the folder,
        # so two processes never both take over the same stale lock.
        dir_fd = os.open(self.run_dir, os.O_RDONLY) if fcntl is not None else None
        try:
            if dir_fd is not None:
                fcntl.flock(dir_fd, fcntl.LOCK_EX)
            unreadable = 0
            for _ in range(100):
                info = self._holder()
                if info is None:  # released meanwhile
                    if self._try_create():
                        self.held = True
                        return self
                    continue
                self._check_is_file()
                if not info:  # being written right now (give it a second), or damaged
                    unreadable += 1
                    if unreadable < 20:
                        time.sleep(0.05)
                        continue
                    self.warn(f"'{self.path}' is damaged (no owner recorded); taking over the run folder")
                    self.path.unlink(missing_ok=True)
                    continue
                reason = self._stale_reason(info)
                if reason is not None:
                    self.warn(
                        f"taking over the stale lock of pid {info['pid']} (started {info.get('started', '?')}, "
                        f"{reason}) on '{self.run_dir}'"
                    )
                    self.path.unlink(missing_ok=True)
                    continue
                self._refuse(info)
            self._refuse(self._holder() or {})
        finally:
            if dir_fd is not None:
                fcntl.flock(dir_fd, fcntl.LOCK_UN)
                os.close(dir_fd)

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        info = self._holder()
        if info and info.get("pid") == os.getpid():
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass

    def __enter__(self) -> RunLock:
        return self.acquire() if not self.held else self

    def __exit__(self, *exc) -> None:
        self.release()
