"""Import reference-format ``versions.json`` manifests as logs.

A studio moving from the reference store has one mutable ``versions.json``
per batch and no log. ``import_manifests`` turns each into a log whose fold
reproduces the manifest exactly — every version with its fields and
``created_at``, and the active version — with every event marked
``imported`` and actor and reason saying so.

Invariants:
- A manifest that breaks the reference's own invariants (duplicate versions,
  an active version not registered, a missing body, malformed entries) is
  refused with a report; nothing is guessed and nothing is written for it.
- Idempotent: a batch with a log is never imported again.
- Crash at each step: before the log append, nothing changed (the original
  bytes are already copied to ``<batch>.versions.json.reference``); after the
  append, the log is the truth and the old view, which has no ``seq``, is
  never trusted; after the view rewrite, done.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from eventstore.events import Appended, Event, Reverted, default_actor, new_event_id, utc_now
from eventstore.fsio import write_once
from eventstore.layout import BatchPaths, Layout, normalize_episode
from eventstore.log import EventLog, FileLog
from eventstore.manifest import VersionEntry
from eventstore.rules import DOWNSTREAMS, KINDS, STATES
from eventstore.views import load_reference_manifest, write_view

__all__ = ["ImportOutcome", "import_manifests"]

_ENTRY_KEYS = set(VersionEntry.__struct_fields__)


@dataclass
class ImportOutcome:
    """What happened to one reference manifest."""

    batch_id: str
    status: str  # imported | would_import | refused
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


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _entry_problems(paths: BatchPaths, entry: object) -> list[str]:
    if not isinstance(entry, dict):
        return [f"entry {entry!r} is not an object"]
    where = f"entry v{entry.get('version')}"
    problems = []
    if set(entry) != _ENTRY_KEYS:
        missing, extra = sorted(_ENTRY_KEYS - set(entry)), sorted(set(entry) - _ENTRY_KEYS)
        problems.append(
            f"{where} keys differ from the reference's (missing {missing}, extra {extra})"
        )
        return problems
    if not _is_int(entry["version"]) or entry["version"] < 1:
        problems.append(f"{where}: version is not a whole number >= 1")
    for key, allowed in (("state", STATES), ("downstream", DOWNSTREAMS), ("kind", KINDS)):
        if entry[key] not in allowed:
            problems.append(f"{where}: {key} {entry[key]!r} is not one of {allowed}")
    for key in ("artifact", "source", "structure_fingerprint", "created_at"):
        if not isinstance(entry[key], str):
            problems.append(f"{where}: {key} is not a string")
    if not _is_int(entry["shot_count"]):
        problems.append(f"{where}: shot_count is not a whole number")
    if entry["parent_version"] is not None and not _is_int(entry["parent_version"]):
        problems.append(f"{where}: parent_version is not a version")
    if not problems:
        try:
            body = paths.artifact(entry["artifact"])
        except ValueError:
            problems.append(f"{where}: artifact {entry['artifact']!r} is not this batch's")
        else:
            if not body.exists():
                problems.append(f"{where}: body {body.name} is missing")
    return problems


def check_reference(paths: BatchPaths, data: dict[str, Any] | None) -> list[str]:
    """What keeps the manifest from being imported as it is (empty: nothing)."""
    if data is None:
        return ["versions.json is not a JSON object"]
    problems = []
    if data.get("batch_id", paths.batch_id) != paths.batch_id:
        problems.append(f"batch_id {data.get('batch_id')!r} is not {paths.batch_id}")
    versions = data.get("versions")
    if not isinstance(versions, list) or not versions:
        return [*problems, "no versions list"]
    for entry in versions:
        problems.extend(_entry_problems(paths, entry))
    numbers = [e.get("version") for e in versions if isinstance(e, dict)]
    duplicates = sorted({n for n in numbers if numbers.count(n) > 1}, key=str)
    if duplicates:
        problems.append(f"versions registered more than once: {duplicates}")
    if data.get("active_version") not in numbers:
        problems.append(f"active_version {data.get('active_version')!r} is not registered")
    return problems


def _events(paths: BatchPaths, data: dict[str, Any], actor: str, reason: str) -> list[Event]:
    events: list[Event] = []
    for entry in data["versions"]:
        events.append(
            Appended(
                seq=0,
                batch_id=paths.batch_id,
                version=entry["version"],
                at=entry["created_at"],
                actor=actor,
                reason=reason,
                event_id=new_event_id(),
                prev=None,
                artifact=entry["artifact"],
                state=entry["state"],
                downstream=entry["downstream"],
                kind=entry["kind"],
                source=entry["source"],
                parent_version=entry["parent_version"],
                structure_fingerprint=entry["structure_fingerprint"],
                shot_count=entry["shot_count"],
                imported=True,
            )
        )
    first, active = data["versions"][0]["version"], data["active_version"]
    if active != first:
        events.append(
            Reverted(
                seq=0,
                batch_id=paths.batch_id,
                version=active,
                at=utc_now(),
                actor=actor,
                reason=reason + " (active version as recorded)",
                event_id=new_event_id(),
                prev=None,
                previous_active=first,
                imported=True,
            )
        )
    return events


def import_manifests(
    project: str,
    root: str | os.PathLike[str] | None = None,
    *,
    episode: int | str | None = None,
    dry_run: bool = False,
    actor: str | None = None,
    log: EventLog | None = None,
) -> list[ImportOutcome]:
    """Import every reference-format manifest without a log (of ``episode``, or all)."""
    layout = Layout.of(project, root)
    episodes = [normalize_episode(episode)] if episode is not None else layout.episodes()
    backend = log if log is not None else FileLog(layout)
    who = default_actor(actor)
    outcomes = []
    for ep in episodes:
        for batch_id in layout.batch_ids(ep, suffix=".versions.json"):
            paths = layout.batch(batch_id)
            if backend.exists(batch_id):
                continue
            outcomes.append(_import_one(paths, backend, who, dry_run))
    return outcomes


def _import_one(paths: BatchPaths, log: EventLog, actor: str, dry_run: bool) -> ImportOutcome:
    data = load_reference_manifest(paths.view)
    if data is not None and "seq" in data:
        return ImportOutcome(
            paths.batch_id, "refused", problems=["a scenelog view without its log: restore the log"]
        )
    problems = check_reference(paths, data)
    if problems or data is None:
        return ImportOutcome(paths.batch_id, "refused", problems=problems)
    outcome = ImportOutcome(
        paths.batch_id,
        "would_import" if dry_run else "imported",
        len(data["versions"]),
        data["active_version"],
    )
    if dry_run:
        return outcome
    original = paths.view.read_bytes()
    backup = paths.view.with_name(paths.view.name + ".reference")
    if not backup.exists():
        write_once(backup, original, batch_id=paths.batch_id)
    reason = f"imported from reference manifest {paths.view.name}"
    with log.session(paths.batch_id) as session:
        if session.fold.seq != 0:  # imported meanwhile by another process
            outcome.status = "already_imported"
            return outcome
        session.append(_events(paths, data, actor, reason))
        write_view(paths.view, session.fold.manifest())
    return outcome
