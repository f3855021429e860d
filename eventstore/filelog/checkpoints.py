"""The file backend's consumer checkpoints and their claim, under ``.scenelog/consumers/``.

    <root>/<project>/.scenelog/consumers/<name>.json      the last durable checkpoint
    <root>/<project>/.scenelog/consumers/<name>.journal   saves since then (durable=False)
    <root>/<project>/.scenelog/consumers/<name>.lock      held by the consumer's one watcher

Invariants:
- A durable save replaces ``<name>.json`` atomically and durably (temp file,
  fsync, rename, folder fsync): ``<name>.json`` is always the last durable
  checkpoint. Then it appends a mark ``{"base": sha256 of those bytes}`` to
  the journal this process writes (or removes a journal it does not write,
  or one past half of ``JOURNAL_MAX``).
- A save with ``durable=False`` appends one line to ``<name>.journal`` (no
  fsync; a few microseconds, where replacing a file costs an inode and a
  rename); a journal starts with the mark of the current ``<name>.json``.
  One made when there is no ``<name>.json`` yet, or on a journal grown past
  ``JOURNAL_MAX`` bytes, is made durable instead.
- A load returns ``<name>.json``, unless the journal holds a mark of exactly
  those bytes followed by complete lines: then the last of them that is a
  JSON object. So the next process sees every save (they are in the page
  cache: a crash of the writer loses none), and a power loss brings back the
  last durable save or a later one (a line after the mark of a file was
  saved after it). A crash at any step of a durable save leaves the old
  bytes or the new ones, never a mix: until its mark is written, the journal
  marks only older files and is ignored.
- The folder is created on the first save, never by a load.
- A checkpoint whose bytes are not a JSON object is an error naming the file
  (DamagedStore), never a silent restart; what the object holds is its
  writer's (the watcher's) business.
- One holder per consumer name at a time: :func:`claim` holds an exclusive
  ``flock`` on ``<name>.lock`` and writes its host and pid into it; a second
  claim raises ConsumerBusy naming the holder. The kernel drops the lock when
  the holder dies, so a crashed watcher never blocks the next. The journal a
  process appends to is closed when its claim ends (another process may
  then remove it): the next claim's first journaled save starts a new one. (``flock`` is
  not shared between NFS clients on every setup: run a consumer's watchers
  on one host.)
- Consumer names are validated before any path is built.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from eventstore.errors import ConsumerBusy, DamagedStore, InvalidInput, StoreIOError
from eventstore.events import utc_now
from eventstore.filelog.fsio import os_errors, replace_atomic
from eventstore.filelog.paths import Layout

__all__ = [
    "JOURNAL_MAX",
    "claim",
    "consumer_dir",
    "delete",
    "load",
    "names",
    "position_at",
    "save",
]

_CONSUMER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
JOURNAL_MAX = 16 << 20
"""A journal past this many bytes is folded into ``<name>.json`` at the next save."""

_journals: dict[str, tuple[int, int]] = {}
"""Journals this process appends to: path -> (open fd, bytes written)."""
_journals_guard = threading.Lock()


def consumer_dir(layout: Layout) -> Path:
    return layout.meta_dir / "consumers"


@functools.lru_cache(maxsize=256)
def _path(layout: Layout, consumer: str, suffix: str) -> Path:
    if not _CONSUMER_RE.fullmatch(consumer):
        raise InvalidInput(
            f"invalid consumer name {consumer!r}: use letters, digits, _ . -", value=consumer
        )
    return consumer_dir(layout) / f"{consumer}{suffix}"


def load(layout: Layout, consumer: str) -> bytes | None:
    """The consumer's checkpoint bytes, None when it has none; DamagedStore if not JSON."""
    path = _path(layout, consumer, ".json")
    data = _read_if_present(path)
    if data is None:
        return None
    try:
        parsed = json.loads(data)
        if not isinstance(parsed, dict):
            raise ValueError("not a JSON object")
    except ValueError as e:
        raise DamagedStore(
            f"consumer checkpoint {path} is corrupt ({e}); restore it, or delete it to "
            "start the consumer afresh (it then follows --start)",
            path=str(path),
        ) from e
    return _journal_last(_path(layout, consumer, ".journal"), data) or data


def _read_if_present(path: Path) -> bytes | None:
    """The file's bytes; None when it does not exist; StoreIOError when it cannot be read."""
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        with os_errors(path, "read"):
            raise


def _base_line(data: bytes) -> bytes:
    return b'{"base":"%s"}\n' % hashlib.sha256(data).hexdigest().encode()


def _journal_last(path: Path, base: bytes) -> bytes | None:
    """The journal's last checkpoint after its mark for ``base``; None when there is none."""
    journal = _read_if_present(path)
    if journal is None:
        return None
    mark = _base_line(base)
    at = journal.rfind(mark)
    if at < 0 or (at and journal[at - 1 : at] != b"\n"):
        return None  # no save after this .json (or a journal left by a crash): the .json
    lines = journal[at + len(mark) : journal.rfind(b"\n") + 1].splitlines()
    marks = [i for i, line in enumerate(lines) if line.startswith(b'{"base":')]
    if marks:  # the mark of a later file: not this one's saves
        lines = lines[: marks[0]]
    for line in reversed(lines):
        try:
            if isinstance(json.loads(line), dict):
                return line
        except ValueError:
            continue  # a line torn by a power loss: the one before it
    return None


def _close_journal(path: Path) -> None:
    """Stop appending to the journal at ``path`` (the file stays)."""
    with _journals_guard:
        found = _journals.pop(_key(path), None)
    if found is not None:
        os.close(found[0])


def _drop_journal(path: Path) -> None:
    _close_journal(path)
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        path.unlink()


def _append(path: Path, base: Path, data: bytes) -> bool:
    """Append ``data`` to the journal after a mark of ``base``; False: save durably."""
    key = _key(path)
    found = _journals.get(key)  # one writer per consumer (the claim): no race on the entry
    if found is None:
        try:
            current = base.read_bytes()
        except FileNotFoundError:
            return False
        _drop_journal(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        mark = _base_line(current)
        os.write(fd, mark)
        found = (fd, len(mark))
    fd, size = found
    if size + len(data) > JOURNAL_MAX:
        return False
    os.write(fd, data + b"\n")
    _journals[key] = (fd, size + len(data) + 1)
    return True


def _marked(path: Path, data: bytes) -> None:
    """After a durable save of ``data``: mark the journal, or remove it (grown, or not ours)."""
    key = _key(path)
    found = _journals.get(key)
    if found is None or found[1] > JOURNAL_MAX // 2:
        _drop_journal(path)
        return
    mark = _base_line(data)
    os.write(found[0], mark)
    _journals[key] = (found[0], found[1] + len(mark))


@functools.lru_cache(maxsize=256)
def _key(path: Path) -> str:
    return str(path)


def save(layout: Layout, consumer: str, data: bytes, *, durable: bool = True) -> None:
    """Save the consumer's checkpoint ``data``, atomically (and durably by default).

    An append to the journal, or a durable replace (see the module
    docstring). Crash at any step: the old checkpoint or the new one (a
    durable save may leave a temp file named ``.….tmp``, or a journal with
    no mark of the new file, which is ignored). Power loss: the last durable
    save or a later one.
    """
    path = _path(layout, consumer, ".json")
    journal = _path(layout, consumer, ".journal")
    if b"\n" in data:
        data = json.dumps(json.loads(data), separators=(",", ":")).encode()  # one line
    if not durable:
        try:
            if _append(journal, path, data):
                return
        except OSError:
            with os_errors(journal, "write"):
                raise
    with os_errors(path.parent, "create"):
        path.parent.mkdir(parents=True, exist_ok=True)
    replace_atomic(path, data, durable=True)
    with os_errors(journal, "write"):
        _marked(journal, data)


def position_at(layout: Layout, position: str | None, batch_id: str, seq: int) -> str:
    """The file feed's ``position`` (None: now) with ``batch_id`` just after its event ``seq``.

    Reads the batch's log up to that event (its byte offset and event id);
    InvalidInput when the batch has no event ``seq``. Writes nothing.
    """
    from eventstore.events import decode_event
    from eventstore.filelog.feed import decode_position, open_feed
    from eventstore.log import split_committed

    if position is None:
        feed = open_feed(layout, None, start="now", episode=None, poll=None, warn=None)
        try:
            position = feed.position
        finally:
            feed.close()
    entries = decode_position(position)
    path = layout.batch(batch_id).log
    try:
        data = split_committed(path.read_bytes())[0] if seq else b""
    except FileNotFoundError:
        data = None
    if data is None or data.count(b"\n") < seq:
        last = 0 if data is None else data.count(b"\n")
        raise InvalidInput(
            f"batch {batch_id} has no event {seq} (its last is {last}): see "
            f"`scenelog history {batch_id}`",
            value=f"{batch_id}:{seq}",
        )
    offset, event_id = 0, None
    for _ in range(seq):
        end = data.index(b"\n", offset)
        line, offset = data[offset:end], end + 1
        event_id = decode_event(line).event_id
    entries[batch_id] = (seq, offset, event_id)
    return json.dumps(
        {b: list(e) for b, e in entries.items()}, separators=(",", ":"), ensure_ascii=False
    )


def delete(layout: Layout, consumer: str) -> bool:
    """Remove the consumer's checkpoint; False when it had none."""
    path = _path(layout, consumer, ".json")
    try:
        path.unlink()  # a journal without its .json is never read
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        with os_errors(path, "remove"):
            raise
    with os_errors(path, "remove"):
        _drop_journal(_path(layout, consumer, ".journal"))
    return True


def names(layout: Layout) -> list[str]:
    """Consumers with a checkpoint, sorted."""
    try:
        found = os.listdir(consumer_dir(layout))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(
        n[: -len(".json")]
        for n in found
        if n.endswith(".json") and _CONSUMER_RE.fullmatch(n[: -len(".json")])
    )


@contextlib.contextmanager
def claim(layout: Layout, consumer: str) -> Iterator[None]:
    """Hold the consumer name while the ``with`` runs (ConsumerBusy if another holds it).

    Crash at any step: the kernel drops the ``flock`` with the process; the
    lock file stays, naming a holder that is gone, and the next claim takes it
    and writes its own host and pid (a claim refused in the instant between
    those two steps may name the previous holder).
    """
    path = _path(layout, consumer, ".lock")
    try:
        with os_errors(path, "open"):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except StoreIOError as e:
        raise StoreIOError(
            f"consumer {consumer!r} cannot keep its checkpoint: {e} — or watch without --consumer",
            path=str(path),
            errno_code=e.errno_code,
        ) from e
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(os.pread(fd, 4096, 0))
            raise ConsumerBusy(
                f"consumer {consumer!r} is in use by pid {holder.get('pid', '?')} on "
                f"host {holder.get('host', '?')} (since {holder.get('since', '?')}); stop "
                "that watcher first, or use another consumer name",
                consumer=consumer,
                holder=holder,
                path=str(path),
            ) from None
        except OSError as e:
            raise StoreIOError(
                f"cannot lock {path}: {e.strerror or e}; the filesystem must support flock",
                path=str(path),
                errno_code=e.errno,
            ) from e
        try:
            # Written after the lock is ours: a claim that lost the race reads it.
            me = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": utc_now()})
            with os_errors(path, "write"):
                os.ftruncate(fd, 0)
                os.pwrite(fd, me.encode() + b"\n", 0)
            yield
        finally:
            # The journal this claim appended to is its own: once the claim ends,
            # another process may remove or restart it, so a later claim here
            # starts a journal afresh (never appends to a removed file).
            _close_journal(_path(layout, consumer, ".journal"))
    finally:
        os.close(fd)  # drops the flock


def _holder(data: bytes) -> dict[str, Any]:
    """The host and pid a consumer lock file names ({} when unreadable)."""
    try:
        holder = json.loads(data.decode("utf-8", "replace").strip() or "{}")
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}
