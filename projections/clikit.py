"""What every ``scenelog`` subcommand shares: the context, the registry, argument types.

A subcommand module registers each command with :func:`command`, giving its
README summary line, its ``--help`` example, a function that adds its
arguments, and the handler. Handlers return the exit code.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import msgspec

from eventstore import SceneVersionStore
from eventstore.layout import batch_episode
from eventstore.lock import DEFAULT_LOCK_TIMEOUT
from projections.projection import Projection

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_DAMAGED",
    "EXIT_NO",
    "EXIT_OK",
    "EXIT_REFUSED",
    "SUBCOMMANDS",
    "Context",
    "Handler",
    "Subcommand",
    "UsageError",
    "command",
    "count_arg",
    "json_flag",
    "version_arg",
]

EXIT_OK, EXIT_NO, EXIT_BAD_INPUT, EXIT_REFUSED, EXIT_DAMAGED = 0, 1, 2, 3, 4


class UsageError(Exception):
    """Bad usage: one line on stderr, exit 2."""


class Context:
    """Where the store is, who acts, and where output goes."""

    def __init__(self, args: argparse.Namespace, out: Any, err: Any) -> None:
        self.args = args
        self.out = out
        self.err = err
        self.root: str | None = args.root or os.environ.get("SCENELOG_ROOT") or None
        self.actor: str | None = args.actor or None

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
        text = self.args.lock_timeout or os.environ.get("SCENELOG_LOCK_TIMEOUT")
        if not text:
            return DEFAULT_LOCK_TIMEOUT
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not value > 0:
            raise UsageError(f"invalid lock timeout {text!r}: seconds > 0")
        return value

    def store(self, batch_id: str) -> SceneVersionStore:
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
        self.out.write(msgspec.json.encode(value).decode() + "\n")
        self.out.flush()


Handler = Callable[[Context, argparse.Namespace], int]
Arguments = Callable[[argparse.ArgumentParser], None]


class Subcommand(NamedTuple):
    name: str
    summary: str
    example: str
    arguments: Arguments
    handler: Handler


SUBCOMMANDS: list[Subcommand] = []
"""Every subcommand in the order of ``--help`` and the README's table."""


def command(
    name: str, summary: str, example: str, arguments: Arguments
) -> Callable[[Handler], Handler]:
    """Register the decorated handler as ``scenelog NAME``."""

    def register(handler: Handler) -> Handler:
        SUBCOMMANDS.append(Subcommand(name, summary, example, arguments, handler))
        return handler

    return register


def version_arg(text: str) -> int:
    """A version on the command line: ``3`` or ``v3``."""
    try:
        return int(text.removeprefix("v"))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"invalid version {text!r}: a number like 3 or v3") from e


def count_arg(text: str) -> int:
    """A whole number >= 0."""
    if not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError(f"invalid number {text!r}: a whole number >= 0")
    return int(text)


def json_flag(p: argparse.ArgumentParser, text: str = "print JSON instead of a table") -> None:
    p.add_argument("--json", action="store_true", help=text)
