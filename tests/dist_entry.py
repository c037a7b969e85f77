"""Entry point of the multi-process tests (tests/test_distributed.py), run by torchrun:
``coda-edu`` with two test hooks set from the environment.

- ``CODA_EDU_TEST_RUN`` + ``CODA_EDU_TEST_WRITES``: on every rank but 0, an audit hook
  records (in the ``WRITES`` file) and refuses any write under the run folder: opening a
  file there for writing, creating, renaming or removing anything in it.
- ``CODA_EDU_TEST_STOP_AFTER=K``: every rank ends abruptly (``os._exit(3)``) after step K,
  like a killed job, leaving the run folder as it was.
"""

from __future__ import annotations

import os
import sys

RUN = os.environ.get("CODA_EDU_TEST_RUN")
WRITES = os.environ.get("CODA_EDU_TEST_WRITES")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_CHANGES = {"os.rename", "os.remove", "os.rmdir", "os.mkdir", "os.truncate", "os.link", "os.symlink", "shutil.rmtree"}


def _inside(path) -> bool:
    if not isinstance(path, (str, bytes, os.PathLike)):
        return False
    full = os.path.abspath(os.fsdecode(path))
    return full == RUN or full.startswith(RUN + os.sep)


def _guard(event: str, args: tuple) -> None:
    if event == "open":
        path, mode, flags = args
        writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & _WRITE_FLAGS)
        touched = [path] if writing else []
    elif event in _CHANGES:
        touched = [a for a in args[:2]]
    else:
        return
    bad = [p for p in touched if _inside(p)]
    if bad:
        with open(WRITES, "a") as log:
            log.write(f"rank {os.environ.get('RANK')}: {event} {os.fsdecode(bad[0])}\n")
        raise PermissionError(f"rank {os.environ.get('RANK')} must not write the run folder ({event})")


if RUN and WRITES and os.environ.get("RANK", "0") != "0":
    RUN = os.path.abspath(RUN)
    sys.addaudithook(_guard)

_stop = int(os.environ.get("CODA_EDU_TEST_STOP_AFTER", "0"))
if _stop:
    from coda_edu.trainer import Trainer

    _step = Trainer.train_step

    def _train_step(self, diagnostics=False):
        if self.state.step == _stop:
            os._exit(3)
        return _step(self, diagnostics)

    Trainer.train_step = _train_step

if __name__ == "__main__":
    from coda_edu.cli import main

    sys.exit(main(sys.argv[1:]))
