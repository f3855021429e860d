"""The audit subcommands: diff, audit, verify, heads, import."""

from __future__ import annotations

import argparse
import csv

from eventstore.adopt import adopt_view
from eventstore.events import EVENT_TYPES
from eventstore.importer import import_manifests
from eventstore.layout import validate_batch_id
from projections import render
from projections.cli.context import Context, json_flag, version_arg
from projections.cli.errors import EXIT_NO, EXIT_OK, UsageError
from projections.cli.policy import policy_note
from projections.verify import heads, load_heads, verify

__all__ = [
    "audit_arguments",
    "cmd_audit",
    "cmd_diff",
    "cmd_heads",
    "cmd_import",
    "cmd_verify",
    "diff_arguments",
    "heads_arguments",
    "import_arguments",
    "verify_arguments",
]


def diff_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("batch_id", metavar="BATCH_ID")
    p.add_argument("a", metavar="A", type=version_arg)
    p.add_argument("b", metavar="B", type=version_arg)
    json_flag(p)


def cmd_diff(ctx: Context, args: argparse.Namespace) -> int:
    diff = ctx.projection().diff(validate_batch_id(args.batch_id), args.a, args.b)
    if args.json:
        ctx.json(diff.to_dict())
        return EXIT_OK
    ctx.print(f"{diff.batch_id}: v{diff.a} → v{diff.b}")
    for label, shots in (("added", diff.added), ("removed", diff.removed), ("moved", diff.moved)):
        ctx.print(f"  {label:<8} {render.safe(', '.join(shots)) if shots else '-'}")
    if diff.changed:
        ctx.print("  changed")
        for change in diff.changed:
            ctx.print(f"    {render.safe(change.shot_id)}: {render.safe(', '.join(change.keys))}")
    else:
        ctx.print("  changed  -")
    if diff.other_keys:
        ctx.print(f"  outside beats: {render.safe(', '.join(diff.other_keys))}")
    ctx.print(f"  dedup: {render.safe(diff.dedup)}")
    return EXIT_OK


def _types(text: str) -> tuple[str, ...]:
    types = tuple(t.strip() for t in text.split(",") if t.strip())
    unknown = [t for t in types if t not in EVENT_TYPES]
    if unknown or not types:
        raise argparse.ArgumentTypeError(
            f"unknown event type {','.join(unknown) or text!r}: use {','.join(EVENT_TYPES)}"
        )
    return types


def audit_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("episode", metavar="EPISODE", nargs="?", help="e.g. ep_001 (default: all)")
    p.add_argument("--since", metavar="TIME", help="from TIME (ISO 8601 with zone), inclusive")
    p.add_argument("--until", metavar="TIME", help="up to TIME, inclusive")
    p.add_argument(
        "--type",
        type=_types,
        default=("conformed", "reverted"),
        metavar="T,T",
        help="event types (default: conformed,reverted)",
    )
    p.add_argument("--by", dest="who", metavar="WHO", help="only events by actor WHO")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--json", action="store_true", help="print JSON lines")
    group.add_argument("--csv", action="store_true", help="print CSV with a header")


def cmd_audit(ctx: Context, args: argparse.Namespace) -> int:
    rows = ctx.projection().audit(
        episode=args.episode, since=args.since, until=args.until, types=args.type, actor=args.who
    )
    if args.json:
        for row in rows:
            ctx.json(row.to_dict())
    elif args.csv:
        fields = ["batch_id", "seq", "type", "from_version", "to_version", "actor", "at", "reason"]
        writer = csv.DictWriter(ctx.out, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(row.to_dict() for row in rows)
    else:
        table_rows = [
            [
                render.short_time(r.at),
                r.batch_id,
                r.type,
                f"v{r.from_version}" if r.from_version else "-",
                f"v{r.to_version}",
                r.actor,
                r.reason or "",
            ]
            for r in rows
        ]
        ctx.print(
            render.table(
                ["TIME (UTC)", "BATCH", "TYPE", "FROM", "TO", "ACTOR", "REASON"], table_rows
            )
        )
    return EXIT_OK


def verify_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "target",
        metavar="BATCH_ID|EPISODE",
        nargs="?",
        help="one batch, one episode (default: the whole project)",
    )
    p.add_argument(
        "--repair-views",
        action="store_true",
        help="rewrite missing, stale, ahead or corrupt views (logs are never edited)",
    )
    p.add_argument(
        "--heads",
        metavar="FILE",
        help="also check the logs against FILE, an earlier `scenelog heads --json` export",
    )
    json_flag(p, "print the report as JSON")


def cmd_verify(ctx: Context, args: argparse.Namespace) -> int:
    exported = None
    if args.heads is not None:
        try:
            exported = load_heads(args.heads)
        except OSError as e:
            raise UsageError(f"cannot read heads file {args.heads}: {e.strerror or e}") from e
        except ValueError as e:
            raise UsageError(str(e)) from e
    report = verify(
        ctx.project, ctx.root, target=args.target, repair_views=args.repair_views, heads=exported
    )
    if args.json:
        ctx.json(report.to_dict())
    else:
        for finding in report.findings:
            ctx.print(render.safe(str(finding)))
        if not report.findings:
            verdict = "clean"
        elif report.ok:
            verdict = f"{len(report.findings)} finding(s), all repaired"
        else:
            verdict = f"{len(report.findings)} finding(s)"
        ctx.note(f"verified {report.batches} batch(es), {report.events} event(s): {verdict}")
        if (note := policy_note(ctx)) is not None:
            ctx.note(note)
    return EXIT_OK if report.ok else EXIT_NO


def heads_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "target",
        metavar="EPISODE",
        nargs="?",
        help="one episode or one batch (default: the whole project)",
    )
    json_flag(p, "print one JSON line per batch (the form `verify --heads` reads)")


def cmd_heads(ctx: Context, args: argparse.Namespace) -> int:
    rows = heads(ctx.project, ctx.root, target=args.target)
    if args.json:
        for row in rows:
            ctx.json(row.to_dict())
    else:
        table_rows = [[row.batch_id, str(row.seq), row.hash] for row in rows]
        ctx.print(render.table(["BATCH", "SEQ", "HASH"], table_rows, max_last=64))
    return EXIT_OK


def import_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("episode", metavar="EPISODE", nargs="?", help="e.g. ep_001 (default: all)")
    p.add_argument(
        "--adopt",
        metavar="BATCH_ID",
        help="turn a change a reference-era tool made to BATCH_ID's versions.json into events",
    )
    p.add_argument("--dry-run", action="store_true", help="check and report, write nothing")
    json_flag(p, "print one JSON line per manifest")


def cmd_import(ctx: Context, args: argparse.Namespace) -> int:
    if args.adopt is not None:
        if args.episode is not None:
            raise UsageError("--adopt takes one batch id and no episode")
        return _adopt(ctx, args)
    if args.episode is not None and "_BATCH_" in args.episode:
        raise UsageError(
            "import takes an episode (ep_001), not a batch id (to adopt a changed "
            "versions.json: --adopt BATCH_ID)"
        )
    outcomes = import_manifests(
        ctx.project,
        ctx.root,
        episode=args.episode,
        dry_run=args.dry_run,
        actor=ctx.actor,
        lock_timeout=ctx.lock_timeout,
    )
    for outcome in outcomes:
        if args.json:
            ctx.json(outcome.to_dict())
        elif outcome.problems:
            ctx.print(f"{outcome.batch_id}: refused: {'; '.join(outcome.problems)}")
        else:
            ctx.print(
                f"{outcome.batch_id}: {outcome.status.replace('_', ' ')} "
                f"({outcome.versions} versions, active v{outcome.active_version})"
            )
    if not outcomes:
        ctx.note("nothing to import: every versions.json has its log")
    return EXIT_NO if any(o.status == "refused" for o in outcomes) else EXIT_OK


def _adopt(ctx: Context, args: argparse.Namespace) -> int:
    outcome = adopt_view(
        ctx.project,
        validate_batch_id(args.adopt),
        ctx.root,
        dry_run=args.dry_run,
        actor=ctx.actor,
        lock_timeout=ctx.lock_timeout,
    )
    if args.json:
        ctx.json(outcome.to_dict())
    elif outcome.events:
        verb = "would adopt" if outcome.status == "would_adopt" else "adopted"
        ctx.print(f"{outcome.batch_id}: {verb} {', '.join(outcome.events)} (seq {outcome.seq})")
    else:
        ctx.print(f"{outcome.batch_id}: nothing to adopt (seq {outcome.seq})")
    return EXIT_OK
