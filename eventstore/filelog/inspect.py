"""What an auditor (``scenelog verify``) asks the file backend beyond reads.

:class:`eventstore.filelog.FileLog` delegates here: whether a command on a
batch may be in flight (R26), bodies and views read the way an auditor must
read them, the repair of a view ahead of its log, and the strays of an
episode (bodies, manifests and views of batches without a log, and logs that
are not files).

Invariants:
- Nothing here writes a log, a body or a head record; :func:`replace_snapshot`
  rewrites a view and nothing else, never over one a writer put there since
  it was read.
- A batch's lock is observed, never taken or opened (R22): ``/proc/locks`` is
  read, because closing any fd of a ``lockf``-locked file drops the locks of
  the whole process on it, a writer thread's included.
- Bodies and views are opened non-blocking and read only when the opened file
  is a regular file of at most the cap: a FIFO, a link to ``/dev/zero`` or a
  huge file is an answer (``not_file``, ``too_large``), never a hang or an
  exhausted memory.
- A view is read before its log is looked for, and a writer creates a log
  before its first view: a view found here without its log really lost it.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import msgspec

from eventstore.filelog.fsio import replace_unless_newer
from eventstore.filelog.paths import BatchPaths, Layout
from eventstore.layout import validate_batch_id
from eventstore.log import BodyLook, SnapshotLook, Stray
from eventstore.manifest import Manifest, decode_manifest, encode_manifest

__all__ = [
    "SETTLE",
    "BodyLook",  # the types these functions hand out (defined in eventstore.log)
    "SnapshotLook",
    "Stray",
    "batch_busy",
    "look_body",
    "look_snapshot",
    "replace_snapshot",
    "strays",
]

SETTLE = 2.0
"""Seconds :func:`batch_busy` lets pass when the system cannot show who holds a lock."""

_VIEW_LIMIT = 256 * 1024 * 1024
"""Largest view read; a bigger one reads as none."""

_LOG = ".events.jsonl"
_VIEW = ".versions.json"


# ── is a command in flight (R26) ─────────────────────────────────────────────


def batch_busy(paths: BatchPaths) -> bool:
    """Whether a process holds the batch's lock now: a command may be in flight.

    Where the system cannot show locks (no ``/proc/locks``), this cannot tell:
    it lets :data:`SETTLE` seconds pass, enough for any command in flight at
    the call to end, and answers False.
    """
    held = _lock_held(paths.lock)
    if held is None:
        time.sleep(SETTLE)
        return False
    return held


def _lock_held(lock: Path) -> bool | None:
    """Whether a process holds the POSIX lock on ``lock`` now; None: cannot tell."""
    try:
        inode = os.stat(lock).st_ino
    except FileNotFoundError:
        return False
    except OSError:
        return None
    try:
        with open("/proc/locks", "rb") as f:
            table = f.read()
    except OSError:
        return None
    suffix = f":{inode}".encode()
    for row in table.splitlines():
        fields = row.split()
        # "->" rows are waiters; field 5 is MAJOR:MINOR:INODE (a device clash only errs busy)
        if len(fields) > 5 and fields[1] != b"->" and fields[5].endswith(suffix):
            return True
    return False


# ── bodies and views, read safely ────────────────────────────────────────────


class _NotRegular(Exception):
    pass


class _TooLarge(Exception):
    def __init__(self, size: int | None) -> None:
        super().__init__(size)
        self.size = size


def _read_regular(path: Path, limit: int) -> bytes:
    """The bytes of the regular file at ``path``, at most ``limit`` of them.

    Raises FileNotFoundError, _NotRegular, _TooLarge or OSError.
    """
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise _NotRegular  # never opened: opening a FIFO may block
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)  # what was opened, not what the name pointed at before
        if not stat.S_ISREG(st.st_mode):
            raise _NotRegular
        if st.st_size > limit:
            raise _TooLarge(st.st_size)
        chunks = []
        size = 0
        while chunk := os.read(fd, 1 << 20):
            size += len(chunk)
            if size > limit:  # grew while read
                raise _TooLarge(None)
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def look_body(paths: BatchPaths, name: str, *, max_bytes: int) -> BodyLook:
    """Body ``name`` of the batch, read only as a regular file of at most ``max_bytes``."""
    path = paths.scenes_dir / os.path.basename(name)
    where = str(path)
    try:
        return BodyLook(_read_regular(path, max_bytes), None, "", where)
    except FileNotFoundError:
        return BodyLook(None, "missing", "is missing", where)
    except _NotRegular:
        return BodyLook(None, "not_file", "is not a regular file (a FIFO, device or folder)", where)
    except _TooLarge as e:
        size = f"is {e.size} bytes, over" if e.size is not None else "is over"
        return BodyLook(None, "too_large", f"{size} the {max_bytes} bytes verify reads", where)
    except OSError as e:
        return BodyLook(None, "unreadable", f"cannot be read ({e.strerror or e})", where)


def _regular_or_absent(path: Path) -> bool:
    """False when ``path`` exists and is not a regular file (never opens it)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        return True
    except OSError:
        return False


def _read_view(path: Path) -> bytes | None:
    try:
        return _read_regular(path, _VIEW_LIMIT)
    except (OSError, _NotRegular, _TooLarge):
        return None


def look_snapshot(paths: BatchPaths) -> SnapshotLook:
    """The batch's ``versions.json`` as stored (None when missing or unreadable)."""
    where = str(paths.view)
    if not _regular_or_absent(paths.view):
        return SnapshotLook(None, True, where)
    return SnapshotLook(_read_view(paths.view), False, where)


def replace_snapshot(paths: BatchPaths, manifest: Manifest, *, seen: bytes | None) -> bool:
    """Put ``manifest``'s view in place of ``seen`` (a view above a restored log).

    Swapped in atomically without a lock and swapped straight back when what
    it replaced is not ``seen`` but a view above ``manifest`` that a writer
    put there meanwhile. A failure (read-only store, full disk) leaves the
    view as it was: readers fold the log. True when the new view stayed.
    """

    def newer(old: bytes) -> bool:
        if old == seen:
            return False
        try:
            return decode_manifest(old).seq > manifest.seq
        except (msgspec.DecodeError, msgspec.ValidationError):
            return False

    try:
        return replace_unless_newer(paths.view, encode_manifest(manifest), newer)
    except OSError:
        return False


# ── strays: what an episode holds outside any readable log ───────────────────


def strays(layout: Layout, episode: str) -> list[Stray]:
    """Logs that are not files, then version bodies, then views, of batches without a log.

    Sorted by batch within each kind. A candidate found in the listing is
    confirmed by looking for its log afterwards (a listing is not atomic).
    """
    scenes = layout.scenes_dir(episode)
    try:
        names = sorted(os.listdir(scenes))
    except FileNotFoundError:
        return []
    prefix = episode + "_BATCH_"
    logs: set[str] = set()
    bodies: dict[str, list[str]] = {}
    views: list[str] = []
    for name in names:
        if not name.startswith(prefix):
            continue
        if name.endswith(_LOG):
            logs.add(name[: -len(_LOG)])
        elif name.endswith(_VIEW):
            views.append(name[: -len(_VIEW)])
        else:
            batch_id, dot, _rest = name.partition(".v")
            if dot and _is_batch(batch_id) and layout.batch(batch_id).is_body_name(name):
                bodies.setdefault(batch_id, []).append(name)
    found = [
        Stray(b, "not_a_log", str(layout.batch(b).log))
        for b in sorted(logs)
        if _is_batch(b) and not _regular_or_absent(layout.batch(b).log)
    ]
    for batch_id, owned in sorted(bodies.items()):
        paths = layout.batch(batch_id)
        if batch_id not in logs and not os.path.lexists(paths.log):
            found.append(Stray(batch_id, "bodies", str(paths.scenes_dir), tuple(owned)))
    for batch_id in views:
        if batch_id in logs or not _is_batch(batch_id):
            continue
        stray = _view_without_log(layout.batch(batch_id))
        if stray is not None:
            found.append(stray)
    return found


def _is_batch(batch_id: str) -> bool:
    try:
        validate_batch_id(batch_id)
    except ValueError:
        return False
    return True


def _view_without_log(paths: BatchPaths) -> Stray | None:
    """The view as a stray: a reference manifest, or a view whose log was lost.

    The view is read first and its log looked for after: a writer creates
    its log before its first view, so a view of a first write in flight is
    never taken for a lost log.
    """
    data = _read_view(paths.view) if _regular_or_absent(paths.view) else None
    if os.path.lexists(paths.log):
        return None
    try:
        parsed = msgspec.json.decode(data) if data is not None else None
    except msgspec.DecodeError:
        parsed = None
    if not (isinstance(parsed, dict) and parsed and "seq" not in parsed):
        return Stray(paths.batch_id, "snapshot", str(paths.view))
    names: list[str] = []
    versions = parsed.get("versions")
    for entry in versions if isinstance(versions, list) else []:
        if not isinstance(entry, dict):
            continue
        artifact = entry.get("artifact")
        if isinstance(artifact, str):
            names.append(os.path.basename(artifact))
        version = entry.get("version")
        if isinstance(version, int) and not isinstance(version, bool) and version >= 1:
            names.append(paths.body_name(version))
    return Stray(paths.batch_id, "reference", str(paths.view), tuple(sorted(set(names))))
