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
  event the consumer finished with —, ``delivered_at`` and ``parked``, the
  events a handler failed on and the consumer skipped) is saved atomically by
  the backend only after the consumer finished with an event: when it asks
  for the next one, or calls ``commit()``. A crash of the process redelivers
  at most the event in flight. Events the ``types`` filter drops move the
  position too.
- Group durability: every save reaches the backend (visible to the next
  process, surviving a crash of this one), but only one save in
  ``DURABLE_SECONDS`` (50 ms) or ``DURABLE_EVENTS`` events is durable
  (fsync'd); the rest are not. A power loss therefore redelivers at most the
  events handled in the last such window. Saves when the watcher goes idle,
  parks an event or closes are always durable.
- Parked events (``park()``) are kept in the checkpoint, in the order they
  were parked, with the handler's exit code and the tail of its stderr;
  :func:`retry_parked` hands them to a handler again and drops those it
  finishes; :func:`reset_consumer` and :func:`delete_consumer` manage
  positions. Each of these holds the consumer's claim, so none runs next to
  the consumer's watcher (ConsumerBusy naming the holder).
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
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import nullcontext
from types import TracebackType
from typing import Any, Protocol

import msgspec

from eventstore import DamagedStore, Event, InvalidInput
from eventstore.backends import root_label
from eventstore.events import EVENT_TYPES, utc_now
from eventstore.layout import normalize_episode
from eventstore.log import EventLog, Feed, FeedItem, check_feed_start, open_log

__all__ = [
    "DURABLE_EVENTS",
    "DURABLE_SECONDS",
    "STDERR_TAIL",
    "CheckpointError",
    "WatchEvent",
    "Watcher",
    "consumer_status",
    "delete_consumer",
    "parked_events",
    "reset_consumer",
    "retry_parked",
    "watch",
]

_CONSUMER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_WAIT_SECONDS = 0.05
"""Live mode looks at the stop flag at least this often."""
DURABLE_SECONDS = 0.05
"""At most this long between durable checkpoint saves while events are handled."""
DURABLE_EVENTS = 10_000
"""At most this many events handled between durable checkpoint saves."""
STDERR_TAIL = 2048
"""The bytes of a failed handler's stderr kept with a parked event (its end)."""


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


class _Checkpoint(msgspec.Struct, omit_defaults=True):
    """A consumer's checkpoint as saved (field order is the saved order)."""

    consumer: str
    updated_at: str
    position: str | None
    delivered_at: str | None = None
    parked: list[dict[str, Any]] = msgspec.field(default_factory=list)


class _Saved(msgspec.Struct):
    """A checkpoint as read: ``positions`` is the form before issue 11, never written."""

    consumer: str
    updated_at: str
    position: str | None = None
    delivered_at: str | None = None
    positions: dict[str, Any] | None = None
    parked: list[dict[str, Any]] = msgspec.field(default_factory=list)


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
        on_caught_up: Callable[[], None] | None = None,
        measure_backlog: bool = False,
    ) -> None:
        self.log: EventLog = open_log(project, root)
        self.project = project
        self.root_label = root_label(root)
        self.types = None if types is None else frozenset(types)
        if self.types is not None and not self.types <= set(EVENT_TYPES):
            raise InvalidInput(f"unknown event types {sorted(self.types - set(EVENT_TYPES))}")
        check_feed_start(start)
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
        self.on_caught_up = on_caught_up
        self.measure_backlog = measure_backlog
        self.resumed_from: str | None = None
        """The ``updated_at`` of the checkpoint this watcher resumed from (None: none)."""
        self.backlog: int | None = None
        """Events due when the feed opened (with ``measure_backlog``), filtered ones included."""
        self.read_count = 0
        """Events read from the feed so far, filtered ones included."""
        self.caught_up = False
        self.parked: list[dict[str, Any]] = []
        """Events parked by this consumer (see :meth:`park`), oldest first."""
        self._dirty = False  # parked changed since the last save
        self._last_durable = 0.0
        self._since_durable = 0

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
        self.resumed_from = saved.updated_at
        self.parked = list(saved.parked)
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
        if self.measure_backlog:
            self.backlog = feed.lag()
        return feed

    def commit(self, *, durable: bool | None = True) -> None:
        """Checkpoint every event handed out so far (call after handling the last one).

        ``durable=None`` groups: the save is durable only when
        ``DURABLE_SECONDS`` or ``DURABLE_EVENTS`` have passed since the last
        durable one. Crash safety: the backend replaces the checkpoint
        atomically, so a crash at any step leaves the old or the new one; a
        power loss, the last durable one.
        """
        if self._pending is not None:
            self._handled, self._pending = self._pending, None
        if self.consumer is None or self._handled is None:
            return
        if self._handled == self._saved and not self._dirty:
            if durable and self._since_durable:
                self._save(durable=True)  # make the grouped saves durable
            return
        if durable is None:
            durable = (
                self._since_durable + 1 >= DURABLE_EVENTS
                or time.monotonic() - self._last_durable >= DURABLE_SECONDS
            )
        self._save(durable=durable)

    def _save(self, *, durable: bool) -> None:
        assert self.consumer is not None
        # A grouped save is stamped with its event's delivery time (one clock read less).
        at = self._delivered_at if not durable and self._delivered_at else utc_now()
        data = msgspec.json.encode(
            _Checkpoint(self.consumer, at, self._handled, self._delivered_at, self.parked)
        )
        self.log.save_checkpoint(self.consumer, data, durable=durable)
        self._saved, self._dirty = self._handled, False
        if durable:
            self._last_durable, self._since_durable = time.monotonic(), 0
        else:
            self._since_durable += 1

    def park(self, event: WatchEvent, *, exit_code: int | None, stderr: bytes | str) -> None:
        """Record that the consumer skipped ``event`` (its handler failed), and move on.

        The event joins :attr:`parked` with the handler's exit code and the end
        of its stderr; the checkpoint, saved durably at once, holds it and the
        position after it together (one atomic save), so a crash never loses a
        parked event nor redelivers one already parked.
        """
        if self.consumer is None:
            raise InvalidInput("only a named consumer can park events: give it a consumer name")
        self.parked.append(_parked_record(event.to_dict(), exit_code, stderr, attempts=1))
        self._dirty = True
        self.commit(durable=True)

    # ── the stream ─────────────────────────────────────────────────────────

    def _stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def _deliver(self, items: list[FeedItem]) -> Iterator[WatchEvent]:
        for item in items:
            self.read_count += 1
            if self.types is not None and item.event.type not in self.types:
                self._handled = item.position
                continue
            self._pending = item.position
            self._delivered_at = utc_now()
            yield WatchEvent(self.project, item.batch_id[:6], item.event)
            self.commit(durable=None)  # the consumer came back for more: done with this one

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
                    if not self.caught_up:
                        self.caught_up = True
                        if self.on_caught_up is not None:
                            self.on_caught_up()
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
on_ready, on_notice, on_caught_up, measure_backlog)``: follow every batch of
``project``; the result is an iterator of WatchEvents. ``on_ready`` is called
once the starting positions are fixed: every event appended after it returns
will be delivered. ``on_notice`` gets the one-line warnings of R28 (default:
stderr); ``on_caught_up`` is called once, when the feed first has nothing
more; ``measure_backlog`` sets :attr:`Watcher.backlog` when the feed opens."""


def _parked_record(
    event: dict[str, Any], exit_code: int | None, stderr: bytes | str, *, attempts: int
) -> dict[str, Any]:
    tail = stderr.encode() if isinstance(stderr, str) else stderr
    return {
        "batch_id": event.get("batch_id"),
        "seq": event.get("seq"),
        "type": event.get("type"),
        "version": event.get("version"),
        "event_id": event.get("event_id"),
        "exit_code": exit_code,
        "stderr_tail": tail[-STDERR_TAIL:].decode("utf-8", "replace"),
        "attempts": attempts,
        "parked_at": utc_now(),
        "event": event,
    }


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
    ``batches`` counts the project's batches; ``parked`` the events parked by
    ``--on-error skip`` (:func:`parked_events` lists them).
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
                "parked": len(saved.parked),
            }
        )
    return result


def parked_events(
    project: str, consumer: str, root: str | os.PathLike[str] | None = None
) -> list[dict[str, Any]]:
    """The events ``consumer`` parked, oldest first (InvalidInput when it has no checkpoint)."""
    log = open_log(project, root)
    return list(_existing(log, consumer, root_label(root)).parked)


def _existing(log: EventLog, consumer: str, where: str) -> _Saved:
    if not _CONSUMER_RE.fullmatch(consumer):
        raise InvalidInput(f"invalid consumer name {consumer!r}: use letters, digits, _ . -")
    saved = _read_checkpoint(log, consumer, where)
    if saved is None:
        raise InvalidInput(
            f"no consumer {consumer!r} in project {log.project} at root {where}: "
            "`scenelog consumers` lists them",
            value=consumer,
        )
    return saved


def _store(log: EventLog, saved: _Saved, position: str | None) -> None:
    data = msgspec.json.encode(
        _Checkpoint(saved.consumer, utc_now(), position, saved.delivered_at, saved.parked)
    )
    log.save_checkpoint(saved.consumer, data, durable=True)


def reset_consumer(
    project: str, consumer: str, to: str, root: str | os.PathLike[str] | None = None
) -> str:
    """Move ``consumer``'s position; returns the new one. Its parked events stay.

    ``to`` is ``beginning`` (every event is delivered again), ``now`` (only
    events appended from here on) or ``BATCH:SEQ`` (the batch continues right
    after its event SEQ — ``BATCH:0`` redelivers it whole — and every other
    batch stays where the checkpoint has it). Holds the consumer's claim
    (ConsumerBusy while its watcher runs). Crash at any step: the checkpoint
    is replaced atomically and durably, old or new.
    """
    log = open_log(project, root)
    where = root_label(root)
    _existing(log, consumer, where)
    with log.claim(consumer):
        saved = _existing(log, consumer, where)
        if to in ("beginning", "now"):
            feed = log.feed(None, start=to, warn=lambda _line: None)
            try:
                position = feed.position
            finally:
                feed.close()
        else:
            batch_id, sep, seq_text = to.rpartition(":")
            if not sep or not batch_id or not seq_text.isascii() or not seq_text.isdigit():
                raise InvalidInput(
                    f"invalid reset target {to!r}: use beginning, now or BATCH:SEQ "
                    "(e.g. ep_001_BATCH_003:7)",
                    value=to,
                )
            try:
                position = log.feed_position_at(_position_of(saved), batch_id, int(seq_text))
            except NotImplementedError as e:
                raise InvalidInput(
                    f"{e}: --to BATCH:SEQ is not available on this backend; use beginning or now",
                    value=to,
                ) from e
        _store(log, saved, position)
    return position


def delete_consumer(
    project: str, consumer: str, root: str | os.PathLike[str] | None = None
) -> None:
    """Remove ``consumer``'s checkpoint and parked events (ConsumerBusy while it runs)."""
    log = open_log(project, root)
    where = root_label(root)
    _existing(log, consumer, where)
    with log.claim(consumer):
        log.delete_checkpoint(consumer)


def retry_parked(
    project: str,
    consumer: str,
    handler: Callable[[dict[str, Any]], tuple[int | None, bytes]],
    root: str | os.PathLike[str] | None = None,
) -> tuple[int, int]:
    """Hand each parked event (its ``to_dict()`` form) to ``handler`` again, oldest first.

    ``handler`` returns (exit code, stderr); 0 drops the event from the
    parked list, anything else keeps it with the new code, stderr tail and
    one more attempt. Returns (done, still parked). Holds the consumer's
    claim (ConsumerBusy while its watcher runs). The checkpoint is saved
    durably after each event: a crash re-runs at most the event in flight.
    """
    log = open_log(project, root)
    where = root_label(root)
    _existing(log, consumer, where)
    done = 0
    with log.claim(consumer):
        saved = _existing(log, consumer, where)
        position = _position_of(saved)
        for record in list(saved.parked):
            code, stderr = handler(dict(record["event"]))
            at = saved.parked.index(record)
            if code == 0:
                del saved.parked[at]
                done += 1
            else:
                saved.parked[at] = _parked_record(
                    record["event"], code, stderr, attempts=int(record.get("attempts", 1)) + 1
                )
            _store(log, saved, position)
    return done, len(saved.parked)
