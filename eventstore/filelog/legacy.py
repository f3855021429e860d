"""The file backend's reference-era manifests, for import and adopt (R21, R29).

The reference store keeps one mutable ``<batch>.versions.json`` per batch,
guarded by ``flock`` on ``<batch>.versions.lock``. On this backend that file
is also scenelog's view, so :meth:`FileLog.legacy_manifest` is whatever the
file holds: a manifest to import, or a view a reference-era tool rewrote
(adopt). This module also says, for readers, where things are and what is
missing, in the file backend's terms (paths).

Invariants:
- Nothing here creates ``versions.lock``: the reference lock is held only
  when the file exists (:func:`eventstore.filelog.views.reference_lock`).
- The backup ``<batch>.versions.json.reference`` is written once (temp file,
  fsync, link, folder fsync), under the reference lock and the batch lock.
  Crash at each step of :func:`keep`: before the link, a stray temp file at
  most and the old backup (or none); after it, the new backup. An import that
  died after its backup and before its append left a backup of bytes that
  were never imported: the next import replaces it (unlink, then write once;
  a crash between leaves no backup, and the manifest itself is untouched).
- :func:`write_snapshot` is the view rewrite of every commit (atomic rename,
  no fsync: a lost view is rebuilt from the log, R17), remembered by the
  FileLog so its next command knows the file as its own (R29).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

from eventstore.filelog import views
from eventstore.filelog.fsio import os_errors, write_once
from eventstore.filelog.paths import BatchPaths, Layout
from eventstore.manifest import Fold

__all__ = [
    "keep",
    "lock",
    "manifest_bytes",
    "project_absence",
    "where",
    "write_snapshot",
]

BACKUP_SUFFIX = ".reference"
"""``<batch>.versions.json.reference``: the bytes an import imported."""


def manifest_bytes(paths: BatchPaths) -> bytes | None:
    """The bytes of the batch's ``versions.json``, None when there is none."""
    with os_errors(paths.view, "read"):
        try:
            return paths.view.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None


def lock(paths: BatchPaths, *, timeout: float) -> AbstractContextManager[None]:
    """The reference's ``flock`` on ``<batch>.versions.lock`` when that file exists."""
    return views.reference_lock(paths, timeout=timeout)


def keep(paths: BatchPaths, data: bytes) -> None:
    """Keep ``data`` in ``<batch>.versions.json.reference`` (under the locks).

    A backup left by an import that died before its append is of a manifest
    that was never imported; it is replaced by the bytes imported now.
    """
    backup = paths.view.with_name(paths.view.name + BACKUP_SUFFIX)
    with os_errors(backup, "replace"):
        try:
            if backup.read_bytes() == data:
                return
            backup.unlink()
        except FileNotFoundError:
            pass
    write_once(backup, data, batch_id=paths.batch_id)


def write_snapshot(paths: BatchPaths, fold: Fold, written: views.Written) -> None:
    """Rewrite the view from ``fold`` whatever the file holds (a failure is logged)."""
    views.write_view(paths.view, fold.view_chunks(), written)


def where(layout: Layout, batch_id: str, name: str | None) -> str:
    """The path of the batch's log, or of its file ``name``, as messages show it."""
    paths = layout.batch(batch_id)
    return str(paths.log if name is None else paths.scenes_dir / Path(name).name)


def project_absence(layout: Layout) -> str | None:
    """Which folder is missing: the root or the project (None when both are there)."""
    root, project_dir = layout.root, layout.project_dir
    if not root.exists():
        return f"the root {root} does not exist (a typo, or a store not mounted?)"
    if not root.is_dir():
        return f"the root {root} is a file, not a folder"
    if not project_dir.exists():
        return f"there is no project {layout.project} under {root}"
    if not project_dir.is_dir():
        return f"{project_dir} is a file, not a project folder"
    return None
