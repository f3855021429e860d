"""``scenelog materialize DIR``: versions.json and body files for tools that read files.

A named consumer of the change feed (default ``materialize``,
:mod:`projections.watcher`) that keeps, for every batch of the project,
``DIR/<project>/<ep>/scenes/<batch>.versions.json`` (the canonical view:
exactly the bytes the file backend writes, ``Fold.view_bytes``) and the body
files its events name (``<batch>.json``, ``<batch>.vNNN.json``), whatever the
backend (PostgreSQL, a folder, memory within a process).

Invariants:
- A view is written only after every body it names is in DIR (bodies are
  written once, fsync'd, never replaced: they are immutable in the store).
- Never a view older than the one there: a view in DIR with this batch's id
  and a ``seq`` at or above the new one is left alone, and a swap that finds a
  newer one put there meanwhile puts it back (``replace_unless_newer``).
- Each view is of whole commands (R24): the state folded from the log's
  committed events, caught up to the log's head when an event arrives (a
  catch-up of n events of one batch writes its view once, not n times).
- The consumer's checkpoint moves only after the view for its event is
  written; a crash redelivers at most the event in flight, and rewriting
  that view is a no-op. ``--once`` catches up and exits; without it, it
  follows live until interrupted.

Crash at each step: killed while writing a body, a temp file may stay and no
body (the next run writes it); between bodies and view, the old view stays
(next run writes the new one: the checkpoint did not move); during the view
swap, the old or the new view, never half.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eventstore.errors import BodyMissing
from eventstore.events import Appended
from eventstore.filelog.fsio import replace_unless_newer, write_once
from eventstore.layout import batch_episode
from eventstore.log import EventLog
from eventstore.manifest import Fold, decode_manifest

__all__ = ["DEFAULT_CONSUMER", "MaterializeReport", "Materializer", "materialize"]

DEFAULT_CONSUMER = "materialize"


@dataclass
class MaterializeReport:
    """What one run wrote."""

    events: int = 0
    """Events delivered by the feed."""
    views: int = 0
    """Views written."""
    bodies: int = 0
    """Body files written."""


def _view_seq(data: bytes, batch_id: str) -> int | None:
    """The seq of a view of ``batch_id`` in ``data``; None when it is not one."""
    try:
        manifest = decode_manifest(data)
    except Exception:
        return None
    return manifest.seq if manifest.batch_id == batch_id else None


class Materializer:
    """Writes one project's views and bodies under ``out_dir`` from its log."""

    def __init__(self, log: EventLog, out_dir: Path) -> None:
        self.log = log
        self.out_dir = out_dir
        self.report = MaterializeReport()
        self._folds: dict[str, Fold] = {}

    def scenes_dir(self, batch_id: str) -> Path:
        return self.out_dir / self.log.project / batch_episode(batch_id) / "scenes"

    def bring(self, batch_id: str, seq: int) -> None:
        """Make DIR's view of ``batch_id`` at least as new as ``seq`` (the event delivered)."""
        fold = self._folds.get(batch_id)
        if fold is None:
            fold = self._folds[batch_id] = Fold(batch_id, path=self.log.where(batch_id))
        if fold.seq >= seq:
            return  # written already, at or past this event
        events = self.log.read(batch_id, after=fold.seq)
        fold.apply_all(events)
        scenes = self.scenes_dir(batch_id)
        for event in events:
            if isinstance(event, Appended):
                self._body(batch_id, event.artifact, scenes)
        self._view(fold, scenes / f"{batch_id}.versions.json")

    def _body(self, batch_id: str, name: str, scenes: Path) -> None:
        path = scenes / name
        if path.exists():
            return
        try:
            data = self.log.read_body(batch_id, name)
        except BodyMissing:
            return  # the store has none either; `scenelog verify` reports it there
        scenes.mkdir(parents=True, exist_ok=True)
        write_once(path, data, batch_id=batch_id)
        self.report.bodies += 1

    def _view(self, fold: Fold, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            there = path.read_bytes()
        except FileNotFoundError:
            there = None
        if there is not None:
            seq = _view_seq(there, fold.batch_id)
            if seq is not None and seq >= fold.seq:
                return

        def newer(old: bytes) -> bool:
            old_seq = _view_seq(old, fold.batch_id)
            return old_seq is not None and old_seq > fold.seq

        if replace_unless_newer(path, fold.view_bytes(), newer):
            self.report.views += 1


def materialize(
    project: str,
    out_dir: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str] | None = None,
    consumer: str = DEFAULT_CONSUMER,
    once: bool = False,
    poll: bool = False,
    stop: threading.Event | None = None,
    on_ready: Callable[[], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
) -> MaterializeReport:
    """Follow ``project``'s change feed as consumer ``consumer``, writing DIR's files.

    With ``once``, returns when caught up; otherwise when ``stop`` is set
    (or on KeyboardInterrupt, after checkpointing what was written).
    """
    from projections.watcher import watch

    stop = stop if stop is not None else threading.Event()
    done = stop

    def caught_up() -> None:
        if once:
            done.set()

    watcher = watch(
        project,
        root=root,
        consumer=consumer,
        start="beginning",
        poll=poll,
        stop=done,
        on_ready=on_ready,
        on_notice=on_notice,
        on_caught_up=caught_up,
    )
    writer = Materializer(watcher.log, Path(out_dir))
    with watcher:
        for event in watcher:
            writer.report.events += 1
            writer.bring(event.event.batch_id, event.event.seq)
    return writer.report
