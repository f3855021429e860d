"""The ``scenelog`` command: flags mapped onto the public API, nothing more.

It lives in ``projections`` because it needs both sides: the commands of
``eventstore`` and the read models here (``projections`` may import
``eventstore``; never the reverse).

Conventions: data on stdout, messages on stderr; every read command takes
``--json``; errors are one line ``scenelog: error: …`` (a traceback only with
``--debug``); exit codes are those of DESIGN §7:

    0 done (gate: fresh)        1 a "no" (gate blocked, verify found problems)
    2 bad usage or input        3 refused by a rule        4 damaged store
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from eventstore import ScenelogError
from projections import commands as _commands  # noqa: F401  (registers subcommands)
from projections import commands_audit as _commands_audit  # noqa: F401
from projections import commands_serve as _commands_serve  # noqa: F401
from projections import commands_watch as _commands_watch  # noqa: F401
from projections.clikit import (
    EXIT_BAD_INPUT,
    EXIT_DAMAGED,
    EXIT_OK,
    SUBCOMMANDS,
    Context,
    UsageError,
)

__all__ = ["build_parser", "cli", "main"]


# ── the parser ───────────────────────────────────────────────────────────────


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default: Any = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("global options")
    group.add_argument(
        "--root",
        default=default,
        metavar="DIR",
        help="folder holding the projects (default: $SCENELOG_ROOT, else cwd)",
    )
    group.add_argument(
        "--project", default=default, metavar="NAME", help="the show (default: $SCENELOG_PROJECT)"
    )
    group.add_argument(
        "--actor",
        default=default,
        metavar="WHO",
        help="who acts (default: $SCENELOG_ACTOR, else user@host)",
    )
    group.add_argument(
        "--lock-timeout",
        default=default,
        metavar="S",
        help="seconds to wait for a batch lock (default: $SCENELOG_LOCK_TIMEOUT, else 30)",
    )
    group.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="show a traceback on errors",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="scenelog",
        description="Event-sourced version store for scene structures.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Exit codes: 0 done, 1 a 'no' (gate blocked), 2 bad input, 3 refused by a rule,\n"
        "4 damaged store.\n\nExample:\n  scenelog --root /show/store --project myshow ls ep_001",
    )
    _global_options(parser, suppress=False)
    subs = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, summary, example, add_arguments, handler in SUBCOMMANDS:
        p = subs.add_parser(
            name,
            help=summary,
            description=summary[0].upper() + summary[1:] + ".",
            epilog=f"Example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_arguments(p)
        _global_options(p, suppress=True)
        p.set_defaults(handler=handler)
    return parser


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def cli(*argv: str, out: Any = None, err: Any = None) -> int:
    """Run ``scenelog`` with ``argv``; return the exit code (for tests and embedding)."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(list(argv))
        if args.command is None:
            raise UsageError("a COMMAND is needed (see `scenelog --help`)")
        return int(args.handler(Context(args, out, err), args))
    except UsageError as e:
        print(f"scenelog: error: {_one_line(str(e))}", file=err)
        return EXIT_BAD_INPUT
    except ScenelogError as e:
        if debug:
            traceback.print_exc(file=err)
        print(f"scenelog: error: {_one_line(str(e))}", file=err)
        return e.exit_code
    except NotADirectoryError as e:
        # A part of the store's path is a file: the root or project names the wrong thing.
        print(
            f"scenelog: error: {e.filename} cannot be reached: a part of its path is a file, "
            "not a folder; check --root ($SCENELOG_ROOT) and --project",
            file=err,
        )
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        print("scenelog: interrupted", file=err)
        return 130
    except Exception as e:
        if debug:
            traceback.print_exc(file=err)
        print(
            f"scenelog: error: unexpected {type(e).__name__}: {_one_line(str(e))} "
            "(rerun with --debug and report it)",
            file=err,
        )
        return EXIT_DAMAGED


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point."""
    code = cli(*(sys.argv[1:] if argv is None else argv))
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    raise SystemExit(code)
