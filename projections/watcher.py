"""Watchers: every event of every batch log of a project, once caught up, as it lands.

``watch()`` returns a :class:`Watcher`, an iterator (like ``watchfiles.watch``)
of :class:`WatchEvent` objects — first every event after the consumer's
checkpoint (catch-up), then live ones, including those of logs created after
the watcher started. Only this module imports watchfiles.

Invariants:
- Per batch, events come strictly in seq order without a gap; across batches
  in the order their logs changed.
- Only complete lines are delivered: the tailer's byte offset only ever moves
  to the end of a ``\\n``-terminated line, so a line being written (inotify
  fires before fsync, possibly mid-line) or torn by a crash is never read as
  an event, and a torn tail cut and rewritten by the next writer is read anew.
- At-least-once: a named consumer's checkpoint (per log: the last delivered
  event's seq and event_id, and the byte offset after its line) is written
  atomically (temp file, fsync, rename, folder fsync) only after the consumer
  finished with an event — when it asks for the next one, or calls
  ``commit()``. A crash redelivers at most the event in flight.
- R28, the watcher follows the log it finds: on resume, and whenever a live
  log's inode changes or it shrinks below the offset, the line ending at the
  offset must still be the checkpointed event (same seq, same event_id).
  Otherwise the log was replaced (restored from an older backup, batch folder
  recreated): the watcher says so in one line (``on_notice``, stderr by
  default) and delivers that batch's log again from seq 1 — the checkpoint
  names only the last event, so "from the start" is the one choice that never
  skips an event it cannot prove was delivered. Never a silent skip.
  Checkpoints written before event ids are read as they are: their event id
  is taken from the line at their offset if that line has their seq.
- A consumer without a checkpoint gets one written at once, so that events
  appended while it is down are delivered when it comes back.
- A corrupt checkpoint is an error naming the file, never a silent restart.
- One watcher per consumer name at a time: it holds an exclusive ``flock`` on
  ``.scenelog/consumers/<name>.lock`` (holding its host and pid) while it
  runs; a second one raises ConsumerBusy naming the holder. The kernel drops
  the lock when the holder dies, so a crashed watcher never blocks the next.
  (``flock`` is not shared between NFS clients on every setup: run a
  consumer's watchers on one host.)
- Only names of the batch-id grammar in their episode's scenes folder are
  logs; any other ``*.events.jsonl`` is ignored.
- Readers never lock batches (R22): a watcher never slows a writer.
- A project (or root) that does not exist is an error (InvalidInput), never
  created by a watcher.

Live mode rides on inotify (watchfiles with a 4 ms step: a 1 ms step cost
over 2% CPU while idle) plus a full rescan once a second for anything a
notification missed. Poll mode, for network filesystems whose other hosts'
writes inotify cannot see, rescans every ``interval`` seconds by itself
(watchfiles' own polling misses appends).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import msgspec
import watchfiles

from eventstore import DamagedLog, DamagedStore, Event, InvalidInput, Layout
from eventstore.errors import ConsumerBusy, StoreIOError
from eventstore.events import EVENT_TYPES, decode_event, utc_now
from eventstore.filelog.core import tail_position
from eventstore.fsio import os_errors, replace_atomic
from eventstore.layout import normalize_episode, validate_batch_id

__all__ = ["CheckpointError", "WatchEvent", "Watcher", "consumer_status", "watch"]

_LOG_SUFFIX = ".events.jsonl"
_CONSUMER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
RESCAN_SECONDS = 1.0
"""Live mode rescans every log this often, for notifications the kernel dropped."""


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


class CheckpointError(DamagedStore):
    """A consumer checkpoint file is unreadable; it is never silently reset."""


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


class _Position(msgspec.Struct):
    """Where a consumer is in one log: its last delivered event and the byte after it.

    ``event_id`` is None only in checkpoints written before it existed.
    """

    seq: int
    offset: int
    event_id: str | None = None


class _Checkpoint(msgspec.Struct):
    consumer: str
    updated_at: str
    positions: dict[str, _Position]
    delivered_at: str | None = None


class _Tail:
    """One log being followed: the end of its last complete line, and its seq there."""

    __slots__ = ("batch_id", "event_id", "ident", "offset", "path", "seen", "seq", "stat")

    def __init__(self, path: Path, offset: int, seq: int, event_id: str | None = None) -> None:
        self.path = path
        self.batch_id = path.name[: -len(_LOG_SUFFIX)]
        self.offset = offset
        self.seq = seq
        self.event_id = event_id  # of the event at ``seq``, whose line ends at ``offset``
        self.ident: tuple[int, int] | None = None  # (st_dev, st_ino) of the file being read
        self.seen: tuple[int, int] | None = None  # (size, mtime) when last read to the end
        self.stat: os.stat_result | None = None  # taken when ordering tails, used by read()

    def _damaged(self, what: str) -> DamagedLog:
        return DamagedLog(
            f"{self.path}: {what}; the watcher stops rather than skip — run `scenelog verify`",
            path=str(self.path),
            batch_id=self.batch_id,
        )

    def read(self) -> list[tuple[Event, int]]:
        """New complete events with the offset after each; nothing if the file did not change."""
        st, self.stat = self.stat, None
        if st is None:
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                return []
        stamp = (st.st_size, st.st_mtime_ns)
        if stamp == self.seen and st.st_size == self.offset:
            return []
        if st.st_size < self.offset:
            raise self._damaged(f"shrank below byte {self.offset} (replaced or truncated)")
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.seen = stamp
        from eventstore.log import split_committed  # R24: lines of whole commands only

        committed, _rest = split_committed(data)
        found: list[tuple[Event, int]] = []
        position, seq = self.offset, self.seq
        for line in committed.split(b"\n")[:-1]:
            position += len(line) + 1
            try:
                event = decode_event(line)
            except (msgspec.DecodeError, msgspec.ValidationError) as e:
                raise self._damaged(f"unreadable line after seq {seq} ({e})") from e
            if event.seq <= seq:
                continue  # resumed before it: delivered already
            if event.seq != seq + 1:
                raise self._damaged(f"seq {event.seq} follows {seq}: events are missing")
            seq = event.seq
            found.append((event, position))
        return found

    def holds_position(self) -> bool:
        """Whether the line ending at ``offset`` is still the event at ``seq`` (R28).

        A position without an event id (a checkpoint from before event ids, or
        a start at the log's end) adopts the id of the event found there.
        """
        if self.seq == 0:
            return self.offset == 0
        found = event_ending_at(self.path, self.offset)
        if found is None or found.seq != self.seq:
            return False
        if self.event_id is None:
            self.event_id = found.event_id
        return found.event_id == self.event_id

    def restart(self) -> None:
        """Read the log again from its first line."""
        self.offset = self.seq = 0
        self.event_id = None
        self.seen = None


def event_ending_at(path: Path, offset: int) -> Event | None:
    """The event whose line ends at byte ``offset`` of ``path``; None when there is none.

    Reads only the end of that line, however long the log.
    """
    if offset <= 0:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        if os.fstat(fd).st_size < offset:
            return None
        window = 4096
        while True:
            start = max(offset - window, 0)
            data = os.pread(fd, offset - start, start)
            if not data.endswith(b"\n"):
                return None
            cut = data.rfind(b"\n", 0, len(data) - 1)
            if cut < 0 and start > 0:
                window *= 4
                continue
            try:
                return decode_event(data[cut + 1 : -1])
            except (msgspec.DecodeError, msgspec.ValidationError):
                return None
    finally:
        os.close(fd)


def _batch_of(path: str | Path) -> str | None:
    """The batch id of a log file name, None for any other name (notes.events.jsonl)."""
    name = os.path.basename(path)
    if not name.endswith(_LOG_SUFFIX):
        return None
    try:
        return validate_batch_id(name[: -len(_LOG_SUFFIX)])
    except InvalidInput:
        return None


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
        self.layout = Layout.of(project, root)
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
        self._tails: dict[str, _Tail] = {}
        # Delivered, not yet committed: (tail, seq, offset, event_id).
        self._pending: tuple[_Tail, int, int, str] | None = None
        self._dirty = False
        self._delivered_at: str | None = None
        self._checkpoint_path = (
            None if consumer is None else consumer_dir(self.layout) / f"{consumer}.json"
        )
        self._absent: dict[str, _Position] = {}  # checkpointed logs not (yet) on disk
        self._claim_fd: int | None = None
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
        self._release()

    def __enter__(self) -> Watcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ── the project and the consumer name ──────────────────────────────────

    def _require_project(self) -> None:
        root, project_dir = self.layout.root, self.layout.project_dir
        if not root.is_dir():
            raise InvalidInput(
                f"root {root} does not exist (or is not a folder): is the store mounted? "
                "check --root / SCENELOG_ROOT",
                root=str(root),
            )
        if not project_dir.is_dir():
            raise InvalidInput(
                f"no project {self.layout.project!r} under {root}: check --project / "
                "SCENELOG_PROJECT and --root / SCENELOG_ROOT (a project appears with its "
                "first batch)",
                root=str(root),
                project=self.layout.project,
            )

    def _claim(self) -> None:
        """Hold the consumer name for as long as this watcher runs (ConsumerBusy if held).

        Crash at any step: the kernel drops the ``flock`` with the process; the
        lock file stays, naming a holder that is gone, and the next watcher
        takes it and writes its own host and pid (a watcher refused in the
        instant between those two steps may name the previous holder).
        """
        if self.consumer is None:
            return
        folder = consumer_dir(self.layout)
        path = folder / f"{self.consumer}.lock"
        try:
            with os_errors(path, "open"):
                folder.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except StoreIOError as e:
            raise StoreIOError(
                f"consumer {self.consumer!r} cannot keep its checkpoint: {e} — or watch "
                "without --consumer",
                path=str(path),
                errno_code=getattr(e, "errno_code", None),
            ) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(os.pread(fd, 4096, 0))
            os.close(fd)
            raise ConsumerBusy(
                f"consumer {self.consumer!r} is in use by pid {holder.get('pid', '?')} on "
                f"host {holder.get('host', '?')} (since {holder.get('since', '?')}); stop "
                "that watcher first, or use another consumer name",
                consumer=self.consumer,
                holder=holder,
                path=str(path),
            ) from None
        except OSError as e:
            os.close(fd)
            raise StoreIOError(
                f"cannot lock {path}: {e.strerror or e}; the filesystem must support flock",
                path=str(path),
            ) from e
        # Written after the lock is ours: a reader that lost the race reads it.
        me = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": utc_now()})
        try:
            with os_errors(path, "write"):
                os.ftruncate(fd, 0)
                os.pwrite(fd, me.encode() + b"\n", 0)
        except BaseException:
            os.close(fd)
            raise
        self._claim_fd = fd

    def _release(self) -> None:
        fd, self._claim_fd = self._claim_fd, None
        if fd is not None:
            os.close(fd)  # drops the flock

    # ── positions ──────────────────────────────────────────────────────────

    def _logs(self) -> list[Path]:
        episodes = [self.episode] if self.episode else self.layout.episodes()
        return [
            self.layout.scenes_dir(ep) / f"{b}{_LOG_SUFFIX}"
            for ep in episodes
            for b in self.layout.batch_ids(ep)
        ]

    def _start_positions(self) -> None:
        saved = self._load_checkpoint()
        for path in self._logs():
            batch_id = path.name[: -len(_LOG_SUFFIX)]
            if saved is not None and batch_id in saved.positions:
                tail = self._resumed(path, saved.positions[batch_id])
            elif saved is None and self.start == "now":
                tail = _Tail(path, *(tail_position(path, batch_id) or (0, 0)))
                tail.holds_position()  # learns the event id at the end
            else:
                tail = _Tail(path, 0, 0)
            self._tails[batch_id] = tail
        if saved is not None:
            # Kept in the checkpoint (other episodes, a log moved away for a while) and
            # checked like any other position if the log shows up.
            self._absent = {b: p for b, p in saved.positions.items() if b not in self._tails}
        elif self._checkpoint_path is not None:
            self._dirty = True
        self.commit()

    def _resumed(self, path: Path, pos: _Position) -> _Tail:
        tail = _Tail(path, pos.offset, pos.seq, pos.event_id)
        if not tail.holds_position():
            self._replaced(tail, "differs from the checkpoint")
        elif pos.event_id is None and tail.event_id is not None:
            self._dirty = True  # an old checkpoint: rewrite it with the event id
        return tail

    def _appeared(self, batch_id: str, path: Path) -> _Tail:
        """A log seen for the first time since the start."""
        pos = self._absent.pop(batch_id, None)
        tail = _Tail(path, 0, 0) if pos is None else self._resumed(path, pos)
        self._tails[batch_id] = tail
        return tail

    def _replaced(self, tail: _Tail, how: str) -> None:
        """R28: the log no longer holds the last event handed out: say so, start it over."""
        who = f"consumer {self.consumer!r}" if self.consumer else "this watcher"
        self.on_notice(
            f"scenelog: warning: batch {tail.batch_id}: its log {how} — it no longer holds "
            f"seq {tail.seq} (event {tail.event_id}) that {who} last handled (restored from "
            "a backup or recreated?); delivering its events again from seq 1"
        )
        tail.restart()
        self._dirty = True

    def _check_replaced(self, tail: _Tail, *, suspect: bool = False) -> bool:
        """Whether the log was replaced under a live tail (then it starts over).

        Each time the file changed (and when reading it failed: ``suspect``),
        the line ending at the offset must still be the last event handed
        out — one small read. A new inode or a file shorter than the offset
        is a replacement unless that line is still there.
        """
        st = tail.stat
        if st is None:
            try:
                st = tail.stat = os.stat(tail.path)
            except FileNotFoundError:
                return False
        ident = (st.st_dev, st.st_ino)
        moved = ident != tail.ident or st.st_size < tail.offset
        tail.ident = ident
        if tail.seq == 0:
            return False  # nothing handed out yet: nothing to lose
        if not (suspect or moved or (st.st_size, st.st_mtime_ns) != tail.seen):
            return False  # unchanged since it was last read
        if tail.holds_position():
            return False
        self._replaced(tail, "was replaced or rewritten while watched")
        return True

    def _load_checkpoint(self) -> _Checkpoint | None:
        path = self._checkpoint_path
        if path is None:
            return None
        try:
            saved = read_checkpoint(path)
        except FileNotFoundError:
            return None
        self._delivered_at = saved.delivered_at
        return saved

    def commit(self) -> None:
        """Checkpoint every event handed out so far (call after handling the last one).

        Crash safety: the checkpoint is replaced atomically and durably, so a
        crash at any step leaves the old or the new one, never a mix.
        """
        if self._pending is not None:
            tail, seq, offset, event_id = self._pending
            tail.seq, tail.offset, tail.event_id = seq, offset, event_id
            self._pending = None
            self._dirty = True
        if not self._dirty or self._checkpoint_path is None:
            return
        positions = dict(self._absent)
        positions.update(
            (b, _Position(t.seq, t.offset, t.event_id)) for b, t in self._tails.items()
        )
        checkpoint = _Checkpoint(self.consumer or "", utc_now(), positions, self._delivered_at)
        with os_errors(self._checkpoint_path.parent, "create"):
            self._checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
        replace_atomic(self._checkpoint_path, msgspec.json.encode(checkpoint), durable=True)
        self._dirty = False

    # ── the stream ─────────────────────────────────────────────────────────

    def _stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def _read(self, tail: _Tail) -> list[tuple[Event, int]]:
        self._check_replaced(tail)
        try:
            return tail.read()
        except DamagedLog:
            # A file swapped in between the check and the read looks damaged at
            # our offset; only a log that still holds our event is really damaged.
            if not self._check_replaced(tail, suspect=True):
                raise
            return tail.read()

    def _drain(self, tails: Iterable[_Tail]) -> Iterator[WatchEvent]:
        for tail in tails:
            for event, offset in self._read(tail):
                if self.types is not None and event.type not in self.types:
                    tail.seq, tail.offset, tail.event_id = event.seq, offset, event.event_id
                    self._dirty = True
                    continue
                self._pending = (tail, event.seq, offset, event.event_id)
                self._delivered_at = utc_now()
                yield WatchEvent(self.layout.project, tail.batch_id[:6], event)
                self.commit()  # the consumer came back for more: it is done with this one

    def _rescan(self) -> list[_Tail]:
        for path in self._logs():
            batch_id = path.name[: -len(_LOG_SUFFIX)]
            if batch_id not in self._tails:  # created after the watcher started
                self._appeared(batch_id, path)
        return sorted(self._tails.values(), key=_mtime)

    def _events(self) -> Generator[WatchEvent, None, None]:
        self._require_project()
        self._claim()
        try:
            self._start_positions()
            if self.on_ready is not None:
                # From here on nothing is missed: what lands before inotify is set up is
                # found by the live loop's first rescan.
                self.on_ready()
            yield from self._drain(self._rescan())
            if self.poll:
                yield from self._poll_loop()
            else:
                yield from self._live_loop()
        finally:
            try:
                self._pending = None  # an event the consumer did not come back from stays due
                if self._dirty:
                    self.commit()
            finally:
                self._release()

    def _poll_loop(self) -> Iterator[WatchEvent]:
        while not self._stopped():
            began = time.monotonic()
            yield from self._drain(self._rescan())
            self.commit()
            pause = self.interval - (time.monotonic() - began)
            if pause > 0 and not self._stopped():
                time.sleep(pause)

    def _live_loop(self) -> Iterator[WatchEvent]:
        last_scan = time.monotonic()
        changes_seen = watchfiles.watch(
            self.layout.project_dir,
            watch_filter=lambda _change, path: _batch_of(path) is not None,
            debounce=0,
            step=4,
            rust_timeout=int(RESCAN_SECONDS * 1000),
            yield_on_timeout=True,
            stop_event=self.stop,
            raise_interrupt=False,
        )
        first = True
        for changes in changes_seen:
            # The first answer rescans everything: events that landed while inotify was
            # being set up have no notification of their own.
            if first or not changes or time.monotonic() - last_scan >= RESCAN_SECONDS:
                first = False
                last_scan = time.monotonic()
                tails = self._rescan()
            else:
                tails = self._changed(changes)
            yield from self._drain(tails)
            self.commit()
            if self._stopped():
                return

    def _changed(self, changes: set[tuple[watchfiles.Change, str]]) -> list[_Tail]:
        tails = []
        for _change, raw in changes:
            batch_id = _batch_of(raw)
            if batch_id is None:
                continue  # not a batch log (notes.events.jsonl, a typo'd copy)
            tail = self._tails.get(batch_id)
            if tail is None:
                path = Path(raw)
                if self.episode and not batch_id.startswith(self.episode + "_"):
                    continue
                if path.parent != self.layout.scenes_dir(batch_id[:6]):
                    continue
                tail = self._appeared(batch_id, path)
            tails.append(tail)
        return sorted(set(tails), key=_mtime)


def _holder(data: bytes) -> dict[str, Any]:
    """The host and pid a consumer lock file names ({} when unreadable)."""
    try:
        holder = json.loads(data.decode("utf-8", "replace").strip() or "{}")
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _mtime(tail: _Tail) -> int:
    """The log's mtime, for ordering; the stat is kept for the read that follows."""
    try:
        tail.stat = os.stat(tail.path)
    except FileNotFoundError:
        tail.stat = None
        return 0
    return tail.stat.st_mtime_ns


watch = Watcher
"""``watch(project, *, root, types, episode, consumer, start, poll, interval, stop,
on_ready, on_notice)``: follow every batch log of ``project``; the result is
an iterator of WatchEvents. ``on_ready`` is called once the starting positions
are fixed: every event appended after it returns will be delivered.
``on_notice`` gets the one-line warnings of R28 (default: stderr)."""


def read_checkpoint(path: Path) -> _Checkpoint:
    """A consumer's checkpoint; CheckpointError naming the file when it is corrupt."""
    data = path.read_bytes()
    try:
        return msgspec.json.decode(data, type=_Checkpoint)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise CheckpointError(
            f"consumer checkpoint {path} is corrupt ({e}); restore it, or delete it to "
            "start the consumer afresh (it then follows --start)",
            path=str(path),
        ) from e


def consumer_dir(layout: Layout) -> Path:
    return layout.meta_dir / "consumers"


def consumer_status(
    project: str, root: str | os.PathLike[str] | None = None
) -> list[dict[str, Any]]:
    """Each consumer with its lag and last delivery time.

    The lag counts the events its watcher would deliver on resume: those after
    its checkpoint, or a whole log that no longer holds the checkpointed event
    (R28: replaced, so delivered again from seq 1).
    """
    layout = Layout.of(project, root)
    folder = consumer_dir(layout)
    try:
        names = sorted(n for n in os.listdir(folder) if n.endswith(".json"))
    except FileNotFoundError:
        return []
    logs = {b: layout.batch(b).log for ep in layout.episodes() for b in layout.batch_ids(ep)}
    last = {b: (tail_position(path, b) or (0, 0))[1] for b, path in logs.items()}
    result = []
    for name in names:
        saved = read_checkpoint(folder / name)
        lag = 0
        for batch_id, seq in last.items():
            pos = saved.positions.get(batch_id)
            if pos is None:
                lag += seq
                continue
            tail = _Tail(logs[batch_id], pos.offset, pos.seq, pos.event_id)
            lag += seq - pos.seq if tail.holds_position() else seq
        result.append(
            {
                "consumer": saved.consumer,
                "lag": lag,
                "last_delivery": saved.delivered_at,
                "updated_at": saved.updated_at,
                "batches": len(saved.positions),
            }
        )
    return result
