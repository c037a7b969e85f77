"""User-facing errors.

Every problem a user can fix (a bad config value, a missing or broken data file,
an existing run folder) is raised as a :class:`CodaEduError` subclass whose
message is one line naming the file or field and the problem. The CLI prints that
line and exits with status 2; library users can catch the class.
"""

from __future__ import annotations

import re
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


def clip(text: str, limit: int = 160) -> str:
    """Another library's message on one line, cut at a word boundary to at most ``limit`` characters."""
    text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(text)).split())
    if len(text) <= limit:
        return text
    return text[: limit - 4].rsplit(" ", 1)[0] + " ..."


MAX_MESSAGE = 2000


class CodaEduError(Exception):
    """Base class for errors that are the user's to fix (printed as one line)."""

    exit_code = 2

    def __init__(self, message: str):
        # One line whatever the caller passed in, and never longer than MAX_MESSAGE (values in messages are
        # excerpts already: this only keeps a forgotten one from printing megabytes).
        text = " ".join(str(message).split())
        super().__init__(text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 16] + " ... (cut short)")


class ConfigError(CodaEduError):
    """An unknown config key, a wrong type or a value out of range."""


class DataError(CodaEduError):
    """A missing, truncated or inconsistent data file, list or split."""


class RunFolderError(CodaEduError):
    """A run folder that cannot be created, resumed or evaluated."""


class DivergedError(CodaEduError):
    """Training produced NaN or inf (loss or weights); the last good checkpoints are kept."""
