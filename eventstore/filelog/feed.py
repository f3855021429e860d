"""The file backend's change feed: every batch log of a project, tailed by byte offset.

:func:`open_feed` returns a :class:`FileFeed` (an :class:`eventstore.log.Feed`).
Only this module imports watchfiles.

The position is compact JSON, ``{"<batch>": [seq, offset, event_id], …}``:
for each log, the last event handed out, and the byte offset just after its
line. A feed opened at a position resumes right after it. The form written
before issue 11 (``{"<batch>": {"seq": …, "offset": …, "event_id": …}}``,
``event_id`` possibly missing) is read too.

Invariants:
- Per batch, events come strictly in seq order without a gap; across batches
  in the order their logs changed (mtime).
- Only whole commands are read (R24, :func:`eventstore.log.split_committed`):
  a tail's offset only ever moves to the end of a line that ends a command, so
  a line being written (inotify fires before fsync, possibly mid-line), a
  command not yet complete, or a tail torn by a crash is never read as an
  event, and a torn tail cut and rewritten by the next writer is read anew.
- R28, the feed follows the log it finds: when it opens, and whenever a log's
  inode changes, it shrinks below the offset, or it changed at all, the line
  ending at the offset must still be the last event handed out (same seq,
  same event_id; one small read). Otherwise the log was replaced (restored
  from an older backup, batch folder recreated, rewritten in place): the feed
  says so in one line through ``warn`` and reads that batch again from seq 1
  — the position names only the last event, so "from the start" is the one
  choice that never skips an event it cannot prove was handed out. A
  position without an event id (written before event ids) adopts the id of
  the event whose line ends at its offset if that event has its seq.
- Only ``<batch>.events.jsonl`` names of the batch-id grammar in their own
  episode's scenes folder are logs; every other ``*.events.jsonl`` is ignored
  (issue 10 item 15). Logs created after the feed opened are read from seq 1.
- Positions of logs not (yet) on disk are kept in the position unchanged.
- Reads never lock and never block writers (R22); the feed writes nothing.

Freshness: :meth:`FileFeed.read` reads what the feed knows has changed. Live
mode rides on inotify (watchfiles with a 4 ms step: a 1 ms step cost over 2%
CPU while idle) plus a full rescan once a second, and right after the
notifier starts, for anything a notification missed. Poll mode, for network
filesystems whose other hosts' writes inotify cannot see, rescans every
``poll`` seconds by itself (watchfiles' own polling misses appends).
A read returns at most :data:`READ_LIMIT` events; :meth:`FileFeed.wait`
returns at once while more are due.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Generator, Iterable
from pathlib import Path

import msgspec
import watchfiles

from eventstore.errors import DamagedLog, InvalidInput
from eventstore.events import Event, decode_event
from eventstore.filelog.core import tail_position
from eventstore.filelog.paths import Layout
from eventstore.layout import validate_batch_id
from eventstore.log import Feed, FeedItem, check_feed_start, split_committed

__all__ = ["READ_LIMIT", "RESCAN_SECONDS", "FileFeed", "event_ending_at", "open_feed"]

_LOG_SUFFIX = ".events.jsonl"
RESCAN_SECONDS = 1.0
"""Live mode rescans every log this often, for notifications the kernel dropped."""
READ_LIMIT = 512
"""Events one read returns at most (each carries a position naming every batch)."""
_STEP_MS = 4
_SLICE_MS = 50  # the notifier answers at least this often, so short waits are honoured

_Entry = tuple[int, int, str | None]  # seq, offset after its line, event_id


class _OldEntry(msgspec.Struct):
    """A position as checkpoints wrote it before issue 11."""

    seq: int
    offset: int
    event_id: str | None = None


_position_decoder = msgspec.json.Decoder(dict[str, _Entry | _OldEntry])


def decode_position(position: str) -> dict[str, _Entry]:
    """The entries of a position (InvalidInput when it is not one this feed wrote)."""
    try:
        raw = _position_decoder.decode(position)
        entries: dict[str, _Entry] = {}
        for batch_id, value in raw.items():
            entry = (
                (value.seq, value.offset, value.event_id) if isinstance(value, _OldEntry) else value
            )
            if entry[0] < 0 or entry[1] < 0 or (entry[0] == 0) != (entry[1] == 0):
                raise ValueError(f"{batch_id}: seq {entry[0]} at byte {entry[1]}")
            entries[validate_batch_id(batch_id)] = entry
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as e:
        shown = position if len(position) <= 80 else position[:77] + "..."
        raise InvalidInput(
            f"feed position {shown!r} is not a file feed position ({e}); open the feed "
            "without a position (at --start) instead",
            value=shown,
        ) from e
    return entries


def _fragment(batch_id: str, seq: int, offset: int, event_id: str | None) -> bytes:
    return b'"%s":[%d,%d,%s]' % (batch_id.encode(), seq, offset, msgspec.json.encode(event_id))


class _Tail:
    """One log being followed: the end of its last complete command, and its seq there."""

    __slots__ = (
        "batch_id",
        "buffer",
        "event_id",
        "ident",
        "offset",
        "path",
        "seen",
        "seq",
        "stat",
    )

    def __init__(self, path: Path, offset: int, seq: int, event_id: str | None = None) -> None:
        self.path = path
        self.batch_id = path.name[: -len(_LOG_SUFFIX)]
        self.offset = offset
        self.seq = seq
        self.event_id = event_id  # of the event at ``seq``, whose line ends at ``offset``
        self.ident: tuple[int, int] | None = None  # (st_dev, st_ino) of the file being read
        self.seen: tuple[int, int] | None = None  # (size, mtime) when last read to the end
        self.stat: os.stat_result | None = None  # taken when ordering tails, used by read()
        self.buffer: list[tuple[Event, int]] = []  # read, not yet handed out

    def _damaged(self, what: str) -> DamagedLog:
        return DamagedLog(
            f"{self.path}: {what}; the watcher stops rather than skip — run `scenelog verify`",
            path=str(self.path),
            batch_id=self.batch_id,
        )

    def read(self) -> list[tuple[Event, int]]:
        """New committed events with the offset after each; nothing if the file did not change."""
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
        committed, _rest = split_committed(data)  # R24: lines of whole commands only
        found: list[tuple[Event, int]] = []
        position, seq = self.offset, self.seq
        for line in committed.split(b"\n")[:-1]:
            position += len(line) + 1
            try:
                event = decode_event(line)
            except (msgspec.DecodeError, msgspec.ValidationError) as e:
                raise self._damaged(f"unreadable line after seq {seq} ({e})") from e
            if event.seq <= seq:
                continue  # resumed before it: handed out already
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
        self.buffer = []


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


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _mtime(tail: _Tail) -> int:
    """The log's mtime, for ordering; the stat is kept for the read that follows."""
    try:
        tail.stat = os.stat(tail.path)
    except FileNotFoundError:
        tail.stat = None
        return 0
    return tail.stat.st_mtime_ns


class FileFeed(Feed):
    """Every batch log of a project (or of one episode), tailed; see the module docstring."""

    def __init__(
        self,
        layout: Layout,
        entries: dict[str, _Entry] | None,
        *,
        start: str = "now",
        episode: str | None = None,
        poll: float | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        check_feed_start(start)
        self.layout = layout
        self.episode = episode
        self.poll = poll
        self.warn = warn if warn is not None else _stderr
        self._tails: dict[str, _Tail] = {}
        self._fragments: dict[str, bytes] = {}  # the encoded entry of each batch, in order
        self._due: list[_Tail] = []  # tails found changed, not yet read
        self._changed: set[str] = set()  # batch ids notified since the last read
        self._full = True  # the next read rescans every log
        self._last_scan = 0.0
        self._notifier: Generator[set[tuple[watchfiles.Change, str]], None, None] | None = None
        self._absent: dict[str, _Entry] = {}
        for batch_id, path in self._logs():
            if entries is not None:
                entry = entries.pop(batch_id, None)
                tail = _Tail(path, 0, 0) if entry is None else self._resumed(path, entry)
            elif start == "now":
                tail = _Tail(path, *(tail_position(path, batch_id) or (0, 0)))
                tail.holds_position()  # learns the event id at the end
            else:
                tail = _Tail(path, 0, 0)
            self._track(tail)
        # Kept (other episodes, a log moved away for a while) and checked like any other
        # position if the log shows up.
        self._absent = dict(entries or {})
        for batch_id, (seq, offset, event_id) in self._absent.items():
            self._fragments[batch_id] = _fragment(batch_id, seq, offset, event_id)

    # ── positions ──────────────────────────────────────────────────────────

    @property
    def position(self) -> str:
        return (b"{" + b",".join(self._fragments.values()) + b"}").decode()

    def _track(self, tail: _Tail) -> None:
        self._tails[tail.batch_id] = tail
        self._absent.pop(tail.batch_id, None)
        self._fragments[tail.batch_id] = _fragment(
            tail.batch_id, tail.seq, tail.offset, tail.event_id
        )

    def _logs(self) -> list[tuple[str, Path]]:
        episodes = [self.episode] if self.episode else self.layout.episodes()
        return [
            (b, self.layout.scenes_dir(ep) / f"{b}{_LOG_SUFFIX}")
            for ep in episodes
            for b in self.layout.batch_ids(ep)
        ]

    def _resumed(self, path: Path, entry: _Entry) -> _Tail:
        tail = _Tail(path, entry[1], entry[0], entry[2])
        if not tail.holds_position():
            self._replaced(tail, "differs from the position")
        return tail

    def _appeared(self, batch_id: str, path: Path) -> _Tail:
        """A log seen for the first time since the feed opened."""
        entry = self._absent.pop(batch_id, None)
        tail = _Tail(path, 0, 0) if entry is None else self._resumed(path, entry)
        self._track(tail)
        return tail

    def _replaced(self, tail: _Tail, how: str) -> None:
        """R28: the log no longer holds the last event handed out: say so, start it over."""
        self.warn(
            f"scenelog: warning: batch {tail.batch_id}: its log {how} — it no longer holds "
            f"seq {tail.seq} (event {tail.event_id}) last handed out (restored from a backup "
            "or recreated?); delivering its events again from seq 1"
        )
        tail.restart()
        if tail.batch_id in self._fragments:
            self._fragments[tail.batch_id] = _fragment(tail.batch_id, 0, 0, None)

    def _check_replaced(self, tail: _Tail, *, suspect: bool = False) -> bool:
        """Whether the log was replaced under a tail (then it starts over).

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

    # ── reading ────────────────────────────────────────────────────────────

    def _read_tail(self, tail: _Tail) -> list[tuple[Event, int]]:
        self._check_replaced(tail)
        try:
            return tail.read()
        except DamagedLog:
            # A file swapped in between the check and the read looks damaged at
            # our offset; only a log that still holds our event is really damaged.
            if not self._check_replaced(tail, suspect=True):
                raise
            return tail.read()

    def _rescan(self) -> list[_Tail]:
        for batch_id, path in self._logs():
            if batch_id not in self._tails:  # created after the feed opened
                self._appeared(batch_id, path)
        self._last_scan = time.monotonic()
        return sorted(self._tails.values(), key=_mtime)

    def _notified(self) -> list[_Tail]:
        tails = []
        for batch_id in self._changed:
            tail = self._tails.get(batch_id)
            if tail is None:
                if self.episode and not batch_id.startswith(self.episode + "_"):
                    continue
                tail = self._appeared(batch_id, self.layout.batch(batch_id).log)
            tails.append(tail)
        self._changed.clear()
        return sorted(tails, key=_mtime)

    def _scan_due(self) -> bool:
        if self._full:
            return True
        if self.poll is not None:
            return time.monotonic() - self._last_scan >= self.poll
        return time.monotonic() - self._last_scan >= RESCAN_SECONDS

    def read(self) -> list[FeedItem]:
        if not self._due:
            if self._scan_due():
                self._full = False
                self._changed.clear()
                self._due = self._rescan()
            elif self._changed:
                self._due = self._notified()
        items: list[FeedItem] = []
        while self._due and len(items) < READ_LIMIT:
            tail = self._due[0]
            if not tail.buffer:
                tail.buffer = self._read_tail(tail)
            if tail.buffer:
                self._hand_out(tail, READ_LIMIT - len(items), items)
            if not tail.buffer:
                self._due.pop(0)
        return items

    def _hand_out(self, tail: _Tail, limit: int, items: list[FeedItem]) -> None:
        """Up to ``limit`` buffered events of ``tail`` as items, each with its position.

        An item's position is spelled as :attr:`position` will be once the
        feed stands right after it (the same bytes, so callers can compare).
        """
        batch_id = tail.batch_id
        names = list(self._fragments)
        at = names.index(batch_id)
        fragments = list(self._fragments.values())
        before = b"{" + b"".join(f + b"," for f in fragments[:at])
        after = b"".join(b"," + f for f in fragments[at + 1 :]) + b"}"
        taken = tail.buffer[:limit]
        del tail.buffer[:limit]
        fragment = b""
        for event, offset in taken:
            fragment = _fragment(batch_id, event.seq, offset, event.event_id)
            items.append(FeedItem(batch_id, event, (before + fragment + after).decode()))
        event, offset = taken[-1]
        tail.seq, tail.offset, tail.event_id = event.seq, offset, event.event_id
        self._fragments[batch_id] = fragment

    def lag(self) -> int:
        """Events after the position: a log that no longer holds its event counts whole (R28)."""
        lag = 0
        seen = set()
        for batch_id, path in self._logs():
            seen.add(batch_id)
            last = (tail_position(path, batch_id) or (0, 0))[1]
            tail = self._tails.get(batch_id)
            if tail is None:
                entry = self._absent.get(batch_id)
                if entry is None:
                    lag += last
                    continue
                tail = _Tail(path, entry[1], entry[0], entry[2])
            lag += last - tail.seq if tail.seq and tail.holds_position() else last
        return lag

    # ── waiting ────────────────────────────────────────────────────────────

    def wait(self, timeout: float) -> None:
        if self._due or self._full:
            return
        if self.poll is not None:
            pause = min(timeout, self._last_scan + self.poll - time.monotonic())
            if pause > 0:
                time.sleep(pause)
            return
        if self._changed:
            return
        deadline = time.monotonic() + timeout
        if self._notifier is None:
            try:
                self._notifier = self._notify()
                self._note(next(self._notifier))  # inotify is set up when this returns
            except (FileNotFoundError, StopIteration):
                self._notifier = None  # the project folder is gone: look again later
                time.sleep(max(0.0, deadline - time.monotonic()))
            # What landed before inotify was set up has no notification of its own.
            self._full = True
            return
        while True:
            try:
                changes = next(self._notifier)
            except StopIteration:  # a signal interrupted it; what it held is lost
                self._notifier = None
                self._full = True
                return
            self._note(changes)
            if self._changed or time.monotonic() - self._last_scan >= RESCAN_SECONDS:
                if not self._changed:
                    self._full = True
                return
            if time.monotonic() >= deadline:
                return

    def _notify(self) -> Generator[set[tuple[watchfiles.Change, str]], None, None]:
        """Changes to batch logs, or an empty set every ``_SLICE_MS`` (lazy: the
        first ``next`` sets up inotify)."""
        return watchfiles.watch(
            self.layout.project_dir,
            watch_filter=lambda _change, path: _batch_of(path) is not None,
            debounce=0,
            step=_STEP_MS,
            rust_timeout=_SLICE_MS,
            yield_on_timeout=True,
            raise_interrupt=False,
        )

    def _note(self, changes: Iterable[tuple[watchfiles.Change, str]]) -> None:
        for _change, raw in changes:
            batch_id = _batch_of(raw)
            if batch_id is None:
                continue  # not a batch log (notes.events.jsonl, a typo'd copy)
            if Path(raw).parent != self.layout.scenes_dir(batch_id[:6]):
                continue  # a batch log's name in another episode's folder
            self._changed.add(batch_id)

    def close(self) -> None:
        notifier, self._notifier = self._notifier, None
        if notifier is not None:
            notifier.close()


def open_feed(
    layout: Layout,
    position: str | None,
    *,
    start: str,
    episode: str | None,
    poll: float | None,
    warn: Callable[[str], None] | None,
) -> Feed:
    """The feed of ``layout``'s project after ``position`` (None: at ``start``).

    InvalidInput when ``position`` is not one this feed wrote.
    """
    entries = None if position is None else decode_position(position)
    return FileFeed(layout, entries, start=start, episode=episode, poll=poll, warn=warn)
