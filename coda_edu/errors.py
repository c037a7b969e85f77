"""User-facing errors.

Every problem a user can fix (a bad config value, a missing or broken data file,
an existing run folder) is raised as a :class:`CodaEduError` subclass whose
message is one line naming the file or field and the problem. The CLI prints that
line and exits with status 2; library users can catch the class.
"""

from __future__ import annotations

import reprlib

#: How much of a value a message shows: a value is never printed whole (it may be megabytes).
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 8
_REPR.maxlevel = 3


def excerpt(value: object, limit: int = 80) -> str:
    """``repr(value)``, shortened to at most ``limit`` characters, for one-line messages."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class CodaEduError(Exception):
    """Base class for errors that are the user's to fix (printed as one line)."""

    exit_code = 2

    def __init__(self, message: str):
        # Keep messages on one line whatever the caller passed in.
        super().__init__(" ".join(str(message).split()))


class ConfigError(CodaEduError):
    """An unknown config key, a wrong type or a value out of range."""


class DataError(CodaEduError):
    """A missing, truncated or inconsistent data file, list or split."""


class RunFolderError(CodaEduError):
    """A run folder that cannot be created, resumed or evaluated."""


class DivergedError(CodaEduError):
    """Training produced NaN or inf (loss or weights); the last good checkpoints are kept."""
