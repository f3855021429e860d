"""The ``scenelog`` command: flags mapped onto the public API, nothing more.

It lives in ``projections`` because it needs both sides: the commands of
``eventstore`` and the read models here (``projections`` may import
``eventstore``; never the reverse). The package:

    __init__.py   cli(*argv) and main(): the parser, built from the table
    table.py      every subcommand, in help order: name, summary, example,
                  arguments, handler
    errors.py     exit codes, and the one function mapping an exception to
                  an exit code and one line
    context.py    what handlers share: root, project, actor, lock timeout,
                  output; argument types
    batches.py    add, conform, revert, derived, show, history, ls, gate, path,
                  cat, demo
    audit.py      diff, audit, verify, heads, import
    watch.py      watch (--exec hands each event to the handler), consumers
    serve.py      serve

Conventions: data on stdout, messages on stderr; every read command takes
``--json`` (one object for one thing, one array for a list; JSON lines only
for streams and ``--jsonl``: the table per command is docs/CLI.md); errors
are one line ``scenelog: error: …`` (a traceback only with ``--debug``);
exit codes are those of DESIGN §7 (see ``errors``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from projections.cli.context import Context
from projections.cli.errors import (
    EXIT_BAD_INPUT,
    EXIT_NO,
    EXIT_OK,
    UsageError,
    outcome,
)
from projections.cli.table import SUBCOMMANDS

__all__ = ["build_parser", "cli", "main", "parse_command_line"]


# ── the parser ───────────────────────────────────────────────────────────────


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _columns() -> int:
    """The terminal's width as ``shutil.get_terminal_size`` gives it (COLUMNS, the
    terminal, else 80), without importing shutil (and bz2, lzma) at every start."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """RawDescriptionHelpFormatter, its width found without shutil (issue 15: start-up)."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        super().__init__(
            prog, indent_increment, max_help_position, _columns() - 2 if width is None else width
        )


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default: Any = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("global options")
    group.add_argument(
        "--root",
        default=default,
        metavar="ROOT",
        help="where the projects live: a folder (or file:///folder), postgresql://… or "
        "memory://NAME (default: $SCENELOG_ROOT, else cwd)",
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


def _version() -> str:
    """The installed distribution's version; the source tree's when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("scenelog")
    except PackageNotFoundError:
        return "(not installed)"


class _VersionAction(argparse.Action):
    """``--version``: the version is looked up only when asked for (importlib.metadata
    costs every command's start-up, issue 15)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any, **_kwargs: Any) -> None:
        # On stdout, as argparse's own version action and every other tool print it.
        print(f"scenelog {_version()}", flush=True)
        parser.exit()


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with ``argv``, only the subcommands it names are built.

    Building the parsers of commands a command line does not name is start-up
    a farm job pays for nothing (issue 15). A command line naming none, or
    asking for ``--help``, builds them all, so every listing shows them all.
    """
    parser = _Parser(
        prog="scenelog",
        description="Event-sourced version store for scene structures.",
        formatter_class=_Formatter,
        epilog="Exit codes: 0 done, 1 a 'no' (gate blocked), 2 bad input, 3 refused by a rule,\n"
        "4 damaged store.\n\nExample:\n  scenelog --root /show/store --project myshow ls ep_001",
    )
    _global_options(parser, suppress=False)
    parser.add_argument("--version", action=_VersionAction, help="print the version")
    words = set(_own_words(argv or ()))
    named = set() if words & {"-h", "--help"} else {name for name, *_ in SUBCOMMANDS} & words
    subs = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, summary, example, add_arguments, handler in SUBCOMMANDS:
        if named and name not in named:
            continue
        p = subs.add_parser(
            name,
            help=summary,
            description=summary[0].upper() + summary[1:] + ".",
            epilog=f"Example:\n  {example}",
            formatter_class=_Formatter,
        )
        add_arguments(p)
        _global_options(p, suppress=True)
        # Not ``handler``: a command may name an argument so (watch's `-- CMD ARGS`).
        p.set_defaults(run_command=handler)
    return parser


def _own_words(argv: Sequence[str]) -> Sequence[str]:
    """The words of ``argv`` that are scenelog's: a handler's ``-- CMD ARGS`` are not."""
    return argv[: argv.index("--")] if "--" in argv else argv


def parse_command_line(argv: list[str]) -> argparse.Namespace:
    """The parsed command line; a handler's ``-- CMD ARGS`` is kept out of argparse.

    A command that runs a handler (``watch``, ``consumers retry``) has a
    ``command_line`` argument. Everything after the first ``--`` is that
    handler, given as ``["--", CMD, ARGS…]``, and never fills another
    positional (``watch EPISODE -- rebuild.sh`` keeps ``rebuild.sh`` out of
    EPISODE). For every other command ``--`` means what it always means.
    """
    if "--" in argv:
        cut = argv.index("--")
        try:
            args = build_parser(argv).parse_args(argv[:cut])
        except UsageError:
            args = None  # e.g. `add -- BATCH FILE`: the positionals are after --
        if args is not None and hasattr(args, "command_line"):
            args.command_line = argv[cut:]
            return args
    return build_parser(argv).parse_args(argv)


def cli(*argv: str, out: Any = None, err: Any = None) -> int:
    """Run ``scenelog`` with ``argv``; return the exit code (for tests and embedding).

    Every exception a command raises becomes its exit code and one line on
    ``err`` in :func:`projections.cli.errors.outcome`; ``--debug`` adds the
    traceback. ``--help`` exits (SystemExit) as argparse does.
    """
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    if err is None:  # started with stderr closed (`2>&-`): messages go nowhere, not to stdout
        err = _Nowhere()
    try:
        args = parse_command_line(list(argv))
        if args.command is None:
            raise UsageError("a COMMAND is needed (see `scenelog --help`)")
        return int(args.run_command(Context(args, out, err), args))
    except (Exception, KeyboardInterrupt) as e:
        result = outcome(e)
        with contextlib.suppress(OSError, ValueError):  # the exit code is the answer
            if result.traceback and "--debug" in _own_words(argv):
                import traceback  # only with --debug (issue 15: start-up)

                traceback.print_exc(file=err)
            if result.line is not None:
                print(result.line, file=err)
        return result.code


class _Nowhere:
    """A text stream that drops what it is given (for a standard stream that is closed)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        return None


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console entry point: run the command, then end the process (:func:`_end`).

    Started with stdout closed (``>&-``), it refuses before doing anything:
    the output would be lost and the command would look like it worked.
    """
    if sys.stdout is None:
        if sys.stderr is not None:
            with contextlib.suppress(OSError, ValueError):
                print(
                    "scenelog: error: standard output is closed; redirect it to /dev/null "
                    "to discard what the command prints",
                    file=sys.stderr,
                )
        _end(EXIT_BAD_INPUT)
    try:
        code = cli(*(sys.argv[1:] if argv is None else argv))
    except SystemExit as e:  # --help, --version and argparse's own errors
        code = e.code if isinstance(e.code, int) else (EXIT_OK if e.code is None else 2)
    try:
        _flush(sys.stdout)
    except (OSError, ValueError) as e:  # e.g. the disk holding a redirected stdout is full
        _discard(sys.stdout)  # what could not be written is dropped, not retried at exit
        if code in (EXIT_OK, EXIT_NO):  # else the command has said what went wrong
            result = outcome(e)
            code = result.code
            if sys.stderr is not None and result.line is not None:
                with contextlib.suppress(OSError, ValueError):
                    print(result.line, file=sys.stderr)
    _end(code)


def _flush(stream: Any) -> None:
    """Flush ``stream``; a reader that left (BrokenPipe) is not an error.

    ``None`` (a standard stream the process was started without, ``2>&-``)
    has nothing to flush.
    """
    if stream is None:
        return
    try:
        stream.flush()
    except BrokenPipeError:
        _discard(stream)


def _discard(stream: Any) -> None:
    """Point ``stream``'s descriptor at /dev/null, so a later flush (the
    interpreter's own at exit) writes nowhere instead of failing again."""
    with contextlib.suppress(OSError, ValueError, AttributeError), open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), stream.fileno())


def _end(code: int) -> NoReturn:
    """End the process with ``code``, without the interpreter's teardown when
    nothing needs it.

    Tearing down an interpreter that has imported the store (freeing every
    module, a last garbage collection) costs ~9 ms, a sixth of a `gate`, and
    a farm job pays it per command (issue 15, row 12). Skipping it is safe
    when only this thread runs: exit handlers run first (``atexit``, e.g.
    logging's), the standard streams are flushed, and every file a command
    writes is written and closed (or fsync'd) before the command returns.
    With other threads alive (a PostgreSQL connection pool, a server) the
    ordinary exit lets them close politely. The exit code is ``code`` in
    both cases, whatever the last flushes meet (a closed or full stream).
    """
    threading = sys.modules.get("threading")
    if threading is None or threading.active_count() == 1:
        import atexit

        try:
            atexit._run_exitfuncs()
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    _flush(stream)
                except (OSError, ValueError):
                    _discard(stream)
            os._exit(code)
    raise SystemExit(code)
