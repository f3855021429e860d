"""The batch log: a narrow interface and its embedded file backend.

:class:`EventLog` is everything the store needs from a log backend: lock-free
reads, an O(1) last seq, and a locked session that sees the folded state and
appends a list of events as one commit. :class:`FileLog` keeps each batch's
events in ``<batch>.events.jsonl`` beside its bodies; a database backend
implements the same four methods and passes the same contract tests
(``tests/log_contract.py``).

FileLog invariants:
- Lines are appended only under the batch lock, all events of a command in
  one ``write``; the ``fsync`` follows once the lock is released, before the
  session's ``with`` block is left (R14, R20). A log created by the write is
  fsync'd with its folder while still locked.
- Right before writing, the writer checks that its lock file is still the one
  on disk and that the log still ends where it read it; otherwise it writes
  nothing (a deleted lock file can never let two writers append).
- ``seq`` is contiguous and each line's ``prev`` is the sha256 of the line
  before (R19). Writers check both for every line they have not seen before
  appending after it.
- A last line without ``\\n`` was never acknowledged: readers ignore it, the
  next writer copies it to ``<log>.torn.<offset>.<ns>`` and truncates it
  before appending (R18). A damaged line anywhere else raises DamagedLog
  naming file and line, for readers and writers alike.
- Readers take no lock (R22).
- Each process caches, per log, the byte offset of its last complete line,
  the hash of that line and the folded state, so an append reads only what
  other writers added since: appends cost the same at 10 or 100,000 events.

Crash at each step of an append: before the write, nothing; during it, a torn
tail that no reader delivers and the next writer removes; after the write but
before fsync, a complete line that may be lost on power failure (the command
has not returned, so nothing acknowledged is lost); after fsync, committed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import msgspec

from eventstore.errors import DamagedLog, StoreIOError
from eventstore.events import Event, decode_event, decode_lines, encode_event
from eventstore.fsio import fsync_dir, os_errors
from eventstore.layout import Layout
from eventstore.lock import DEFAULT_LOCK_TIMEOUT, batch_lock, still_held
from eventstore.manifest import Fold

__all__ = [
    "EventLog",
    "FileLog",
    "LogSession",
    "last_seq_or_none",
    "line_hash",
    "read_log_events",
    "split_complete",
    "tail_position",
    "tail_seq",
]


def line_hash(line: bytes) -> str:
    """The ``prev`` of the line after ``line`` (sha256 hex of its bytes, no ``\\n``)."""
    return hashlib.sha256(line).hexdigest()


def split_complete(data: bytes) -> tuple[bytes, bytes]:
    """``data`` cut after its last ``\\n``: (complete lines, torn tail)."""
    end = data.rfind(b"\n") + 1
    return data[:end], data[end:]


class LogSession(ABC):
    """A batch's log under its lock: the folded state, and one way to commit."""

    batch_id: str

    @property
    @abstractmethod
    def fold(self) -> Fold:
        """The state folded from every committed event (do not mutate)."""

    @abstractmethod
    def append(self, events: Sequence[Event]) -> list[Event]:
        """Commit ``events`` (built with ``seq=0, prev=None``) durably, as one write.

        Returns the committed events with their ``seq`` and ``prev``.
        """


class EventLog(ABC):
    """The narrow interface between the store and where its events live."""

    @abstractmethod
    def exists(self, batch_id: str) -> bool:
        """Whether the batch has a log (possibly empty)."""

    @abstractmethod
    def read(self, batch_id: str) -> list[Event]:
        """Every committed event of the batch in seq order, without locking."""

    @abstractmethod
    def last_seq(self, batch_id: str) -> int:
        """The last committed seq (0 for no events) in time independent of log length."""

    @abstractmethod
    def session(
        self, batch_id: str, *, timeout: float = DEFAULT_LOCK_TIMEOUT
    ) -> AbstractContextManager[LogSession]:
        """Lock the batch and present its folded state for one command."""


def _damaged(path: Path, line: int, what: str, batch_id: str) -> DamagedLog:
    return DamagedLog(
        f"{path}:{line}: {what}; the log of batch {batch_id} is damaged — run "
        "`scenelog verify` and restore the log from backup",
        path=str(path),
        line=line,
        batch_id=batch_id,
    )


def _decode_chunk(data: bytes, path: Path, first_line: int, batch_id: str) -> list[Event]:
    """Decode complete lines; on failure find and name the first bad line."""
    try:
        return decode_lines(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        pass
    for number, line in enumerate(data.split(b"\n")[:-1], start=first_line):
        try:
            decode_event(line)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise _damaged(path, number, f"unreadable event ({e})", batch_id) from e
    raise _damaged(path, first_line, "unreadable events", batch_id)


def read_log_events(path: Path, batch_id: str) -> list[Event]:
    """Every complete event of the log at ``path`` (none if it does not exist)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    complete, _torn = split_complete(data)
    return _decode_chunk(complete, path, 1, batch_id)


@dataclass
class _Cached:
    """What one process knows of one log file."""

    dev: int
    ino: int
    offset: int
    fold: Fold
    last_hash: str | None = None
    lines: int = 0
    mtime_ns: int = -1


_cache_guard = threading.Lock()
_cache: dict[str, _Cached] = {}


def _clear_cache() -> None:
    _cache.clear()


os.register_at_fork(after_in_child=_clear_cache)


class _FileSession(LogSession):
    def __init__(
        self, path: Path, batch_id: str, cached: _Cached, created: bool, lock: Path
    ) -> None:
        self.path = path
        self.lock = lock
        self.batch_id = batch_id
        self._cached = cached
        self._created = created
        self._unsynced: int | None = None  # fd written but not yet fsync'd

    @property
    def fold(self) -> Fold:
        return self._cached.fold

    def append(self, events: Sequence[Event]) -> list[Event]:
        cached = self._cached
        seq = cached.fold.seq
        prev = cached.last_hash
        committed: list[Event] = []
        lines: list[bytes] = []
        for draft in events:
            seq += 1
            event = msgspec.structs.replace(draft, seq=seq, prev=prev)
            line = encode_event(event)
            prev = line_hash(line)
            committed.append(event)
            lines.append(line)
        data = b"\n".join(lines) + b"\n"
        self._write(data, cached.offset)
        try:
            cached.fold.apply_all(committed)
        except BaseException:
            _forget(self.path)
            raise
        cached.offset += len(data)
        cached.last_hash = prev
        cached.lines += len(committed)
        return committed

    def _write(self, data: bytes, offset: int) -> None:
        path = self.path
        try:
            with os_errors(path, "append to"):
                if self._created:
                    path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    if self._created:
                        st = os.fstat(fd)
                        self._cached.dev, self._cached.ino = st.st_dev, st.st_ino
                    self._check_exclusive(fd, offset)
                    try:
                        written = os.write(fd, data)
                        if written != len(data):
                            raise OSError(28, "short write (disk full?)")
                    except OSError:
                        # No half line may stay for a later append to glue onto.
                        with contextlib.suppress(OSError):
                            os.ftruncate(fd, offset)
                        raise
                    self._cached.mtime_ns = os.fstat(fd).st_mtime_ns
                    if self._created:
                        # The log's name is made durable under the lock, before anyone
                        # else can append to it.
                        os.fsync(fd)
                        fsync_dir(path.parent)
                        self._created = False
                except BaseException:
                    os.close(fd)
                    raise
                if self._unsynced is not None:
                    os.close(self._unsynced)
                self._unsynced = fd
        except StoreIOError:
            _forget(path)
            raise

    def _check_exclusive(self, fd: int, offset: int) -> None:
        """Right before writing: still the lock holder, and nobody wrote since the catch-up."""
        if not still_held(self.lock) or os.fstat(fd).st_size != offset:
            raise StoreIOError(
                f"batch {self.batch_id}: its lock file {self.lock} was deleted or replaced, or "
                f"{self.path} changed while this command held the lock; nothing was written "
                "— run the command again (and never delete lock files of a live store)",
                path=str(self.path),
                batch_id=self.batch_id,
            )

    def finish(self) -> None:
        """fsync what this session wrote (R20); runs after the lock is released.

        One fsync makes every earlier write of the file durable, so a writer that
        appends after this one and returns has made this line durable too; and a
        line is visible to readers before it is durable whether the lock is held
        through the fsync or not (the page cache is shared). Holding the lock
        through the fsync would only serialize the fsyncs.
        """
        fd, self._unsynced = self._unsynced, None
        if fd is None:
            return
        try:
            with os_errors(self.path, "fsync"):
                os.fsync(fd)
        finally:
            os.close(fd)


def _forget(path: Path) -> None:
    with _cache_guard:
        _cache.pop(str(path), None)


class FileLog(EventLog):
    """Batch logs as JSONL files under ``<root>/<project>/<episode>/scenes/``."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def path(self, batch_id: str) -> Path:
        return self.layout.batch(batch_id).log

    def exists(self, batch_id: str) -> bool:
        return self.path(batch_id).exists()

    def read(self, batch_id: str) -> list[Event]:
        return read_log_events(self.path(batch_id), batch_id)

    def last_seq(self, batch_id: str) -> int:
        return tail_seq(self.path(batch_id), batch_id)

    @contextlib.contextmanager
    def session(
        self, batch_id: str, *, timeout: float = DEFAULT_LOCK_TIMEOUT
    ) -> Iterator[LogSession]:
        paths = self.layout.batch(batch_id)
        with batch_lock(paths.lock, timeout=timeout, batch_id=batch_id):
            try:
                cached, created = _catch_up(paths.log, batch_id)
            except DamagedLog:
                # Re-read from the start: the error then names the first bad line
                # even when the file was changed behind this process's cache.
                _forget(paths.log)
                try:
                    cached, created = _catch_up(paths.log, batch_id)
                except BaseException:
                    _forget(paths.log)
                    raise
            except BaseException:
                _forget(paths.log)
                raise
            session = _FileSession(paths.log, batch_id, cached, created, paths.lock)
            try:
                yield session
            except BaseException:
                session.finish()
                raise
        session.finish()


def _catch_up(path: Path, batch_id: str) -> tuple[_Cached, bool]:
    """Bring this process's cache of ``path`` up to the file (under the lock)."""
    key = str(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        fresh = _Cached(0, 0, 0, Fold(batch_id, path=key))
        with _cache_guard:
            _cache[key] = fresh
        return fresh, True
    with _cache_guard:
        cached = _cache.get(key)
    if (
        cached is None
        or (cached.dev, cached.ino) != (st.st_dev, st.st_ino)
        or cached.offset > st.st_size
        or (cached.offset == st.st_size and cached.mtime_ns != st.st_mtime_ns)
    ):
        cached = _Cached(st.st_dev, st.st_ino, 0, Fold(batch_id, path=key))
    if st.st_size > cached.offset:
        with os_errors(path, "read"), open(path, "rb") as f:
            f.seek(cached.offset)
            data = f.read(st.st_size - cached.offset)
        complete, torn = split_complete(data)
        if complete:
            _absorb(cached, complete, path, batch_id)
        if torn:
            _move_torn_tail(path, cached.offset, torn)
            st = os.stat(path)
    cached.mtime_ns = st.st_mtime_ns
    with _cache_guard:
        _cache[key] = cached
    # An empty file is a log whose creator died before its first line was durable.
    return cached, st.st_size == 0


def _absorb(cached: _Cached, complete: bytes, path: Path, batch_id: str) -> None:
    """Check and fold lines new to this process (the caller forgets the cache on error)."""
    first_line = cached.lines + 1
    events = _decode_chunk(complete, path, first_line, batch_id)
    lines = complete.split(b"\n")[:-1]
    prev = cached.last_hash
    seq = cached.fold.seq
    for number, (line, event) in enumerate(zip(lines, events, strict=True), start=first_line):
        seq += 1
        if event.seq != seq:
            raise _damaged(path, number, f"seq {event.seq} where {seq} was due", batch_id)
        if event.prev != prev:
            raise _damaged(
                path, number, "hash chain broken (a line before it was edited or removed)", batch_id
            )
        prev = line_hash(line)
    cached.fold.apply_all(events)
    cached.offset += len(complete)
    cached.last_hash = prev
    cached.lines += len(lines)


def _move_torn_tail(path: Path, offset: int, torn: bytes) -> None:
    """R18: keep the unacknowledged bytes aside, then cut them from the log."""
    aside = path.with_name(f"{path.name}.torn.{offset}.{time.time_ns()}")
    with os_errors(aside, "write"):
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, torn)
            os.fsync(fd)
        finally:
            os.close(fd)
    with os_errors(path, "truncate"):
        fd = os.open(path, os.O_WRONLY)
        try:
            os.ftruncate(fd, offset)
            os.fsync(fd)
        finally:
            os.close(fd)


class _SeqOnly(msgspec.Struct):
    seq: int


_seq_decoder = msgspec.json.Decoder(_SeqOnly)


def tail_seq(path: Path, batch_id: str) -> int:
    """The seq of the last complete line of ``path`` (0 when none), reading only its end."""
    seq = last_seq_or_none(path, batch_id)
    return 0 if seq is None else seq


def last_seq_or_none(path: Path, batch_id: str) -> int | None:
    """Like ``tail_seq``, but None when there is no log file at all."""
    position = tail_position(path, batch_id)
    return None if position is None else position[1]


def tail_position(path: Path, batch_id: str) -> tuple[int, int] | None:
    """(byte offset after the last complete line, its seq); (0, 0) for none; None: no file.

    Reads only the end of the log, whatever its length.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        size = os.fstat(fd).st_size
        window = 4096
        while True:
            start = max(size - window, 0)
            data = os.pread(fd, size - start, start)
            end = data.rfind(b"\n")
            if end < 0:
                if start == 0:
                    return 0, 0
                window *= 4
                continue
            cut = data.rfind(b"\n", 0, end)
            if cut < 0 and start > 0:
                window *= 4
                continue
            line = data[cut + 1 : end]
            try:
                return start + end + 1, _seq_decoder.decode(line).seq
            except (msgspec.DecodeError, msgspec.ValidationError) as e:
                raise DamagedLog(
                    f"{path}: last line unreadable ({e}); the log of batch {batch_id} is "
                    "damaged — run `scenelog verify`",
                    path=str(path),
                    batch_id=batch_id,
                ) from e
    finally:
        os.close(fd)
