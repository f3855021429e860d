"""The embedded file backend: a folder per project, files per batch (DESIGN §2).

:class:`FileLog` is :class:`eventstore.log.EventLog` over files:

    core         the JSONL logs, the per-batch session, heads (R14, R18-R20, R24, R27)
    bodies       body files, written once, read safely
    views        versions.json views as snapshots; reference-era manifests (R17, R21, R29)
    numbering    R8: the highest body in a scenes folder, from a listing kept while current
    feed         the change feed: tailing logs, woken by inotify or polling (R28)
    checkpoints  consumer checkpoints and their exclusive claim

    viewpolicy   the project's view policy (sync, lazy, off) and the snapshots
                 readers fold with the log's tail

Only this package knows file names, byte offsets and locks. The modules a
read does not need (feed and watchfiles, checkpoints, inspect, legacy, the
lock and fasteners) are imported by the methods that use them, so a
``scenelog gate`` loads none of them (issue 15).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from eventstore.filelog import bodies, viewpolicy, views
from eventstore.filelog.core import FileLogCore
from eventstore.log import BodyLook, Feed, SnapshotLook, Stray
from eventstore.manifest import Fold, Manifest, encode_manifest, fold

__all__ = ["FileLog"]


class FileLog(FileLogCore):
    """Batch logs, bodies, views and checkpoints under ``<root>/<project>/``."""

    # ── bodies ──────────────────────────────────────────────────────────────

    def body_exists(self, batch_id: str, name: str) -> bool:
        return self.layout.batch(batch_id).artifact(name).exists()

    def read_body(self, batch_id: str, name: str) -> bytes:
        return bodies.read_body_file(self.layout.batch(batch_id), name)

    def body_names(self, batch_id: str) -> list[str]:
        return bodies.body_names(self.layout.batch(batch_id))

    def body_path(self, batch_id: str, name: str) -> str | None:
        return str(self.layout.batch(batch_id).artifact(name))

    def busy(self, batch_id: str) -> bool:
        from eventstore.filelog import inspect

        return inspect.batch_busy(self.layout.batch(batch_id))

    # ── snapshots and reference-era manifests ─────────────────────────────

    def view_policy(self) -> str:
        """The project's view policy: ``sync``, ``lazy`` or ``off`` (viewpolicy.py)."""
        return viewpolicy.read_policy_file(self._policy_file, self._mine().policies)

    def set_view_policy(self, policy: str) -> None:
        """Set the project's view policy (InvalidInput for an unknown one).

        Safe while writers run: each session reads the policy under its batch
        lock, and readers catch any view or snapshot up from the log.
        """
        viewpolicy.write_policy(self.layout.project_dir, policy)
        self._mine().reader_policies.clear()

    def _snapshot_file(self, batch_id: str) -> Path:
        return self._snapshot_path(batch_id)

    def snapshot(self, batch_id: str) -> Manifest | None:
        """The view (``sync``), or the view or snapshot caught up with the log's tail.

        ``lazy`` and ``off`` read at most :data:`viewpolicy.TAIL_LIMIT` bytes of
        the log, whatever its length; a snapshot further behind is returned as
        it is and the caller folds the log (then mends it).
        """
        paths = self.layout.batch(batch_id)
        policy = viewpolicy.reader_policy(self._policy_file, self._mine().reader_policies)
        if policy == "sync":
            return views.read_view(paths.view)
        if policy == "lazy":
            found = views.read_view(paths.view) or viewpolicy.read_manifest(
                self._snapshot_file(batch_id)
            )
        else:
            found = viewpolicy.read_manifest(self._snapshot_file(batch_id)) or views.read_view(
                paths.view
            )
        if found is None or found.batch_id != batch_id:
            return found
        return viewpolicy.caught_up(found, paths.log)

    def mend_snapshot(self, manifest: Manifest) -> bool:
        """A reader's lock-free mend of what the policy keeps, never over a newer one."""
        policy = self.view_policy()
        view = self.layout.batch(manifest.batch_id).view
        if policy == "sync":
            return views.repair_view(view, manifest)
        kept = viewpolicy.mend(self._snapshot_file(manifest.batch_id), manifest)
        if policy == "lazy":
            kept = views.repair_view(view, manifest) and kept
        return kept

    def unimported(self, episode: str) -> list[str]:
        return [
            b for b in self.layout.batch_ids(episode, suffix=".versions.json") if not self.exists(b)
        ]

    def check_unimported(self, batch_id: str) -> None:
        views.check_unimported(self.layout.batch(batch_id))

    # ── the change feed and consumers ─────────────────────────────────────

    def feed(
        self,
        position: str | None,
        *,
        start: str = "now",
        episode: str | None = None,
        poll: float | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> Feed:
        from eventstore.filelog import feed

        return feed.open_feed(
            self.layout, position, start=start, episode=episode, poll=poll, warn=warn
        )

    def load_checkpoint(self, consumer: str) -> bytes | None:
        from eventstore.filelog import checkpoints

        return checkpoints.load(self.layout, consumer)

    def save_checkpoint(self, consumer: str, data: bytes, *, durable: bool = True) -> None:
        from eventstore.filelog import checkpoints

        checkpoints.save(self.layout, consumer, data, durable=durable)

    def feed_position_at(self, position: str | None, batch_id: str, seq: int) -> str:
        from eventstore.filelog import checkpoints

        return checkpoints.position_at(self.layout, position, batch_id, seq)

    def delete_checkpoint(self, consumer: str) -> bool:
        from eventstore.filelog import checkpoints

        return checkpoints.delete(self.layout, consumer)

    def consumers(self) -> list[str]:
        from eventstore.filelog import checkpoints

        return checkpoints.names(self.layout)

    def claim(self, consumer: str) -> AbstractContextManager[None]:
        from eventstore.filelog import checkpoints

        return checkpoints.claim(self.layout, consumer)

    # ── reference-era manifests, for import and adopt (legacy.py) ─────────

    def legacy_manifest(self, batch_id: str) -> bytes | None:
        from eventstore.filelog import legacy

        return legacy.manifest_bytes(self.layout.batch(batch_id))

    def legacy_lock(self, batch_id: str, *, timeout: float) -> AbstractContextManager[None]:
        from eventstore.filelog import legacy

        return legacy.lock(self.layout.batch(batch_id), timeout=timeout)

    def keep_legacy_manifest(self, batch_id: str, data: bytes) -> None:
        from eventstore.filelog import legacy

        legacy.keep(self.layout.batch(batch_id), data)

    def write_snapshot(self, fold: Fold) -> None:
        from eventstore.filelog import legacy

        legacy.write_snapshot(self.layout.batch(fold.batch_id), fold, self._mine().views)

    def where(self, batch_id: str, name: str | None = None) -> str:
        from eventstore.filelog import legacy

        return legacy.where(self.layout, batch_id, name)

    def project_absence(self) -> str | None:
        from eventstore.filelog import legacy

        return legacy.project_absence(self.layout)

    # ── what verify asks beyond reads (inspect.py) ────────────────────────

    def look_body(self, batch_id: str, name: str, *, max_bytes: int) -> BodyLook:
        from eventstore.filelog import inspect

        return inspect.look_body(self.layout.batch(batch_id), name, max_bytes=max_bytes)

    def look_snapshot(self, batch_id: str) -> SnapshotLook | None:
        """The view (``sync``, ``lazy``) or snapshot (``off``) as verify judges it.

        A lazy view, or a snapshot, behind the log that is exactly the fold of
        the log at its own seq is what the policy promises, not a finding: it
        is shown caught up with the log. One that is not is shown caught up
        too, so verify reports it as differing. ``off`` without a snapshot:
        None (no view is not a finding either).
        """
        from eventstore.filelog import inspect

        paths = self.layout.batch(batch_id)
        policy = self.view_policy()
        look = inspect.look_snapshot(paths) if policy != "off" else None
        if policy == "off" or (policy == "lazy" and look is not None and look.data is None):
            # ``off`` keeps no view; a lazy project switched from ``off`` has none until
            # its next command: the snapshot is what the policy keeps meanwhile.
            snapshot = self._snapshot_file(batch_id)
            if not snapshot.exists():
                return look  # off: None (no view is not a finding); lazy: view_missing
            look = SnapshotLook(_read_small(snapshot), False, str(snapshot))
        assert look is not None
        if policy == "sync" or look.data is None:
            return look
        stored = viewpolicy.manifest_of(look.data)
        if stored is None or stored.batch_id != batch_id:
            return look
        events = self.read(batch_id)
        if stored.seq >= len(events):
            return look
        where = self.where(batch_id)
        try:
            current = viewpolicy.fold_from(stored, where).apply_all(events[stored.seq :])
        except Exception:
            return look
        if fold(batch_id, events[: stored.seq], path=where) == stored:
            return SnapshotLook(encode_manifest(current.manifest()), False, look.where)
        return SnapshotLook(current.view_bytes(), False, look.where)

    def replace_snapshot(self, manifest: Manifest, *, seen: bytes | None) -> bool:
        from eventstore.filelog import inspect

        if self.view_policy() == "off":
            return viewpolicy.replace_seen(self._snapshot_file(manifest.batch_id), manifest, seen)
        return inspect.replace_snapshot(self.layout.batch(manifest.batch_id), manifest, seen=seen)

    def strays(self, episode: str) -> list[Stray]:
        from eventstore.filelog import inspect

        return inspect.strays(self.layout, episode)


def _read_small(path: Path) -> bytes | None:
    """A snapshot's bytes (at most 64 MiB); None when unreadable."""
    try:
        with open(path, "rb") as f:
            return f.read(1 << 26)
    except OSError:
        return None
