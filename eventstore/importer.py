"""Import reference-format ``versions.json`` manifests as logs.

A studio moving from the reference store has one mutable ``versions.json``
per batch and no log. ``import_manifests`` turns each into a log whose fold
reproduces the manifest — every version with its fields and ``created_at``,
and the active version — with every event marked ``imported`` and actor and
reason saying so. The reading, checking and drafting here is shared with
``eventstore.adopt`` (``scenelog import --adopt``, R29).

What a manifest must be (anything else is refused with a finding naming the
field; nothing is guessed and nothing is written for that batch):
- Numbers (``version``, ``parent_version``, ``shot_count``, ``active_version``,
  ``schema_version``) are whole numbers. An integral float (``2.0``, which
  the reference writes when it was called with ``2.0``) is the same number to
  the reference — it compares ``2 == 2.0`` — so it is normalized to the int;
  ``2.5``, ``NaN``, a boolean (``true`` is not a version), a string or a
  number outside the 64-bit range is refused.
- ``created_at`` is an ISO 8601 timestamp with a time of day (what
  ``datetime.fromisoformat`` reads, ASCII only). It is normalized to the
  log's form, UTC with microseconds and ``Z`` and always a 4-digit year, so
  that ``at`` stays comparable as text: an aware time is converted to UTC;
  a naive one is taken as UTC, because the reference stamps with its
  ``utc_now_iso8601`` helper (a naive ``utcnow().isoformat()`` spelling is
  still UTC). A time that is not in UTC range after conversion is refused.
  The backend keeps the original bytes (the file backend in
  ``<batch>.versions.json.reference``).
- Before anything is written, the events are encoded, decoded back, checked
  with the rules verify uses and folded, and the fold must equal the
  (normalized) manifest: import never writes a line it cannot read back.

Everything goes through the project's :class:`eventstore.log.EventLog`
(:func:`eventstore.log.open_log`): the manifests are the backend's
``legacy_manifest``, listed by ``unimported``; bodies are checked with
``body_exists``; nothing here names a file.

Invariants:
- Every event of one batch is appended by one ``append`` (one command, R24).
- The batch's reference lock (``legacy_lock``: on files ``flock`` on
  ``<batch>.versions.lock``, only when the file exists, never created) and
  then the batch's session are held while the manifest is read, checked,
  backed up and appended (R29, R14).
- Idempotent and cooperative: a batch whose log has events, found under the
  locks or right after its manifest was read without them, is reported
  ``already_imported`` and left alone, so concurrent imports of one episode
  each import every batch at most once and all finish (an import commits its
  log before it rewrites the manifest, so a manifest read before the log
  appeared is never taken for a view that lost its log).
- Crash at each step of an import: before the backup, nothing changed;
  after the backup (``keep_legacy_manifest``, durable) but before the append,
  a backup of a manifest that was not imported — the next import replaces it
  with the bytes it imports; after the append, the log is the truth and the
  old manifest, which has no ``seq``, is never trusted as a view (commands
  refuse it as foreign, R29, and ``scenelog import --adopt`` rewrites it,
  appending nothing); after the commit's snapshot rewrite, done.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import msgspec

from eventstore.errors import DamagedLog
from eventstore.events import (
    Appended,
    Conformed,
    Derived,
    Event,
    Reverted,
    decode_event,
    default_actor,
    encode_event,
    new_event_id,
    utc_now,
)
from eventstore.layout import normalize_episode
from eventstore.log import DEFAULT_LOCK_TIMEOUT, EventLog, LogSession, open_log
from eventstore.manifest import SCHEMA_VERSION, Fold, VersionEntry
from eventstore.rules import DOWNSTREAMS, KINDS, STATES, check_event, flat_name

__all__ = ["ImportOutcome", "import_manifests", "normalize_timestamp"]

_ENTRY_KEYS = set(VersionEntry.__struct_fields__)
_MAX_INT = 2**63 - 1


@dataclass
class ImportOutcome:
    """What happened to one reference manifest."""

    batch_id: str
    status: str  # imported | would_import | already_imported | refused
    versions: int = 0
    active_version: int | None = None
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "status": self.status,
            "versions": self.versions,
            "active_version": self.active_version,
            "problems": self.problems,
        }


# ── reading a manifest ───────────────────────────────────────────────────────


def normalize_timestamp(value: object) -> str | None:
    """``value`` as the log writes ``at`` (UTC, microseconds, ``Z``), or None if not one.

    Accepts an ISO 8601 date and time (ASCII); a naive time is taken as UTC.
    """
    if not isinstance(value, str) or not value.isascii() or len(value) <= len("2026-01-01"):
        return None
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        parsed = parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return (
        f"{parsed.year:04d}-{parsed.month:02d}-{parsed.day:02d}T{parsed.hour:02d}:"
        f"{parsed.minute:02d}:{parsed.second:02d}.{parsed.microsecond:06d}Z"
    )


def _shown(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: findings stay one readable line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _whole(value: object, where: str, problems: list[str], *, minimum: int) -> int | None:
    """``value`` as an int (an integral float normalized), or None with a problem noted."""
    number: int | None = None
    if isinstance(value, bool):
        problems.append(f"{where} is {_shown(value)}, a boolean, not a whole number")
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    if number is None:
        problems.append(f"{where} is {_shown(value)}, not a whole number")
        return None
    if not minimum <= number <= _MAX_INT:
        problems.append(f"{where} is {_shown(value)}, outside {minimum}..2**63-1")
        return None
    return number


class _Batch(NamedTuple):
    """One batch on its backend, as import and adopt read it and name it in findings."""

    log: EventLog
    batch_id: str

    @property
    def name(self) -> str:
        """The reference manifest's name (``<batch>.versions.json``)."""
        return self.log.legacy_name(self.batch_id)

    @property
    def where(self) -> str:
        """Where the reference manifest lives (a path on the file backend)."""
        return self.log.where(self.batch_id, self.name)

    def manifest_bytes(self) -> bytes | None:
        return self.log.legacy_manifest(self.batch_id)

    def fold(self) -> Fold:
        """An empty fold of the batch, naming its log in errors."""
        return Fold(self.batch_id, path=self.log.where(self.batch_id))


@dataclass
class _Manifest:
    """A reference-format manifest, checked and normalized."""

    active_version: int
    entries: list[VersionEntry]
    seq: int | None  # the seq a scenelog view claimed, when the manifest has one


def _entry(batch: _Batch, raw: object, problems: list[str]) -> VersionEntry | None:
    if not isinstance(raw, dict):
        problems.append(f"entry {_shown(raw)} is not an object")
        return None
    where = f"entry v{_shown(raw.get('version'), 20)}"
    if set(raw) != _ENTRY_KEYS:
        missing, extra = sorted(_ENTRY_KEYS - set(raw)), sorted(set(raw) - _ENTRY_KEYS)
        problems.append(
            f"{where} keys differ from the reference's (missing {missing}, extra {extra})"
        )
        return None
    found: list[str] = []
    version = _whole(raw["version"], f"{where}: version", found, minimum=1)
    shot_count = _whole(raw["shot_count"], f"{where}: shot_count", found, minimum=0)
    parent = raw["parent_version"]
    if parent is not None:
        parent = _whole(parent, f"{where}: parent_version", found, minimum=1)
    for key, allowed in (("state", STATES), ("downstream", DOWNSTREAMS), ("kind", KINDS)):
        if not isinstance(raw[key], str) or raw[key] not in allowed:
            found.append(f"{where}: {key} {_shown(raw[key])} is not one of {allowed}")
    for key in ("artifact", "source", "structure_fingerprint"):
        if not isinstance(raw[key], str):
            found.append(f"{where}: {key} is not a string")
    created_at = normalize_timestamp(raw["created_at"])
    if created_at is None:
        found.append(
            f"{where}: created_at {_shown(raw['created_at'])} is not an ISO 8601 date and time "
            "(e.g. 2026-03-01T10:00:00.000000Z)"
        )
    if not found:
        try:
            present = batch.log.body_exists(batch.batch_id, raw["artifact"])
        except ValueError:  # a name that is not one of this batch's bodies
            found.append(f"{where}: artifact {_shown(raw['artifact'])} is not this batch's")
        else:
            if not present:
                found.append(f"{where}: body {raw['artifact']} is missing")
    problems.extend(found)
    if found or version is None or shot_count is None or created_at is None:
        return None
    return VersionEntry(
        version,
        raw["artifact"],
        raw["state"],
        raw["downstream"],
        raw["kind"],
        raw["source"],
        parent,
        raw["structure_fingerprint"],
        shot_count,
        created_at,
    )


def _parse(batch: _Batch, data: bytes | None) -> tuple[_Manifest | None, list[str]]:
    """The manifest in ``data`` checked and normalized, or None and what is wrong with it."""
    if data is None:
        return None, [f"{batch.name} is missing"]
    try:
        raw = msgspec.json.decode(data)
    except msgspec.DecodeError as e:
        return None, [f"{batch.name} is not readable JSON ({e})"]
    if not isinstance(raw, dict):
        return None, [f"{batch.name} is not a JSON object"]
    problems: list[str] = []
    if raw.get("batch_id", batch.batch_id) != batch.batch_id:
        problems.append(f"batch_id {_shown(raw.get('batch_id'))} is not {batch.batch_id}")
    if "schema_version" in raw:
        schema = _whole(raw["schema_version"], "schema_version", problems, minimum=1)
        if schema is not None and schema != SCHEMA_VERSION:
            problems.append(f"schema_version {schema} is not {SCHEMA_VERSION}")
    seq = None
    if "seq" in raw:
        seq = _whole(raw["seq"], "seq", problems, minimum=0)
    versions = raw.get("versions")
    if not isinstance(versions, list) or not versions:
        return None, [*problems, "no versions list"]
    entries = [_entry(batch, item, problems) for item in versions]
    numbers = [e.version for e in entries if e is not None]
    duplicates = sorted(n for n, count in Counter(numbers).items() if count > 1)
    if duplicates:
        problems.append(f"versions registered more than once: {duplicates}")
    active = _whole(raw.get("active_version"), "active_version", problems, minimum=1)
    if active is not None and active not in numbers and len(numbers) == len(entries):
        problems.append(f"active_version {_shown(raw.get('active_version'))} is not registered")
    if problems or active is None:
        return None, problems
    return _Manifest(active, [e for e in entries if e is not None], seq), []


# ── drafting events that read back ───────────────────────────────────────────


class _Draft:
    """Events drafted on a copy of the fold; each one encoded, decoded and checked first."""

    def __init__(self, batch_id: str, start: Fold, actor: str, reason: str) -> None:
        self.batch_id = batch_id
        self.fold = start.copy()
        self.actor = actor
        self.reason = reason
        self.events: list[Event] = []
        self.problems: list[str] = []

    def add(self, draft: Event) -> None:
        if self.problems:
            return
        event = msgspec.structs.replace(draft, seq=self.fold.seq + 1, prev=None)
        what = f"{event.type} v{event.version}"
        try:
            back = decode_event(encode_event(event))
        except (msgspec.MsgspecError, UnicodeError, ValueError, OverflowError) as e:
            self.problems.append(f"{what} cannot be written as a readable event ({e})")
            return
        if back != event:
            self.problems.append(f"{what} does not read back as written")
            return
        problem = check_event(self.fold, back, flat_name=flat_name(self.batch_id))
        if problem is not None:
            self.problems.append(f"{what}: {problem}")
            return
        try:
            self.fold.apply(back)
        except DamagedLog as e:
            self.problems.append(f"{what} does not fold: {e}")
            return
        self.events.append(draft)

    def _envelope(self, version: int, at: str) -> dict[str, Any]:
        return {
            "seq": 0,
            "batch_id": self.batch_id,
            "version": version,
            "at": at,
            "actor": self.actor,
            "reason": self.reason,
            "event_id": new_event_id(),
            "prev": None,
            "imported": True,
        }

    def appended(self, entry: VersionEntry) -> None:
        fields = {k: v for k, v in entry.to_dict().items() if k not in ("version", "created_at")}
        self.add(Appended(**self._envelope(entry.version, entry.created_at), **fields))

    def move(self, kind: type[Conformed] | type[Reverted], version: int) -> None:
        previous = self.fold.active_version
        self.add(kind(**self._envelope(version, utc_now()), previous_active=previous))

    def derived(self, version: int) -> None:
        self.add(Derived(**self._envelope(version, utc_now())))

    def finish(self, entries: list[VersionEntry], active: int) -> list[str]:
        """Problems left: the drafts' own, or a fold that is not ``entries``/``active``."""
        if self.problems:
            return self.problems
        if self.fold.entries != entries or self.fold.active_version != active:
            return ["the events drafted do not fold to the manifest (report it)"]
        return []


def _import_events(batch: _Batch, manifest: _Manifest, actor: str) -> _Draft:
    reason = f"imported from reference manifest {batch.name}"
    draft = _Draft(batch.batch_id, batch.fold(), actor, reason)
    for entry in manifest.entries:
        draft.appended(entry)
    if draft.fold.active_version != manifest.active_version:
        draft.reason = reason + " (active version as recorded)"
        draft.move(Reverted, manifest.active_version)
    draft.problems = draft.finish(manifest.entries, manifest.active_version)
    return draft


# ── locks ─────────────────────────────────────────────────────────────────────


@contextlib.contextmanager
def _locked(batch: _Batch, timeout: float) -> Iterator[LogSession]:
    """The reference's lock (R29) and then the batch's session, in the order every command takes."""
    with (
        batch.log.legacy_lock(batch.batch_id, timeout=timeout),
        batch.log.session(batch.batch_id, timeout=timeout) as session,
    ):
        yield session


# ── import ───────────────────────────────────────────────────────────────────


def import_manifests(
    project: str,
    root: str | os.PathLike[str] | None = None,
    *,
    episode: int | str | None = None,
    dry_run: bool = False,
    actor: str | None = None,
    log: EventLog | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
) -> list[ImportOutcome]:
    """Import every reference-format manifest without a log (of ``episode``, or all).

    Safe to run from several processes at once: each batch is imported by one
    of them and reported ``already_imported`` by the others.
    """
    backend = log if log is not None else open_log(project, root)
    episodes = [normalize_episode(episode)] if episode is not None else backend.episodes()
    who = default_actor(actor)
    outcomes = []
    for ep in episodes:
        for batch_id in backend.unimported(ep):
            outcomes.append(_import_one(_Batch(backend, batch_id), who, dry_run, lock_timeout))
    return outcomes


def _already_imported(batch: _Batch) -> ImportOutcome:
    """The outcome for a batch another process imported since it was listed."""
    fold = batch.fold().apply_all(batch.log.read(batch.batch_id))
    return ImportOutcome(batch.batch_id, "already_imported", len(fold.entries), fold.active_version)


def _plan(batch: _Batch, data: bytes | None, actor: str) -> ImportOutcome | _Draft:
    manifest, problems = _parse(batch, data)
    if manifest is not None and manifest.seq is not None:
        problems = ["a scenelog view without its log: restore the log"]
    if manifest is None or problems:
        return ImportOutcome(batch.batch_id, "refused", problems=problems)
    draft = _import_events(batch, manifest, actor)
    if draft.problems:
        return ImportOutcome(batch.batch_id, "refused", problems=draft.problems)
    return draft


def _import_one(batch: _Batch, actor: str, dry_run: bool, timeout: float) -> ImportOutcome:
    """Import one manifest: checked, backed up and appended under the batch's locks.

    The commit's snapshot rewrite (the backend's, R17) replaces the manifest
    with scenelog's view of the same state.
    """
    # Checked first without any lock, so a refused manifest leaves no trace (not even a
    # lock file); the import itself re-reads and re-checks under the locks.
    data = batch.manifest_bytes()
    if batch.log.exists(batch.batch_id):
        # Looked for after the read: an import commits its log before it rewrites the
        # manifest, so bytes read before the log appeared are never taken for a lost log.
        return _already_imported(batch)
    plan = _plan(batch, data, actor)
    if isinstance(plan, ImportOutcome):
        return plan
    if dry_run:
        return ImportOutcome(
            batch.batch_id, "would_import", len(plan.fold.entries), plan.fold.active_version
        )
    with _locked(batch, timeout) as session:
        if session.fold.seq != 0:  # imported meanwhile by another process
            fold = session.fold
            return ImportOutcome(
                batch.batch_id, "already_imported", len(fold.entries), fold.active_version
            )
        original = batch.manifest_bytes()  # read under the locks: the bytes imported are these
        plan = _plan(batch, original, actor)
        if isinstance(plan, ImportOutcome):
            return plan
        assert original is not None
        batch.log.keep_legacy_manifest(batch.batch_id, original)
        session.append(plan.events)
        fold = session.fold
        return ImportOutcome(batch.batch_id, "imported", len(fold.entries), fold.active_version)
