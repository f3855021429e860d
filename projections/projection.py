"""Projection: the read side of one project — manifests, the gate, history, time travel.

Every read goes through the project's :class:`eventstore.log.EventLog`, the
backend its root names (:func:`eventstore.log.open_log`): nothing here knows
files, paths or byte offsets.

Invariants:
- Nothing here takes a lock or appends (R22); the only write is
  ``mend_snapshot``, the backend's lock-free rewrite of a stale snapshot
  (the file backend's atomic view rewrite).
- A snapshot is trusted only when its ``seq`` equals the log's last committed
  seq (``last_seq``, O(1) in the log's length); otherwise the log is folded
  (R17). The snapshot is read before the head, so a trusted one is a state
  the log reached.
- A batch with a reference-format manifest and no log raises
  UnimportedManifest instead of being read as "no log" (R21).
- A batch with neither a log nor a flat body is unknown (R16): ``manifest``
  and ``is_fresh`` raise UnknownBatch, never "no log, fresh", so a mistyped
  id, project or root, or an unmounted store, never opens the gate. Listings
  of a project that is not there raise InvalidInput, never answer "none".
- Time is ordered by seq, never by ``at``: ``as_of(at=T)`` is always a prefix
  of the log, and times are compared as aware datetimes, never as strings.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec

from eventstore import (
    DamagedBody,
    DamagedLog,
    Event,
    InvalidInput,
    Manifest,
    Scene,
    UnknownBatch,
    UnregisteredVersion,
    VersionEntry,
    fold,
)
from eventstore.errors import SceneFormatError
from eventstore.events import EVENT_TYPES
from eventstore.layout import normalize_episode, validate_batch_id, validate_version
from eventstore.log import EventLog, open_log
from eventstore.rules import flat_name

if TYPE_CHECKING:
    from projections.diff import SceneDiff  # loaded by diff() only (issue 15: start-up)

__all__ = [
    "TIME_EXAMPLE",
    "AuditRow",
    "BatchSummary",
    "Projection",
    "event_moment",
    "parse_moment",
    "parse_time",
]


TIME_EXAMPLE = "2026-11-26T12:00:00Z or 2026-11-26 (a date: 00:00 UTC)"
"""The accepted forms of a time, as every error about a time shows them."""

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_moment(value: datetime | str) -> datetime:
    """An aware datetime, an ISO 8601 string with a zone, or a date, as an aware datetime.

    A date alone (``2026-11-27``) means 00:00 UTC that day. The moment keeps
    its own zone: aware datetimes compare correctly across zones, so
    ``0001-01-01T00:00:00+01:00`` (before year 1 in UTC) is simply earlier
    than every event instead of overflowing a conversion to UTC. Every error
    shows an accepted example (:data:`TIME_EXAMPLE`).
    """
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError as e:
            raise InvalidInput(
                f"invalid time {_shown(value)}: use ISO 8601 with a zone, e.g. {TIME_EXAMPLE}",
                value=value,
            ) from e
        if _DATE.fullmatch(text):
            moment = moment.replace(tzinfo=UTC)
    elif isinstance(value, datetime):
        moment = value
    else:
        raise InvalidInput(
            f"invalid time {_shown(value)}: give a datetime or an ISO 8601 string, e.g. "
            f"{TIME_EXAMPLE}",
            value=value,
        )
    if moment.utcoffset() is None:
        raise InvalidInput(
            f"time {_shown(value)} has no zone: add Z or +HH:MM, e.g. {TIME_EXAMPLE}",
            value=value,
        )
    return moment


def parse_time(value: datetime | str) -> str:
    """An aware datetime or ISO 8601 string as the log's ``at`` form (UTC, µs, ``Z``).

    InvalidInput when the moment has no such form (before year 1 or after
    year 9999 in UTC); compare times with :func:`parse_moment` instead.
    """
    moment = parse_moment(value)
    try:
        utc = moment.astimezone(UTC)
    except OverflowError as e:
        raise InvalidInput(
            f"time {_shown(value)} is outside years 0001-9999 in UTC", value=value
        ) from e
    return utc.isoformat(timespec="microseconds").replace("+00:00", "Z")


def event_moment(event: Event, *, path: str = "<log>") -> datetime:
    """An event's ``at`` as an aware datetime (UTC); DamagedLog when it is not a time.

    Accepts the log's form, any ISO 8601 form (a naive one is UTC, as the log's
    ``at`` always is) and years written without zero padding (``1-01-01T…``).
    """
    text = event.at.strip()
    if _UNPADDED_YEAR.match(text):
        year, _, rest = text.partition("-")
        text = f"{year.zfill(4)}-{rest}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise DamagedLog(
            f"{path}: event seq {event.seq} of batch {event.batch_id} has `at` "
            f"{_shown(event.at)}, not a timestamp, so a time query cannot place it; "
            "query by seq instead (`scenelog show --at-seq N`) and run `scenelog verify`",
            path=path,
            batch_id=event.batch_id,
            seq=event.seq,
            value=event.at,
        ) from None
    return moment if moment.utcoffset() is not None else moment.replace(tzinfo=UTC)


_UNPADDED_YEAR = re.compile(r"[0-9]{1,3}-")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class AuditRow(msgspec.Struct, frozen=True):
    """One event in an audit: which batch, the pointer move, who, when, why."""

    batch_id: str
    seq: int
    type: str
    from_version: int | None
    to_version: int
    actor: str
    at: str
    reason: str | None
    imported: bool = False
    """Carried over from a reference manifest by ``scenelog import`` (not a move made now)."""

    @classmethod
    def of(cls, event: Event) -> AuditRow:
        return cls(
            event.batch_id,
            event.seq,
            event.type,
            getattr(event, "previous_active", None),
            event.version,
            event.actor,
            event.at,
            event.reason,
            bool(getattr(event, "imported", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = msgspec.to_builtins(self)
        return result


class BatchSummary:
    """One row of an episode listing: a batch's manifest and what it means."""

    __slots__ = ("batch_id", "manifest")

    def __init__(self, batch_id: str, manifest: Manifest) -> None:
        self.batch_id = batch_id
        self.manifest = manifest

    @property
    def active(self) -> VersionEntry | None:
        return self.manifest.active

    @property
    def newest(self) -> VersionEntry | None:
        versions = self.manifest.versions
        return max(versions, key=lambda e: e.version) if versions else None

    @property
    def awaiting_review(self) -> list[VersionEntry]:
        """Candidates newer than the active version."""
        active = self.manifest.active_version or 0
        return [e for e in self.manifest.versions if e.version > active and e.state == "candidate"]

    def to_dict(self) -> dict[str, Any]:
        active, newest = self.active, self.newest
        return {
            "batch_id": self.batch_id,
            "active_version": self.manifest.active_version,
            "state": active.state if active else None,
            "downstream": active.downstream if active else None,
            "fresh": self.manifest.is_fresh,
            "newest_version": newest.version if newest else None,
            "awaiting_review": [e.version for e in self.awaiting_review],
            "seq": self.manifest.seq,
        }


class Projection:
    """Read models over every batch of ``project`` at ``root``, on the backend the root names."""

    def __init__(self, project: str, root: str | os.PathLike[str] | None = None) -> None:
        self.log: EventLog = open_log(project, root)
        self.project = self.log.project

    def __repr__(self) -> str:
        return f"Projection({self.project!r}, root={self.log.label!r})"

    # ── one batch ───────────────────────────────────────────────────────────

    def manifest(self, batch_id: str) -> Manifest | None:
        """The batch's current manifest; None for a legacy flat batch (no log).

        UnknownBatch when the batch has neither a complete event nor a flat body
        (R16: a mistyped id, project or root is never read as "no log").
        """
        batch_id = validate_batch_id(batch_id)
        log = self.log
        # The snapshot is read before the head: a writer commits before it
        # rewrites the snapshot, so one at the head's seq is that state (R17).
        snapshot = log.snapshot(batch_id)
        try:
            last = log.last_seq(batch_id)
        except NotADirectoryError:  # the file backend's root or project is a file
            raise self._unknown(batch_id) from None
        if not last:  # no log, or one whose first command never completed
            log.check_unimported(batch_id)
            if not log.body_exists(batch_id, flat_name(batch_id)):
                raise self._unknown(batch_id)
            return None
        if snapshot is not None and snapshot.seq == last and snapshot.batch_id == batch_id:
            return snapshot
        manifest = self._fold(batch_id)
        if snapshot is None or snapshot.seq < manifest.seq or snapshot.batch_id != batch_id:
            # A writer died between its commit and its snapshot (or the snapshot
            # was lost): mend it for the tools that read it directly.
            log.mend_snapshot(manifest)
        return manifest

    def _unknown(self, batch_id: str) -> UnknownBatch:
        """UnknownBatch saying which part is missing: the root, the project or the batch."""
        where = self.log.project_absence() or (
            f"it has neither a log nor a flat body in project {self.project} under {self.log.label}"
        )
        return UnknownBatch(
            f"unknown batch {batch_id}: {where}; check the id, --root and --project",
            batch_id=batch_id,
            path=self.log.where(batch_id),
        )

    def _fold(self, batch_id: str, events: list[Event] | None = None) -> Manifest:
        """Fold the log (or the given prefix of it); DamagedLog names where and which event."""
        if events is None:
            events = self.log.read(batch_id)
        return fold(batch_id, events, path=self.log.where(batch_id))

    def require(self, batch_id: str) -> Manifest:
        """The batch's manifest; UnknownBatch when it has no log."""
        manifest = self.manifest(batch_id)
        if manifest is None:
            raise UnknownBatch(
                f"batch {batch_id} has no log in project {self.project} under "
                f"{self.log.label} (a legacy flat batch): write a version first",
                batch_id=batch_id,
            )
        return manifest

    def is_fresh(self, batch_id: str) -> bool:
        """R16, the gate: a legacy flat batch (no log), or the active version is derived.

        UnknownBatch when the batch has neither a log nor a flat body.
        """
        manifest = self.manifest(batch_id)
        return manifest is None or manifest.is_fresh

    def blocked_reason(self, batch_id: str) -> str | None:
        """Why the gate is blocked (:meth:`Manifest.blocked_reason`), None when it is fresh.

        UnknownBatch when the batch has neither a log nor a flat body.
        """
        manifest = self.manifest(batch_id)
        return None if manifest is None else manifest.blocked_reason()

    def history(self, batch_id: str) -> list[Event]:
        """Every committed event of the batch in seq order (checked by a fold); [] without a log."""
        batch_id = validate_batch_id(batch_id)
        events = self._events(batch_id)
        self._fold(batch_id, events)
        return events

    def _events(self, batch_id: str) -> list[Event]:
        if not self.log.exists(batch_id):
            self.log.check_unimported(batch_id)
            return []
        return self.log.read(batch_id)

    def as_of(
        self, batch_id: str, *, seq: int | None = None, at: datetime | str | None = None
    ) -> Manifest:
        """The manifest exactly as it was after event ``seq``, or at time ``at``.

        The log's order is seq, never time: ``at`` selects the longest prefix
        of the log whose events are all stamped at or before ``at``. An event
        stamped after ``at`` ends the prefix even when a later event carries an
        earlier stamp (a writer whose clock was behind), so the answer is always
        a state the batch really passed through. Times compare as instants in
        any zone and any year. Before the first event the manifest has no
        versions and seq 0.
        """
        if (seq is None) == (at is None):
            raise InvalidInput("as_of needs exactly one of seq= or at=")
        batch_id = validate_batch_id(batch_id)
        events = self._events(batch_id)
        if not events:
            self.require(batch_id)
        if seq is not None:
            if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
                raise InvalidInput(f"invalid seq {seq!r}: a whole number >= 0")
            if seq > len(events):
                raise InvalidInput(
                    f"batch {batch_id} has {len(events)} events: seq {seq} is in the future"
                )
            count = seq
        else:
            assert at is not None
            moment = parse_moment(at)
            where = self.log.where(batch_id)
            count = 0
            for event in events:
                if event_moment(event, path=where) > moment:
                    break
                count += 1
        return self._fold(batch_id, events[:count])

    def repair_view(self, batch_id: str) -> bool:
        """Rewrite a missing, stale or edited snapshot from the log; True when it was rewritten."""
        batch_id = validate_batch_id(batch_id)
        if not self.log.exists(batch_id):
            return False
        manifest = self._fold(batch_id)
        if self.log.snapshot(batch_id) == manifest:
            return False
        return self.log.mend_snapshot(manifest)

    def _entry(self, batch_id: str, version: int) -> VersionEntry:
        """The entry of a registered ``version`` (UnknownBatch, UnregisteredVersion)."""
        manifest = self.require(batch_id)
        validate_version(version, batch_id=batch_id)
        entry = manifest.entry(version)
        if entry is None:
            raise UnregisteredVersion(
                f"version {version} is not registered for batch {batch_id}; run "
                f"`scenelog show {batch_id}`",
                batch_id=batch_id,
                version=version,
            )
        return entry

    def body_bytes(self, batch_id: str, version: int) -> bytes:
        """The stored bytes of a registered ``version``'s body (BodyMissing when gone)."""
        return self.log.read_body(batch_id, self._entry(batch_id, version).artifact)

    def body_path(self, batch_id: str, version: int) -> str | None:
        """The file of a registered ``version``'s body on the file backend; None elsewhere."""
        return self.log.body_path(batch_id, self._entry(batch_id, version).artifact)

    def body(self, batch_id: str, version: int) -> Scene:
        """The body of a registered ``version`` (UnregisteredVersion, BodyMissing, DamagedBody)."""
        name = self._entry(batch_id, version).artifact
        data = self.log.read_body(batch_id, name)
        return _scene(data, self.log.body_path(batch_id, name) or self.log.where(batch_id, name))

    def diff(self, batch_id: str, a: int, b: int) -> SceneDiff:
        """Shot-level differences from version ``a`` to version ``b``."""
        from projections.diff import diff_scenes

        return diff_scenes(batch_id, a, self.body(batch_id, a), b, self.body(batch_id, b))

    # ── an episode, a project ──────────────────────────────────────────────

    def episodes(self) -> list[str]:
        return self.log.episodes()

    def batches(self, episode: int | str | None = None) -> list[str]:
        """Batch ids that have a log, in one episode or the whole project, sorted.

        InvalidInput when the project is not there (a mistyped project or root,
        an unmounted store): an empty answer means an existing project with no
        batches.
        """
        episodes = [normalize_episode(episode)] if episode is not None else None
        self.require_project()
        if episodes is None:
            episodes = self.episodes()
        return [b for ep in episodes for b in self.log.batches(ep)]

    def require_project(self) -> None:
        """InvalidInput unless the project is there (on files: the root and project folders)."""
        absence = self.log.project_absence()
        if absence is not None:
            raise InvalidInput(
                f"{absence}: check --root / $SCENELOG_ROOT and --project / $SCENELOG_PROJECT",
                path=self.log.label,
                project=self.project,
            )

    def summaries(
        self, episode: int | str | None = None, *, at: datetime | str | None = None
    ) -> list[BatchSummary]:
        """One BatchSummary per batch with a log; with ``at``, as each batch was then.

        With ``at`` (see :meth:`as_of`), a batch that had no event yet at that
        moment is left out.
        """
        moment = None if at is None else parse_moment(at)
        result = []
        for batch_id in self.batches(episode):
            if moment is None:
                manifest = self.manifest(batch_id)
            else:
                manifest = self.as_of(batch_id, at=moment)
                if manifest.seq == 0:
                    continue
            if manifest is not None:
                result.append(BatchSummary(batch_id, manifest))
        return result

    def pending(
        self, episode: int | str | None = None, *, at: datetime | str | None = None
    ) -> list[BatchSummary]:
        """Batches whose active version is not derived: what the gate blocks (then, with ``at``)."""
        return [s for s in self.summaries(episode, at=at) if not s.manifest.is_fresh]

    def candidates(
        self, episode: int | str | None = None, *, at: datetime | str | None = None
    ) -> list[BatchSummary]:
        """Batches with candidate versions newer than the active one (then, with ``at``)."""
        return [s for s in self.summaries(episode, at=at) if s.awaiting_review]

    def audit(
        self,
        *,
        episode: int | str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        types: Sequence[str] = ("conformed", "reverted"),
        actor: str | None = None,
        imported: bool = True,
        on_damaged: Callable[[str, DamagedLog], None] | None = None,
    ) -> list[AuditRow]:
        """Every event of ``types`` across the project (or ``episode``), oldest first.

        ``since`` and ``until`` bound ``at`` inclusively, compared as instants
        (any zone, any year; a date is 00:00 UTC); ``actor`` matches exactly;
        ``imported=False`` leaves out events carried over by ``scenelog
        import``. Rows are ordered by time, then batch and seq.

        A batch whose log is damaged raises DamagedLog, unless ``on_damaged``
        is given: then it is called with the batch id and the error, the batch
        is left out, and the audit goes on with the next batch.
        """
        unknown = set(types) - set(EVENT_TYPES)
        if unknown:
            raise InvalidInput(f"unknown event types {sorted(unknown)}: use {EVENT_TYPES}")
        low = parse_moment(since) if since is not None else None
        high = parse_moment(until) if until is not None else None
        keyed = []
        for batch_id in self.batches(episode):
            try:
                rows = self._audit_batch(batch_id, types, actor, imported, low, high)
            except DamagedLog as e:
                if on_damaged is None:
                    raise
                on_damaged(batch_id, e)
                continue
            keyed.extend(rows)
        keyed.sort(key=lambda pair: pair[0])
        return [row for _, row in keyed]

    def _audit_batch(
        self,
        batch_id: str,
        types: Sequence[str],
        actor: str | None,
        imported: bool,
        low: datetime | None,
        high: datetime | None,
    ) -> list[tuple[tuple[datetime, str, int], AuditRow]]:
        where = self.log.where(batch_id)
        keyed = []
        for event in self.history(batch_id):
            if event.type not in types or (actor is not None and event.actor != actor):
                continue
            if not imported and getattr(event, "imported", False):
                continue
            moment = event_moment(event, path=where)
            if (low is not None and moment < low) or (high is not None and moment > high):
                continue
            keyed.append(((moment, event.batch_id, event.seq), AuditRow.of(event)))
        return keyed

    def unimported(self, episode: int | str | None = None) -> list[str]:
        """Batches with a reference-format manifest and no log (R21: import them first)."""
        episodes = [normalize_episode(episode)] if episode is not None else self.episodes()
        return [b for ep in episodes for b in self.log.unimported(ep)]


def _scene(data: bytes, where: str) -> Scene:
    """A stored body as a Scene; DamagedBody naming ``where`` when it is not one.

    No size limit applies: the body was accepted when it was written.
    """
    try:
        return Scene.from_json(data, max_bytes=max(len(data), 1))
    except SceneFormatError as e:
        token = e.facts.get("token")
        if token is not None:
            raise DamagedBody(
                f"scene body {where} is not valid JSON: it contains {token}, which JSON does "
                "not allow (the reference's json.dump writes it for a float that is not a "
                f"number); edit the file to replace each {token} with null or a number, then "
                "run the command again",
                path=where,
                token=token,
            ) from e
        raise DamagedBody(
            f"scene body {where} is unreadable: {e}; restore it from backup or run "
            "`scenelog verify`",
            path=where,
        ) from e
