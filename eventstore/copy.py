"""Copy a project between two backends, every line byte for byte (``scenelog copy``).

:func:`copy_project` walks the source's batches and hands each destination
the committed lines it does not have yet through :meth:`EventLog.import_lines`
(whose default is :func:`import_lines` here), bodies with them.

Invariants:
- Every line lands byte-identical: a line is appended only when the
  destination's own encoding of it (seq, ``prev`` = the hash of the
  destination's last line, the R24 ``more`` mark) is exactly the source's
  bytes; otherwise nothing of that batch is written and :class:`CopyRefused`
  says which line. So the hash chain verifies on the other side
  (``scenelog verify`` there), and the destination's heads equal the source's.
- A destination that already holds a prefix of the source's batch (a rerun,
  or a copy killed midway) gets only the rest: the line at its head must be
  the source's line at that seq (same hash), or the batch is refused as
  diverged (:class:`CopyRefused`, exit 3) and nothing is written to it.
- Commands stay whole (R24): each source command is one append on the
  destination, its bodies written in the same session first (R9); the
  destination's own rules (R14 lock, R25 validation) apply.

Crash at each step: killed between two commands, the destination holds
whole commands (a prefix of the source) and the next run resumes after them;
killed inside one append, the backend's own atomicity applies (file: an
incomplete command is never acknowledged and is cut by the next writer;
PostgreSQL: the transaction rolls back; memory: nothing survives the
process anyway). A body written by the file backend before its event and
then orphaned by a kill is found again and kept when its bytes match.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from eventstore.errors import BodyMissing, RuleViolation
from eventstore.events import Appended, Event, decode_event, encode_event
from eventstore.log import DEFAULT_LOCK_TIMEOUT, command_more, line_hash, mark_line

if TYPE_CHECKING:
    from eventstore.log import EventLog

__all__ = ["CopyRefused", "CopyReport", "copy_project", "import_lines", "split_commands"]


class CopyRefused(RuleViolation):
    """A batch cannot be copied as it is: the destination diverged, or a line would not
    land byte-identical. Nothing of that batch was written by this run (exit 3)."""


@dataclass
class CopyReport:
    """What one copy did."""

    batches: int = 0
    """Batches of the source looked at."""
    copied_batches: int = 0
    """Batches that received at least one line."""
    events: int = 0
    """Lines appended to the destination."""
    bodies: int = 0
    """Bodies written to the destination."""


def split_commands(lines: Sequence[bytes]) -> list[list[bytes]]:
    """``lines`` (committed, whole commands) grouped into commands by their ``more`` marks."""
    commands: list[list[bytes]] = []
    current: list[bytes] = []
    for line in lines:
        current.append(line)
        if not command_more(line):
            commands.append(current)
            current = []
    if current:
        raise ValueError("the lines end inside a command (R24): only whole commands are copied")
    return commands


def _draft(line: bytes, where: str, batch_id: str) -> Event:
    try:
        return decode_event(line)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise CopyRefused(
            f"{where}: a line of batch {batch_id} is not an event ({e}); nothing of the batch "
            "was copied — run `scenelog verify` on the source",
            batch_id=batch_id,
        ) from e


def import_lines(
    log: EventLog,
    batch_id: str,
    lines: Sequence[bytes],
    bodies: Mapping[str, bytes],
    *,
    timeout: float = DEFAULT_LOCK_TIMEOUT,
) -> int:
    """Append ``lines`` (whole committed commands of another log) to ``log``'s batch as they are.

    The first line must continue the destination: its seq is the head's
    seq + 1 and its ``prev`` the head's hash. ``bodies`` are the bodies the
    lines' ``appended`` events name (a body absent there is not written:
    the source had none either). Returns the lines appended. CopyRefused,
    with nothing written, when a line would not land byte-identical.
    """
    commands = split_commands(lines)
    if not commands:
        return 0
    written = 0
    with log.command(batch_id, timeout=timeout) as session:
        head = log.head(batch_id)
        fold = session.fold.copy()
        if head.seq != fold.seq:
            raise CopyRefused(
                f"{log.where(batch_id)}: the head (seq {head.seq}) and the folded state "
                f"(seq {fold.seq}) differ; run `scenelog verify` there before copying",
                batch_id=batch_id,
            )
        # Check every line first: each must be exactly what the destination will write.
        prev, seq = head.hash, head.seq
        drafts: list[list[Event]] = []
        for command in commands:
            events: list[Event] = []
            for remaining, line in zip(range(len(command) - 1, -1, -1), command, strict=True):
                event = _draft(line, log.where(batch_id), batch_id)
                seq += 1
                mine = mark_line(
                    encode_event(msgspec.structs.replace(event, seq=seq, prev=prev)), remaining
                )
                if mine != line:
                    why = (
                        f"it is seq {event.seq} after {prev and prev[:12]}… where seq {seq} is due"
                        if (event.seq, event.prev) != (seq, prev)
                        else "its bytes are not those this scenelog writes for it"
                    )
                    raise CopyRefused(
                        f"{log.where(batch_id)}: cannot copy the line of seq {event.seq} "
                        f"byte-identical: {why}; nothing of batch {batch_id} was copied",
                        batch_id=batch_id,
                        seq=event.seq,
                    )
                prev = line_hash(line)
                events.append(event)
            drafts.append(events)
        for events in drafts:
            for event in events:
                if isinstance(event, Appended) and event.artifact in bodies:
                    data = bodies[event.artifact]
                    if session.body_exists(event.artifact):
                        if session.read_body(event.artifact) != data:
                            raise CopyRefused(
                                f"{log.where(batch_id, event.artifact)} holds other bytes than "
                                "the source's body; nothing more of the batch was copied — "
                                "run `scenelog verify` on both sides",
                                batch_id=batch_id,
                            )
                    else:
                        session.write_body(event.artifact, data)
            session.append(events)
            written += len(events)
    return written


def _bodies_of(src: EventLog, batch_id: str, lines: Sequence[bytes]) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for line in lines:
        event = decode_event(line)
        if isinstance(event, Appended) and event.artifact not in found:
            try:
                found[event.artifact] = src.read_body(batch_id, event.artifact)
            except BodyMissing:
                continue
    return found


def copy_batch(
    src: EventLog, dst: EventLog, batch_id: str, *, timeout: float = DEFAULT_LOCK_TIMEOUT
) -> tuple[int, int]:
    """Copy what ``dst`` lacks of one batch: (lines appended, bodies sent)."""
    lines = src.raw(batch_id).lines
    head = dst.head(batch_id)
    if head.seq > len(lines) or (head.seq and line_hash(lines[head.seq - 1]) != head.hash):
        raise CopyRefused(
            f"{dst.where(batch_id)} diverged from {src.where(batch_id)}: its seq {head.seq} is "
            "not the source's line; nothing of the batch was copied — copy into an empty "
            "destination, or compare both with `scenelog history`",
            batch_id=batch_id,
            seq=head.seq,
        )
    rest = lines[head.seq :]
    if not rest:
        return 0, 0
    bodies = _bodies_of(src, batch_id, rest)
    return dst.import_lines(batch_id, rest, bodies, timeout=timeout), len(bodies)


def copy_project(
    src: EventLog,
    dst: EventLog,
    *,
    timeout: float = DEFAULT_LOCK_TIMEOUT,
    progress: Callable[[str, int], None] | None = None,
) -> CopyReport:
    """Copy every batch of ``src`` that ``dst`` lacks (or the part it lacks), in batch order.

    ``progress(batch_id, lines)`` is called after each batch that received lines.
    """
    report = CopyReport()
    for episode in src.episodes():
        for batch_id in src.batches(episode):
            report.batches += 1
            lines, bodies = copy_batch(src, dst, batch_id, timeout=timeout)
            if lines:
                report.copied_batches += 1
                report.events += lines
                report.bodies += bodies
                if progress is not None:
                    progress(batch_id, lines)
    return report
