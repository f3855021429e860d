"""What every ``scenelog`` handler shares: the context and the argument types.

A handler is ``handler(ctx, args) -> exit code``; :class:`Context` resolves
the root, project, actor and lock timeout (flag, then environment variable,
then default) and holds where output goes. The handlers are listed, with
their arguments, in :mod:`projections.cli.table`.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import stat
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from eventstore.layout import batch_episode
from eventstore.log import DEFAULT_LOCK_TIMEOUT
from projections.cli.errors import UsageError
from projections.projection import Projection

if TYPE_CHECKING:
    from eventstore import SceneVersionStore

__all__ = [
    "MAX_LOCK_TIMEOUT",
    "TIME_HELP",
    "Arguments",
    "Context",
    "Handler",
    "check_root",
    "count_arg",
    "episode_arguments",
    "episode_of",
    "json_flag",
    "list_flags",
    "seconds_arg",
    "utf8_arg",
    "version_arg",
    "wide_flag",
]

MAX_LOCK_TIMEOUT = min(threading.TIMEOUT_MAX, 365 * 24 * 3600.0)
"""The longest duration a flag accepts: a year (far beyond it, locks and timers overflow)."""


class Context:
    """Where the store is, who acts, and where output goes."""

    def __init__(self, args: argparse.Namespace, out: Any, err: Any) -> None:
        self.args = args
        self.out = out
        self.err = err
        self.root: str | None = args.root or os.environ.get("SCENELOG_ROOT") or None
        check_root(self.root, "--root" if args.root else "$SCENELOG_ROOT")
        for option, value in _recorded_text(args):
            utf8_arg(value, option)

    @property
    def actor(self) -> str | None:
        """``--actor`` (checked at start), else None: the store reads ``$SCENELOG_ACTOR``.

        Only commands that record an actor ask, so only they refuse a
        ``$SCENELOG_ACTOR`` that is not UTF-8.
        """
        if self.args.actor:
            return str(self.args.actor)
        env_actor = os.environ.get("SCENELOG_ACTOR")
        if env_actor:
            utf8_arg(env_actor, "$SCENELOG_ACTOR")
        return None

    @property
    def project(self) -> str:
        project = self.args.project
        if project is None:
            project = os.environ.get("SCENELOG_PROJECT")
        if project is None:
            raise UsageError("no project: pass --project NAME or set SCENELOG_PROJECT")
        return str(project)

    @property
    def lock_timeout(self) -> float:
        """``--lock-timeout``, else ``$SCENELOG_LOCK_TIMEOUT``, else 30 s.

        A finite number of seconds > 0 and at most ``MAX_LOCK_TIMEOUT`` (the
        longest wait the platform's locks accept): ``inf``, ``nan``, ``-1`` and
        ``1e400`` are refused with one line instead of failing inside the lock.
        """
        text = self.args.lock_timeout or os.environ.get("SCENELOG_LOCK_TIMEOUT")
        if not text:
            return DEFAULT_LOCK_TIMEOUT
        try:
            return seconds_arg(text)
        except argparse.ArgumentTypeError as e:
            raise UsageError(f"lock timeout: {e}") from None

    def store(self, batch_id: str) -> SceneVersionStore:
        from eventstore import SceneVersionStore  # writers only (issue 15: start-up)

        return SceneVersionStore(
            self.project, batch_episode(batch_id), root=self.root, lock_timeout=self.lock_timeout
        )

    def projection(self) -> Projection:
        return Projection(self.project, root=self.root)

    def print(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def note(self, text: str) -> None:
        print(text, file=self.err, flush=True)

    def json(self, value: Any) -> None:
        """One JSON document on one line (an object, or an array for a list)."""
        self.out.write(msgspec.json.encode(value).decode() + "\n")
        self.out.flush()

    def json_lines(self, values: Any) -> None:
        """One JSON document per line (``--jsonl``): for streams and line tools."""
        self.out.write("".join(msgspec.json.encode(v).decode() + "\n" for v in values))
        self.out.flush()

    @property
    def wide(self) -> bool:
        """Whether free text (reasons) is printed whole: ``--wide``, or stdout is no terminal.

        A table cuts its last column only for a person at a terminal; a pipe,
        a file or a script always gets every character.
        """
        if getattr(self.args, "wide", False):
            return True
        isatty = getattr(self.out, "isatty", None)
        return not (callable(isatty) and isatty())


Handler = Callable[[Context, argparse.Namespace], int]
"""Runs one subcommand; returns its exit code (raises for errors, see ``errors.outcome``)."""
Arguments = Callable[[argparse.ArgumentParser], None]
"""Adds one subcommand's arguments to its parser."""


def version_arg(text: str) -> int:
    """A version on the command line: ``3`` or ``v3``, ASCII digits only, >= 1.

    ``int()`` would also take ``٣`` (an Arabic-Indic three), ``３``, `` 3 ``,
    ``+3`` and ``1_0``; none of them names a version here.
    """
    digits = text.removeprefix("v")
    if not _ASCII_DIGITS.fullmatch(digits) or int(digits) < 1:
        raise argparse.ArgumentTypeError(
            f"invalid version {_shown(text)}: a whole number >= 1 in ASCII digits, like 3 or v3"
        )
    return int(digits)


def count_arg(text: str) -> int:
    """A whole number >= 0 in ASCII digits (a seq, a count)."""
    if not _ASCII_DIGITS.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"invalid number {_shown(text)}: a whole number >= 0 in ASCII digits"
        )
    return int(text)


def seconds_arg(text: str) -> float:
    """A duration on the command line: finite seconds > 0, at most ``MAX_LOCK_TIMEOUT``.

    ``float()`` also takes ``inf``, ``nan`` and ``1e300``, which fail later
    inside a lock or a timer; they are refused here with one line.
    """
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= MAX_LOCK_TIMEOUT):
        raise argparse.ArgumentTypeError(
            f"invalid seconds {_shown(text)}: a finite number > 0 and <= {MAX_LOCK_TIMEOUT:g}"
        )
    return value


def utf8_arg(value: str, option: str) -> str:
    """``value`` if it encodes as UTF-8; UsageError naming ``option`` otherwise.

    Command-line bytes that are not UTF-8 reach Python as lone surrogates
    (``surrogateescape``); text recorded in the log (reason, actor, source…)
    must be UTF-8, so it is refused here, before anything is written.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        bad = value[e.start]
        byte = f"byte 0x{ord(bad) - 0xDC00:02x}" if 0xDC80 <= ord(bad) <= 0xDCFF else repr(bad)
        raise UsageError(
            f"{option} is not valid UTF-8 text ({byte} at position {e.start}): the log "
            "records UTF-8; fix the value or the terminal's encoding (nothing was written)"
        ) from None
    return value


def check_root(root: str | None, option: str) -> None:
    """UsageError when the root names something that exists and is not a folder.

    A missing root is left to each command: a write creates it, a read reports
    the unknown batch or project.
    """
    if root is None or "://" in root:
        return
    try:
        mode = os.stat(root).st_mode
    except FileNotFoundError:
        return
    except NotADirectoryError:
        mode = 0
    except OSError as e:
        raise UsageError(f"cannot read the root {root} ({option}): {e.strerror or e}") from e
    if not stat.S_ISDIR(mode):
        raise UsageError(
            f"the root {root} ({option}) is not a folder: name the folder that holds the projects"
        )


# Options whose text is recorded in a log or matched against it (R25: UTF-8 only).
_RECORDED = {
    "reason": "--reason",
    "actor": "--actor",
    "source": "--source",
    "kind": "--kind",
    "state": "--state",
    "who": "--by",
}


def _recorded_text(args: argparse.Namespace) -> list[tuple[str, str]]:
    return [
        (option, value)
        for name, option in _RECORDED.items()
        if isinstance(value := getattr(args, name, None), str)
    ]


_ASCII_DIGITS = re.compile(r"[0-9]+")


def _shown(text: str) -> str:
    shown = repr(text)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def json_flag(p: argparse.ArgumentParser, text: str = "print JSON instead of a table") -> None:
    p.add_argument("--json", action="store_true", help=text)


def list_flags(p: argparse.ArgumentParser) -> None:
    """``--json`` (one array) and ``--jsonl`` (one object per line) for a command that lists."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--json", action="store_true", help="print one JSON array")
    group.add_argument(
        "--jsonl", action="store_true", help="print one JSON object per line (for line tools)"
    )


def wide_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--wide",
        action="store_true",
        help="never cut the REASON column on a terminal (it is never cut in a pipe or file)",
    )


TIME_HELP = "ISO 8601 with a zone (2026-11-26T12:00:00Z), or a date (2026-11-26: 00:00 UTC)"
"""What a TIME argument accepts, as every --help says it."""


def episode_arguments(p: argparse.ArgumentParser) -> None:
    """EPISODE, given the same way everywhere: positional, or ``--episode`` (as ``watch``)."""
    p.add_argument("episode", metavar="EPISODE", nargs="?", help="e.g. ep_001 (default: all)")
    p.add_argument(
        "--episode", dest="episode_option", metavar="EPISODE", help="the same as EPISODE"
    )


def episode_of(args: argparse.Namespace) -> str | None:
    """The episode from EPISODE or ``--episode`` (UsageError when both differ)."""
    given = args.episode
    option = getattr(args, "episode_option", None)
    if given is not None and option is not None and given != option:
        raise UsageError(f"give EPISODE or --episode, not both ({given} and {option})")
    return given if given is not None else option
