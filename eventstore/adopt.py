"""R29: ``scenelog import --adopt BATCH`` turns a foreign change to a view into events.

While tools built on the reference store still run, one of them may rewrite
the ``versions.json`` of a batch that has a log (its revert, conform,
mark_derived, or a new version appended with its body). Such a view is
never trusted or overwritten silently; ``adopt_view`` explains it with
events, or refuses.

The view and the reference lock are the backend's (``legacy_manifest``,
``legacy_lock``, ``write_snapshot`` of :class:`eventstore.log.EventLog`);
nothing here names a file.

Invariants:
- Everything happens under the reference lock (on files ``flock`` on
  ``<batch>.versions.lock``, only when the file exists, never created) and
  then the batch's session, like every command (R29, R14).
- The events are marked ``imported``, drafted on a copy of the fold, each
  encoded, decoded back, checked with verify's rules and folded before
  anything is written, and appended with one ``append`` (one command, R24).
- The fold after them equals the foreign view's content (when the foreign
  tool read the latest view), or the current fold with the foreign tool's
  change applied (when it read a stale one); anything else is refused with
  :class:`ForeignView` and nothing is written.
- Crash at each step: before the append, the foreign view is still there
  and adopt can run again; after it (the commit rewrites the view, R17), or
  after ``write_snapshot`` when no event was needed, the view is scenelog's;
  a crash before that rewrite leaves a view whose content is the fold's, and
  the next adopt appends nothing and rewrites it as scenelog's own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import msgspec

from eventstore.errors import ForeignView, UnimportedManifest, UnknownBatch
from eventstore.events import Conformed, Reverted, default_actor
from eventstore.importer import (
    _Batch,
    _Draft,
    _locked,
    _Manifest,
    _parse,
    _shown,
    normalize_timestamp,
)
from eventstore.layout import validate_batch_id
from eventstore.log import DEFAULT_LOCK_TIMEOUT, EventLog, open_log
from eventstore.manifest import Fold, VersionEntry
from eventstore.scene import Scene, structure_fingerprint

__all__ = ["AdoptOutcome", "adopt_view"]

_IMMUTABLE = (
    "artifact",
    "kind",
    "source",
    "parent_version",
    "structure_fingerprint",
    "shot_count",
    "created_at",
)


@dataclass
class AdoptOutcome:
    """What ``adopt_view`` did: the events that explain the foreign change."""

    batch_id: str
    status: str  # adopted | would_adopt | unchanged
    seq: int
    events: list[str] = field(default_factory=list)  # "conformed v3", "appended v4", …

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "status": self.status,
            "seq": self.seq,
            "events": self.events,
        }


def adopt_view(
    project: str,
    batch_id: str,
    root: str | os.PathLike[str] | None = None,
    *,
    dry_run: bool = False,
    actor: str | None = None,
    log: EventLog | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
) -> AdoptOutcome:
    """R29: turn a change a reference-era tool made to a batch's ``versions.json`` into events.

    Under the reference lock and the batch lock, the foreign view is compared
    with the fold at the seq it claims (what the foreign tool read; the
    current fold when it claims none) and the difference is applied to the
    current fold as events, marked ``imported``, in one append:

    - a new version -> ``appended`` with its existing body and its fields as
      recorded (state and downstream included, as import does);
    - a version newly ``approved`` -> ``conformed`` (the reference approves
      only by conform; when the pointer ends elsewhere a pointer move follows);
    - a version newly ``derived`` -> the pointer is moved to it if needed
      (the reference derives only the active version) and ``derived``;
    - a pointer move -> ``reverted`` to the recorded active version.

    Then the view is rewritten as scenelog's own. A difference no event can
    explain (a version removed, a recorded field other than state and
    downstream changed, a state or downstream going back, a view whose seq is
    past the log's) raises :class:`ForeignView` and writes nothing. A view
    whose content is a fold of the log (stale, or reformatted) is rewritten
    without events.
    """
    batch_id = validate_batch_id(batch_id)
    backend = log if log is not None else open_log(project, root)
    batch = _Batch(backend, batch_id)
    who = default_actor(actor)
    if not backend.exists(batch_id):
        raise _no_log(batch)
    with _locked(batch, lock_timeout) as session:
        current = session.fold
        if current.seq == 0:  # a log whose creator died before its first line
            raise _no_log(batch)
        data = batch.manifest_bytes()
        if data is None or data == current.view_bytes():
            return AdoptOutcome(batch_id, "unchanged", current.seq)
        foreign = _foreign(batch, data, current)
        base = _base(batch, current, foreign)
        draft = _Draft(
            batch_id, current, who, f"adopted from {batch.name} changed outside scenelog"
        )
        entries, active = _target(batch, base, current, foreign)
        _explain(draft, entries, active)
        problems = draft.finish(entries, active)
        if problems:
            raise _refusal(batch, problems)
        described = [f"{e.type} v{e.version}" for e in draft.events]
        if dry_run:
            return AdoptOutcome(batch_id, "would_adopt", current.seq, described)
        if draft.events:
            session.append(draft.events)  # the commit rewrites the view (R17)
        else:
            backend.write_snapshot(session.fold)
        status = "adopted" if draft.events else "unchanged"
        return AdoptOutcome(batch_id, status, session.fold.seq, described)


def _no_log(batch: _Batch) -> UnknownBatch | UnimportedManifest:
    if batch.manifest_bytes() is None:
        return UnknownBatch(
            f"batch {batch.batch_id} has no log and no versions.json: nothing to adopt — "
            "check the batch id, --project and --root",
            batch_id=batch.batch_id,
        )
    return UnimportedManifest(
        f"batch {batch.batch_id} has no log: import its versions.json with "
        f"`scenelog import {batch.batch_id[:6]}` (--adopt is for batches that have a log)",
        path=batch.where,
        batch_id=batch.batch_id,
    )


def _refusal(batch: _Batch, problems: list[str]) -> ForeignView:
    return ForeignView(
        f"cannot adopt {batch.where} of batch {batch.batch_id}: {'; '.join(problems)}; no "
        "event can explain that, nothing was written — to keep the log's state, move "
        f"{batch.name} aside (a view is a cache, rebuilt from the log)",
        path=batch.where,
        batch_id=batch.batch_id,
        problems=problems,
    )


def _foreign(batch: _Batch, data: bytes, current: Fold) -> _Manifest:
    manifest, problems = _parse(batch, data)
    if manifest is None:
        raise _refusal(batch, problems)
    if manifest.seq is not None and manifest.seq > current.seq:
        raise _refusal(
            batch,
            [
                f"it claims seq {manifest.seq} but the log ends at seq {current.seq} "
                "(was the log restored from backup? run `scenelog verify`)"
            ],
        )
    return manifest


def _base(batch: _Batch, current: Fold, foreign: _Manifest) -> Fold:
    """The fold the foreign tool read: at the seq its view claims, else the current one."""
    if foreign.seq is None or foreign.seq == current.seq:
        return current
    base = batch.fold()
    base.apply_all(batch.log.read(batch.batch_id)[: foreign.seq])
    return base


def _body_problems(batch: _Batch, entry: VersionEntry) -> list[str]:
    """A new version's body must be this batch's scene with the recorded fingerprint."""
    name = entry.artifact
    try:
        data = batch.log.read_body(batch.batch_id, name)
        body = Scene.from_json(data, max_bytes=max(len(data), 1))
    except (OSError, ValueError) as e:
        return [f"v{entry.version}'s body {name} is unreadable ({e})"]
    if body.scene_id != batch.batch_id:
        return [f"v{entry.version}'s body {name} has scene_id {_shown(body.scene_id)}"]
    if structure_fingerprint(body) != entry.structure_fingerprint:
        return [f"v{entry.version}'s body {name} does not have the recorded fingerprint"]
    return []


def _same(field_name: str, old: object, new: object) -> bool:
    if field_name == "created_at":
        return (normalize_timestamp(old) or old) == new
    return old == new


def _target(
    batch: _Batch, base: Fold, current: Fold, foreign: _Manifest
) -> tuple[list[VersionEntry], int]:
    """The current fold with the foreign change (base -> foreign) applied; refuse the rest."""
    problems: list[str] = []
    seen = {e.version: e for e in foreign.entries}
    entries = list(current.entries)
    position = {e.version: i for i, e in enumerate(entries)}
    for old in base.entries:
        new = seen.get(old.version)
        if new is None:
            problems.append(f"v{old.version} was removed")
            continue
        for name in _IMMUTABLE:
            if not _same(name, getattr(old, name), getattr(new, name)):
                problems.append(
                    f"v{old.version}'s {name} changed from {_shown(getattr(old, name))} "
                    f"to {_shown(getattr(new, name))}"
                )
        if (old.state, new.state) == ("approved", "candidate"):
            problems.append(f"v{old.version} went from approved back to candidate")
        if (old.downstream, new.downstream) == ("derived", "not_derived"):
            problems.append(f"v{old.version} went from derived back to not_derived")
        at = position[old.version]
        now = entries[at]
        if new.state == "approved" and now.state != "approved":
            now = msgspec.structs.replace(now, state="approved")
        if new.downstream == "derived" and now.downstream != "derived":
            now = msgspec.structs.replace(now, downstream="derived")
        entries[at] = now
    for new in foreign.entries:
        if base.entry(new.version) is not None:
            continue
        existing = current.entry(new.version)
        if existing is None:
            problems.extend(_body_problems(batch, new))
            entries.append(new)
        elif existing != new:
            problems.append(
                f"v{new.version} was registered by scenelog and by another tool differently"
            )
    if problems:
        raise _refusal(batch, problems)
    assert current.active_version is not None  # a log with events has a pointer
    moved = foreign.active_version != base.active_version
    return entries, foreign.active_version if moved else current.active_version


def _explain(draft: _Draft, entries: list[VersionEntry], active: int) -> None:
    """Draft the events that take ``draft.fold`` to ``entries`` with ``active`` as pointer."""
    for entry in entries:
        if draft.fold.entry(entry.version) is None:
            draft.appended(entry)
    # The versions that change state; the final active one last, so the pointer ends there.
    changing = [e for e in entries if (now := draft.fold.entry(e.version)) is not None and now != e]
    changing.sort(key=lambda e: e.version == active)
    for entry in changing:
        now = draft.fold.entry(entry.version)
        assert now is not None
        if entry.state == "approved" and now.state != "approved":
            draft.move(Conformed, entry.version)
        if entry.downstream == "derived" and now.downstream != "derived":
            if draft.fold.active_version != entry.version:
                draft.move(Reverted, entry.version)
            draft.derived(entry.version)
    if draft.fold.active_version != active:
        draft.move(Reverted, active)
