"""The everyday subcommands: add, conform, revert, derived, show, history, ls, gate, demo.

Each is a pair: ``NAME_arguments(parser)`` and ``cmd_NAME(ctx, args) -> exit
code``, a thin mapping onto ``SceneVersionStore`` and ``Projection``; the
table in :mod:`projections.cli.table` names them.
"""

from __future__ import annotations

import argparse
import os
import sys

from eventstore import Manifest, Scene
from eventstore.events import encode_event
from eventstore.layout import validate_batch_id
from projections import render
from projections.cli.context import Context, Handler, count_arg, json_flag, version_arg
from projections.cli.errors import EXIT_NO, EXIT_OK, UsageError
from projections.cli.policy import policy_note

__all__ = [
    "add_arguments",
    "cmd_add",
    "cmd_conform",
    "cmd_demo",
    "cmd_derived",
    "cmd_gate",
    "cmd_history",
    "cmd_ls",
    "cmd_revert",
    "cmd_show",
    "demo_arguments",
    "gate_arguments",
    "history_arguments",
    "ls_arguments",
    "pointer_arguments",
    "show_arguments",
]


def _read_scene(source: str) -> Scene:
    try:
        if source == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(source, "rb") as f:
                data = f.read()
    except OSError as e:
        raise UsageError(f"cannot read scene JSON {source}: {e.strerror or e}") from e
    return Scene.from_json(data)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("batch_id", metavar="BATCH_ID")
    p.add_argument("scene", metavar="SCENE_JSON", help="path of the scene JSON, or - for stdin")
    p.add_argument("--kind", default="reshoot", help="pickup or reshoot (default: reshoot)")
    p.add_argument("--state", default="candidate", help="candidate or approved")
    p.add_argument("--source", default="rederive", help="what produced it (default: rederive)")
    p.add_argument("--parent", type=version_arg, metavar="N", help="the version it derives from")
    p.add_argument(
        "--dedup",
        action="store_true",
        help="return an existing version of the same structure instead of appending",
    )
    p.add_argument("--reason", help="why (recorded in the log)")
    json_flag(p)


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


def pointer_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("batch_id", metavar="BATCH_ID")
    p.add_argument("version", metavar="VERSION", type=version_arg)
    p.add_argument("--reason", help="why (recorded in the log)")
    p.add_argument(
        "--expect-seq",
        type=count_arg,
        metavar="N",
        help="refuse unless the log is at seq N (optimistic concurrency)",
    )
    json_flag(p)


def _print_manifest(ctx: Context, manifest: Manifest | None, batch_id: str) -> None:
    if ctx.args.json:
        ctx.json(None if manifest is None else manifest.to_dict())
    elif manifest is None:
        ctx.print(f"{batch_id}: no log (a flat batch); nothing to mark")
    else:
        ctx.print(render.manifest_summary(manifest))


def _pointer_command(name: str) -> Handler:
    """The handler of ``conform``, ``revert`` or ``derived`` (same arguments, same output)."""

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


cmd_conform = _pointer_command("conform")
cmd_revert = _pointer_command("revert")
cmd_derived = _pointer_command("derived")


def show_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("batch_id", metavar="BATCH_ID")
    p.add_argument("--at-seq", type=count_arg, metavar="N", help="as it was after event N")
    p.add_argument(
        "--at",
        metavar="TIME",
        help="as it was at TIME (ISO 8601 with zone): the events in seq order up to the "
        "first one stamped after TIME",
    )
    json_flag(p)


def cmd_show(ctx: Context, args: argparse.Namespace) -> int:
    view = ctx.projection()
    if args.at_seq is not None and args.at is not None:
        raise UsageError("give --at-seq or --at, not both")
    if args.at_seq is not None or args.at is not None:
        manifest = view.as_of(args.batch_id, seq=args.at_seq, at=args.at)
    else:
        manifest = view.require(args.batch_id)
    if args.json:
        ctx.json(manifest.to_dict())
    else:
        ctx.print(render.manifest_table(manifest))
    return EXIT_OK


def history_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("batch_id", metavar="BATCH_ID")
    json_flag(p, "print the events as JSON lines")


def cmd_history(ctx: Context, args: argparse.Namespace) -> int:
    view = ctx.projection()
    view.require(args.batch_id)
    events = view.history(args.batch_id)
    if args.json:
        ctx.out.write("".join(encode_event(e).decode() + "\n" for e in events))
    else:
        ctx.print(render.history_table(events))
    return EXIT_OK


def ls_arguments(p: argparse.ArgumentParser) -> None:
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
    json_flag(p)


def cmd_ls(ctx: Context, args: argparse.Namespace) -> int:
    view = ctx.projection()
    if args.pending and args.candidates:
        raise UsageError("give --pending or --candidates, not both")
    pick = view.pending if args.pending else view.candidates if args.candidates else view.summaries
    summaries = pick(args.episode)
    if (note := policy_note(ctx)) is not None:
        ctx.note(note)
    if args.json:
        ctx.json([s.to_dict() for s in summaries])
    elif summaries:
        ctx.print(render.ls_table(summaries))
    else:
        ctx.note("no batches with a log" + (f" in {args.episode}" if args.episode else ""))
    return EXIT_OK


def gate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("batch_id", metavar="BATCH_ID")
    json_flag(p)


def cmd_gate(ctx: Context, args: argparse.Namespace) -> int:
    batch_id = validate_batch_id(args.batch_id)
    # R16: an unknown batch (no log, no flat body; or a wrong root or project)
    # raises UnknownBatch, exit 2 — never "fresh".
    manifest = ctx.projection().manifest(batch_id)
    fresh = manifest is None or manifest.blocked_reason() is None
    if args.json:
        ctx.json(
            {
                "batch_id": batch_id,
                "fresh": fresh,
                "active_version": None if manifest is None else manifest.active_version,
                "why": render.gate_why(manifest),
            }
        )
    else:
        ctx.print(render.gate_line(batch_id, manifest))
    return EXIT_OK if fresh else EXIT_NO


def demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "dir",
        metavar="DIR",
        nargs="?",
        help="an empty or new folder (default: a new temporary folder)",
    )


def cmd_demo(ctx: Context, args: argparse.Namespace) -> int:
    from projections.demo import run_demo

    project = ctx.args.project or os.environ.get("SCENELOG_PROJECT") or "demo"
    return run_demo(args.dir, project=project, out=ctx.out, err=ctx.err)
