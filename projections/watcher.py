"""Watchers: every event of every batch of a project, once caught up, as it lands.

``watch()`` returns a :class:`Watcher`, an iterator (like ``watchfiles.watch``)
of :class:`WatchEvent` objects — first every event after the consumer's
checkpoint (catch-up), then live ones, including those of batches created
after the watcher started. It reads the backend's change feed
(:meth:`eventstore.log.EventLog.feed`) of the backend chosen by the root
(``open_log``), and keeps its checkpoints through the same backend; it knows
no file, offset or notifier (the file backend's feed tails the logs, R24 and
R28 included: ``eventstore/filelog/feed.py``).

Invariants:
- Per batch, events come strictly in seq order without a gap, whole commands
  only (R24); across batches in the order the feed gives (the feed's).
- At-least-once: a named consumer's checkpoint (a JSON object: ``consumer``,
  ``updated_at``, ``position`` — the feed's opaque position after the last
  event the consumer finished with — and ``delivered_at``) is saved
  atomically and durably by the backend only after the consumer finished with
  an event: when it asks for the next one, or calls ``commit()``. A crash
  redelivers at most the event in flight. Events the ``types`` filter drops
  move the position too.
- R28: the feed checks that the checkpoint's last event is still where it
  was; if not it says so (``on_notice``, stderr by default, one line) and
  delivers that batch again from seq 1. Never a silent skip. A checkpoint
  written before issue 11 (``positions``: the file feed's per-log entries)
  is handed to the feed as its position and rewritten in the new form.
- A consumer without a checkpoint gets one saved at once, so that events
  appended while it is down are delivered when it comes back.
- A corrupt checkpoint is CheckpointError naming where it is, never a silent
  restart.
- One watcher per consumer name at a time: it holds the backend's claim on
  the name while it runs (ConsumerBusy naming the holder otherwise); the
  claim dies with the process.
- Readers never lock batches (R22): a watcher never slows a writer.
- A project (or root) that does not exist is an error (InvalidInput), never
  created by a watcher.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import nullcontext
from types import TracebackType
from typing import Any, Protocol

import msgspec

from eventstore import DamagedStore, Event, InvalidInput
from eventstore.backends import root_label
from eventstore.events import EVENT_TYPES, utc_now
from eventstore.layout import normalize_episode
from eventstore.log import EventLog, Feed, FeedItem, open_log

__all__ = ["CheckpointError", "WatchEvent", "Watcher", "consumer_status", "watch"]

_CONSUMER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_WAIT_SECONDS = 0.05
"""Live mode looks at the stop flag at least this often."""


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


class CheckpointError(DamagedStore):
    """A consumer checkpoint is unreadable; it is never silently reset."""


class WatchEvent:
    """One delivered event with where it came from; event fields are attributes."""

    __slots__ = ("episode", "event", "project")

    def __init__(self, project: str, episode: str, event: Event) -> None:
        self.project = project
        self.episode = episode
        self.event = event

    def __getattr__(self, name: str) -> Any:
        return getattr(self.event, name)

    def __repr__(self) -> str:
        e = self.event
        return f"WatchEvent({e.batch_id} seq={e.seq} {e.type} v{e.version})"

    def to_dict(self) -> dict[str, Any]:
        return {"project": self.project, "episode": self.episode, **self.event.to_dict()}


class _Checkpoint(msgspec.Struct):
    """A consumer's checkpoint as saved (field order is the saved order)."""

    consumer: str
    updated_at: str
    position: str | None
    delivered_at: str | None = None


class _Saved(msgspec.Struct):
    """A checkpoint as read: ``positions`` is the form before issue 11, never written."""

    consumer: str
    updated_at: str
    position: str | None = None
    delivered_at: str | None = None
    positions: dict[str, Any] | None = None


def _stderr_notice(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Watcher:
    """An iterator of WatchEvents; see the module docstring for its guarantees.

    ``for event in watch(...)``, ``next(w)`` and ``with watch(...) as w`` all
    work; ``close()`` (or leaving the ``with``) checkpoints what was handled
    and frees the consumer name.
    """

    def __init__(
        self,
        project: str,
        *,
        root: str | os.PathLike[str] | None = None,
        types: Iterable[str] | None = None,
        episode: int | str | None = None,
        consumer: str | None = None,
        start: str = "now",
        poll: bool = False,
        interval: float = 0.1,
        stop: StopFlag | None = None,
        on_ready: Callable[[], None] | None = None,
        on_notice: Callable[[str], None] | None = None,
    ) -> None:
        self.log: EventLog = open_log(project, root)
        self.project = project
        self.root_label = root_label(root)
        self.types = None if types is None else frozenset(types)
        if self.types is not None and not self.types <= set(EVENT_TYPES):
            raise InvalidInput(f"unknown event types {sorted(self.types - set(EVENT_TYPES))}")
        if start not in ("now", "beginning"):
            raise InvalidInput(f"start must be 'now' or 'beginning', not {start!r}")
        if consumer is not None and not _CONSUMER_RE.fullmatch(consumer):
            raise InvalidInput(f"invalid consumer name {consumer!r}: use letters, digits, _ . -")
        self.episode = None if episode is None else normalize_episode(episode)
        self.consumer = consumer
        self.start = start
        self.poll = poll
        self.interval = interval
        self.stop = stop
        self.on_ready = on_ready
        self.on_notice = on_notice if on_notice is not None else _stderr_notice
        self._handled: str | None = None  # the position after every event finished with
        self._pending: str | None = None  # the position after the event in flight
        self._saved: str | None = None  # the position the checkpoint holds
        self._delivered_at: str | None = None
        self._stream: Generator[WatchEvent, None, None] | None = None

    # ── the iterator ───────────────────────────────────────────────────────

    def __iter__(self) -> Watcher:
        return self

    def __next__(self) -> WatchEvent:
        if self._stream is None:
            self._stream = self._events()
        return next(self._stream)

    def close(self) -> None:
        """Stop: checkpoint what was handled and free the consumer name."""
        if self._stream is not None:
            self._stream.close()

    def __enter__(self) -> Watcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ── the checkpoint ─────────────────────────────────────────────────────

    def _require_project(self) -> None:
        if not self.log.project_exists():
            raise InvalidInput(
                f"no project {self.project!r} at root {self.root_label}: is the store mounted? "
                "check --project / SCENELOG_PROJECT and --root / SCENELOG_ROOT (a project "
                "appears with its first batch)",
                root=self.root_label,
                project=self.project,
            )

    def _load(self) -> str | None:
        """The saved position (None: no checkpoint); CheckpointError when it is corrupt."""
        if self.consumer is None:
            return None
        saved = _read_checkpoint(self.log, self.consumer, self.root_label)
        if saved is None:
            return None
        self._delivered_at = saved.delivered_at
        self._saved = saved.position  # None for the form before issue 11: rewritten
        return _position_of(saved)

    def _open_feed(self) -> Feed:
        position = self._load()
        try:
            feed = self.log.feed(
                position,
                start=self.start,
                episode=self.episode,
                poll=self.interval if self.poll else None,
                warn=self.on_notice,
            )
        except InvalidInput as e:
            if position is None:
                raise
            raise _corrupt(self.consumer or "", self.root_label, str(e)) from e
        self._handled = feed.position
        return feed

    def commit(self) -> None:
        """Checkpoint every event handed out so far (call after handling the last one).

        Crash safety: the backend replaces the checkpoint atomically and
        durably, so a crash at any step leaves the old or the new one.
        """
        if self._pending is not None:
            self._handled, self._pending = self._pending, None
        if self.consumer is None or self._handled is None or self._handled == self._saved:
            return
        data = msgspec.json.encode(
            _Checkpoint(self.consumer, utc_now(), self._handled, self._delivered_at)
        )
        self.log.save_checkpoint(self.consumer, data)
        self._saved = self._handled

    # ── the stream ─────────────────────────────────────────────────────────

    def _stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def _deliver(self, items: list[FeedItem]) -> Iterator[WatchEvent]:
        for item in items:
            if self.types is not None and item.event.type not in self.types:
                self._handled = item.position
                continue
            self._pending = item.position
            self._delivered_at = utc_now()
            yield WatchEvent(self.project, item.batch_id[:6], item.event)
            self.commit()  # the consumer came back for more: it is done with this one

    def _events(self) -> Generator[WatchEvent, None, None]:
        self._require_project()
        with self.log.claim(self.consumer) if self.consumer is not None else nullcontext():
            feed = self._open_feed()
            try:
                self.commit()  # a new consumer's position, or an old checkpoint's new form
                if self.on_ready is not None:
                    # From here on nothing is missed: the feed's position is fixed.
                    self.on_ready()
                wait = self.interval if self.poll else _WAIT_SECONDS
                while True:
                    items = feed.read()
                    if items:
                        yield from self._deliver(items)
                        continue
                    # Every event read is finished with; the feed may also have moved
                    # without an event (R28: a replaced log starts over).
                    self._handled = feed.position
                    self.commit()
                    if self._stopped():
                        return
                    feed.wait(wait)
            finally:
                try:
                    self._pending = None  # an event the consumer did not come back from stays due
                    self.commit()
                finally:
                    feed.close()


watch = Watcher
"""``watch(project, *, root, types, episode, consumer, start, poll, interval, stop,
on_ready, on_notice)``: follow every batch of ``project``; the result is an
iterator of WatchEvents. ``on_ready`` is called once the starting positions
are fixed: every event appended after it returns will be delivered.
``on_notice`` gets the one-line warnings of R28 (default: stderr)."""


def _corrupt(consumer: str, where: str, why: str) -> CheckpointError:
    return CheckpointError(
        f"the checkpoint of consumer {consumer!r} at root {where} is corrupt ({why}); "
        "restore it, or delete it to start the consumer afresh (it then follows --start)",
    )


def _read_checkpoint(log: EventLog, consumer: str, where: str) -> _Saved | None:
    """A consumer's checkpoint (None: it has none); CheckpointError when it is corrupt."""
    try:
        data = log.load_checkpoint(consumer)
    except CheckpointError:
        raise
    except DamagedStore as e:  # the backend names where it keeps the checkpoint
        raise CheckpointError(e.message, path=e.path) from e
    if data is None:
        return None
    try:
        saved = msgspec.json.decode(data, type=_Saved)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise _corrupt(consumer, where, str(e)) from e
    if saved.position is None and saved.positions is None:
        raise _corrupt(consumer, where, "it names no position")
    return saved


def _position_of(saved: _Saved) -> str:
    """The feed position a checkpoint names (before issue 11: the file feed's entries)."""
    if saved.position is not None:
        return saved.position
    assert saved.positions is not None
    return msgspec.json.encode(saved.positions).decode()


def consumer_status(
    project: str, root: str | os.PathLike[str] | None = None
) -> list[dict[str, Any]]:
    """Each consumer with its lag and last delivery time.

    The lag counts the events its watcher would deliver on resume: those after
    its checkpoint, or a whole log that no longer holds the checkpointed event
    (R28: replaced, so delivered again from seq 1), as the feed counts them.
    ``batches`` counts the project's batches.
    """
    log = open_log(project, root)
    where = root_label(root)
    result = []
    for name in log.consumers():
        saved = _read_checkpoint(log, name, where)
        if saved is None:
            continue  # removed meanwhile
        try:
            feed = log.feed(_position_of(saved), warn=lambda _line: None)
        except InvalidInput as e:
            raise _corrupt(name, where, str(e)) from e
        try:
            lag = feed.lag()
        finally:
            feed.close()
        result.append(
            {
                "consumer": saved.consumer,
                "lag": lag,
                "last_delivery": saved.delivered_at,
                "updated_at": saved.updated_at,
                "batches": sum(len(log.batches(ep)) for ep in log.episodes()),
            }
        )
    return result
