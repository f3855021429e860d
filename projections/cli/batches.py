"""The everyday subcommands: add, conform, revert, derived, show, history, ls, gate, path,
cat, demo.

Each is a pair: ``NAME_arguments(parser)`` and ``cmd_NAME(ctx, args) -> exit
code``, a thin mapping onto ``SceneVersionStore`` and ``Projection``; the
table in :mod:`projections.cli.table` names them. The JSON each prints follows
docs/CLI.md: one object for one thing, one array for a list, JSON lines only
with ``--jsonl``.

Invariants:
- A pointer command that changes nothing (R13) says ``nothing to do: …`` on
  stderr, and that its ``--reason`` was not recorded; stdout is the same as
  for a change (the manifest), so scripts read one shape.
- ``show --at``/``gate --at`` before the batch's first event say so (exit 1);
  they never read as "blocked".
- ``path`` and ``cat`` only read; ``path`` exits 2 on a backend without files.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from eventstore import BodyMissing, Manifest, Scene
from eventstore.events import Event
from eventstore.layout import validate_batch_id
from eventstore.rules import flat_name
from projections import render
from projections.cli.context import (
    TIME_HELP,
    Context,
    Handler,
    count_arg,
    episode_arguments,
    episode_of,
    json_flag,
    list_flags,
    version_arg,
    wide_flag,
)
from projections.cli.errors import EXIT_NO, EXIT_OK, UsageError
from projections.cli.policy import policy_note
from projections.projection import Projection

__all__ = [
    "add_arguments",
    "cat_arguments",
    "cmd_add",
    "cmd_cat",
    "cmd_conform",
    "cmd_demo",
    "cmd_derived",
    "cmd_gate",
    "cmd_history",
    "cmd_ls",
    "cmd_path",
    "cmd_revert",
    "cmd_show",
    "demo_arguments",
    "gate_arguments",
    "history_arguments",
    "ls_arguments",
    "path_arguments",
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


def _print_manifest(ctx: Context, manifest: Manifest | None) -> None:
    if ctx.args.json:
        ctx.json(None if manifest is None else manifest.to_dict())
    elif manifest is not None:
        ctx.print(render.manifest_summary(manifest))


_UNCHANGED = {
    "conform": "v{v} is already the active, approved version of {b}",
    "revert": "v{v} is already the active version of {b}",
    "derived": "the boards of v{v} of {b} are already marked rebuilt",
}


def _appended_by_us(
    view: Projection,
    name: str,
    batch_id: str,
    before: int,
    after: int,
    version: int,
    reason: str | None,
) -> bool:
    """Whether the command appended: the log moved, and its last event is this command's.

    ``before`` is read without the lock, so another writer may have moved the
    log in between; the last event then says whether it was this command's
    (same type, version and reason) or theirs.
    """
    if after <= before:
        return False
    kind = {"conform": "conformed", "revert": "reverted", "derived": "derived"}[name]
    last: list[Event] = view.log.read(batch_id, after=after - 1)
    return bool(last) and (last[-1].type, last[-1].version, last[-1].reason) == (
        kind,
        version,
        reason,
    )


def _pointer_command(name: str) -> Handler:
    """The handler of ``conform``, ``revert`` or ``derived`` (same arguments, same output)."""

    def handler(ctx: Context, args: argparse.Namespace) -> int:
        batch_id = validate_batch_id(args.batch_id)
        store = ctx.store(batch_id)
        view = ctx.projection()
        before = view.log.last_seq(batch_id)
        method = {"conform": store.conform, "revert": store.revert, "derived": store.mark_derived}
        manifest = method[name](
            batch_id,
            args.version,
            expected_seq=args.expect_seq,
            actor=ctx.actor,
            reason=args.reason,
        )
        _print_manifest(ctx, manifest)
        unrecorded = "; the --reason was not recorded" if args.reason is not None else ""
        if manifest is None:
            ctx.note(
                f"nothing to do: {batch_id} has no log (a legacy flat batch, never blocked); "
                f"nothing was appended{unrecorded}"
            )
        elif not _appended_by_us(
            view, name, batch_id, before, manifest.seq, args.version, args.reason
        ):
            what = _UNCHANGED[name].format(v=args.version, b=batch_id)
            ctx.note(
                f"nothing to do: {what} (seq {manifest.seq}); nothing was appended{unrecorded}"
            )
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
        help=f"as it was at TIME, {TIME_HELP}: the events in seq order up to the first one "
        "stamped after TIME",
    )
    json_flag(
        p,
        "print one JSON object: the manifest plus fresh, blocked_reason and each version's "
        "body_path (null on backends without files)",
    )


def show_document(view: Projection, manifest: Manifest) -> dict[str, Any]:
    """``show --json``: the manifest (§4) plus ``fresh``, ``blocked_reason`` and body paths."""
    document = manifest.to_dict()
    document["fresh"] = manifest.is_fresh
    document["blocked_reason"] = manifest.blocked_reason()
    for entry, shown in zip(manifest.versions, document["versions"], strict=True):
        shown["body_path"] = view.log.body_path(manifest.batch_id, entry.artifact)
    return document


def _before_first_event(view: Projection, batch_id: str, when: str) -> str:
    """``did not exist yet at WHEN; its first event is at T``."""
    first = view.log.read(batch_id)[:1]
    since = f"; its first event is at {first[0].at}" if first else ""
    return f"did not exist yet at {when}{since}"


def cmd_show(ctx: Context, args: argparse.Namespace) -> int:
    view = ctx.projection()
    if args.at_seq is not None and args.at is not None:
        raise UsageError("give --at-seq or --at, not both")
    if args.at_seq is not None or args.at is not None:
        manifest = view.as_of(args.batch_id, seq=args.at_seq, at=args.at)
        if manifest.seq == 0:
            when = f"seq {args.at_seq}" if args.at is None else args.at
            absent = _before_first_event(view, manifest.batch_id, when)
            ctx.note(f"scenelog: {manifest.batch_id} {absent}")
            return EXIT_NO
    else:
        manifest = view.require(args.batch_id)
    if args.json:
        ctx.json(show_document(view, manifest))
    else:
        ctx.print(render.manifest_table(manifest))
    return EXIT_OK


def history_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("batch_id", metavar="BATCH_ID")
    list_flags(p)
    wide_flag(p)


def cmd_history(ctx: Context, args: argparse.Namespace) -> int:
    view = ctx.projection()
    view.require(args.batch_id)
    events = view.history(args.batch_id)
    if args.json:
        ctx.json(events)
    elif args.jsonl:
        ctx.json_lines(events)
    else:
        ctx.print(render.history_table(events, wide=ctx.wide))
    return EXIT_OK


def ls_arguments(p: argparse.ArgumentParser) -> None:
    episode_arguments(p)
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
    p.add_argument("--at", metavar="TIME", help=f"as every batch was at TIME, {TIME_HELP}")
    json_flag(p, "print one JSON array, one object per batch")


def cmd_ls(ctx: Context, args: argparse.Namespace) -> int:
    view = ctx.projection()
    if args.pending and args.candidates:
        raise UsageError("give --pending or --candidates, not both")
    episode = episode_of(args)
    pick = view.pending if args.pending else view.candidates if args.candidates else view.summaries
    summaries = pick(episode, at=args.at)
    if (note := policy_note(ctx)) is not None:
        ctx.note(note)
    if args.json:
        ctx.json([s.to_dict() for s in summaries])
    elif summaries:
        ctx.print(render.ls_table(summaries))
    else:
        where = (f" in {episode}" if episode else "") + (f" at {args.at}" if args.at else "")
        if args.candidates:
            ctx.note(
                f"no candidates{where}: no batch has a candidate newer than its active version"
            )
        elif args.pending:
            ctx.note(f"nothing pending{where}: the gate blocks no batch")
        else:
            ctx.note(f"no batches with a log{where}")
    return EXIT_OK


def gate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("batch_id", metavar="BATCH_ID")
    p.add_argument("--at", metavar="TIME", help=f"the gate as it was at TIME, {TIME_HELP}")
    json_flag(p, "print one JSON object: batch_id, fresh, active_version, why")


def cmd_gate(ctx: Context, args: argparse.Namespace) -> int:
    batch_id = validate_batch_id(args.batch_id)
    view = ctx.projection()
    # R16: an unknown batch (no log, no flat body; or a wrong root or project)
    # raises UnknownBatch, exit 2 — never "fresh".
    manifest = view.manifest(batch_id)
    absent = None
    if args.at is not None and manifest is not None:
        manifest = view.as_of(batch_id, at=args.at)
        if manifest.seq == 0:
            absent = _before_first_event(view, batch_id, args.at)
    fresh = absent is None and (manifest is None or manifest.blocked_reason() is None)
    why = absent or render.gate_why(manifest)
    if args.json:
        ctx.json(
            {
                "batch_id": batch_id,
                "fresh": fresh,
                "active_version": None if manifest is None else manifest.active_version,
                "why": why,
            }
        )
    else:
        ctx.print(f"{batch_id}: {why}")
    return EXIT_OK if fresh else EXIT_NO


def path_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("batch_id", metavar="BATCH_ID")
    p.add_argument(
        "version", metavar="VERSION", type=version_arg, nargs="?", help="default: the active one"
    )
    json_flag(p, "print one JSON object: batch_id, version, path")


def cat_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("batch_id", metavar="BATCH_ID")
    p.add_argument(
        "version", metavar="VERSION", type=version_arg, nargs="?", help="default: the active one"
    )


def _body(view: Projection, batch_id: str, version: int | None) -> tuple[int, str]:
    """The version and body name ``path``/``cat`` mean: VERSION, else the active one.

    A legacy flat batch (no log) has one body, v1, its flat file.
    """
    manifest = view.manifest(batch_id)
    if manifest is None:
        if version not in (None, 1):
            raise UsageError(f"{batch_id} is a legacy flat batch (no log): its only body is v1")
        return 1, flat_name(batch_id)
    if version is None:
        if manifest.active_version is None:
            raise UsageError(
                f"{batch_id} has no active version: give VERSION (`scenelog show {batch_id}`)"
            )
        version = manifest.active_version
    view.body_path(batch_id, version)  # UnregisteredVersion for a version never written
    entry = manifest.entry(version)
    assert entry is not None
    return version, entry.artifact


def cmd_path(ctx: Context, args: argparse.Namespace) -> int:
    batch_id = validate_batch_id(args.batch_id)
    view = ctx.projection()
    if view.log.body_path(batch_id, flat_name(batch_id)) is None:
        raise UsageError(
            f"the store {view.log.label} keeps bodies without files, so there is no path: "
            f"`scenelog cat {batch_id}` prints the body"
        )
    version, name = _body(view, batch_id, args.version)
    path = view.log.body_path(batch_id, name)
    assert path is not None
    if not view.log.body_exists(batch_id, name):
        raise BodyMissing(
            f"the body of v{version} of {batch_id} is missing: {path}; restore it from "
            "backup and run `scenelog verify`",
            batch_id=batch_id,
            version=version,
            path=path,
        )
    if args.json:
        ctx.json({"batch_id": batch_id, "version": version, "path": path})
    else:
        ctx.print(path)
    return EXIT_OK


def cmd_cat(ctx: Context, args: argparse.Namespace) -> int:
    batch_id = validate_batch_id(args.batch_id)
    view = ctx.projection()
    _version, name = _body(view, batch_id, args.version)
    data = view.log.read_body(batch_id, name)
    buffer = getattr(ctx.out, "buffer", None)
    if buffer is not None:
        ctx.out.flush()
        buffer.write(data)
        buffer.flush()
    else:
        ctx.out.write(data.decode("utf-8", "replace"))
    return EXIT_OK


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
