"""Projection: the read side of one project — manifests, the gate, history, time travel.

Invariants:
- Nothing here takes a lock or writes a log (R22); the only write is
  ``repair_view``'s atomic view rewrite.
- A view is trusted only when its ``seq`` equals the log's last complete
  seq, read from the log's end in time independent of its length; otherwise
  the log is folded (R17).
- A batch with a reference-format ``versions.json`` and no log raises
  UnimportedManifest instead of being read as "no log" (R21).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from eventstore import (
    BodyMissing,
    Event,
    InvalidInput,
    Layout,
    Manifest,
    Scene,
    UnknownBatch,
    UnregisteredVersion,
    VersionEntry,
    fold,
    load_scene,
)
from eventstore.events import EVENT_TYPES
from eventstore.layout import BatchPaths, normalize_episode, validate_batch_id, validate_version
from eventstore.log import last_seq_or_none, read_log_events
from eventstore.views import check_unimported, read_view, repair_view
from projections.diff import SceneDiff, diff_scenes

__all__ = ["AuditRow", "BatchSummary", "Projection", "parse_time"]


def parse_time(value: datetime | str) -> str:
    """An aware datetime or ISO 8601 string as the log's ``at`` form (UTC, µs, ``Z``)."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError as e:
            raise InvalidInput(
                f"invalid time {value!r}: use ISO 8601 with a zone, e.g. 2026-11-26T12:00:00Z"
            ) from e
    elif isinstance(value, datetime):
        moment = value
    else:
        raise InvalidInput(f"invalid time {value!r}: give a datetime or an ISO 8601 string")
    if moment.tzinfo is None:
        raise InvalidInput(f"time {value!r} has no zone: add Z or +HH:MM")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
    """Read models over every batch of ``project`` under ``root``."""

    def __init__(self, project: str, root: str | os.PathLike[str] | None = None) -> None:
        self.layout = Layout.of(project, root)
        self.project = self.layout.project

    def __repr__(self) -> str:
        return f"Projection({self.project!r}, root={str(self.layout.root)!r})"

    def _paths(self, batch_id: object) -> BatchPaths:
        return self.layout.batch(validate_batch_id(batch_id))

    # ── one batch ───────────────────────────────────────────────────────────

    def manifest(self, batch_id: str) -> Manifest | None:
        """The batch's current manifest; None when it has no log (or no complete event)."""
        paths = self._paths(batch_id)
        view = read_view(paths.view)
        last = last_seq_or_none(paths.log, paths.batch_id)
        if not last:  # no log, or one whose first line was never completed
            check_unimported(paths)
            return None
        if view is not None and view.seq == last and view.batch_id == paths.batch_id:
            return view
        manifest = self._fold(paths)
        if view is None or view.seq < manifest.seq or view.batch_id != paths.batch_id:
            # A writer died between its line and its view (or the view was lost):
            # mend it for the tools that read versions.json directly.
            repair_view(paths.view, manifest)
        return manifest

    @staticmethod
    def _fold(paths: BatchPaths, events: list[Event] | None = None) -> Manifest:
        """Fold the log (or the given prefix of it); DamagedLog names file and line."""
        if events is None:
            events = read_log_events(paths.log, paths.batch_id)
        return fold(paths.batch_id, events, path=str(paths.log))

    def require(self, batch_id: str) -> Manifest:
        """The batch's manifest; UnknownBatch when it has no log."""
        manifest = self.manifest(batch_id)
        if manifest is None:
            raise UnknownBatch(
                f"batch {batch_id} has no log in project {self.project} under "
                f"{self.layout.root}: check the id, --root and --project",
                batch_id=batch_id,
            )
        return manifest

    def is_fresh(self, batch_id: str) -> bool:
        """R16, the gate: no log (a flat batch), or the active version is derived."""
        manifest = self.manifest(batch_id)
        return manifest is None or manifest.is_fresh

    def history(self, batch_id: str) -> list[Event]:
        """Every committed event of the batch in seq order (checked by a fold)."""
        paths, events = self._events(batch_id)
        self._fold(paths, events)
        return events

    def _events(self, batch_id: str) -> tuple[BatchPaths, list[Event]]:
        paths = self._paths(batch_id)
        if not paths.log.exists():
            check_unimported(paths)
            return paths, []
        return paths, read_log_events(paths.log, paths.batch_id)

    def as_of(
        self, batch_id: str, *, seq: int | None = None, at: datetime | str | None = None
    ) -> Manifest:
        """The manifest exactly as it was after event ``seq``, or at time ``at``.

        ``at`` selects every event whose ``at`` is at or before it. Before the
        first event the manifest has no versions and seq 0.
        """
        if (seq is None) == (at is None):
            raise InvalidInput("as_of needs exactly one of seq= or at=")
        paths, events = self._events(batch_id)
        if not events:
            self.require(batch_id)
        if seq is not None:
            if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
                raise InvalidInput(f"invalid seq {seq!r}: a whole number >= 0")
            if seq > len(events):
                raise InvalidInput(
                    f"batch {batch_id} has {len(events)} events: seq {seq} is in the future"
                )
            chosen = events[:seq]
        else:
            assert at is not None
            moment = parse_time(at)
            chosen = [e for e in events if e.at <= moment]
        return self._fold(paths, chosen)

    def repair_view(self, batch_id: str) -> bool:
        """Rewrite a missing, stale or edited view from the log; True when it was rewritten."""
        paths = self._paths(batch_id)
        if not paths.log.exists():
            return False
        manifest = self._fold(paths)
        if read_view(paths.view) == manifest:
            return False
        return repair_view(paths.view, manifest)

    def body(self, batch_id: str, version: int) -> Scene:
        """The body of a registered ``version`` (UnregisteredVersion, BodyMissing)."""
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
        path = self._paths(batch_id).artifact(entry.artifact)
        try:
            return load_scene(path)
        except FileNotFoundError as e:
            raise BodyMissing(
                f"scene body {path} of batch {batch_id} is missing; restore it from backup",
                path=str(path),
                batch_id=batch_id,
            ) from e

    def diff(self, batch_id: str, a: int, b: int) -> SceneDiff:
        """Shot-level differences from version ``a`` to version ``b``."""
        return diff_scenes(batch_id, a, self.body(batch_id, a), b, self.body(batch_id, b))

    # ── an episode, a project ──────────────────────────────────────────────

    def episodes(self) -> list[str]:
        return self.layout.episodes()

    def batches(self, episode: int | str | None = None) -> list[str]:
        """Batch ids that have a log, in one episode or the whole project, sorted."""
        episodes = [normalize_episode(episode)] if episode is not None else self.episodes()
        return [b for ep in episodes for b in self.layout.batch_ids(ep)]

    def summaries(self, episode: int | str | None = None) -> list[BatchSummary]:
        """One BatchSummary per batch with a log."""
        result = []
        for batch_id in self.batches(episode):
            manifest = self.manifest(batch_id)
            if manifest is not None:
                result.append(BatchSummary(batch_id, manifest))
        return result

    def pending(self, episode: int | str | None = None) -> list[BatchSummary]:
        """Batches whose active version is not derived: what the gate blocks."""
        return [s for s in self.summaries(episode) if not s.manifest.is_fresh]

    def candidates(self, episode: int | str | None = None) -> list[BatchSummary]:
        """Batches with candidate versions newer than the active one."""
        return [s for s in self.summaries(episode) if s.awaiting_review]

    def audit(
        self,
        *,
        episode: int | str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        types: Sequence[str] = ("conformed", "reverted"),
        actor: str | None = None,
    ) -> list[AuditRow]:
        """Every event of ``types`` across the project (or ``episode``), oldest first.

        ``since`` and ``until`` bound ``at`` inclusively; ``actor`` matches exactly.
        """
        unknown = set(types) - set(EVENT_TYPES)
        if unknown:
            raise InvalidInput(f"unknown event types {sorted(unknown)}: use {EVENT_TYPES}")
        low = parse_time(since) if since is not None else None
        high = parse_time(until) if until is not None else None
        rows = []
        for batch_id in self.batches(episode):
            for event in self.history(batch_id):
                if event.type not in types or (actor is not None and event.actor != actor):
                    continue
                if (low is not None and event.at < low) or (high is not None and event.at > high):
                    continue
                rows.append(AuditRow.of(event))
        rows.sort(key=lambda r: (r.at, r.batch_id, r.seq))
        return rows

    def unimported(self, episode: int | str | None = None) -> list[str]:
        """Batches with a reference-format ``versions.json`` and no log."""
        episodes = [normalize_episode(episode)] if episode is not None else self.episodes()
        found = []
        for ep in episodes:
            for batch_id in self.layout.batch_ids(ep, suffix=".versions.json"):
                if not self.layout.batch(batch_id).log.exists():
                    found.append(batch_id)
        return found
