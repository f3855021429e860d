"""``memory://NAME``: an in-process backend with the file backend's contract.

For tests of tools built on scenelog (like eventsourcing's POPO recorder):
every store, projection and watcher of one process that names the same
``memory://NAME`` root sees the same events, bodies and checkpoints.
Nothing survives the process; :meth:`MemoryLog.reset` forgets a NAME.

Invariants:
- One instance per (NAME, project) in a process (:meth:`MemoryLog.named`).
- A batch's log is the list of the exact lines the file backend would write
  (``encode_event``, the ``more`` marks of R24, ``prev`` = ``line_hash`` of
  the line before, R19), so :meth:`MemoryLog.raw` and verify's chain check
  work unchanged, and the lines written to a file make a valid file log.
- A session holds the batch's ``threading.Lock`` (LockTimeout after its
  timeout, R14) and checks every event of a command against a copy of the
  fold and the ``at`` form before storing anything (R25, the file session's
  checks): a refused command stores nothing. The session's ``fold`` is its
  own, live across its appends (as the file session's); readers see a
  published copy that is never changed once published.
- A command's events become visible at once: the lists only grow, under the
  batch lock, and the batch's head (seq, hash) is published after them;
  readers take the head first and read only up to it, so they never see part
  of a command (R24) and never wait for a writer (R22).
- Bodies are stored when written, once (VersionBodyExists); a body of a
  command that is then refused stays, as an orphan file would, and R8
  numbering counts it.
- The recorded head (R27) is set by every commit and is always the head.
- The change feed delivers events in commit order (per batch, seq order
  without gaps); its position is compact JSON ``{batch: [seq, event_id]}``;
  ``wait`` sleeps on a condition notified by every commit. R28: a position
  whose event a batch no longer holds (after :meth:`MemoryLog.reset`) is
  reported through ``warn`` and that batch is delivered again from seq 1.
- A consumer claim is exclusive among the threads of this process (the only
  ones that can see the storage); it dies with the process.
- Memory grows with what is written; nothing is evicted until ``reset``.
  The registry of instances is the storage itself, so it is process-wide;
  a forked child gets a copy, shared with nobody.

Crash at each step: nothing is durable. There is no torn line or incomplete
command to recover: a command is stored whole or not at all, and a process
that dies loses the whole store.
"""

from __future__ import annotations

import bisect
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

from eventstore.errors import (
    BodyMissing,
    ConsumerBusy,
    InvalidInput,
    LockTimeout,
    VersionBodyExists,
)
from eventstore.events import Event, utc_now
from eventstore.layout import validate_batch_id
from eventstore.log import (
    DEFAULT_LOCK_TIMEOUT,
    EventLog,
    Feed,
    FeedItem,
    Head,
    LogSession,
    RawLog,
    Stray,
    check_feed_start,
)
from eventstore.manifest import Fold, Manifest
from eventstore.rules import body_version, seal_command

__all__ = ["MemoryLog"]

_NO_HEAD = Head(0, None)


class _Batch:
    """One batch's log, bodies and lock.

    ``lines``, ``events`` and ``stamps`` only grow, under ``lock``; ``head``
    is published after them, so ``events[:head.seq]`` is always whole commands.
    """

    __slots__ = (
        "batch_id",
        "bodies",
        "events",
        "fold",
        "head",
        "highest",
        "holder",
        "lines",
        "lock",
        "stamps",
    )

    def __init__(self, batch_id: str) -> None:
        self.batch_id = batch_id
        self.lock = threading.Lock()
        self.holder: str | None = None  # the thread in a session, for LockTimeout
        self.lines: list[bytes] = []
        self.events: list[Event] = []
        self.stamps: list[int] = []  # the commit number of each event (feed order)
        self.fold = Fold(batch_id)
        self.head = _NO_HEAD
        self.bodies: dict[str, bytes] = {}
        self.highest = 0  # the highest vNNN body (R8), kept as bodies are written

    def holds(self) -> bool:
        """Whether there is anything at all (a committed event or a body)."""
        return self.head.seq > 0 or bool(self.bodies)


class _MemorySession(LogSession):
    def __init__(self, log: MemoryLog, batch: _Batch) -> None:
        self._log = log
        self._batch = batch
        self.batch_id = batch.batch_id
        # The session's own fold, live like the file session's: a command may hold
        # it across its append. Readers get the published copy (``batch.fold``).
        self._fold = batch.fold.copy()

    @property
    def fold(self) -> Fold:
        return self._fold

    def highest_body_version(self) -> int:
        return self._batch.highest

    def body_exists(self, name: str) -> bool:
        return name in self._batch.bodies

    def read_body(self, name: str) -> bytes:
        return self._log.read_body(self.batch_id, name)

    def write_body(self, name: str, data: bytes) -> None:
        self._log._check_body_name(self.batch_id, name)
        bodies = self._batch.bodies
        with self._log._changed:
            if name in bodies:
                raise VersionBodyExists(
                    f"refusing to overwrite existing version body {name} of batch "
                    f"{self.batch_id}: bodies are immutable; run `scenelog verify` to "
                    "inspect the batch",
                    path=self._log.where(self.batch_id, name),
                    batch_id=self.batch_id,
                )
            bodies[name] = bytes(data)
            self._batch.highest = max(self._batch.highest, body_version(self.batch_id, name) or 0)

    def append(self, events: Sequence[Event]) -> list[Event]:
        """Check every event against a copy of the fold, then store them all at once."""
        if not events:
            return []
        batch = self._batch
        work = self._fold.copy()  # checked on a copy: a refused command changes nothing
        committed, lines, prev = seal_command(work, events, self.batch_id, batch.head.hash)
        self._log._commit(batch, committed, lines, work, Head(work.seq, prev))
        self._fold.apply_all(committed)
        return committed


class _MemoryFeed(Feed):
    """The project's events after a position, in commit order."""

    def __init__(
        self,
        log: MemoryLog,
        positions: dict[str, tuple[int, str | None]],
        episode: str | None,
        warn: Callable[[str], None] | None,
    ) -> None:
        self._log = log
        self._positions: dict[str, tuple[int, str | None]] = {}
        # Each batch's entry of ``position``, encoded when it moves, and the batch ids
        # in order: an item's position is one join, not an encoding of every batch.
        self._entries: dict[str, str] = {}
        self._order: list[str] = []
        for batch_id, (seq, event_id) in positions.items():
            self._move(batch_id, seq, event_id)
        self._prefix = None if episode is None else episode + "_"
        self._warn = warn
        self._seen = -1  # the log's commit count when last read

    def _move(self, batch_id: str, seq: int, event_id: str | None) -> None:
        if batch_id not in self._positions:
            bisect.insort(self._order, batch_id)
        self._positions[batch_id] = (seq, event_id)
        self._entries[batch_id] = (
            f"{json.dumps(batch_id)}:{json.dumps([seq, event_id], separators=(',', ':'))}"
        )

    def _batches(self) -> list[_Batch]:
        found = list(self._log._batches.values())
        prefix = self._prefix
        return found if prefix is None else [b for b in found if b.batch_id.startswith(prefix)]

    def _start(self, batch: _Batch, head: Head) -> int:
        """The seq delivered last of ``batch``: its position's, or 0 when the log lost it (R28)."""
        found = self._positions.get(batch.batch_id)
        if found is None:
            return 0
        seq, event_id = found
        if seq == 0:
            return 0
        if seq <= head.seq:
            held = batch.events[seq - 1].event_id
            if event_id is None or held == event_id:
                return seq
        if self._warn is not None:
            self._warn(
                f"scenelog: warning: batch {batch.batch_id}: its log in {self._log.label} no "
                f"longer holds seq {seq} (event {event_id}) that this feed last delivered "
                "(reset or recreated?); delivering its events again from seq 1"
            )
        self._move(batch.batch_id, 0, None)
        return 0

    def read(self) -> list[FeedItem]:
        self._seen = self._log._commits
        found: list[tuple[int, int, _Batch]] = []
        for batch in self._batches():
            head = batch.head
            start = self._start(batch, head)
            stamps = batch.stamps
            found.extend((stamps[i], i + 1, batch) for i in range(start, head.seq))
        found.sort(key=lambda item: (item[0], item[1]))
        items: list[FeedItem] = []
        for _stamp, seq, batch in found:
            event = batch.events[seq - 1]
            self._move(batch.batch_id, seq, event.event_id)
            items.append(FeedItem(batch.batch_id, event, self.position))
        return items

    def wait(self, timeout: float) -> None:
        changed = self._log._changed
        with changed:
            if self._log._commits == self._seen:
                changed.wait(max(timeout, 0.0))

    @property
    def position(self) -> str:
        entries = self._entries
        return "{" + ",".join([entries[b] for b in self._order]) + "}"

    def lag(self) -> int:
        lag = 0
        for batch in self._batches():
            head = batch.head
            found = self._positions.get(batch.batch_id)
            if found is None or found[0] == 0:
                lag += head.seq
                continue
            seq, event_id = found
            held = seq <= head.seq and event_id in (None, batch.events[seq - 1].event_id)
            lag += head.seq - seq if held else head.seq
        return lag


def _decode_position(position: str, label: str) -> dict[str, tuple[int, str | None]]:
    """A position written by :class:`_MemoryFeed` (InvalidInput for anything else)."""
    try:
        data: Any = json.loads(position)
        if not isinstance(data, dict):
            raise TypeError
        found: dict[str, tuple[int, str | None]] = {}
        for batch_id, pair in data.items():
            seq, event_id = pair
            if (
                not isinstance(batch_id, str)
                or type(seq) is not int
                or seq < 0
                or not (event_id is None or isinstance(event_id, str))
            ):
                raise TypeError
            found[batch_id] = (seq, event_id)
    except (ValueError, TypeError) as e:
        raise InvalidInput(
            f"feed position {position[:80]!r} was not written by {label}'s feed: resume from "
            "a position its feed gave, or start at 'now' or 'beginning'",
            value=position,
        ) from e
    return found


class MemoryLog(EventLog):
    """Events, bodies and checkpoints of one project in this process's memory."""

    _registry: ClassVar[dict[tuple[str, str], MemoryLog]] = {}
    _registry_guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, name: str, project: str) -> None:
        self.name = name
        self.project = project
        self.label = f"memory://{name}"
        self._guard = threading.Lock()  # creating batches, claims
        self._changed = threading.Condition()  # commits, body writes, checkpoints
        self._commits = 0
        self._batches: dict[str, _Batch] = {}
        self._checkpoints: dict[str, bytes] = {}
        self._claims: dict[str, dict[str, Any]] = {}

    @classmethod
    def named(cls, name: str, project: str) -> MemoryLog:
        """The one instance serving ``project`` at ``memory://name`` in this process."""
        with cls._registry_guard:
            found = cls._registry.get((name, project))
            if found is None:
                found = cls._registry[(name, project)] = cls(name, project)
            return found

    @classmethod
    def reset(cls, name: str) -> None:
        """Forget everything stored at ``memory://name``, for every project.

        Instances handed out before see an empty store and are no longer
        shared: the next :meth:`named` makes new ones (a feed opened there at
        an old position reports, through ``warn``, each batch that no longer
        holds its event, R28). Consumer claims of running watchers stay held
        until released.
        """
        with cls._registry_guard:
            gone = [key for key in cls._registry if key[0] == name]
            logs = [cls._registry.pop(key) for key in gone]
        for log in logs:
            with log._changed:
                log._batches = {}
                log._checkpoints = {}
                log._commits += 1
                log._changed.notify_all()

    # ── where things are, and internals ────────────────────────────────────

    def where(self, batch_id: str, name: str | None = None) -> str:
        """``memory://NAME/<project>/<batch or item>``, for messages and findings."""
        return f"{self.label}/{self.project}/{batch_id if name is None else name}"

    def _get(self, batch_id: str) -> _Batch | None:
        return self._batches.get(batch_id)

    def _batch(self, batch_id: str) -> _Batch:
        found = self._batches.get(batch_id)
        if found is None:
            with self._guard:
                found = self._batches.get(batch_id)
                if found is None:
                    found = self._batches[batch_id] = _Batch(batch_id)
        return found

    def _check_body_name(self, batch_id: str, name: str) -> None:
        if name != f"{batch_id}.json" and body_version(batch_id, name) is None:
            raise InvalidInput(
                f"artifact {name!r} does not belong to batch {batch_id}",
                value=name,
                batch_id=batch_id,
            )

    def _commit(
        self, batch: _Batch, events: list[Event], lines: list[bytes], fold: Fold, head: Head
    ) -> None:
        """Store a command whole (under the batch lock) and wake the feeds."""
        with self._changed:
            self._commits += 1
            batch.lines.extend(lines)
            batch.events.extend(events)
            batch.stamps.extend([self._commits] * len(events))
            batch.fold = fold
            batch.head = head  # published last: readers read up to it
            self._changed.notify_all()

    # ── discovery ──────────────────────────────────────────────────────────

    def project_exists(self) -> bool:
        batches = list(self._batches.values())
        return bool(self._checkpoints) or any(b.holds() for b in batches)

    def episodes(self) -> list[str]:
        return sorted({b.batch_id[:6] for b in list(self._batches.values()) if b.holds()})

    def batches(self, episode: str) -> list[str]:
        prefix = episode + "_"
        return sorted(
            b.batch_id
            for b in list(self._batches.values())
            if b.head.seq > 0 and b.batch_id.startswith(prefix)
        )

    # ── reads ──────────────────────────────────────────────────────────────

    def exists(self, batch_id: str) -> bool:
        batch = self._get(batch_id)
        return batch is not None and batch.head.seq > 0

    def read(self, batch_id: str, *, after: int = 0) -> list[Event]:
        batch = self._get(batch_id)
        if batch is None:
            return []
        head = batch.head
        return batch.events[max(after, 0) : head.seq]

    def head(self, batch_id: str) -> Head:
        batch = self._get(batch_id)
        return _NO_HEAD if batch is None else batch.head

    def raw(self, batch_id: str) -> RawLog:
        batch = self._get(batch_id)
        lines = [] if batch is None else batch.lines[: batch.head.seq]
        return RawLog(lines, [], 0, self.where(batch_id))

    def recorded_head(self, batch_id: str) -> Head | None:
        head = self.head(batch_id)
        return head if head.seq else None

    def busy(self, batch_id: str) -> bool:
        batch = self._get(batch_id)
        return batch is not None and batch.lock.locked()

    def snapshot(self, batch_id: str) -> Manifest | None:
        batch = self._get(batch_id)
        if batch is None or batch.head.seq == 0:
            return None
        return batch.fold.manifest()

    # ── bodies ─────────────────────────────────────────────────────────────

    def body_exists(self, batch_id: str, name: str) -> bool:
        batch = self._get(batch_id)
        return batch is not None and name in batch.bodies

    def read_body(self, batch_id: str, name: str) -> bytes:
        batch = self._get(batch_id)
        data = None if batch is None else batch.bodies.get(name)
        if data is None:
            where = self.where(batch_id, name)
            raise BodyMissing(
                f"scene body {where} of batch {batch_id} is missing; write it again (a "
                "memory:// store keeps nothing after its process or a reset)",
                path=where,
                batch_id=batch_id,
            )
        return data

    def body_names(self, batch_id: str) -> list[str]:
        batch = self._get(batch_id)
        return [] if batch is None else sorted(batch.bodies)

    def strays(self, episode: str) -> list[Stray]:
        """Version bodies of batches of ``episode`` without events (orphans of a first write)."""
        prefix = episode + "_"
        found = []
        for batch in sorted(list(self._batches.values()), key=lambda b: b.batch_id):
            if batch.head.seq or not batch.batch_id.startswith(prefix):
                continue
            names = sorted(n for n in list(batch.bodies) if body_version(batch.batch_id, n))
            if names:
                found.append(
                    Stray(batch.batch_id, "bodies", self.where(batch.batch_id), tuple(names))
                )
        return found

    # ── the change feed and consumers ──────────────────────────────────────

    def feed(
        self,
        position: str | None,
        *,
        start: str = "now",
        episode: str | None = None,
        poll: float | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> Feed:
        """A feed after ``position``; ``poll`` is accepted and ignored (commits wake it)."""
        check_feed_start(start)
        if position is not None:
            positions = _decode_position(position, self.label)
        elif start == "beginning":
            positions = {}
        else:  # "now"
            prefix = None if episode is None else episode + "_"
            positions = {}
            for batch in list(self._batches.values()):
                head = batch.head
                if head.seq and (prefix is None or batch.batch_id.startswith(prefix)):
                    positions[batch.batch_id] = (head.seq, batch.events[head.seq - 1].event_id)
        return _MemoryFeed(self, positions, episode, warn)

    def load_checkpoint(self, consumer: str) -> bytes | None:
        return self._checkpoints.get(consumer)

    def save_checkpoint(self, consumer: str, data: bytes, *, durable: bool = True) -> None:
        with self._changed:
            self._checkpoints[consumer] = bytes(data)

    def feed_position_at(self, position: str | None, batch_id: str, seq: int) -> str:
        positions = _decode_position(self.feed(position).position, self.label)
        batch = self._batches.get(batch_id)
        head = 0 if batch is None else batch.head.seq
        if batch is None or not 0 <= seq <= head:
            raise InvalidInput(f"batch {batch_id} has no event {seq} (its last is {head})")
        positions[batch_id] = (seq, batch.events[seq - 1].event_id if seq else None)
        return json.dumps({b: list(p) for b, p in sorted(positions.items())}, separators=(",", ":"))

    def delete_checkpoint(self, consumer: str) -> bool:
        with self._changed:
            return self._checkpoints.pop(consumer, None) is not None

    def consumers(self) -> list[str]:
        return sorted(self._checkpoints)

    @contextmanager
    def claim(self, consumer: str) -> Iterator[None]:
        me: dict[str, Any] = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "thread": threading.current_thread().name,
            "since": utc_now(),
        }
        with self._guard:
            holder = self._claims.get(consumer)
            if holder is not None:
                raise ConsumerBusy(
                    f"consumer {consumer!r} is in use by thread {holder['thread']} of pid "
                    f"{holder['pid']} on host {holder['host']} (since {holder['since']}); stop "
                    "that watcher first, or use another consumer name",
                    consumer=consumer,
                    holder=dict(holder),
                )
            self._claims[consumer] = me
        try:
            yield
        finally:
            with self._guard:
                if self._claims.get(consumer) is me:
                    del self._claims[consumer]

    # ── the commit ─────────────────────────────────────────────────────────

    @contextmanager
    def session(
        self, batch_id: str, *, timeout: float = DEFAULT_LOCK_TIMEOUT
    ) -> Iterator[LogSession]:
        batch_id = validate_batch_id(batch_id)
        batch = self._batch(batch_id)
        if timeout <= 0:
            got = batch.lock.acquire(False)
        else:
            got = batch.lock.acquire(timeout=min(timeout, threading.TIMEOUT_MAX))
        if not got:
            raise LockTimeout(
                f"batch {batch_id} is locked: waited {timeout:g}s in {self.label}; another "
                f"writer ({batch.holder or 'a thread of this process'}) holds it — retry, or "
                "find the hung thread holding it",
                path=self.where(batch_id),
                timeout=timeout,
                batch_id=batch_id,
            )
        batch.holder = f"thread {threading.current_thread().name}"
        try:
            yield _MemorySession(self, batch)
        finally:
            batch.holder = None
            batch.lock.release()
