"""Exact on a live store (R26): look at a batch until what a writer could explain settles.

A finding that a command in flight also produces (the newest body above the
log's last version, a view behind, ahead or missing, a torn tail, an
incomplete command, a recorded head past the log's end) is reported only
when two consecutive looks both show it and the backend said, between them,
that no command held the batch (``EventLog.busy``): every command in flight
at the first look had ended. A batch that stays busy or keeps changing for
``GIVE_UP`` seconds gets one ``busy`` warning instead of those findings.

Invariants:
- The batch's lock is observed through the backend, never taken (R22).
- With ``repair_views``, only views are rewritten, and only for confirmed
  view findings, never over a view a writer put there since the look.
"""

from __future__ import annotations

import time

import msgspec

from eventstore.log import EventLog
from projections.verify.batch import BatchCheck
from projections.verify.report import VIEW_CHECKS, Finding

__all__ = ["GIVE_UP", "check_batch"]

GIVE_UP = 10.0
"""Seconds a batch may stay busy before verify stops waiting for it."""

_POLL = 0.002


def _look(log: EventLog, batch_id: str, named: frozenset[str] | None) -> BatchCheck:
    """One complete look at one batch.

    ``named``: for a batch without a log, the bodies a reference manifest
    names (not orphans); None when no body of it may be called an orphan (its
    log was lost).
    """
    check = BatchCheck(log, batch_id)
    if not check.has_log:
        if named is not None:
            check.bodies(named)
        return check
    whole = check.lines()
    if whole and check.events:  # a log with no complete line yet has no view to check
        check.fold = check.rules()
        check.view(check.fold)
        check.recorded_head()
    check.bodies()
    return check


def _key(finding: Finding) -> tuple[str, str, int | None, str]:
    return finding.check, finding.path, finding.line, finding.what


def _settled(
    log: EventLog, batch_id: str, named: frozenset[str] | None
) -> tuple[BatchCheck, list[Finding]]:
    """Look at the batch until every finding a command in flight could explain is confirmed.

    Returns the last look and the findings to report.
    """
    start = time.monotonic()
    previous = _look(log, batch_id, named)
    while previous.in_flight_candidates():
        waited = time.monotonic() - start
        if waited >= GIVE_UP:
            busy = Finding(
                batch_id,
                "busy",
                previous.where,
                None,
                f"the batch was written to (or its lock held) throughout {waited:.0f}s of "
                "looking: its end could not be checked",
                "run verify again; if it persists, find the process holding the batch's lock",
                "warning",
            )
            return previous, [*previous.damage(), busy]
        if log.busy(batch_id):
            time.sleep(_POLL)  # a writer holds the batch: give it the processor
            continue
        current = _look(log, batch_id, named)
        before = {_key(f) for f in previous.in_flight_candidates()}
        if all(_key(f) in before for f in current.in_flight_candidates()):
            return current, current.found
        previous = current
    return previous, previous.found


def _repair(log: EventLog, check: BatchCheck, finding: Finding) -> Finding:
    """Rewrite the view of a confirmed view finding; the finding marked repaired if done."""
    if check.fold is None:
        return finding
    manifest = check.fold.manifest()
    if finding.check == "view_ahead":
        repaired = log.replace_snapshot(manifest, seen=check.view_bytes)
    else:
        repaired = log.mend_snapshot(manifest)
    return msgspec.structs.replace(finding, repaired=repaired)


def check_batch(
    log: EventLog,
    batch_id: str,
    *,
    repair_views: bool,
    named: frozenset[str] | None = frozenset(),
) -> tuple[list[Finding], int]:
    """The confirmed findings of one batch (views repaired if asked) and its event count."""
    check, findings = _settled(log, batch_id, named)
    if repair_views:
        findings = [_repair(log, check, f) if f.check in VIEW_CHECKS else f for f in findings]
    return findings, len(check.events)
