"""The audit subcommands: diff, audit, verify, heads, import.

The JSON each prints follows docs/CLI.md: one object for one thing, one array
for a list (``audit``, ``heads``, ``import``), JSON lines only with
``--jsonl``. ``audit`` goes on past a damaged batch: it names it on stderr
and exits 4 once every other batch is reported.
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile

import msgspec

from eventstore.events import EVENT_TYPES
from eventstore.layout import validate_batch_id
from projections import render
from projections.cli.context import (
    TIME_HELP,
    Context,
    episode_arguments,
    episode_of,
    json_flag,
    list_flags,
    version_arg,
    wide_flag,
)
from projections.cli.errors import EXIT_DAMAGED, EXIT_NO, EXIT_OK, UsageError, one_line
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
    episode_arguments(p)
    p.add_argument("--since", metavar="TIME", help=f"from TIME, inclusive: {TIME_HELP}")
    p.add_argument("--until", metavar="TIME", help="up to TIME, inclusive (the same forms)")
    p.add_argument(
        "--type",
        type=_types,
        default=("conformed", "reverted"),
        metavar="T,T",
        help="event types (default: conformed,reverted)",
    )
    p.add_argument("--by", dest="who", metavar="WHO", help="only events by actor WHO")
    p.add_argument(
        "--no-imported",
        dest="imported",
        action="store_false",
        help="leave out events carried over by `scenelog import` (the reference's history)",
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument("--json", action="store_true", help="print one JSON array")
    group.add_argument(
        "--jsonl", action="store_true", help="print one JSON object per line (for line tools)"
    )
    group.add_argument("--csv", action="store_true", help="print CSV with a header")
    wide_flag(p)


AUDIT_FIELDS = [
    "batch_id",
    "seq",
    "type",
    "from_version",
    "to_version",
    "actor",
    "at",
    "reason",
    "imported",
]
"""The columns of ``audit --csv`` and the keys of each ``audit --json`` row."""


def cmd_audit(ctx: Context, args: argparse.Namespace) -> int:
    damaged: list[str] = []

    def on_damaged(batch_id: str, error: Exception) -> None:
        damaged.append(batch_id)
        ctx.note(f"scenelog: error: {batch_id} left out of the audit: {one_line(str(error))}")

    rows = ctx.projection().audit(
        episode=episode_of(args),
        since=args.since,
        until=args.until,
        types=args.type,
        actor=args.who,
        imported=args.imported,
        on_damaged=on_damaged,
    )
    if args.json:
        ctx.json([row.to_dict() for row in rows])
    elif args.jsonl:
        ctx.json_lines(row.to_dict() for row in rows)
    elif args.csv:
        writer = csv.DictWriter(ctx.out, fieldnames=AUDIT_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(row.to_dict() for row in rows)
    else:
        table_rows = [
            [
                render.short_time(r.at),
                r.batch_id,
                r.type + (" (imported)" if r.imported else ""),
                f"v{r.from_version}" if r.from_version else "-",
                f"v{r.to_version}",
                r.actor,
                r.reason or "",
            ]
            for r in rows
        ]
        ctx.print(
            render.table(
                ["TIME (UTC)", "BATCH", "TYPE", "FROM", "TO", "ACTOR", "REASON"],
                table_rows,
                max_last=None if ctx.wide else 40,
            )
        )
    if damaged:
        ctx.note(
            f"scenelog: error: {len(damaged)} damaged batch(es) left out: {', '.join(damaged)}; "
            "run `scenelog verify` on each"
        )
        return EXIT_DAMAGED
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
            exported = _load_heads(args.heads)
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


def _load_heads(path: str) -> dict[str, tuple[int, str]]:
    """An export of ``scenelog heads``: its array (``--json``), JSON lines or table.

    ``load_heads`` reads lines; an array is read here and handed to it as the
    same rows, one per line, so every row is checked the same way.
    """
    with open(path, "rb") as f:
        text = f.read()
    if not text.lstrip().startswith(b"["):
        return load_heads(path)
    try:
        rows = msgspec.json.decode(text)
        if not isinstance(rows, list):
            raise ValueError("not an array")
        lines = b"".join(msgspec.json.encode(row) + b"\n" for row in rows)
    except (ValueError, msgspec.DecodeError) as e:
        raise ValueError(
            f"{path}: not an export of `scenelog heads --json` ({e}); pass a file written by "
            "`scenelog heads --json`"
        ) from e
    with tempfile.NamedTemporaryFile(prefix="scenelog-heads-", suffix=".jsonl") as copy:
        copy.write(lines)
        copy.flush()
        try:
            return load_heads(copy.name)
        except ValueError as e:
            raise ValueError(
                str(e)
                .replace(f"{copy.name}:", f"{path}: item ", 1)
                .replace(os.path.basename(copy.name), os.path.basename(path))
            ) from e


def heads_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "target",
        metavar="EPISODE",
        nargs="?",
        help="one episode or one batch (default: the whole project)",
    )
    list_flags(p)


def cmd_heads(ctx: Context, args: argparse.Namespace) -> int:
    rows = heads(ctx.project, ctx.root, target=args.target)
    if args.json:
        ctx.json([row.to_dict() for row in rows])
    elif args.jsonl:
        ctx.json_lines(row.to_dict() for row in rows)
    else:
        table_rows = [[row.batch_id, str(row.seq), row.hash] for row in rows]
        ctx.print(render.table(["BATCH", "SEQ", "HASH"], table_rows, max_last=64))
    return EXIT_OK


def import_arguments(p: argparse.ArgumentParser) -> None:
    episode_arguments(p)
    p.add_argument(
        "--adopt",
        metavar="BATCH_ID",
        help="turn a change a reference-era tool made to BATCH_ID's versions.json into events",
    )
    p.add_argument("--dry-run", action="store_true", help="check and report, write nothing")
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON array, one object per manifest (with --adopt: one object)",
    )


def cmd_import(ctx: Context, args: argparse.Namespace) -> int:
    args.episode = episode_of(args)
    if args.adopt is not None:
        if args.episode is not None:
            raise UsageError("--adopt takes one batch id and no episode")
        return _adopt(ctx, args)
    if args.episode is not None and "_BATCH_" in args.episode:
        raise UsageError(
            "import takes an episode (ep_001), not a batch id (to adopt a changed "
            "versions.json: --adopt BATCH_ID)"
        )
    from eventstore.importer import import_manifests  # loaded by import only (issue 15)

    outcomes = import_manifests(
        ctx.project,
        ctx.root,
        episode=args.episode,
        dry_run=args.dry_run,
        actor=ctx.actor,
        lock_timeout=ctx.lock_timeout,
    )
    if args.json:
        ctx.json([outcome.to_dict() for outcome in outcomes])
    for outcome in outcomes:
        if args.json:
            continue
        if outcome.problems:
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
    from eventstore.adopt import adopt_view  # loaded by import --adopt only (issue 15)

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
