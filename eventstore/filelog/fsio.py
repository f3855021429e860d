"""Durable file primitives: write-once bodies, atomic replacement, fsync of folders.

Invariants:
- ``write_once`` never replaces an existing file: the body is written to a
  temporary name, fsync'd, then hard-linked to its final name (``link`` fails
  if the name exists) and the folder fsync'd. A crash leaves either no body or
  the whole body, plus at most a stray ``.tmp`` file that nothing reads.
- Every temp file is removed on every error path (a full disk, a refused
  link, an interrupted write): only a crash can leave one behind.
- ``replace_atomic`` writes a temporary file and swaps it in for the target,
  so readers see the old or the new bytes, never a mix, and the name never
  disappears. On Linux the swap is ``renameat2(RENAME_EXCHANGE)`` followed by
  unlinking the old file: renaming over an existing file makes ext4 flush the
  new file's data first (``auto_da_alloc``), which costs as much as an fsync.
  Where the exchange is not supported, a plain ``rename`` does the same job.
- OS errors on the write path become :class:`StoreIOError` naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eventstore.errors import StoreIOError, VersionBodyExists

__all__ = ["fsync_dir", "os_errors", "replace_atomic", "replace_unless_newer", "write_once"]

_HINTS = {
    errno.ENOSPC: "the disk is full: free space and run the command again",
    errno.EDQUOT: "the disk quota is exhausted: free space and run the command again",
    errno.EROFS: "the store is on a read-only filesystem: remount it read-write",
    errno.EACCES: "permission denied: check the owner and mode of the store's folders",
    errno.EPERM: "operation not permitted: check the owner and mode of the store's folders",
}


class os_errors:  # lower case: used like the function it was, ``with os_errors(p, "read"):``
    """Turn an OSError on ``path`` into StoreIOError with what to do next.

    A class rather than a generator context manager: several wrap every
    command, and this costs a fifth as much (issue 15, row 9).
    """

    __slots__ = ("doing", "path")

    def __init__(self, path: Path, doing: str) -> None:
        self.path = path
        self.doing = doing

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, error: BaseException | None, tb: object) -> None:
        if not isinstance(error, OSError) or isinstance(error, FileExistsError | StoreIOError):
            return
        hint = _HINTS.get(error.errno or 0, "check the disk and the store's folders")
        raise StoreIOError(
            f"cannot {self.doing} {self.path}: {error.strerror or error}; {hint}",
            path=str(self.path),
            errno_code=error.errno,
        ) from error


def fsync_dir(path: Path) -> None:
    """Make the entries of folder ``path`` (creations, renames) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")


def _write_all(fd: int, data: bytes | list[bytes]) -> None:
    if isinstance(data, list):
        if sum(map(len, data)) == os.writev(fd, data):
            return
        data = b"".join(data)  # a short writev: finish the slow way from the start
        os.lseek(fd, 0, os.SEEK_SET)
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _remove_quietly(tmp: Path) -> None:
    """Remove a temp file; a failure to remove it must not hide the error being raised."""
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def write_once(path: Path, data: bytes, *, batch_id: str | None = None) -> None:
    """Write ``data`` to ``path`` durably; refuse (VersionBodyExists) if it exists.

    Crash at each step: before the link, a stray temp file and no body; after
    the link but before the folder fsync, the body may vanish on power loss
    (no event names it yet, R9); after, the body is durable.
    """
    if path.exists():
        raise VersionBodyExists(
            f"refusing to overwrite existing version body {path.name} of batch "
            f"{batch_id or path.name.split('.')[0]}: bodies are immutable; "
            "run `scenelog verify` to inspect the batch",
            path=str(path),
            batch_id=batch_id,
        )
    with os_errors(path, "write"):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _tmp_name(path)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            try:
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, path)
            except FileExistsError as e:
                raise VersionBodyExists(
                    f"refusing to overwrite existing version body {path.name}: another "
                    "writer created it first; bodies are immutable",
                    path=str(path),
                    batch_id=batch_id,
                ) from e
        finally:
            _remove_quietly(tmp)
        fsync_dir(path.parent)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_exchange_works = sys.platform == "linux"
_renameat2: Any = None
_get_errno: Callable[[], int] = lambda: 0  # noqa: E731
_swaps_before_exchange = 8
"""Swaps a process makes with a plain rename before it loads ``renameat2``:
loading ctypes costs ~2 ms, which one short-lived command (``scenelog add``)
would pay for one swap that a rename does ~0.1 ms slower (issue 15, row 12);
a process that keeps writing repays it within a few dozen swaps."""


def libc() -> Any:
    """The C library through ctypes, loaded by the first caller (ctypes costs a
    reader's start-up, ~2 ms): renameat2 here, inotify and statfs for R8."""
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _load_renameat2() -> Any:
    """libc's ``renameat2``, loaded at the first swap."""
    global _renameat2, _exchange_works, _get_errno
    if _renameat2 is None and _exchange_works:
        import ctypes

        try:
            _renameat2 = libc().renameat2
            _get_errno = ctypes.get_errno
        except (OSError, AttributeError):
            _exchange_works = False
    return _renameat2


def _exchange(tmp: Path, path: Path, *, required: bool = True) -> bool:
    """Swap ``tmp`` and ``path`` atomically; False when that cannot be done here.

    ``required=False`` (a swap that a rename can do as well, only slower)
    answers False for a process's first swaps instead of loading ctypes.
    """
    global _exchange_works, _swaps_before_exchange
    if _renameat2 is None and not required and _swaps_before_exchange > 0:
        _swaps_before_exchange -= 1
        return False
    renameat2 = _renameat2 if _renameat2 is not None else _load_renameat2()
    if not _exchange_works or renameat2 is None:
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(tmp), _AT_FDCWD, os.fsencode(path), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = _get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
        _exchange_works = False  # not on this kernel or filesystem: rename from now on
        return False
    if code == errno.ENOENT:
        return False  # no old file yet
    raise OSError(code, os.strerror(code), str(path))


def replace_atomic(
    path: Path, data: bytes | list[bytes], *, durable: bool = False
) -> os.stat_result | None:
    """Replace ``path`` with ``data`` atomically (temp file + rename).

    With ``durable`` the temp file and the folder are fsync'd too; caches such
    as views skip it, since a lost or torn cache is rebuilt from the log.
    Returns the stat of the file written, taken after the swap (which changes
    its ctime), or None when another file was already at ``path`` by then.
    """
    with os_errors(path, "write"):
        tmp = _tmp_name(path)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            try:
                _write_all(fd, data)
                if durable:
                    os.fsync(fd)
                inode = os.fstat(fd).st_ino
            finally:
                # Closed before the swap: closing a file that replaced another one
                # makes ext4 flush it (auto_da_alloc), which costs as much as an fsync.
                os.close(fd)
            swapped = _exchange(tmp, path, required=False)
            if not swapped:
                os.replace(tmp, path)
            after = os.stat(path)
            written = after if after.st_ino == inode else None
        except BaseException:
            _remove_quietly(tmp)
            raise
        if durable:
            fsync_dir(path.parent)
        if swapped:
            # ``tmp`` now names the old bytes; readers that opened it keep them.
            _remove_quietly(tmp)
        return written


def replace_unless_newer(path: Path, data: bytes, newer: Callable[[bytes], bool]) -> bool:
    """Swap ``data`` in for ``path`` without any lock, unless the file there is newer.

    For repairing a cache from a reader: the old file is swapped out atomically
    and, when ``newer(old_bytes)`` says a writer had put something newer there
    meanwhile, swapped straight back. Without exchange support, ``path`` is only
    created when missing. True when ``data`` stayed in place.

    The temp file is removed on every path, failures included (a full disk
    must not leave one per reader that tried to mend a view).
    """
    with os_errors(path, "write"):
        tmp = _tmp_name(path)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            try:
                _write_all(fd, data)
            finally:
                os.close(fd)
            if _exchange(tmp, path):
                if newer(tmp.read_bytes()):
                    _exchange(tmp, path)
                    return False
                return True
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            return True
        finally:
            _remove_quietly(tmp)
