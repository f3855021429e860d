"""Every ``scenelog`` subcommand, in one place, in the order of ``--help`` and the README.

A row is the command's name, its summary (the README table's line and the
first line of its ``--help``), the example its ``--help`` ends with, the
function that adds its arguments, and its handler. Adding a command is
adding a row here; nothing registers itself on import
(``tests/test_readme.py`` keeps this table, ``--help`` and the README equal).
"""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple

from projections.cli import batches
from projections.cli.context import Arguments, Handler

__all__ = ["SUBCOMMANDS", "Subcommand"]


class Subcommand(NamedTuple):
    name: str
    summary: str
    example: str
    arguments: Arguments
    handler: Handler


def _lazy(module: str, name: str) -> Any:
    """``projections.cli.<module>.<name>``, imported when first called (issue 15: a
    ``gate`` loads none of the audit, watch, serve or policy modules)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        function = getattr(importlib.import_module(f"projections.cli.{module}"), name)
        return function(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    return call


SUBCOMMANDS: tuple[Subcommand, ...] = (
    Subcommand(
        "add",
        "register a scene JSON as a new candidate version; prints its number",
        "scenelog add ep_001_BATCH_003 scene.json --dedup --reason 'script v7'",
        batches.add_arguments,
        batches.cmd_add,
    ),
    Subcommand(
        "conform",
        "point the batch at VERSION and approve it",
        "scenelog conform ep_001_BATCH_003 3 --reason 'director approved'",
        batches.pointer_arguments,
        batches.cmd_conform,
    ),
    Subcommand(
        "revert",
        "point the batch back at VERSION (nothing else changes)",
        "scenelog revert ep_001_BATCH_003 2 --reason 'v3 broke continuity'",
        batches.pointer_arguments,
        batches.cmd_revert,
    ),
    Subcommand(
        "derived",
        "record that the boards of the active VERSION were rebuilt",
        "scenelog derived ep_001_BATCH_003 3 --expect-seq 7",
        batches.pointer_arguments,
        batches.cmd_derived,
    ),
    Subcommand(
        "show",
        "the batch's manifest: versions, the active one, states",
        "scenelog show ep_001_BATCH_003 --at 2026-11-26T12:00:00Z",
        batches.show_arguments,
        batches.cmd_show,
    ),
    Subcommand(
        "history",
        "every event of the batch: who, when, what, why",
        "scenelog history ep_001_BATCH_003 --jsonl | jq -c 'select(.type==\"conformed\")'",
        batches.history_arguments,
        batches.cmd_history,
    ),
    Subcommand(
        "ls",
        "batches with active version, gate, newest and awaiting versions",
        "scenelog ls ep_001 --pending",
        batches.ls_arguments,
        batches.cmd_ls,
    ),
    Subcommand(
        "gate",
        "exit 0 when the batch may be dispatched, 1 when not, and say why",
        "scenelog gate ep_001_BATCH_003 && submit_render_job ep_001_BATCH_003",
        batches.gate_arguments,
        batches.cmd_gate,
    ),
    Subcommand(
        "path",
        "the body file of the active (or given) version, for tools that open files",
        'scenelog path ep_001_BATCH_003 2  # a tool opens it: maya -file "$(scenelog path B)"',
        batches.path_arguments,
        batches.cmd_path,
    ),
    Subcommand(
        "cat",
        "print the body of the active (or given) version (every backend)",
        "scenelog cat ep_001_BATCH_003 2 | jq '.beats | length'",
        batches.cat_arguments,
        batches.cmd_cat,
    ),
    Subcommand(
        "demo",
        "build a small show and walk a pipeline day on it",
        "scenelog demo /tmp/scenelog-demo",
        batches.demo_arguments,
        batches.cmd_demo,
    ),
    Subcommand(
        "diff",
        "shots added, removed, moved and changed between versions A and B",
        "scenelog diff ep_001_BATCH_003 2 3",
        _lazy("audit", "diff_arguments"),
        _lazy("audit", "cmd_diff"),
    ),
    Subcommand(
        "audit",
        "every pointer move across the project: batch, from → to, who, when, why",
        "scenelog audit ep_001 --since 2026-11-01 --no-imported --csv > approvals.csv",
        _lazy("audit", "audit_arguments"),
        _lazy("audit", "cmd_audit"),
    ),
    Subcommand(
        "verify",
        "check logs, hash chains, rules, bodies and views; exit 1 on any finding",
        "scenelog verify ep_001 --json",
        _lazy("audit", "verify_arguments"),
        _lazy("audit", "cmd_verify"),
    ),
    Subcommand(
        "heads",
        "export every batch's head (seq and hash of its last line) to keep a copy elsewhere",
        "scenelog heads --json > heads-$(date +%F).jsonl",
        _lazy("audit", "heads_arguments"),
        _lazy("audit", "cmd_heads"),
    ),
    Subcommand(
        "import",
        "turn reference-format versions.json manifests into logs; exit 1 if any is refused",
        "scenelog import ep_001 --dry-run",
        _lazy("audit", "import_arguments"),
        _lazy("audit", "cmd_import"),
    ),
    Subcommand(
        "view-policy",
        "show or set what commits do with the versions.json views: sync, lazy or off",
        "scenelog view-policy lazy",
        _lazy("policy", "policy_arguments"),
        _lazy("policy", "cmd_view_policy"),
    ),
    Subcommand(
        "db",
        "db init: create or upgrade the schema of a postgresql:// root (idempotent)",
        "scenelog db init postgresql://scenelog@db.studio/scenelog",
        _lazy("db", "db_arguments"),
        _lazy("db", "cmd_db"),
    ),
    Subcommand(
        "copy",
        "copy the project between two roots (any backends), every line byte-identical; resumes",
        "scenelog --project myshow copy /show/store postgresql://scenelog@db.studio/scenelog",
        _lazy("db", "copy_arguments"),
        _lazy("db", "cmd_copy"),
    ),
    Subcommand(
        "materialize",
        "keep versions.json and body files in DIR for tools that read files (a consumer)",
        "scenelog --root postgresql://db.studio/scenelog materialize /mnt/show/scenes --once",
        _lazy("db", "materialize_arguments"),
        _lazy("db", "cmd_materialize"),
    ),
    Subcommand(
        "serve",
        "serve the HTTP projection API, the live event stream and the review board",
        "scenelog serve --port 8750  # then open http://127.0.0.1:8750/",
        _lazy("serve", "serve_arguments"),
        _lazy("serve", "cmd_serve"),
    ),
    Subcommand(
        "watch",
        "print (or run a handler for) each event as it lands, resuming a consumer's position",
        "scenelog watch --type conformed,reverted --consumer boards -- rebuild_boards.sh --fast",
        _lazy("watch", "watch_arguments"),
        _lazy("watch", "cmd_watch"),
    ),
    Subcommand(
        "consumers",
        "each watcher consumer with its lag, parked events and last delivery; retry, reset, delete",
        "scenelog consumers --json",
        _lazy("watch", "consumers_arguments"),
        _lazy("watch", "cmd_consumers"),
    ),
)
"""Every subcommand in the order of ``--help`` and the README's table."""
