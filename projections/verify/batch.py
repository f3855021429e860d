"""The checks of one batch from one look at it, through the log interface only.

:class:`BatchCheck` reads what :class:`eventstore.log.EventLog` gives an
auditor (``raw``, ``recorded_head``, ``body_names``, ``look_body``,
``look_snapshot``) and turns what is wrong into findings. It knows the line
format (seq, ``prev``, the ``more`` mark, the rules) and nothing of where a
backend keeps things: the ``where`` of each finding comes from the backend.

Invariants:
- Reads only: nothing here writes anything.
- The body listing is taken before the log is read, so a body whose event is
  in the log read is always in the listing.
- A body is asked for through ``look_body``, which never hangs and never
  reads more than ``MAX_BODY_BYTES``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import msgspec

from eventstore import DamagedStore, Event, Scene, structure_fingerprint
from eventstore.events import Appended, decode_event
from eventstore.log import EventLog, RawLog, command_more, line_hash
from eventstore.manifest import Fold, Manifest, decode_manifest
from eventstore.rules import body_version, check_event
from projections.verify.report import (
    IN_FLIGHT_CHECKS,
    MAX_BODY_BYTES,
    ORPHAN_FIX,
    REPAIR,
    RESTORE,
    Finding,
)

__all__ = ["BatchCheck"]


def _decode_view(data: bytes | None) -> Manifest | None:
    if data is None:
        return None
    try:
        return decode_manifest(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


class BatchCheck:
    """The checks of one batch from one look; findings accumulate in ``found``."""

    def __init__(self, log: EventLog, batch_id: str) -> None:
        self.log = log
        self.batch_id = batch_id
        self.found: list[Finding] = []
        self.events: list[Event] = []
        self.fold: Fold | None = None
        self.view_bytes: bytes | None = None
        self.listing = log.body_names(batch_id)  # before the log is read
        self.top_orphan: str | None = None
        self.raw: RawLog = log.raw(batch_id)
        self.where = self.raw.where

    @property
    def has_log(self) -> bool:
        """Whether the look found anything at all in the batch's log."""
        raw = self.raw
        return bool(raw.lines or raw.pending or raw.torn)

    def add(
        self, check: str, where: str, line: int | None, what: str, fix: str, severity: str = "error"
    ) -> None:
        self.found.append(Finding(self.batch_id, check, where, line, what, fix, severity))

    def lines(self) -> bool:
        """Parse, seq and chain, line by line; True when the log's structure is whole."""
        raw, where = self.raw, self.where
        lines = raw.lines
        cut = len(raw.pending)
        if cut:
            self.add(
                "incomplete_command",
                where,
                len(lines) + 1,
                f"incomplete command, never acknowledged (its last {cut} complete lines; the "
                "write of the command was cut)",
                "nothing to do: the next command on this batch moves it aside",
                "warning",
            )
        if raw.torn:
            self.add(
                "torn_tail",
                where,
                len(lines) + cut + 1,
                f"last line is incomplete ({raw.torn} bytes, an interrupted "
                "write that was never acknowledged)",
                "nothing to do: the next command on this batch moves it aside",
                "warning",
            )
        whole = True
        expected_seq, prev, due = 1, None, 0
        for number, line in enumerate(lines, start=1):
            try:
                event = decode_event(line)
            except (msgspec.DecodeError, msgspec.ValidationError) as e:
                self.add(
                    "unreadable", where, number, f"line does not parse as an event ({e})", RESTORE
                )
                whole, prev = False, line_hash(line)
                expected_seq += 1
                continue
            self.events.append(event)
            if event.seq != expected_seq:
                what = (
                    f"seq {event.seq} where {expected_seq} was due: a line before it was "
                    "removed, or lines were reordered"
                    if event.seq > expected_seq
                    else f"seq {event.seq} where {expected_seq} was due: lines were reordered or "
                    "duplicated"
                )
                self.add("seq", where, number, what, RESTORE)
                whole = False
            elif event.prev != prev and whole:
                self.add(
                    "hash_chain",
                    where,
                    number - 1 if number > 1 else number,
                    f"line {number}'s prev does not match the bytes of line {number - 1}: "
                    f"line {number - 1} (or the prev of line {number}) was edited",
                    RESTORE,
                )
                whole = False
            more = command_more(line)
            if due and more != due - 1 and whole:
                self.add(
                    "command", where, number, f"`more` {more} where {due - 1} was due", RESTORE
                )
                whole = False
            due = more
            expected_seq = event.seq + 1
            prev = line_hash(line)
        return whole

    def rules(self) -> Fold:
        """Every event against the state before it; the fold of the valid prefix."""
        fold = Fold(self.batch_id, path=self.where)
        flat_name = f"{self.batch_id}.json"
        for number, event in enumerate(self.events, start=1):
            problem = None
            if event.batch_id != self.batch_id:
                problem = f"event of batch {event.batch_id!r} in this log"
            else:
                problem = check_event(fold, event, flat_name=flat_name)
            if problem:
                self.add(
                    "rule",
                    self.where,
                    number,
                    f"{event.type} breaks a rule: {problem}",
                    "the event was not written by scenelog; " + RESTORE,
                )
                if fold.entry(event.version) is None and not isinstance(event, Appended):
                    break
            try:
                fold.apply(event)
            except DamagedStore:
                break
        return fold

    def bodies(self, named_elsewhere: Iterable[str] = ()) -> None:
        """Registered bodies are whole; unregistered ones are orphans (warnings)."""
        referenced = {f"{self.batch_id}.json", *named_elsewhere}
        highest_logged = 0
        for number, event in enumerate(self.events, start=1):
            if isinstance(event, Appended):
                referenced.add(event.artifact)
                highest_logged = max(highest_logged, event.version)
                self._body(number, event)
        orphans = [
            (version, name)
            for name in self.listing
            if name not in referenced and (version := body_version(self.batch_id, name)) is not None
        ]
        # Only the newest body above the log's last version can belong to a command in
        # flight: the writer numbers it under the lock, and the next one numbers above it.
        top = max(orphans, default=None)
        if top is not None and top[0] > highest_logged:
            self.top_orphan = self._body_where(top[1])
        where = "a batch with no log" if not self.events else "no event of the log"
        for _version, name in sorted(orphans):
            self.add(
                "orphan_body",
                self._body_where(name),
                None,
                f"body on disk that {where} registers (a write that stopped before its event)",
                ORPHAN_FIX,
                "warning",
            )

    def _body_where(self, name: str) -> str:
        return self.log.body_path(self.batch_id, name) or f"{self.batch_id}:{name}"

    def _body(self, number: int, event: Appended) -> None:
        """The body ``event`` registers: there, whole, of this batch, unchanged."""
        name = os.path.basename(event.artifact)
        look = self.log.look_body(self.batch_id, name, max_bytes=MAX_BODY_BYTES)
        what = f"v{event.version}'s body (registered on line {number})"
        if look.data is None:
            check = f"body_{look.problem or 'unreadable'}"
            self.add(
                check, look.where, None, f"{what} {look.detail}", "restore the body from backup"
            )
            return
        try:
            scene = Scene.from_json(look.data, max_bytes=max(len(look.data), 1))
        except (ValueError, RecursionError) as e:  # SceneFormatError, UnicodeDecodeError
            self.add(
                "body_unreadable",
                look.where,
                None,
                f"{what} is not a scene ({e})",
                "restore the body from backup",
            )
            return
        if scene.scene_id != self.batch_id:
            self.add(
                "body_identity",
                look.where,
                None,
                f"v{event.version}'s body has scene_id {scene.scene_id!r}",
                "restore the body from backup",
            )
        elif structure_fingerprint(scene) != event.structure_fingerprint:
            self.add(
                "body_edited",
                look.where,
                None,
                f"v{event.version}'s body was changed after it was registered (line "
                f"{number}): its fingerprint is not the recorded one",
                "restore the body from backup; bodies are immutable",
            )

    def view(self, fold: Fold) -> None:
        """The snapshot the backend keeps (a view), if any, against the fold."""
        look = self.log.look_snapshot(self.batch_id)
        if look is None:
            return
        if look.odd:
            self.add(
                "view_not_file",
                look.where,
                None,
                "view is not a regular file",
                "move the odd entry aside (the view is only a cache), then " + REPAIR,
            )
            return
        manifest = fold.manifest()
        self.view_bytes = look.data
        current = _decode_view(look.data)
        problem = None
        if look.data is None:
            problem = ("view_missing", "view is missing", "warning")
        elif current is None:
            problem = ("view_corrupt", "view does not parse as a manifest", "warning")
        elif current.seq > manifest.seq:
            problem = (
                "view_ahead",
                f"view is at seq {current.seq}, above the log's {manifest.seq} (the log was "
                "restored from an older backup, or lines were removed from its end)",
                "warning",
            )
        elif current.seq != manifest.seq:
            problem = (
                "view_stale",
                f"view is at seq {current.seq}, the log at {manifest.seq}",
                "warning",
            )
        elif current != manifest:
            problem = (
                "view_differs",
                f"view at seq {current.seq} differs from the fold of the "
                "log: it was edited by hand",
                "error",
            )
        if problem is not None:
            check, what, severity = problem
            self.add(check, look.where, None, what, REPAIR, severity)

    def recorded_head(self) -> None:
        """R27: the line at the head the store recorded still has the recorded hash."""
        recorded = self.log.recorded_head(self.batch_id)
        if recorded is None:
            return
        seq, expected = recorded
        if seq < 1:
            return  # no record names seq 0: the store records only after a commit
        complete = [*self.raw.lines, *self.raw.pending]
        if not (0 < seq <= len(complete) and line_hash(complete[seq - 1]) == expected):
            # Writers record after they write: the log read before the record may be
            # behind it. Judge by a read taken after the record.
            fresh = self.log.raw(self.batch_id)
            complete = [*fresh.lines, *fresh.pending]
        if seq > len(complete):
            self.add(
                "head_lost",
                self.where,
                None,
                f"the log has {len(complete)} complete lines but its head was recorded at seq "
                f"{seq}: lines were removed from its end (or it was restored from an older "
                "backup)",
                RESTORE,
            )
        elif line_hash(complete[seq - 1]) != expected:
            self.add(
                "head_edited",
                self.where,
                seq,
                f"line {seq} is not the line recorded as the log's head at seq {seq} (its "
                "hash differs): it was edited",
                RESTORE,
            )

    def in_flight_candidates(self) -> list[Finding]:
        """Findings a command in flight could explain (to be confirmed by a second look)."""
        return [f for f in self.found if self._maybe_in_flight(f)]

    def damage(self) -> list[Finding]:
        """Findings no command in flight explains."""
        return [f for f in self.found if not self._maybe_in_flight(f)]

    def _maybe_in_flight(self, finding: Finding) -> bool:
        if finding.check == "orphan_body":
            return finding.path == self.top_orphan
        # A warning about the log itself is about its end: a write that may still be going on.
        return finding.check in IN_FLIGHT_CHECKS or (
            finding.severity == "warning" and finding.path == self.where
        )
