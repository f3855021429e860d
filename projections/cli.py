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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import msgspec

from eventstore import (
    Manifest,
    Scene,
    ScenelogError,
    SceneVersionStore,
)
from eventstore.events import encode_event
from eventstore.layout import batch_episode, validate_batch_id
from projections import render
from projections.projection import Projection

__all__ = ["SUBCOMMANDS", "Context", "build_parser", "cli", "main"]

EXIT_OK, EXIT_NO, EXIT_BAD_INPUT, EXIT_REFUSED, EXIT_DAMAGED = 0, 1, 2, 3, 4

Handler = Callable[["Context", argparse.Namespace], int]


class UsageError(Exception):
    """Bad usage: one line on stderr, exit 2."""


class Context:
    """What every subcommand shares: where the store is, who acts, where output goes."""

    def __init__(self, args: argparse.Namespace, out: Any, err: Any) -> None:
        self.args = args
        self.out = out
        self.err = err
        self.root: str | None = args.root or os.environ.get("SCENELOG_ROOT") or None
        self.actor: str | None = args.actor or None

    @property
    def project(self) -> str:
        project = self.args.project or os.environ.get("SCENELOG_PROJECT")
        if not project:
            raise UsageError("no project: pass --project NAME or set SCENELOG_PROJECT")
        return str(project)

    def store(self, batch_id: str) -> SceneVersionStore:
        return SceneVersionStore(self.project, batch_episode(batch_id), root=self.root)

    def projection(self) -> Projection:
        return Projection(self.project, root=self.root)

    def print(self, text: str = "") -> None:
        print(text, file=self.out)

    def note(self, text: str) -> None:
        print(text, file=self.err)

    def json(self, value: Any) -> None:
        self.out.write(msgspec.json.encode(value).decode() + "\n")


# ── subcommands ──────────────────────────────────────────────────────────────


def _read_scene(source: str) -> Scene:
    try:
        data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read scene JSON {source}: {e.strerror or e}") from e
    return Scene.from_json(data)


def cmd_add(ctx: Context, args: argparse.Namespace) -> int:
    batch_id = validate_batch_id(args.batch_id)
    result = ctx.store(batch_id).write_candidate(
        batch_id,
        _read_scene(args.scene),
        parent_version=args.parent,
        source=args.source,
        state=args.state,
        kind=args.kind,
        dedup_against_versions=args.dedup,
        actor=ctx.actor,
        reason=args.reason,
    )
    if args.json:
        ctx.json(
            {
                "batch_id": batch_id,
                "version": result.version,
                "deduplicated": result.deduplicated,
                "seq": result.seq,
            }
        )
    else:
        ctx.print(str(result.version))
        if result.deduplicated:
            ctx.note(f"{batch_id}: same structure as v{result.version}; nothing appended")
    return EXIT_OK


def _print_manifest(ctx: Context, manifest: Manifest | None, batch_id: str) -> None:
    if ctx.args.json:
        ctx.json(None if manifest is None else manifest.to_dict())
    elif manifest is None:
        ctx.print(f"{batch_id}: no log (a flat batch); nothing to mark")
    else:
        ctx.print(render.manifest_summary(manifest))


def _pointer_command(name: str) -> Handler:
    def handler(ctx: Context, args: argparse.Namespace) -> int:
        batch_id = validate_batch_id(args.batch_id)
        store = ctx.store(batch_id)
        method = {"conform": store.conform, "revert": store.revert, "derived": store.mark_derived}
        manifest = method[name](
            batch_id,
            args.version,
            expected_seq=args.expect_seq,
            actor=ctx.actor,
            reason=args.reason,
        )
        _print_manifest(ctx, manifest, batch_id)
        return EXIT_OK

    return handler


def cmd_show(ctx: Context, args: argparse.Namespace) -> int:
    view = ctx.projection()
    if args.at_seq is not None or args.at is not None:
        if args.at_seq is not None and args.at is not None:
            raise UsageError("give --at-seq or --at, not both")
        manifest = view.as_of(args.batch_id, seq=args.at_seq, at=args.at)
    else:
        manifest = view.require(args.batch_id)
    if args.json:
        ctx.json(manifest.to_dict())
    else:
        ctx.print(render.manifest_table(manifest))
    return EXIT_OK


def cmd_history(ctx: Context, args: argparse.Namespace) -> int:
    view = ctx.projection()
    view.require(args.batch_id)
    events = view.history(args.batch_id)
    if args.json:
        for event in events:
            ctx.out.write(encode_event(event).decode() + "\n")
    else:
        ctx.print(render.history_table(events))
    return EXIT_OK


def cmd_ls(ctx: Context, args: argparse.Namespace) -> int:
    view = ctx.projection()
    if args.pending and args.candidates:
        raise UsageError("give --pending or --candidates, not both")
    pick = view.pending if args.pending else view.candidates if args.candidates else view.summaries
    summaries = pick(args.episode)
    if args.json:
        ctx.json([s.to_dict() for s in summaries])
    elif summaries:
        ctx.print(render.ls_table(summaries))
    else:
        ctx.note("no batches with a log" + (f" in {args.episode}" if args.episode else ""))
    return EXIT_OK


def cmd_gate(ctx: Context, args: argparse.Namespace) -> int:
    batch_id = validate_batch_id(args.batch_id)
    manifest = ctx.projection().manifest(batch_id)
    fresh = manifest is None or manifest.is_fresh
    if args.json:
        ctx.json(
            {
                "batch_id": batch_id,
                "fresh": fresh,
                "active_version": None if manifest is None else manifest.active_version,
                "why": render.gate_line(batch_id, manifest).split(": ", 1)[1],
            }
        )
    else:
        ctx.print(render.gate_line(batch_id, manifest))
    return EXIT_OK if fresh else EXIT_NO


def cmd_demo(ctx: Context, args: argparse.Namespace) -> int:
    from projections.demo import run_demo

    project = ctx.args.project or os.environ.get("SCENELOG_PROJECT") or "demo"
    return run_demo(args.dir, project=project, out=ctx.out, err=ctx.err)


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
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="show a traceback on errors",
    )


SUBCOMMANDS: list[tuple[str, str, str, Callable[[argparse.ArgumentParser], None], Handler]] = []


def subcommand(
    name: str, summary: str, example: str
) -> Callable[
    [Callable[[argparse.ArgumentParser], None]], Callable[[argparse.ArgumentParser], None]
]:
    """Register a subcommand's arguments; ``summary`` is its README table line."""

    def register(
        add_arguments: Callable[[argparse.ArgumentParser], None],
    ) -> Callable[[argparse.ArgumentParser], None]:
        SUBCOMMANDS.append((name, summary, example, add_arguments, HANDLERS[name]))
        return add_arguments

    return register


def _version(text: str) -> int:
    try:
        return int(text.removeprefix("v"))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"invalid version {text!r}: a number like 3 or v3") from e


def _count(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError(f"invalid number {text!r}: a whole number >= 0")
    return int(text)


def _json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _pointer_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("batch_id", metavar="BATCH_ID")
    p.add_argument("version", metavar="VERSION", type=_version)
    p.add_argument("--reason", help="why (recorded in the log)")
    p.add_argument(
        "--expect-seq",
        type=_count,
        metavar="N",
        help="refuse unless the log is at seq N (optimistic concurrency)",
    )
    _json_flag(p)


HANDLERS: dict[str, Handler] = {
    "add": cmd_add,
    "conform": _pointer_command("conform"),
    "revert": _pointer_command("revert"),
    "derived": _pointer_command("derived"),
    "show": cmd_show,
    "history": cmd_history,
    "ls": cmd_ls,
    "gate": cmd_gate,
    "demo": cmd_demo,
}


@subcommand(
    "add",
    "register a scene JSON as a new candidate version; prints its number",
    "scenelog add ep_001_BATCH_003 scene.json --dedup --reason 'script v7'",
)
def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("batch_id", metavar="BATCH_ID")
    p.add_argument("scene", metavar="SCENE_JSON", help="path of the scene JSON, or - for stdin")
    p.add_argument("--kind", default="reshoot", help="pickup or reshoot (default: reshoot)")
    p.add_argument("--state", default="candidate", help="candidate or approved")
    p.add_argument("--source", default="rederive", help="what produced it (default: rederive)")
    p.add_argument("--parent", type=_version, metavar="N", help="the version it derives from")
    p.add_argument(
        "--dedup",
        action="store_true",
        help="return an existing version of the same structure instead of appending",
    )
    p.add_argument("--reason", help="why (recorded in the log)")
    _json_flag(p)


subcommand(
    "conform",
    "point the batch at VERSION and approve it",
    "scenelog conform ep_001_BATCH_003 3 --reason 'director approved'",
)(_pointer_arguments)
subcommand(
    "revert",
    "point the batch back at VERSION (nothing else changes)",
    "scenelog revert ep_001_BATCH_003 2 --reason 'v3 broke continuity'",
)(_pointer_arguments)
subcommand(
    "derived",
    "record that the boards of the active VERSION were rebuilt",
    "scenelog derived ep_001_BATCH_003 3 --expect-seq 7",
)(_pointer_arguments)


@subcommand(
    "show",
    "the batch's manifest: versions, the active one, states",
    "scenelog show ep_001_BATCH_003 --at 2026-11-26T12:00:00Z",
)
def _show_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("batch_id", metavar="BATCH_ID")
    p.add_argument("--at-seq", type=_count, metavar="N", help="as it was after event N")
    p.add_argument("--at", metavar="TIME", help="as it was at TIME (ISO 8601 with zone)")
    _json_flag(p)


@subcommand(
    "history",
    "every event of the batch: who, when, what, why",
    "scenelog history ep_001_BATCH_003 --json | jq 'select(.type==\"conformed\")'",
)
def _history_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("batch_id", metavar="BATCH_ID")
    p.add_argument("--json", action="store_true", help="print the events as JSON lines")


@subcommand(
    "ls",
    "batches with active version, gate, newest and awaiting versions",
    "scenelog ls ep_001 --pending",
)
def _ls_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("episode", metavar="EPISODE", nargs="?", help="e.g. ep_001 (default: all)")
    p.add_argument(
        "--pending",
        action="store_true",
        help="only batches the gate blocks (active version not derived)",
    )
    p.add_argument(
        "--candidates",
        action="store_true",
        help="only batches with candidates newer than the active version",
    )
    _json_flag(p)


@subcommand(
    "gate",
    "exit 0 when the batch may be dispatched, 1 when not, and say why",
    "scenelog gate ep_001_BATCH_003 && submit_render_job ep_001_BATCH_003",
)
def _gate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("batch_id", metavar="BATCH_ID")
    _json_flag(p)


@subcommand(
    "demo", "build a small show and walk a pipeline day on it", "scenelog demo /tmp/scenelog-demo"
)
def _demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "dir",
        metavar="DIR",
        nargs="?",
        help="an empty or new folder (default: a new temporary folder)",
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
    for name, summary, example, add_arguments, _handler in SUBCOMMANDS:
        p = subs.add_parser(
            name,
            help=summary,
            description=summary[0].upper() + summary[1:] + ".",
            epilog=f"Example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_arguments(p)
        _global_options(p, suppress=True)
        p.set_defaults(handler=HANDLERS[name])
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
