"""The live event stream: one watcher per project fanned out to every SSE subscriber.

A :class:`Hub` runs one :func:`projections.watch` (``start="now"``) in a
background thread for its project. Each event it delivers gets the next
*stream index* (1, 2, 3… for the life of the hub) and is kept, encoded once
as an SSE frame, in a bounded replay buffer; then it is offered to every
subscriber on the server's event loop.

Invariants:
- One watcher per project, however many subscribers: subscribers never read
  the store; the hub never takes a lock (R22) and never writes (no consumer
  checkpoint: the watcher runs without a consumer name).
- An SSE ``id`` is ``<epoch>-<index>``: ``epoch`` names this hub's life (a
  new server, or a hub restarted after an error, has a new one), ``index``
  the event's place in this hub's delivery order. Resuming with
  ``Last-Event-ID`` (or ``?after=``) of this epoch whose index is still in
  the replay buffer delivers exactly the events after it that the
  subscriber's filters select, then live ones, each once. Any other id
  (another epoch, an index that left the buffer, a malformed value) gets a
  ``reset`` event first: the client must re-read the state it shows.
- A slow subscriber never slows the watcher or the others: its queue is
  bounded; when it would overflow, its queued events are dropped and it gets
  one ``reset`` event (whose id is the newest index, so a reconnect resumes
  after it) before the events that follow.
- Events are offered in the order the watcher delivers them: per batch in
  seq order without a gap (the watcher's guarantee).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from collections import deque
from collections.abc import AsyncIterator
from typing import NamedTuple

import msgspec

from projections.watcher import WatchEvent, watch

__all__ = ["Hub", "StreamFilter", "Subscriber", "sse_frame"]

HEARTBEAT_SECONDS = 15.0
REPLAY_EVENTS = 10_000
"""Events a hub keeps for resuming subscribers."""
QUEUE_EVENTS = 2_000
"""Events a subscriber may have waiting before it is reset."""


def sse_frame(event: str, data: bytes, event_id: str | None = None) -> bytes:
    """One SSE message; ``data`` must be one line (JSON from msgspec always is)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: ".encode() + data + b"\n\n"


class Item(NamedTuple):
    position: int
    type: str
    episode: str
    batch_id: str
    frame: bytes


class StreamFilter(NamedTuple):
    """What one subscriber asked for; None means everything."""

    types: frozenset[str] | None = None
    episode: str | None = None
    batch_id: str | None = None

    def wants(self, item: Item) -> bool:
        return (
            (self.types is None or item.type in self.types)
            and (self.episode is None or item.episode == self.episode)
            and (self.batch_id is None or item.batch_id == self.batch_id)
        )


class Subscriber:
    """One stream client: a bounded queue of frames, fed on the event loop."""

    def __init__(self, hub: Hub, wanted: StreamFilter, last: int, limit: int) -> None:
        self.hub = hub
        self.wanted = wanted
        self.last = last  # newest index offered (or replayed); older offers are duplicates
        self.limit = limit
        self.frames: deque[bytes] = deque()
        self.reset: str | None = None  # a reason, when a reset event is due
        self.closed: str | None = None  # an error frame's text, when the hub failed
        self.wake = asyncio.Event()

    def offer(self, item: Item) -> None:
        if item.position <= self.last:
            return
        self.last = item.position
        if not self.wanted.wants(item) or self.reset is not None:
            return
        if len(self.frames) >= self.limit:
            self.frames.clear()
            self.reset = "overflow"
        else:
            self.frames.append(item.frame)
        self.wake.set()

    def close(self, error: str) -> None:
        self.closed = error
        self.wake.set()

    async def stream(self, *, heartbeat: float) -> AsyncIterator[bytes]:
        """Frames as they come; a comment line every ``heartbeat`` idle seconds."""
        try:
            yield b": subscribed\n\n"
            while True:
                if self.reset is not None:
                    reason, self.reset = self.reset, None  # offers from here on are kept
                    yield self.hub.reset_frame(reason, self.last)
                if self.frames:
                    chunk = b"".join(self.frames)
                    self.frames.clear()
                    yield chunk
                    continue
                if self.closed is not None:
                    yield sse_frame("error", msgspec.json.encode({"error": self.closed}))
                    return
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), heartbeat)
                except TimeoutError:
                    yield b": heartbeat\n\n"
        finally:
            self.hub.unsubscribe(self)


class Hub:
    """One project's watcher thread, replay buffer and subscribers."""

    def __init__(
        self,
        project: str,
        root: str | os.PathLike[str] | None,
        loop: asyncio.AbstractEventLoop,
        *,
        poll: bool = False,
        replay: int = REPLAY_EVENTS,
        queue: int = QUEUE_EVENTS,
    ) -> None:
        self.project = project
        self.root = root
        self.loop = loop
        self.poll = poll
        self.queue = queue
        self.epoch = secrets.token_hex(4)
        self.error: str | None = None
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # buffer and index: the watcher thread vs subscribe
        self._buffer: deque[Item] = deque(maxlen=replay)
        self._next = 1
        self._subscribers: set[Subscriber] = set()
        self._thread = threading.Thread(
            target=self._run, name=f"scenelog-hub-{project}", daemon=True
        )
        self._thread.start()

    # ── the watcher thread ─────────────────────────────────────────────────

    def _run(self) -> None:
        try:
            events = iter(
                watch(
                    self.project,
                    root=self.root,
                    start="now",
                    poll=self.poll,
                    stop=self._stop,
                    on_ready=self.ready.set,
                )
            )
            for event in events:
                self._publish(event)
        except Exception as e:  # the stream reports it; the next subscriber starts a new hub
            self.error = f"{type(e).__name__}: {e}"
            self.ready.set()
            if not self.loop.is_closed():
                self.loop.call_soon_threadsafe(self._fail)

    def _publish(self, event: WatchEvent) -> None:
        data = msgspec.json.encode(event.to_dict())
        with self._lock:
            index = self._next
            self._next += 1
            frame = sse_frame(event.type, data, f"{self.epoch}-{index}")
            item = Item(index, event.type, event.episode, event.batch_id, frame)
            self._buffer.append(item)
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._fan_out, item)

    # ── the event loop ─────────────────────────────────────────────────────

    def _fan_out(self, item: Item) -> None:
        for subscriber in list(self._subscribers):
            subscriber.offer(item)

    def _fail(self) -> None:
        for subscriber in list(self._subscribers):
            subscriber.close(self.error or "the watcher stopped")

    def subscribe(self, wanted: StreamFilter, after: str | None) -> Subscriber:
        """A new subscriber; with ``after``, the buffered events after that id first."""
        with self._lock:
            newest = self._next - 1
            subscriber = Subscriber(self, wanted, newest, self.queue)
            if after is not None:
                index = self._resume_index(after, newest)
                if index is None:
                    subscriber.reset = "unknown position"
                else:
                    subscriber.frames.extend(
                        i.frame for i in self._buffer if i.position > index and wanted.wants(i)
                    )
            self._subscribers.add(subscriber)
        if self.error is not None:
            subscriber.close(self.error)
        return subscriber

    def _resume_index(self, after: str, newest: int) -> int | None:
        epoch, _, text = after.strip().rpartition("-")
        if epoch != self.epoch or not text.isascii() or not text.isdigit():
            return None
        index = int(text)
        oldest = self._buffer[0].position if self._buffer else self._next
        return index if oldest - 1 <= index <= newest else None

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    def reset_frame(self, reason: str, last: int) -> bytes:
        data = msgspec.json.encode({"reason": reason, "project": self.project})
        return sse_frame("reset", data, f"{self.epoch}-{last}")

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def stop(self) -> None:
        self._stop.set()
        for subscriber in list(self._subscribers):
            subscriber.close("the server is shutting down")

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
