"""The file backend's consumer checkpoints and their claim, under ``.scenelog/consumers/``.

    <root>/<project>/.scenelog/consumers/<name>.json   the checkpoint's bytes
    <root>/<project>/.scenelog/consumers/<name>.lock   held by the consumer's one watcher

Invariants:
- A checkpoint is replaced atomically (temp file, rename): a crash at any
  step leaves the old bytes or the new ones, never a mix. A durable save also
  fsyncs the temp file and the folder; a save with ``durable=False`` does not:
  the next process sees it (it is in the page cache), a power loss may bring
  back the last durable one. The folder is created on the first save, never
  by a load.
- A checkpoint whose bytes are not a JSON object is an error naming the file
  (DamagedStore), never a silent restart; what the object holds is its
  writer's (the watcher's) business.
- One holder per consumer name at a time: :func:`claim` holds an exclusive
  ``flock`` on ``<name>.lock`` and writes its host and pid into it; a second
  claim raises ConsumerBusy naming the holder. The kernel drops the lock when
  the holder dies, so a crashed watcher never blocks the next. (``flock`` is
  not shared between NFS clients on every setup: run a consumer's watchers
  on one host.)
- Consumer names are validated before any path is built.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from eventstore.errors import ConsumerBusy, DamagedStore, InvalidInput, StoreIOError
from eventstore.events import utc_now
from eventstore.filelog.fsio import os_errors, replace_atomic
from eventstore.filelog.paths import Layout

__all__ = ["claim", "consumer_dir", "delete", "load", "names", "position_at", "save"]

_CONSUMER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def consumer_dir(layout: Layout) -> Path:
    return layout.meta_dir / "consumers"


def _path(layout: Layout, consumer: str, suffix: str) -> Path:
    if not _CONSUMER_RE.fullmatch(consumer):
        raise InvalidInput(
            f"invalid consumer name {consumer!r}: use letters, digits, _ . -", value=consumer
        )
    return consumer_dir(layout) / f"{consumer}{suffix}"


def load(layout: Layout, consumer: str) -> bytes | None:
    """The consumer's checkpoint bytes, None when it has none; DamagedStore if not JSON."""
    path = _path(layout, consumer, ".json")
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        with os_errors(path, "read"):
            raise
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
    return data


def save(layout: Layout, consumer: str, data: bytes, *, durable: bool = True) -> None:
    """Replace the consumer's checkpoint with ``data``, atomically (and durably by default).

    Crash at any step: before the rename the old checkpoint stands (a temp
    file may be left, named ``.….tmp``); after it, the new one. Power loss
    after a save with ``durable=False``: the old or the new one (or an older
    durable one).
    """
    path = _path(layout, consumer, ".json")
    with os_errors(path.parent, "create"):
        path.parent.mkdir(parents=True, exist_ok=True)
    replace_atomic(path, data, durable=durable)


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
        path.unlink()
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        with os_errors(path, "remove"):
            raise
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
        # Written after the lock is ours: a claim that lost the race reads it.
        me = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": utc_now()})
        with os_errors(path, "write"):
            os.ftruncate(fd, 0)
            os.pwrite(fd, me.encode() + b"\n", 0)
        yield
    finally:
        os.close(fd)  # drops the flock


def _holder(data: bytes) -> dict[str, Any]:
    """The host and pid a consumer lock file names ({} when unreadable)."""
    try:
        holder = json.loads(data.decode("utf-8", "replace").strip() or "{}")
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}
