"""The file backend's log core: JSONL files, the per-batch session, heads.

:class:`FileLogCore` keeps each batch's events in ``<batch>.events.jsonl``
beside its bodies and implements the log part of :class:`eventstore.log.EventLog`
(reads, heads, the locked session); :class:`eventstore.filelog.FileLog` adds
bodies, views, the change feed and consumer checkpoints.

FileLog invariants:
- Lines are appended only under the batch lock, all events of a command in
  one ``write``; the ``fsync`` follows once the lock is released, before the
  session's ``with`` block is left (R14, R20). A log created by the write is
  fsync'd with its folder while still locked.
- Every event is checked against the fold (batch, registered versions) and its
  ``at`` against the log's form before any byte is written (item 3): a refused
  append raises RuleViolation and leaves the file as it was.
- R24: the lines of a command of n events carry ``"more": n-1 … 1`` as their
  last member and its last line none (docs/FORMAT.md §8), so any prefix of the
  write ends inside a command. Readers deliver only lines up to the last one
  without ``more`` (:func:`split_committed`); single-event commands and old
  logs are byte-identical to lines without the mark.
- Right before writing, the writer checks that its lock file is still the one
  on disk and that the log still ends where it read it; otherwise it writes
  nothing (a deleted lock file can never let two writers append).
- ``seq`` is contiguous and each line's ``prev`` is the sha256 of the line
  before (R19). Writers check both, and the ``more`` countdown, for every line
  they have not seen before appending after it.
- A last line without ``\\n``, and the complete lines of an incomplete command
  before it, were never acknowledged: readers ignore them, the next writer
  copies them to ``<log>.torn.<offset>.<ns>`` and truncates them before
  appending (R18, R24). A damaged line anywhere else raises DamagedLog naming
  file and line, for readers and writers alike.
- Readers take no lock (R22).
- Each FileLog remembers (:class:`_State`, owned by the instance, never by
  the module), per log, the byte offset of its last committed line, the
  hash of that line and the folded state, so an append reads only what
  other writers added since: appends cost the same at 10 or 100,000 events.
  Entries are keyed on the batch's identity (device and inode of its scenes
  folder, batch id), never a spelling, and ``eventstore.backends`` shares one
  FileLog per root identity and project, so every spelling of a root shares
  them (R23). At most ``_CACHE_LIMIT`` logs are kept. The state belongs to
  the process that made it: a forked child, or :meth:`FileLogCore.forget`,
  starts from nothing, as a new process does.
- A command session (:meth:`FileLogCore.command`) also holds the reference's
  ``versions.lock`` when it exists and runs R21 and R29 under the locks
  before the command sees the fold; every commit rewrites the view (R17).
- R27: after the fsync of a commit, the session overwrites the head record
  ``<root>/<project>/.scenelog/heads/<batch>`` (seq and line hash of its last
  line) in place, without fsync: the record is never ahead of the durable log,
  at worst older.

Crash at each step of an append: before the write, nothing; during it, a torn
tail or an incomplete command that no reader delivers and the next writer
removes whole; after the write but before fsync, complete lines that may be
lost on power failure (the command has not returned, so nothing acknowledged
is lost); after fsync, committed, with a head record that may be older than
the log until the next commit (verify accepts a record whose line still has
its hash).
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
import weakref
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import msgspec

from eventstore.errors import BodyMissing, DamagedLog, StoreIOError
from eventstore.events import Event, decode_event, decode_lines
from eventstore.filelog import viewpolicy, views
from eventstore.filelog.fsio import fsync_dir, os_errors, write_once
from eventstore.filelog.paths import BatchPaths, Layout
from eventstore.log import (
    _MORE,
    DEFAULT_LOCK_TIMEOUT,
    EventLog,
    Head,
    LogSession,
    RawLog,
    _more,
    command_more,
    line_hash,
    line_seq,
    split_committed,
    split_complete,
)
from eventstore.manifest import Fold
from eventstore.rules import seal_command
from eventstore.scene import Scene, load_scene

if TYPE_CHECKING:
    from eventstore.filelog import numbering

__all__ = [
    "FileLogCore",
    "last_seq_or_none",
    "read_head_record",
    "read_log_events",
    "tail_head",
    "tail_position",
    "tail_seq",
]


# The lock module (and fasteners with it) is imported by the first session, not
# by readers (issue 15: a `gate` never loads it). ``batch_lock`` is looked up in
# this module at every session, so a benchmark may wrap it here.


def batch_lock(path: Path, *, timeout: float, batch_id: str) -> AbstractContextManager[None]:
    from eventstore.filelog.lock import batch_lock as lock

    return lock(path, timeout=timeout, batch_id=batch_id)


def held_identity(path: Path) -> tuple[int, int] | None:
    from eventstore.filelog.lock import held_identity as identity

    return identity(path)


def still_held(path: Path) -> bool:
    from eventstore.filelog.lock import still_held as held

    return held(path)


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
    committed, _rest = split_committed(data)
    return _decode_chunk(committed, path, 1, batch_id)


class _Cached:
    """What one process knows of one log file (always up to a command boundary).

    A plain class: a dataclass costs every command's start-up (issue 15).
    """

    __slots__ = ("dev", "fold", "ino", "last_hash", "lines", "mtime_ns", "offset")

    def __init__(self, dev: int, ino: int, offset: int, fold: Fold) -> None:
        self.dev = dev
        self.ino = ino
        self.offset = offset
        self.fold = fold
        self.last_hash: str | None = None
        self.lines = 0
        self.mtime_ns = -1


_CACHE_LIMIT = 4096
"""Logs whose folded state one FileLog keeps; the least recently used go first."""

_HEADS_OPEN = 32
"""Head records one FileLog keeps open; the least recently written are closed beyond."""

_LOGS_OPEN = 4
"""Log fds one FileLog keeps open between commands; the least recently used are closed beyond."""

_SCENE_IDS = 4096
"""Bodies whose scene_id one FileLog remembers."""

_Key = tuple[int, int, str]


class _State:
    """What one FileLog remembers in one process; every part bounded.

    ``folds``: per log, keyed on the batch's identity (device and inode of its
    scenes folder, batch id), never a path string (R23). ``head_fds``: open head
    records, used and closed only under ``heads_guard``. ``listings``: R8's
    folder listings. ``scene_ids``: the scene_id of bodies already read, keyed
    on the body's identity with (size, mtime, ctime), so a pointer move re-reads
    a body only if it changed on disk. ``views``: views this FileLog wrote
    (R29's shortcut).
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.guard = threading.Lock()
        self.folds: dict[_Key, _Cached] = {}
        self.heads_guard = threading.Lock()
        self.head_fds: dict[str, int] = {}
        # Log fds kept between commands, by key: (fd, dev, ino). A session pops the
        # fd (it is then the session's alone) and gives it back after its fsync.
        self.log_fds: dict[_Key, tuple[int, int, int]] = {}
        self.listings: numbering.Listings | None = None  # made by the first writer
        self.scene_ids: dict[tuple[int, int], tuple[tuple[int, int, int], str]] = {}
        self.views: views.Written = {}
        self.policies: viewpolicy.PolicyMemory = {}
        self.reader_policies: dict[str, tuple[float, str]] = {}
        self.committed: dict[str, tuple[int, int, int]] = {}  # logs seen with a command
        self.snapshots: viewpolicy.SeqMemory = {}
        # A FileLog dropped without forget() still gives its fds back.
        weakref.finalize(self, _close_fds, self.pid, self.head_fds, self.log_fds)

    def get(self, key: _Key) -> _Cached | None:
        with self.guard:
            return self.folds.get(key)

    def remember(self, key: _Key, cached: _Cached) -> None:
        with self.guard:
            self.folds.pop(key, None)
            self.folds[key] = cached
            while len(self.folds) > _CACHE_LIMIT:
                del self.folds[next(iter(self.folds))]

    def forget(self, key: _Key) -> None:
        with self.guard:
            self.folds.pop(key, None)

    def take_log_fd(self, key: _Key, dev: int, ino: int) -> int | None:
        """A kept fd of the log ``key`` if it is the file (dev, ino); now the caller's."""
        with self.heads_guard:
            kept = self.log_fds.pop(key, None)
        if kept is None:
            return None
        if kept[1] == dev and kept[2] == ino:
            return kept[0]
        with contextlib.suppress(OSError):
            os.close(kept[0])
        return None

    def keep_log_fd(self, key: _Key, fd: int, dev: int, ino: int) -> None:
        """Keep ``fd`` (fsync'd, no longer used by its session) for the next command."""
        extra: list[int] = []
        with self.heads_guard:
            old = self.log_fds.pop(key, None)
            if old is not None:
                extra.append(old[0])
            self.log_fds[key] = (fd, dev, ino)
            while len(self.log_fds) > _LOGS_OPEN:
                extra.append(self.log_fds.pop(next(iter(self.log_fds)))[0])
        for other in extra:
            with contextlib.suppress(OSError):
                os.close(other)

    def close(self) -> None:
        """Close the head records, log fds and folder watches this state holds open."""
        listings = self.listings
        if listings is not None:
            with listings.guard:
                listings.close()
        with self.heads_guard:
            _close_fds(self.pid, self.head_fds, self.log_fds)


def _close_fds(
    pid: int, head_fds: dict[str, int], log_fds: dict[_Key, tuple[int, int, int]]
) -> None:
    """Close a state's open head records and logs (in the process that opened them)."""
    if os.getpid() != pid:
        return
    for fd in [*head_fds.values(), *(kept[0] for kept in log_fds.values())]:
        with contextlib.suppress(OSError):
            os.close(fd)
    head_fds.clear()
    log_fds.clear()


# The ``at`` check is one rule for every backend (eventstore.rules); the alias
# serves eventstore.pglog until it imports it from there.


class _FileSession(LogSession):
    def __init__(
        self,
        paths: BatchPaths,
        key: _Key,
        cached: _Cached,
        created: bool,
        head_record: Path,
        state: _State,
        policy: str = viewpolicy.DEFAULT,
        snapshot: Path | None = None,
    ) -> None:
        self._paths = paths
        self.policy = policy
        self.snapshot = snapshot
        self._snapshot_seq = (
            0 if snapshot is None else viewpolicy.snapshot_seq(snapshot, state.snapshots)
        )
        self.view_present = True  # until the command's check says otherwise
        self.path = paths.log
        self.lock = paths.lock
        self.batch_id = paths.batch_id
        self._key = key
        self._cached = cached
        self._created = created
        self._head_record = head_record
        self._state = state
        self._head: tuple[int, str] | None = None  # written, to record once durable
        self._unsynced: int | None = None  # fd written but not yet fsync'd
        self._unsynced_file = (0, 0)  # its (device, inode), from the check before the write

    @property
    def fold(self) -> Fold:
        return self._cached.fold

    def highest_body_version(self) -> int:
        from eventstore.filelog import numbering  # writers only (issue 15: start-up)

        state = self._state
        if state.listings is None:
            with state.guard:
                if state.listings is None:
                    state.listings = numbering.Listings()
        return numbering.highest_on_disk(self._paths, state.listings)

    def body_exists(self, name: str) -> bool:
        return self._paths.artifact(name).exists()

    def read_body(self, name: str) -> bytes:
        from eventstore.filelog.bodies import read_body_file

        return read_body_file(self._paths, name)

    def write_body(self, name: str, data: bytes) -> None:
        write_once(self._paths.artifact(name), data, batch_id=self.batch_id)

    def read_scene(self, name: str) -> Scene:
        path = self._paths.artifact(name)
        try:
            return load_scene(path)
        except FileNotFoundError as e:
            raise BodyMissing(
                f"scene body {path} of batch {self.batch_id} is missing; restore it from "
                "backup (`scenelog verify` lists what else is missing)",
                path=str(path),
                batch_id=self.batch_id,
            ) from e

    def body_scene_id(self, name: str) -> str:
        """The body's scene_id; a body already read is only stat'ed (bodies are immutable).

        Known bodies are keyed on the file's identity, not its spelling (R23).
        """
        path = self._paths.artifact(name)
        known_ids = self._state.scene_ids
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        if st is not None:
            key = (st.st_dev, st.st_ino)
            stamp = (st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            known = known_ids.get(key)
            if known is not None and known[0] == stamp:
                return known[1]
        scene_id = self.read_scene(name).scene_id
        if st is not None:
            if len(known_ids) >= _SCENE_IDS:
                known_ids.clear()
            known_ids[key] = (stamp, scene_id)
        return scene_id

    def append(self, events: Sequence[Event]) -> list[Event]:
        """Validate every event against the fold, then write them all with one ``write``.

        A command of n events is written as n lines whose ``more`` marks count
        down to the last line, which carries none (R24): any prefix of the
        write that a reader can see, or that a crash or a full disk leaves,
        ends in an incomplete command that no reader delivers. If anything
        is refused or the write fails, nothing stays on disk and the session
        reloads its state from the file.
        """
        if not events:
            return []
        cached = self._cached
        fold = cached.fold
        try:
            # Numbered, checked (item 3) and folded into the cached fold in place: on
            # a refusal or a failed write the session reloads its state from the file.
            committed, lines, prev = seal_command(fold, events, self.batch_id, cached.last_hash)
            data = b"\n".join(lines) + b"\n"
            self._write(data, cached.offset)
        except BaseException:
            self._reload()
            raise
        cached.offset += len(data)
        cached.last_hash = prev
        cached.lines += len(committed)
        if prev is not None:
            self._head = (fold.seq, prev)
        self._keep_views(fold)
        return committed

    def _keep_views(self, fold: Fold) -> None:
        """After a commit, under the lock: the view and snapshot its session's policy asks for.

        ``sync`` (R17): the view follows each commit. ``lazy``/``off``: the
        snapshot (and in ``lazy`` the view, same bytes, after it) is rewritten
        once the log is :data:`viewpolicy.BOUND` events past it; ``off``
        removes a view the command's check found (it was scenelog's). A
        failure is only logged: the log is the truth.
        """
        if self.policy == "sync" or self.snapshot is None:
            views.write_view(self._paths.view, fold.view_chunks(), self._state.views)
            return
        due = not self._snapshot_seq or fold.seq - self._snapshot_seq >= viewpolicy.BOUND
        if due or (self.policy == "lazy" and not self.view_present):
            # ``lazy`` with no view (switched from ``off``): the view is back at once.
            chunks = fold.view_chunks()
            if viewpolicy.write_snapshot(self.snapshot, chunks, self._state.snapshots, fold.seq):
                self._snapshot_seq = fold.seq
            if self.policy == "lazy":
                views.write_view(self._paths.view, chunks, self._state.views)
                self.view_present = True
        if self.policy == "off" and self.view_present:
            with contextlib.suppress(OSError):  # a view left behind is caught up by readers
                os.unlink(self._paths.view)
            self.view_present = False

    def _reload(self) -> None:
        """After a refused or failed append: the state is the file's again.

        Only while the lock is still ours: a catch-up may cut a torn tail, and
        without the lock that tail could be another writer's write in flight.
        """
        self._state.forget(self._key)
        if still_held(self.lock):
            with contextlib.suppress(Exception):
                self._cached, self._created = _catch_up(
                    self.path, self._key, self.batch_id, self._state
                )

    def _write(self, data: bytes, offset: int) -> None:
        path = self.path
        with os_errors(path, "append to"):
            if self._created:
                path.parent.mkdir(parents=True, exist_ok=True)
            fd = self._unsynced
            reused = fd is not None
            if fd is None and not self._created:
                fd = self._state.take_log_fd(self._key, self._cached.dev, self._cached.ino)
            if fd is None:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                if self._created:
                    st = os.fstat(fd)
                    self._cached.dev, self._cached.ino = st.st_dev, st.st_ino
                self._check_exclusive(fd, offset)
                try:
                    _write_all(fd, data)
                except OSError:
                    # No half command may stay for a later append to glue onto.
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
                if not reused:
                    os.close(fd)
                raise
            self._unsynced = fd

    def _check_exclusive(self, fd: int, offset: int) -> None:
        """Right before writing: still the lock holder, and nobody wrote since the catch-up."""
        # The fd may be one kept from an earlier command: it must still be the
        # log caught up under this lock (same file, still linked) and end there.
        cached = self._cached
        st = os.fstat(fd) if still_held(self.lock) else None
        if (
            st is None
            or st.st_size != offset
            or st.st_nlink == 0
            or (st.st_dev, st.st_ino) != (cached.dev, cached.ino)
        ):
            raise StoreIOError(
                f"batch {self.batch_id}: its lock file {self.lock} was deleted or replaced, or "
                f"{self.path} changed while this command held the lock; nothing was written "
                "— run the command again (and never delete lock files of a live store)",
                path=str(self.path),
                batch_id=self.batch_id,
            )
        self._unsynced_file = (st.st_dev, st.st_ino)  # what the fd is kept as, if it is

    def finish(self) -> None:
        """fsync what this session wrote (R20), then record the head (R27).

        Runs after the lock is released. One fsync makes every earlier write
        of the file durable, so a writer that appends after this one and
        returns has made this line durable too; and a line is visible to
        readers before it is durable whether the lock is held through the
        fsync or not (the page cache is shared). Holding the lock through the
        fsync would only serialize the fsyncs.

        The head record is written only after the fsync and is never fsync'd
        itself: after any crash it names a line that is durable, possibly not
        the last one (a stale record matches the log at its seq; a tampered
        log does not).
        """
        fd, self._unsynced = self._unsynced, None
        if fd is None:
            return
        synced = False
        try:
            with os_errors(self.path, "fsync"):
                os.fsync(fd)
            synced = True
        finally:
            if synced:
                # Labelled with the file it was checked to be when written, not with
                # the session's state (a refused append reloads that from the path).
                self._state.keep_log_fd(self._key, fd, *self._unsynced_file)
            else:
                os.close(fd)
        head, self._head = self._head, None
        if head is not None:
            _record_head(self._state, self._head_record, *head)


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data``; a write that makes no progress is a full disk."""
    view = memoryview(data)
    done = os.write(fd, view)
    while done < len(data):
        written = os.write(fd, view[done:])
        if written <= 0:
            raise OSError(errno.ENOSPC, "short write (disk full?)")
        done += written


_HEAD_RECORD = b"%020d %s\n"


def _record_head(state: _State, path: Path, seq: int, digest: str) -> None:
    """Overwrite the head record in place (fixed length: one small ``pwrite``).

    Best effort: a record that could not be written is only stale. The fd is
    used and closed only under the guard, so it is never a number reused by
    another open meanwhile.
    """
    record = _HEAD_RECORD % (seq, digest.encode())
    name = str(path)
    _head_fds = state.head_fds
    with state.heads_guard:
        try:
            fd = _head_fds.pop(name, None)
            if fd is not None and os.fstat(fd).st_nlink == 0:  # deleted behind us
                os.close(fd)
                fd = None
            if fd is None:
                try:
                    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
                except FileNotFoundError:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
            _head_fds[name] = fd
            while len(_head_fds) > _HEADS_OPEN:
                os.close(_head_fds.pop(next(iter(_head_fds))))
            os.pwrite(fd, record, 0)
        except OSError:
            pass


def read_head_record(path: Path) -> tuple[int, str] | None:
    """(seq, line hash) of a head record; None when there is none or it is unreadable."""
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    parts = data.split()
    if len(parts) != 2 or not parts[0].isdigit() or len(parts[1]) != 64:
        return None
    digest = parts[1].decode("ascii", "replace")
    if any(c not in "0123456789abcdef" for c in digest):
        return None
    return int(parts[0]), digest


class FileLogCore(EventLog):
    """Batch logs as JSONL files under ``<root>/<project>/<episode>/scenes/``."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.project = layout.project
        self.label = str(layout.root)
        self._head_records: dict[str, Path] = {}
        self._policy_file = viewpolicy.policy_path(layout.project_dir)
        self._snapshots: dict[str, Path] = {}
        self._state = _State()

    def _mine(self) -> _State:
        """This process's state (a forked child starts from nothing, as a new process)."""
        state = self._state
        if state.pid != os.getpid():
            state = self._state = _State()  # the parent's fds are closed on exec or exit
        return state

    def forget(self) -> None:
        """Drop everything this FileLog remembers (folds, listings, scene ids, views
        written, open head records): the next command reads the files as a new
        process would. Call it while no command of this FileLog runs (tests, tools
        that changed files behind the store)."""
        old, self._state = self._state, _State()
        if old.pid == os.getpid():
            old.close()

    def path(self, batch_id: str) -> Path:
        return self.layout.batch(batch_id).log

    def exists(self, batch_id: str) -> bool:
        """Whether the log has a committed command (R24).

        A log once seen with one keeps it while it is the same file and no
        shorter (logs are append-only; a torn tail is cut back to a command's
        end): then a stat answers, instead of reading the log's end.
        """
        path = self.path(batch_id)
        seen = self._mine().committed
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return False
        except OSError as e:
            if e.errno in (errno.ENOTDIR, errno.ELOOP):
                return False
            raise
        key = str(path)
        known = seen.get(key)
        if known is not None and known[:2] == (st.st_dev, st.st_ino) and st.st_size >= known[2]:
            return True
        try:
            found = _tail_line(path)
        except IsADirectoryError:
            return True  # not a log, but something is there: the session says what
        except OSError as e:
            if e.errno in (errno.ENOTDIR, errno.ELOOP):
                return False
            raise
        if found is None or found[0] <= 0:
            return False
        if len(seen) >= _CACHE_LIMIT:
            seen.clear()
        seen[key] = (st.st_dev, st.st_ino, found[0])
        return True

    def read(self, batch_id: str, *, after: int = 0) -> list[Event]:
        events = read_log_events(self.path(batch_id), batch_id)
        return events[after:] if after > 0 else events

    def last_seq(self, batch_id: str) -> int:
        return tail_seq(self.path(batch_id), batch_id)

    def head(self, batch_id: str) -> Head:
        return Head(*tail_head(self.path(batch_id), batch_id))

    def recorded_head(self, batch_id: str) -> Head | None:
        found = read_head_record(self.layout.head_record(batch_id))
        return None if found is None else Head(*found)

    def raw(self, batch_id: str) -> RawLog:
        path = self.path(batch_id)
        with os_errors(path, "read"):
            try:
                data = path.read_bytes()
            except FileNotFoundError:  # os_errors would make it a StoreIOError
                data = b""
        committed, rest = split_committed(data)
        pending, torn = split_complete(rest)
        return RawLog(committed.split(b"\n")[:-1], pending.split(b"\n")[:-1], len(torn), str(path))

    def project_exists(self) -> bool:
        return self.layout.project_dir.is_dir()

    def episodes(self) -> list[str]:
        return self.layout.episodes()

    def batches(self, episode: str) -> list[str]:
        return self.layout.batch_ids(episode)

    def _snapshot_path(self, batch_id: str) -> Path:
        path = self._snapshots.get(batch_id)
        if path is None:
            if len(self._snapshots) >= _CACHE_LIMIT:
                self._snapshots.clear()
            path = self._snapshots[batch_id] = viewpolicy.snapshot_path(
                self.layout.project_dir, batch_id
            )
        return path

    def _head_record(self, batch_id: str) -> Path:
        path = self._head_records.get(batch_id)
        if path is None:
            if len(self._head_records) >= _CACHE_LIMIT:
                self._head_records.clear()
            path = self._head_records[batch_id] = self.layout.head_record(batch_id)
        return path

    def session(
        self, batch_id: str, *, timeout: float = DEFAULT_LOCK_TIMEOUT
    ) -> AbstractContextManager[LogSession]:
        return _Command(self, batch_id, timeout, guarded=False)

    def _open_session(self, paths: BatchPaths, batch_id: str, state: _State) -> _FileSession:
        """Under the batch lock: catch up, read the policy, build the session."""
        folder = held_identity(paths.lock)
        if folder is None:  # batch_lock wrapped by someone (a benchmark's timer)
            with os_errors(paths.scenes_dir, "read"):
                key = paths.identity()
        else:
            key = (*folder, batch_id)
        try:
            cached, created = _catch_up(paths.log, key, batch_id, state)
        except DamagedLog:
            # Re-read from the start: the error then names the first bad line
            # even when the file was changed behind this FileLog's memory.
            state.forget(key)
            try:
                cached, created = _catch_up(paths.log, key, batch_id, state)
            except BaseException:
                state.forget(key)
                raise
        except BaseException:
            state.forget(key)
            raise
        # The policy is read under the lock; every commit of this session honours it.
        policy = viewpolicy.read_policy_file(self._policy_file, state.policies)
        snapshot = None if policy == "sync" else self._snapshot_path(batch_id)
        return _FileSession(
            paths, key, cached, created, self._head_record(batch_id), state, policy, snapshot
        )

    def command(
        self, batch_id: str, *, timeout: float = DEFAULT_LOCK_TIMEOUT
    ) -> AbstractContextManager[LogSession]:
        """A session for a store command: the reference lock, the batch lock, R21, R29.

        The reference's ``<batch>.versions.lock`` is taken first when it exists
        (R29), then the batch lock, both within ``timeout``. Under both and
        before the command sees the fold: a batch without events is checked for
        a reference manifest or a lost log (R21), a batch with events for a
        ``versions.json`` changed by another tool (R29, ForeignView).
        """
        return _Command(self, batch_id, timeout, guarded=True)


_UNLOCKED = contextlib.nullcontext()


class _Command:
    """:meth:`FileLogCore.command` (``guarded``) and :meth:`FileLogCore.session`
    as one class-based context manager (nested generator context managers cost
    every command ~4 µs). Order: the reference lock (guarded only), the batch
    lock, the session, R21/R29 (guarded only); on leaving, the batch lock is
    released, then the session's fsync (under the batch lock when the block
    raised), then the reference lock."""

    __slots__ = ("_batch_id", "_core", "_guarded", "_lock", "_ref", "_session", "_timeout")

    def __init__(self, core: FileLogCore, batch_id: str, timeout: float, guarded: bool) -> None:
        self._core = core
        self._batch_id = batch_id
        self._timeout = timeout
        self._guarded = guarded

    def __enter__(self) -> LogSession:
        core, batch_id, timeout = self._core, self._batch_id, self._timeout
        paths = core.layout.batch(batch_id)
        deadline = time.monotonic() + timeout
        ref = views.reference_lock(paths, timeout=timeout) if self._guarded else _UNLOCKED
        ref.__enter__()
        try:
            remaining = max(deadline - time.monotonic(), 0.0)
            state = core._mine()
            lock = batch_lock(paths.lock, timeout=remaining, batch_id=batch_id)
            lock.__enter__()
            try:
                session = core._open_session(paths, batch_id, state)
                if self._guarded:
                    try:
                        fold = session.fold
                        if fold.seq == 0:
                            views.check_unimported(paths)
                        else:
                            session.view_present = views.check_view(
                                paths,
                                fold,
                                lambda: core.read(batch_id),
                                state.views,
                                session.snapshot,
                            )
                    except BaseException:
                        session.finish()
                        raise
            except BaseException as e:
                lock.__exit__(type(e), e, e.__traceback__)
                raise
        except BaseException as e:
            ref.__exit__(type(e), e, e.__traceback__)
            raise
        self._ref, self._lock, self._session = ref, lock, session
        return session

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        ref, lock, session = self._ref, self._lock, self._session
        try:
            try:
                if kind is not None:
                    session.finish()
            finally:
                lock.__exit__(kind, error, tb)
            if kind is None:
                session.finish()
        except BaseException as e:
            ref.__exit__(type(e), e, e.__traceback__)  # our locks never swallow an error
            raise
        ref.__exit__(kind, error, tb)


def _catch_up(path: Path, key: _Key, batch_id: str, state: _State) -> tuple[_Cached, bool]:
    """Bring ``state``'s memory of ``path`` up to the file (under the lock).

    Lines of an incomplete command at the end (a writer killed mid-write, R24)
    are moved aside whole with any torn tail, as R18 does with a torn line.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        fresh = _Cached(0, 0, 0, Fold(batch_id, path=str(path)))
        state.remember(key, fresh)
        return fresh, True
    cached = state.get(key)
    if (
        cached is None
        or (cached.dev, cached.ino) != (st.st_dev, st.st_ino)
        or cached.offset > st.st_size
        or (cached.offset == st.st_size and cached.mtime_ns != st.st_mtime_ns)
    ):
        cached = _Cached(st.st_dev, st.st_ino, 0, Fold(batch_id, path=str(path)))
    if st.st_size > cached.offset:
        with os_errors(path, "read"), open(path, "rb") as f:
            f.seek(cached.offset)
            data = f.read(st.st_size - cached.offset)
        committed, rest = split_committed(data)
        if committed:
            _absorb(cached, committed, path, batch_id)
        if rest:
            _move_torn_tail(path, cached.offset, rest)
            st = os.stat(path)
    cached.mtime_ns = st.st_mtime_ns
    state.remember(key, cached)
    # An empty file is a log whose creator died before its first line was durable.
    return cached, st.st_size == 0


def _absorb(cached: _Cached, committed: bytes, path: Path, batch_id: str) -> None:
    """Check and fold lines new to this process (the caller forgets the cache on error)."""
    first_line = cached.lines + 1
    events = _decode_chunk(committed, path, first_line, batch_id)
    lines = committed.split(b"\n")[:-1]
    prev = cached.last_hash
    seq = cached.fold.seq
    marked = _MORE in committed
    due = 0  # lines still due in the current command
    for number, (line, event) in enumerate(zip(lines, events, strict=True), start=first_line):
        seq += 1
        if event.seq != seq:
            raise _damaged(path, number, f"seq {event.seq} where {seq} was due", batch_id)
        if event.prev != prev:
            raise _damaged(
                path, number, "hash chain broken (a line before it was edited or removed)", batch_id
            )
        if marked:
            more = command_more(line)
            if due and more != due - 1:
                raise _damaged(
                    path, number, f"`more` {more} where {due - 1} was due (command cut)", batch_id
                )
            due = more
        prev = line_hash(line)
    cached.fold.apply_all(events)
    cached.offset += len(committed)
    cached.last_hash = prev
    cached.lines += len(lines)


def _move_torn_tail(path: Path, offset: int, torn: bytes) -> None:
    """R18, R24: keep the unacknowledged bytes aside, then cut them from the log."""
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


def tail_seq(path: Path, batch_id: str) -> int:
    """The seq of the last complete line of ``path`` (0 when none), reading only its end."""
    seq = last_seq_or_none(path, batch_id)
    return 0 if seq is None else seq


def last_seq_or_none(path: Path, batch_id: str) -> int | None:
    """Like ``tail_seq``, but None when there is no log file at all."""
    position = tail_position(path, batch_id)
    return None if position is None else position[1]


def tail_position(path: Path, batch_id: str) -> tuple[int, int] | None:
    """(byte offset after the last committed line, its seq); (0, 0) for none; None: no file.

    Reads only the end of the log, whatever its length; lines of an incomplete
    command at the end (R24) are stepped over.
    """
    found = _tail_line(path)
    if found is None:
        return None
    offset, line = found
    if not line:
        return 0, 0
    return offset, _line_seq(line, path, batch_id)


def tail_head(path: Path, batch_id: str) -> tuple[int, str | None]:
    """(seq, sha256 of the line) of the last committed line; (0, None) for none or no file."""
    found = _tail_line(path)
    if found is None or not found[1]:
        return 0, None
    line = found[1]
    return _line_seq(line, path, batch_id), line_hash(line)


def _line_seq(line: bytes, path: Path, batch_id: str) -> int:
    try:
        return line_seq(line)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise DamagedLog(
            f"{path}: last line unreadable ({e}); the log of batch {batch_id} is "
            "damaged — run `scenelog verify`",
            path=str(path),
            batch_id=batch_id,
        ) from e


def _tail_line(path: Path) -> tuple[int, bytes] | None:
    """(offset after the last line that ends a command, that line); (0, b"") for none."""
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
            while end >= 0:
                cut = data.rfind(b"\n", 0, end)
                if cut < 0 and start > 0:
                    break  # the line begins before the window
                if not _more(data, cut + 1, end):
                    return start + end + 1, data[cut + 1 : end]
                end = cut
            else:
                if start == 0:
                    return 0, b""
            window *= 4
    finally:
        os.close(fd)
