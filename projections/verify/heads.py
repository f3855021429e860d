"""The heads export (R27): every batch's head, read back, and checked against the logs.

``scenelog heads`` writes each batch's head (the seq of its last committed
line and that line's sha256); kept elsewhere, that export lets
``verify --heads`` prove that no line up to each head was rewritten since,
even by someone who rewrote a log and its head record consistently.

Invariants:
- Reads only, through the log interface (``head``, ``raw``, ``batches``).
- An export that is neither form is refused with the file and line, before
  any log is looked at.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import msgspec

from eventstore.layout import normalize_episode, validate_batch_id
from eventstore.log import EventLog, line_hash, open_log
from projections.verify.report import RESTORE, Finding

__all__ = ["Head", "compare_heads", "heads", "load_heads", "targets"]


class Head(msgspec.Struct, frozen=True):
    """A batch's head: the seq of its last committed line and that line's sha256 hex."""

    batch_id: str
    seq: int
    hash: str

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = msgspec.to_builtins(self)
        return result


def targets(log: EventLog, target: str | None) -> tuple[list[str], list[str]]:
    """(batch ids with logs, episodes to scan) for a batch id, an episode or everything.

    A batch id is taken as given (whether it has a log is the caller's question).
    """
    if target is None:
        episodes = log.episodes()
    elif "_BATCH_" in target:
        batch_id = validate_batch_id(target)
        return [batch_id], [batch_id[:6]]
    else:
        episodes = [normalize_episode(target)]
    return [b for ep in episodes for b in log.batches(ep)], episodes


def heads(
    project: str, root: str | os.PathLike[str] | None = None, *, target: str | None = None
) -> list[Head]:
    """Every batch's head (of ``target``: a batch id, an episode, or the whole project), R27.

    Kept elsewhere, the export lets ``verify(heads=...)`` prove that no line up
    to each head was rewritten since, even by someone who rewrote a log and its
    head record consistently. Batches with no committed line have no head.
    """
    log = open_log(project, root)
    batch_ids, _episodes = targets(log, target)
    found = []
    for batch_id in batch_ids:
        seq, digest = log.head(batch_id)
        if seq and digest is not None:
            found.append(Head(batch_id, seq, digest))
    return found


def compare_heads(
    log: EventLog,
    heads: Mapping[str, tuple[int, str]],
    episodes: list[str],
    single: str | None,
    unreadable: Mapping[str, str],
) -> list[Finding]:
    """Each exported head against the log: the line at its seq must still have its hash.

    ``unreadable`` maps batches whose log is not a readable log to where it is.
    """
    present = {b for ep in episodes for b in log.batches(ep)}
    found = []
    for batch_id, (seq, expected) in sorted(heads.items()):
        if (single is not None and batch_id != single) or batch_id[:6] not in episodes:
            continue
        if batch_id in unreadable:
            where, complete = unreadable[batch_id], []
        else:
            raw = log.raw(batch_id)
            where, complete = raw.where, [*raw.lines, *raw.pending]
        if batch_id not in present:
            what, line = f"the export has a head at seq {seq} but the log is missing", None
        elif seq > len(complete):
            what, line = (
                f"the log has {len(complete)} complete lines, the export's head is at seq {seq}: "
                "lines were removed from its end",
                None,
            )
        elif line_hash(complete[seq - 1]) != expected:
            what, line = (
                f"line {seq} differs from the exported head at seq {seq}: the log was rewritten "
                "since the export",
                seq,
            )
        else:
            continue
        found.append(Finding(batch_id, "heads_mismatch", where, line, what, RESTORE))
    return found


class _HeadRow(msgspec.Struct):
    batch_id: str
    seq: int
    hash: str


_head_row = msgspec.json.Decoder(_HeadRow)


def load_heads(path: str | os.PathLike[str]) -> dict[str, tuple[int, str]]:
    """Read an export of ``scenelog heads`` (its JSON lines or its table).

    Raises ValueError naming the file and line when a line is neither, and
    OSError when the file cannot be read.
    """
    heads: dict[str, tuple[int, str]] = {}
    with open(path, "rb") as f:  # the user's export, not the store
        text = f.read()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            if line.startswith(b"{"):
                row = _head_row.decode(line)
                batch_id, seq, digest = row.batch_id, row.seq, row.hash
            else:
                fields = line.decode("utf-8").split()
                if fields and fields[0] in ("BATCH", "BATCH_ID"):
                    continue  # the table's header
                batch_id, seq_text, digest = fields
                seq = int(seq_text)
            validate_batch_id(batch_id)
            if seq < 1 or len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
                raise ValueError("seq must be >= 1 and hash 64 lowercase hex digits")
        except (ValueError, msgspec.DecodeError, msgspec.ValidationError) as e:
            raise ValueError(
                f"{path}:{number}: not a head of `scenelog heads` ({e}); pass a file written by "
                "`scenelog heads --json`"
            ) from e
        heads[batch_id] = (seq, digest)
    return heads
