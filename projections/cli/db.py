"""``scenelog db init``, ``scenelog copy`` and ``scenelog materialize``: store-wide commands.

- ``db init`` creates or upgrades the PostgreSQL schema of a ``postgresql://``
  root (:func:`eventstore.pglog.init_schema`): one transaction, idempotent,
  versioned. Any other root is bad input (exit 2); an unreachable server is
  exit 4 with the root shown redacted (never a password).
- ``copy SRC_ROOT DST_ROOT`` copies the project between any two backends,
  every line byte-identical (:mod:`eventstore.copy`); a rerun copies only
  what is new, a killed copy resumes. A diverged destination is exit 3.
- ``materialize DIR`` keeps versions.json views and body files in DIR for
  tools that read files (:mod:`projections.materialize`), as a named consumer.
"""

from __future__ import annotations

import argparse
import os

from projections.cli.context import Context, check_root, json_flag
from projections.cli.errors import EXIT_OK, UsageError

__all__ = [
    "cmd_copy",
    "cmd_db",
    "cmd_materialize",
    "copy_arguments",
    "db_arguments",
    "materialize_arguments",
]


# ── db init ──────────────────────────────────────────────────────────────────


def db_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "action",
        choices=("init",),
        metavar="init",
        help="init: create the schema, or upgrade an older one (a second run changes nothing)",
    )
    p.add_argument(
        "url",
        nargs="?",
        metavar="URL",
        help="the postgresql:// root (default: --root, else $SCENELOG_ROOT)",
    )


def cmd_db(ctx: Context, args: argparse.Namespace) -> int:
    url = args.url or ctx.root
    if not url or not url.startswith(("postgresql://", "postgres://")):
        from eventstore.pglog.core import redact

        shown = redact(url) if url else "none"
        raise UsageError(
            f"db init needs a postgresql:// root (given: {shown}): pass it as URL, --root or "
            "$SCENELOG_ROOT; folder and memory roots need no init"
        )
    import psycopg

    from eventstore.pglog import DatabaseUnavailable, redact
    from eventstore.pglog.schema import SchemaError, init_schema

    label = redact(url)
    try:
        before, after = init_schema(url)
    except SchemaError as e:
        raise UsageError(f"the database at {label}: {e}") from None
    except psycopg.OperationalError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DatabaseUnavailable(
            f"cannot reach the database at {label}: {redact(first)} — check that the server "
            "runs and the root URL (host, port, database, user; passwords from PGPASSFILE or "
            "PGPASSWORD)",
            root=label,
        ) from None
    except psycopg.errors.InsufficientPrivilege as e:
        raise UsageError(
            f"the database at {label} refused db init ({redact(str(e).splitlines()[0])}): run "
            "it as the database owner (docs/POSTGRES.md, Roles)"
        ) from None
    if before == after:
        ctx.note(f"the database at {label} has scenelog schema version {after}: nothing to do")
    elif before == 0:
        ctx.note(f"created scenelog schema version {after} in the database at {label}")
    else:
        ctx.note(f"upgraded the scenelog schema at {label} from version {before} to {after}")
    return EXIT_OK


# ── copy ─────────────────────────────────────────────────────────────────────


def copy_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", metavar="SRC_ROOT", help="the root to copy from (folder or URL)")
    p.add_argument("dst", metavar="DST_ROOT", help="the root to copy to (folder or URL)")
    json_flag(p, "print what was copied as a JSON object")


def cmd_copy(ctx: Context, args: argparse.Namespace) -> int:
    from eventstore.copy import copy_project
    from eventstore.log import open_log

    check_root(args.src, "SRC_ROOT")
    check_root(args.dst, "DST_ROOT")
    project = ctx.project
    src = open_log(project, args.src)
    dst = open_log(project, args.dst)
    if src is dst or (src.label == dst.label and src.label):
        raise UsageError(f"SRC_ROOT and DST_ROOT are the same store ({src.label})")
    absence = src.project_absence()
    if absence is not None:
        raise UsageError(f"{absence}: check SRC_ROOT and --project")
    report = copy_project(
        src,
        dst,
        timeout=ctx.lock_timeout,
        progress=lambda b, n: ctx.note(f"{b}: {n} events") if _terminal(ctx.err) else None,
    )
    if args.json:
        ctx.json(
            {
                "project": project,
                "src": src.label,
                "dst": dst.label,
                "batches": report.batches,
                "copied_batches": report.copied_batches,
                "events": report.events,
                "bodies": report.bodies,
            }
        )
    elif report.events:
        ctx.note(
            f"copied {report.events} events of {report.copied_batches} of {report.batches} "
            f"batches of {project} from {src.label} to {dst.label}; check it there with "
            "`scenelog verify`"
        )
    else:
        ctx.note(
            f"nothing to copy: {dst.label} has every event of {project} ({report.batches} batches)"
        )
    return EXIT_OK


def _terminal(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(callable(isatty) and isatty())


# ── materialize ──────────────────────────────────────────────────────────────


def materialize_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", metavar="DIR", help="the folder to keep the files in")
    p.add_argument(
        "--consumer",
        default="materialize",
        metavar="NAME",
        help="the consumer name its checkpoint is kept under (default: materialize)",
    )
    p.add_argument("--once", action="store_true", help="catch up, then exit (default: follow)")
    p.add_argument(
        "--poll", action="store_true", help="look for changes on a timer (network filesystems)"
    )
    json_flag(p, "print what was written as a JSON object (with --once)")


def cmd_materialize(ctx: Context, args: argparse.Namespace) -> int:
    from projections.materialize import materialize

    check_root(args.dir, "DIR")
    root = ctx.root or "."
    if "://" not in root and os.path.realpath(args.dir) == os.path.realpath(root):
        raise UsageError(
            f"DIR {args.dir} is the root itself: the file backend keeps its views there "
            "already; name another folder"
        )
    report = materialize(
        ctx.project,
        args.dir,
        root=ctx.root,
        consumer=args.consumer,
        once=args.once,
        poll=args.poll,
        on_ready=None if args.once else lambda: ctx.note(f"materializing into {args.dir}"),
        on_notice=ctx.note,
    )
    if args.json:
        ctx.json({"events": report.events, "views": report.views, "bodies": report.bodies})
    else:
        ctx.note(
            f"{report.events} events: {report.views} views and {report.bodies} bodies written "
            f"in {args.dir}"
        )
    return EXIT_OK
