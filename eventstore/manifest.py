"""The manifest and the fold that builds it from a batch's events.

The fold is pure: events in, :class:`Manifest` out. It lives beside the events
because commands validate against it under the lock; ``projections`` builds
its read models on the same fold.

Invariants the fold checks (a log that breaks them is damaged, R18):
- ``seq`` runs 1, 2, 3… without a gap; every event names the log's batch;
- ``appended`` registers a version not registered before;
- pointer and ``derived`` events name a registered version.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from eventstore.errors import DamagedLog
from eventstore.events import Appended, Conformed, Derived, Event, Reverted

__all__ = [
    "SCHEMA_VERSION",
    "Fold",
    "Manifest",
    "VersionEntry",
    "decode_manifest",
    "encode_manifest",
    "fold",
]

SCHEMA_VERSION = 2


class VersionEntry(msgspec.Struct, frozen=True):
    """One registered version as the manifest lists it (DESIGN §4)."""

    version: int
    artifact: str
    state: str
    downstream: str
    kind: str
    source: str
    parent_version: int | None
    structure_fingerprint: str
    shot_count: int
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = msgspec.to_builtins(self)
        return result


class Manifest(msgspec.Struct, frozen=True):
    """A batch's manifest after event ``seq`` — the fold of its log and its view."""

    batch_id: str
    active_version: int | None
    seq: int
    versions: tuple[VersionEntry, ...]
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The §4 dict: schema_version, batch_id, active_version, seq, versions."""
        return {
            "schema_version": self.schema_version,
            "batch_id": self.batch_id,
            "active_version": self.active_version,
            "seq": self.seq,
            "versions": [entry.to_dict() for entry in self.versions],
        }

    def entry(self, version: int) -> VersionEntry | None:
        """The entry of ``version``, or None when it is not registered."""
        for entry in self.versions:
            if entry.version == version:
                return entry
        return None

    @property
    def active(self) -> VersionEntry | None:
        """The entry the pointer names."""
        return None if self.active_version is None else self.entry(self.active_version)

    @property
    def is_fresh(self) -> bool:
        """R16: the active version's boards are rebuilt."""
        active = self.active
        return active is not None and active.downstream == "derived"

    @property
    def max_version(self) -> int:
        return max((entry.version for entry in self.versions), default=0)

    def blocked_reason(self) -> str | None:
        """Why the dispatch gate is blocked (R16), or None when it is fresh.

        The one statement of the reason, for the library, the renderer, the
        CLI and ``gate --json``: ``"no active version"`` or ``"vN active,
        boards not rebuilt"`` (shown as ``BATCH: blocked (REASON)``).
        """
        active = self.active
        if active is None:
            return "no active version"
        if active.downstream == "derived":
            return None
        return f"v{active.version} active, boards not rebuilt"


class _ViewFile(msgspec.Struct):
    schema_version: int
    batch_id: str
    active_version: int | None
    seq: int
    versions: tuple[VersionEntry, ...]


_view_encoder = msgspec.json.Encoder()
_view_decoder = msgspec.json.Decoder(Manifest)


def encode_manifest(manifest: Manifest) -> bytes:
    """The view file's bytes: the §4 object, keys in §4 order."""
    view = _ViewFile(
        manifest.schema_version,
        manifest.batch_id,
        manifest.active_version,
        manifest.seq,
        manifest.versions,
    )
    return _view_encoder.encode(view) + b"\n"


def decode_manifest(data: bytes) -> Manifest:
    """A view file's bytes back to a Manifest (msgspec errors when it is not one)."""
    return _view_decoder.decode(data)


class Fold:
    """A fold in progress: apply events one by one, read the Manifest at any time.

    ``path`` names the log in errors; ``first_line`` is the line number of the
    first event applied (for folds resumed from a cached position).
    """

    __slots__ = ("_encoded", "_index", "active_version", "batch_id", "entries", "path", "seq")

    def __init__(self, batch_id: str, *, path: str = "<log>") -> None:
        self.batch_id = batch_id
        self.path = path
        self.seq = 0
        self.active_version: int | None = None
        self.entries: list[VersionEntry] = []
        self._index: dict[int, int] = {}
        # Each entry's view encoding, made when a view is first written and
        # dropped when the entry changes: a view rewrite encodes only what changed.
        self._encoded: list[bytes | None] = []

    def entry(self, version: int) -> VersionEntry | None:
        position = self._index.get(version)
        return None if position is None else self.entries[position]

    @property
    def max_version(self) -> int:
        return max(self._index, default=0)

    def manifest(self) -> Manifest:
        return Manifest(self.batch_id, self.active_version, self.seq, tuple(self.entries))

    def view_bytes(self) -> bytes:
        """The view file's bytes, equal to ``encode_manifest(self.manifest())``."""
        return b"".join(self.view_chunks())

    def view_chunks(self) -> list[bytes]:
        """The view file's bytes in pieces, for one ``writev`` without a large copy."""
        encoded = self._encoded
        for position, data in enumerate(encoded):
            if data is None:
                encoded[position] = _view_encoder.encode(self.entries[position])
        active = b"null" if self.active_version is None else str(self.active_version).encode()
        head = b'{"schema_version":%d,"batch_id":%s,"active_version":%s,"seq":%d,"versions":[' % (
            SCHEMA_VERSION,
            _view_encoder.encode(self.batch_id),
            active,
            self.seq,
        )
        return [head, b",".join(encoded), b"]}\n"]  # type: ignore[arg-type]

    def copy(self) -> Fold:
        other = Fold(self.batch_id, path=self.path)
        other.seq = self.seq
        other.active_version = self.active_version
        other.entries = list(self.entries)
        other._index = dict(self._index)
        other._encoded = list(self._encoded)
        return other

    def _damaged(self, event: Event, what: str) -> DamagedLog:
        line = self.seq + 1
        return DamagedLog(
            f"{self.path}:{line}: {what}; the log of batch {self.batch_id} is damaged — "
            "run `scenelog verify` and restore the log from backup",
            path=self.path,
            line=line,
            batch_id=self.batch_id,
            seq=event.seq,
        )

    def apply_all(self, events: Iterable[Event]) -> Fold:
        for event in events:
            self.apply(event)
        return self

    def apply(self, event: Event) -> None:
        """Fold one event in; DamagedLog if it cannot follow the events before it."""
        if event.seq != self.seq + 1:
            raise self._damaged(event, f"seq {event.seq} where {self.seq + 1} was due")
        if event.batch_id != self.batch_id:
            raise self._damaged(event, f"event of batch {event.batch_id!r} in this log")
        kind = type(event)
        version = event.version
        if kind is Appended:
            assert isinstance(event, Appended)
            if version in self._index:
                raise self._damaged(event, f"version {version} registered twice")
            self._index[version] = len(self.entries)
            self._encoded.append(None)
            self.entries.append(
                VersionEntry(
                    version,
                    event.artifact,
                    event.state,
                    event.downstream,
                    event.kind,
                    event.source,
                    event.parent_version,
                    event.structure_fingerprint,
                    event.shot_count,
                    event.at,
                )
            )
            if self.active_version is None:
                self.active_version = version
        else:
            position = self._index.get(version)
            if position is None:
                raise self._damaged(event, f"{event.type} names unregistered version {version}")
            if kind is Conformed:
                self.active_version = version
                entry = self.entries[position]
                if entry.state != "approved":
                    self.entries[position] = msgspec.structs.replace(entry, state="approved")
                    self._encoded[position] = None
            elif kind is Reverted:
                self.active_version = version
            elif kind is Derived:
                entry = self.entries[position]
                if entry.downstream != "derived":
                    self.entries[position] = msgspec.structs.replace(entry, downstream="derived")
                    self._encoded[position] = None
        self.seq = event.seq


def fold(batch_id: str, events: Iterable[Event], *, path: str = "<log>") -> Manifest:
    """The Manifest after ``events`` (the first must be seq 1)."""
    return Fold(batch_id, path=path).apply_all(events).manifest()
