"""verify: prove a project's record is whole, or say exactly where it is not.

For every batch log: each line parses; seq runs 1, 2, 3…; the hash chain
holds; every event is valid against the state before it (the rules of
``eventstore.rules``); every registered body exists, is readable, belongs to
the batch and still has the fingerprint recorded when it was registered; the
line at the head the store recorded (R27) still has the hash recorded for
it, and so does the line at each head of an export (``heads``). Beside the
logs: orphan bodies (never committed), torn tails and incomplete commands,
missing, stale, ahead or corrupt views, and reference manifests not imported
yet.

verify takes its backend from the root (:func:`eventstore.log.open_log`) and
reaches storage only through the :class:`eventstore.log.EventLog` interface:
``raw``, ``head``, ``recorded_head``, ``body_names``, ``look_body``,
``look_snapshot``, ``mend_snapshot``, ``replace_snapshot``, ``busy`` and
``strays``. Findings name where the backend says things are (a file and
line on the file backend).

    report    Finding, VerifyReport, the fixes advised
    batch     the checks of one batch from one look
    settle    looking again until what a writer in flight explains settles (R26)
    heads     the heads export, read back and compared (R27)

Invariants:
- verify never writes a log, a body or a head record. With
  ``repair_views`` it rewrites views, and nothing else.
- Exact on a live store (R26): see :mod:`projections.verify.settle`.
- No advice ever says to delete a file: an orphan body may be kept or
  archived; a body that an unimported manifest names is not an orphan.
- Bodies are read only through ``look_body``: anything that is not a body of
  at most ``MAX_BODY_BYTES`` (a FIFO, a device, undecodable bytes) is a
  finding, never a hang, an exhausted memory or a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from eventstore.log import Stray, open_log
from projections.verify.heads import Head, compare_heads, heads, load_heads, targets
from projections.verify.report import MAX_BODY_BYTES, RESTORE, Finding, VerifyReport
from projections.verify.settle import check_batch

__all__ = [
    "MAX_BODY_BYTES",
    "Finding",
    "Head",
    "VerifyReport",
    "heads",
    "load_heads",
    "verify",
]


def _stray_findings(episode: str, strays: list[Stray]) -> list[Finding]:
    """Manifests and views without a log: not imported yet, or the log was lost."""
    found = []
    for stray in sorted(strays, key=lambda s: s.batch_id):
        if stray.kind == "reference":
            what, check, fix = (
                "reference-format manifest without a log",
                "unimported",
                f"scenelog import {episode}",
            )
        elif stray.kind == "snapshot":
            what, check, fix = "view without a log", "log_missing", "restore the log from backup"
        else:
            continue
        found.append(Finding(stray.batch_id, check, stray.where, None, what, fix))
    return found


def _logless_named(strays: list[Stray], batch_id: str) -> frozenset[str] | None:
    """Bodies of a batch without a log that are not orphans; None: none of them is."""
    for stray in strays:
        if stray.batch_id == batch_id and stray.kind == "snapshot":
            return None  # its log was lost: its bodies are the log's, not orphans
        if stray.batch_id == batch_id and stray.kind == "reference":
            return frozenset(stray.names)
    return frozenset()


def verify(
    project: str,
    root: str | os.PathLike[str] | None = None,
    *,
    target: str | None = None,
    repair_views: bool = False,
    heads: Mapping[str, tuple[int, str]] | None = None,
) -> VerifyReport:
    """Check every log (of ``target``: a batch id, an episode, or the whole project).

    ``heads`` (from :func:`load_heads`) are exported heads the logs must still hold.
    """
    log = open_log(project, root)
    batch_ids, episodes = targets(log, target)
    single = target if target is not None and "_BATCH_" in target else None
    strays = {
        episode: [s for s in log.strays(episode) if single is None or s.batch_id == single]
        for episode in episodes
    }
    not_logs = {s.batch_id: s.where for ss in strays.values() for s in ss if s.kind == "not_a_log"}
    present = set(batch_ids) if single is None else set(log.batches(single[:6]))
    findings: list[Finding] = []
    events = 0
    for batch_id in batch_ids:
        if batch_id not in present:
            continue
        if batch_id in not_logs:
            findings.append(
                Finding(
                    batch_id,
                    "log_not_file",
                    not_logs[batch_id],
                    None,
                    "log is not a regular file",
                    RESTORE,
                )
            )
            continue
        found, count = check_batch(log, batch_id, repair_views=repair_views)
        findings.extend(found)
        events += count
    for episode in episodes:
        for stray in strays[episode]:
            if stray.kind == "bodies":
                named = _logless_named(strays[episode], stray.batch_id)
                found, _count = check_batch(
                    log, stray.batch_id, repair_views=repair_views, named=named
                )
                findings.extend(found)
        findings.extend(_stray_findings(episode, strays[episode]))
    if heads:
        findings.extend(compare_heads(log, heads, episodes, single, not_logs))
    return VerifyReport(findings, len(batch_ids), events)
