"""``scenelog view-policy``: what commits do with the ``versions.json`` views (issue 15).

The policy is the project's (``.scenelog/view-policy`` on a folder root,
:mod:`eventstore.filelog.viewpolicy`); backends without views refuse the
command (exit 2). Changing it is safe while writers run: each command reads it
under its batch lock and honours what it read; readers catch up from the log.
"""

from __future__ import annotations

import argparse
from typing import Any

from projections.cli.context import Context, json_flag
from projections.cli.errors import EXIT_OK, UsageError

__all__ = ["cmd_view_policy", "policy_arguments", "policy_note"]

_POLICIES = ("sync", "lazy", "off")

_PROMISE = {
    "sync": "versions.json is rewritten at every commit",
    "lazy": "versions.json may trail the log by up to {bound} events",
    "off": "no versions.json: reference-era tools see no manifest",
}


def policy_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "policy",
        nargs="?",
        choices=_POLICIES,
        metavar="sync|lazy|off",
        help="the new policy (without it: show the current one)",
    )
    json_flag(p, "print the policy as a JSON object")


def _views_of(ctx: Context) -> Any:
    log = ctx.projection().log
    if not hasattr(log, "set_view_policy"):
        raise UsageError(
            f"{log.label} keeps no versions.json views: view-policy needs a folder root"
        )
    if not log.project_exists():
        raise UsageError(
            f"there is no project {ctx.project} in {log.label}: check --root and --project"
        )
    return log


def policy_note(ctx: Context) -> str | None:
    """One line for ``ls``/``verify`` when the policy is not ``sync`` (None otherwise)."""
    log = ctx.projection().log
    policy = log.view_policy() if hasattr(log, "view_policy") else "sync"
    if policy == "sync":
        return None
    return f"view policy: {policy} ({_promise(policy)})"


def _promise(policy: str) -> str:
    from eventstore.filelog.viewpolicy import BOUND

    return _PROMISE[policy].format(bound=BOUND)


def cmd_view_policy(ctx: Context, args: argparse.Namespace) -> int:
    log = _views_of(ctx)
    before = str(log.view_policy())
    policy = args.policy or before
    if args.policy is not None and args.policy != before:
        log.set_view_policy(args.policy)
    if args.json:
        ctx.json({"project": ctx.project, "policy": policy, "was": before})
    else:
        ctx.print(policy)
        changed = f" (was {before})" if policy != before else ""
        ctx.note(f"view policy of {ctx.project}: {policy}{changed}: {_promise(policy)}")
    return EXIT_OK
