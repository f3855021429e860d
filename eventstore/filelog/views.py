"""The file backend's ``versions.json`` view: the folded manifest cached beside the log.

Only the file backend (:mod:`eventstore.filelog`) calls this module: its
session rewrites the view after each commit and its command session runs the
R21/R29 checks and takes the reference lock, so the store never sees a view.

Invariants:
- A view is rewritten atomically (temp file + rename) by the writer holding
  the batch lock, right after each commit; it is never fsync'd, because a lost
  or torn view is rebuilt from the log (R17).
- A view is trusted only when its ``seq`` equals the log's last seq and its
  bytes are exactly what scenelog writes for the manifest they hold
  (``encode_manifest(decode_manifest(b)) == b``). scenelog writes every view
  in one canonical form (compact JSON, keys in §4 order, one ``\\n``), so a
  view rewritten by another tool — the reference's ``json.dump`` puts spaces
  after ``:`` and ``,`` — is never trusted by a reader (R29). This is the
  readers' cheap test; writers, under the lock, run the exact one
  (:func:`check_view`: the bytes equal the fold of the log at the view's seq).
- A view changed by another tool (a JSON object that is not scenelog's bytes
  for the log) is never overwritten silently: readers leave it in place
  (``repair_view`` returns False) and commands refuse with ForeignView naming
  it, until ``scenelog import --adopt BATCH`` turns the change into events.
  Anything that is not a manifest at all (a view torn by a power loss, ``{}``)
  is a damaged cache and is rebuilt.
- A ``versions.json`` without ``seq`` and without a log was written by the
  reference system: it is never overwritten or ignored (R21).
- A ``versions.json`` with a ``seq`` and no log means the log was lost. This
  is decided exactly, without a lock: the view is read first and the log's
  existence checked after, and scenelog creates a log before it ever writes
  its view (and never removes a log), so a view read before the log existed
  is never mistaken for a lost log.
- While tools built on the reference may run, a command on a batch also holds
  the reference's lock ``<batch>.versions.lock`` (``flock``, exclusive) when
  that file exists, taken before scenelog's own batch lock; the file is never
  created here (R29). A reference tool that creates the file after the command
  looked for it is not excluded by that command.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from eventstore.errors import (
    DamagedLog,
    ForeignView,
    LockTimeout,
    StoreIOError,
    UnimportedManifest,
)
from eventstore.events import Event
from eventstore.filelog.fsio import os_errors, replace_atomic, replace_unless_newer
from eventstore.filelog.paths import BatchPaths
from eventstore.manifest import Fold, Manifest, decode_manifest, encode_manifest, fold

__all__ = [
    "check_unimported",
    "check_view",
    "is_foreign_view",
    "load_reference_manifest",
    "read_view",
    "reference_lock",
    "reference_lock_path",
    "repair_view",
    "write_view",
]


def _warn(message: str, *args: object) -> None:
    """Log a warning on the ``scenelog`` logger (logging is imported only when needed)."""
    import logging

    logging.getLogger("scenelog").warning(message, *args)


Written = dict[tuple[int, int], tuple[tuple[int, int, int], int]]
"""Views one FileLog wrote, by file identity: (size, mtime, ctime) and the seq."""

_MAX_WRITTEN = 4096


def write_view(
    path: Path, manifest: Manifest | bytes | list[bytes], written: Written | None = None
) -> bool:
    """Rewrite the view; a failure is logged, not raised (the log is the truth).

    With ``written`` (the FileLog's memory of its views), the file written is
    remembered there by identity with the seq it reflects, so the next command
    of this FileLog recognizes it without reading it back (see :func:`check_view`).

    Crash at each step: before the swap, a stray temp file at most (removed on
    every error path) and the old view; after, the new view.
    """
    data = encode_manifest(manifest) if isinstance(manifest, Manifest) else manifest
    try:
        st = replace_atomic(path, data)
    except OSError as e:
        _warn("could not rewrite view %s (%s); readers fold the log instead", path, e)
        return False
    if written is None or st is None:
        return True
    seq = _seq_of(data[0] if isinstance(data, list) and data else data)
    if seq is not None:
        if len(written) >= _MAX_WRITTEN:
            written.clear()
        written[(st.st_dev, st.st_ino)] = (_stamp(st), seq)
    return True


_SEQ = re.compile(
    rb'^\{"schema_version":[0-9]+,"batch_id":"[^"]*",'
    rb'"active_version":(?:null|[0-9]+),"seq":([0-9]+),'
)


def _seq_of(head: bytes | list[bytes]) -> int | None:
    """The seq in the head of scenelog's own view bytes (None for anything else)."""
    if isinstance(head, list):
        return None
    match = _SEQ.match(head[:256])
    return int(match.group(1)) if match else None


def _stamp(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _written_here(path: Path, seq: int, written: Written) -> bool:
    """Whether the view at ``path`` is a file this FileLog wrote (or checked) for a seq up
    to ``seq``, unchanged (a lazy view trails the log; it is still the fold at its seq).

    The file is known by identity (device, inode) and stamp (size, mtime,
    ctime): any write to it or replacement of it changes one of them, except
    a change of the same size within the same clock tick as this process's
    write — the one change this shortcut cannot see. The reference rewrites
    by rename, under the lock this process held while writing its view.
    """
    try:
        st = os.stat(path)
    except OSError:
        return False
    known = written.get((st.st_dev, st.st_ino))
    return known is not None and known[0] == _stamp(st) and known[1] <= seq


def _remember(path: Path, seq: int, written: Written | None) -> None:
    """Remember the view at ``path`` as checked for ``seq`` (later commands only stat it)."""
    if written is None:
        return
    try:
        st = os.stat(path)
    except OSError:
        return
    if len(written) >= _MAX_WRITTEN:
        written.clear()
    written[(st.st_dev, st.st_ino)] = (_stamp(st), seq)


def _ours(data: bytes) -> Manifest | None:
    """The manifest ``data`` holds when they are exactly the bytes scenelog writes for it."""
    try:
        manifest = decode_manifest(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return manifest if encode_manifest(manifest) == data else None


def _manifest_like(data: bytes) -> bool:
    """A JSON object with a manifest's ``versions`` or ``active_version`` (any tool's)."""
    try:
        parsed = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return False
    return isinstance(parsed, dict) and ("versions" in parsed or "active_version" in parsed)


def is_foreign_view(data: bytes) -> bool:
    """Whether view bytes were written by a tool other than scenelog (R29).

    A manifest-like JSON object (with ``versions`` or ``active_version``) that
    is not in scenelog's canonical form. Anything else (bytes that are not
    JSON, ``{}``) is a damaged cache, not a foreign view.
    """
    return _ours(data) is None and _manifest_like(data)


def _read_bytes(path: Path, *, strict: bool = False) -> bytes | None:
    """The file's bytes, or None when it is missing or not a file.

    An unreadable file is None for readers; with ``strict`` (writers, who must
    judge the file before replacing it) its PermissionError is raised.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    except PermissionError:
        if strict:
            raise
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    except IsADirectoryError:
        return None
    finally:
        os.close(fd)
    return b"".join(chunks)


def repair_view(path: Path, manifest: Manifest) -> bool:
    """Rewrite a stale view from a reader, taking no lock (R22).

    A writer's view written meanwhile has a higher ``seq`` and is put back; a
    view changed by another tool is left in place (R29: never overwritten
    silently, the next command refuses and names it); a failure (read-only
    store, full disk) is ignored, leaving no temp file: readers fold the log.
    True when ``manifest``'s view stayed in place.
    """
    current = _read_bytes(path)
    if current is not None and is_foreign_view(current):
        return False

    def keep_old(old: bytes) -> bool:
        if is_foreign_view(old):
            return True
        ours = _ours(old)
        return ours is not None and ours.seq > manifest.seq

    try:
        return replace_unless_newer(path, encode_manifest(manifest), keep_old)
    except OSError:
        return False


def read_view(path: Path) -> Manifest | None:
    """The view's manifest, or None when it is missing, unreadable or not scenelog's bytes.

    A view rewritten by another tool (e.g. the reference's ``json.dump``) is
    not trusted: None, so the reader folds the log (R29).
    """
    data = _read_bytes(path)
    return None if data is None else _ours(data)


def check_view(
    paths: BatchPaths,
    current: Fold,
    history: Callable[[], list[Event]],
    written: Written | None = None,
    snapshot: Path | None = None,
) -> bool:
    """R29, under the batch lock: ForeignView unless the view is scenelog's for this log.

    Returns whether a view is there. A view behind the log (``lazy``) that holds
    the bytes of the project's snapshot (``snapshot``, written just before it)
    is scenelog's; a view checked once is remembered in ``written`` and only
    stat'ed by later commands while it stays unchanged.

    The view must be the file this FileLog wrote for the log's seq (known by
    identity and stamp, not read back), missing, a damaged cache (not
    manifest-like), or exactly
    the bytes of the fold of the log at the view's own ``seq``: ``current``'s
    bytes when the view is up to date, else the fold of the first ``seq``
    events (``history()`` is read only then: a writer that died between its
    line and its view). A view of a higher seq than the log (a log restored
    from an older backup) is left to the command, which replaces it (R17).
    """
    if written is not None and _written_here(paths.view, current.seq, written):
        return True
    with os_errors(paths.view, "read"):
        data = _read_bytes(paths.view, strict=True)
    if data is None:
        return False
    if data == current.view_bytes():
        _remember(paths.view, current.seq, written)
        return True
    ours = _ours(data)
    if ours is None:
        if _manifest_like(data):
            raise _foreign(paths, "it is not in scenelog's format")
        return True  # a torn cache: the command's view rewrite replaces it
    if ours.batch_id != paths.batch_id:
        raise _foreign(paths, f"it names batch {ours.batch_id!r}")
    if ours.seq == current.seq:
        raise _foreign(paths, f"it differs from the log at seq {ours.seq}")
    if ours.seq < current.seq:
        if snapshot is None or _read_bytes(snapshot) != data:
            events = history()[: ours.seq]
            if encode_manifest(fold(paths.batch_id, events, path=str(paths.log))) != data:
                raise _foreign(paths, f"it differs from the log at seq {ours.seq}")
        _remember(paths.view, ours.seq, written)
    return True


def _foreign(paths: BatchPaths, why: str) -> ForeignView:
    return ForeignView(
        f"{paths.view} was changed by a tool other than scenelog ({why}); refusing to trust "
        f"or overwrite it — run `scenelog import --adopt {paths.batch_id}` to record the "
        "change as events, then run the command again",
        path=str(paths.view),
        batch_id=paths.batch_id,
    )


def load_reference_manifest(path: Path) -> dict[str, Any] | None:
    """A ``versions.json`` parsed as plain JSON, or None when missing or not an object."""
    try:
        data = msgspec.json.decode(path.read_bytes())
    except (FileNotFoundError, msgspec.DecodeError):
        return None
    return data if isinstance(data, dict) else None


def check_unimported(paths: BatchPaths) -> None:
    """R21: refuse when a ``versions.json`` stands without a log.

    The view is read before the log is looked for: a writer creates its log
    before its first view, so a view found here whose log is missing after it
    was read really has lost its log (DamagedLog); a view without ``seq`` is
    the reference's (UnimportedManifest). Exact with no lock held.
    """
    try:
        data = _read_bytes(paths.view, strict=True)
    except PermissionError:
        if paths.log.exists():
            return
        with os_errors(paths.view, "read"):
            raise  # a versions.json nobody can judge is never written over
    if data is None or paths.log.exists():
        return
    try:
        parsed = msgspec.json.decode(data)
    except msgspec.DecodeError:
        parsed = None
    if isinstance(parsed, dict) and "seq" in parsed:
        raise DamagedLog(
            f"{paths.log}: missing, but its view {paths.view.name} says the batch had "
            f"{parsed['seq']} events; restore the log of batch {paths.batch_id} from backup",
            path=str(paths.log),
            line=0,
            batch_id=paths.batch_id,
        )
    raise UnimportedManifest(
        f"batch {paths.batch_id} has a reference-format {paths.view.name} and no log: "
        f"import it first with `scenelog import {paths.batch_id[:6]}`",
        path=str(paths.view),
        batch_id=paths.batch_id,
    )


def reference_lock_path(paths: BatchPaths) -> Path:
    """The reference system's lock of the batch: ``<batch>.versions.lock``."""
    return paths.scenes_dir / f"{paths.batch_id}.versions.lock"


_POLL_FIRST = 0.0001
_POLL_MAX = 0.001


def reference_lock(paths: BatchPaths, *, timeout: float) -> contextlib.AbstractContextManager[None]:
    """Hold the reference's ``flock`` on ``<batch>.versions.lock`` when that file exists.

    Never creates the file. A wait past ``timeout`` raises LockTimeout naming
    it. ``flock`` belongs to the open file, so threads of one process exclude
    each other too; the lock is released when the block is left or the
    process dies. A thread that holds it already (a tool that took it before
    opening a session) passes through: a second ``flock`` on another open
    file would wait for itself. The file is looked for when the block is
    entered (nothing is opened by a lock that is never entered).
    """
    return _ReferenceLock(paths, timeout)


class _ReferenceLock:
    """:func:`reference_lock` as a class (a generator context manager per command costs ~1 µs)."""

    __slots__ = ("_fd", "_key", "_paths", "_timeout")

    def __init__(self, paths: BatchPaths, timeout: float) -> None:
        self._paths = paths
        self._timeout = timeout
        self._fd: int | None = None
        self._key: tuple[int, int] | None = None

    def __enter__(self) -> None:
        if self._fd is not None:
            raise RuntimeError("a reference lock is entered once; ask reference_lock() for another")
        paths = self._paths
        fd = _open_existing(f"{paths.scenes_dir}/{paths.batch_id}.versions.lock")
        if fd is None:
            return  # the common case: no reference-era tool here
        try:
            st = os.fstat(fd)
            key = (st.st_dev, st.st_ino)
            held: set[tuple[int, int]] = _held_here.__dict__.setdefault("locks", set())
            if key not in held:
                _flock(fd, reference_lock_path(paths), self._timeout, paths.batch_id)
                held.add(key)
                self._key = key
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def __exit__(self, *exc: object) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self._key is not None:
                _held_here.__dict__.setdefault("locks", set()).discard(self._key)
                self._key = None
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


_held_here = threading.local()
"""Reference lock files (device, inode) the current thread holds."""


def _open_existing(path: str) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        with os_errors(Path(path), "open"):
            raise


def _flock(fd: int, path: Path, timeout: float, batch_id: str) -> None:
    deadline = time.monotonic() + timeout
    delay = _POLL_FIRST
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise StoreIOError(
                    f"cannot lock {path}: {e.strerror or e}; the filesystem must support flock",
                    path=str(path),
                    errno_code=e.errno,
                ) from e
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LockTimeout(
                f"batch {batch_id} is locked: waited {timeout:g}s for the reference lock "
                f"{path}, held by a reference-era tool or another command; retry when it is "
                "done, or find the hung process holding it",
                path=str(path),
                timeout=timeout,
                batch_id=batch_id,
            )
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, _POLL_MAX)
