"""Exit codes, and the one place an exception becomes an exit code and one line.

The codes are those of DESIGN §7::

    0 done (gate: fresh)        1 a "no" (gate blocked, verify found problems)
    2 bad usage or input        3 refused by a rule        4 damaged store

:func:`outcome` maps every exception a handler can raise; ``cli`` prints its
line and returns its code, and nothing else in the CLI decides either.
Errors of the store carry their own code (``ScenelogError.exit_code``, see
``eventstore.errors``); anything unexpected is 4 with a hint to rerun with
``--debug``.
"""

from __future__ import annotations

import errno
from typing import NamedTuple

from eventstore import ScenelogError

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_DAMAGED",
    "EXIT_INTERRUPTED",
    "EXIT_NO",
    "EXIT_OK",
    "EXIT_REFUSED",
    "Outcome",
    "UsageError",
    "one_line",
    "outcome",
]

EXIT_OK, EXIT_NO, EXIT_BAD_INPUT, EXIT_REFUSED, EXIT_DAMAGED = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130
"""Ctrl-C, as shells report a process ended by SIGINT."""


class UsageError(Exception):
    """Bad usage: one line on stderr, exit 2."""


class Outcome(NamedTuple):
    """What ``cli`` does with an exception."""

    code: int
    line: str | None
    """The one line for stderr (None: print nothing)."""
    traceback: bool
    """Whether ``--debug`` shows the traceback (not for mistakes of usage)."""


def one_line(text: str) -> str:
    """``text`` with every run of whitespace, line breaks included, as one space."""
    return " ".join(str(text).split())


_OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG})


def outcome(error: BaseException) -> Outcome:
    """The exit code and stderr line for ``error`` raised while running a command."""
    if isinstance(error, UsageError):
        return Outcome(EXIT_BAD_INPUT, f"scenelog: error: {one_line(str(error))}", False)
    if isinstance(error, ScenelogError):
        return Outcome(error.exit_code, f"scenelog: error: {one_line(str(error))}", True)
    if isinstance(error, NotADirectoryError):
        # A part of the store's path is a file: the root or project names the wrong thing.
        return Outcome(
            EXIT_BAD_INPUT,
            f"scenelog: error: {error.filename} cannot be reached: a part of its path is a "
            "file, not a folder; check --root ($SCENELOG_ROOT) and --project",
            False,
        )
    if isinstance(error, BrokenPipeError):
        return Outcome(EXIT_OK, None, False)  # the reader (head, grep -q) has what it wanted
    if isinstance(error, OSError) and error.filename is None and error.errno in _OUTPUT_ERRNOS:
        # The store's own writes raise StoreIOError: this is the command's output
        # (a redirected stdout on a full or failing disk). Exit 4, as for the store.
        return Outcome(
            EXIT_DAMAGED,
            f"scenelog: error: writing the output failed: {error.strerror or error}",
            False,
        )
    if isinstance(error, KeyboardInterrupt):
        return Outcome(EXIT_INTERRUPTED, "scenelog: interrupted", False)
    return Outcome(
        EXIT_DAMAGED,
        f"scenelog: error: unexpected {type(error).__name__}: {one_line(str(error))} "
        "(rerun with --debug and report it)",
        True,
    )
