"""The per-batch lock: exclusive across threads and processes, with a timeout.

``fasteners.InterProcessLock`` (POSIX ``lockf``) excludes processes but not
threads of one process, and releasing any instance on a path drops the lock
for the whole process. So each path gets one process-wide ``threading.Lock``
taken first and one fasteners instance, polled with small delays so a
contended wait stays in milliseconds. The instance keeps its sidecar open
between acquisitions (opening and closing it each time cost more than the
lock itself); after each acquisition it checks that the open file is still
the one at the path, so a deleted or replaced sidecar is reopened rather than
silently excluding nobody. Only this module imports fasteners.

Invariants:
- The lock file is a sidecar that nothing else opens (closing any fd of a
  ``lockf``-locked file drops the lock).
- A wait longer than ``timeout`` raises :class:`LockTimeout` naming the file;
  nothing is ever held forever.
- After ``fork`` the child starts with fresh locks (the parent's are not its).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import fasteners

from eventstore.errors import LockTimeout, StoreIOError
from eventstore.fsio import os_errors

__all__ = ["DEFAULT_LOCK_TIMEOUT", "batch_lock", "still_held"]

DEFAULT_LOCK_TIMEOUT = 30.0
"""Seconds a command waits for its batch lock before LockTimeout."""

_DELAY = 0.0001
_MAX_DELAY = 0.001

_registry_guard = threading.Lock()
_registry: dict[str, tuple[threading.Lock, _SidecarLock]] = {}


def _reset_after_fork() -> None:
    global _registry_guard
    _registry_guard = threading.Lock()
    _registry.clear()


os.register_at_fork(after_in_child=_reset_after_fork)


class _SidecarLock(fasteners.InterProcessLock):  # type: ignore[misc]
    """A fasteners lock whose sidecar stays open while the process runs."""

    def _do_open(self) -> None:
        if self.lockfile is None or self.lockfile.closed:
            super()._do_open()

    def _do_close(self) -> None:
        pass  # unlocking is enough; closing would cost an open next time

    def reopen(self) -> None:
        super()._do_close()

    def is_current(self) -> bool:
        """Whether the open sidecar is still the file at the path."""
        if self.lockfile is None or self.lockfile.closed:
            return False
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return False
        held = os.fstat(self.lockfile.fileno())
        return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _locks_for(path: Path) -> tuple[threading.Lock, _SidecarLock]:
    key = str(path)
    with _registry_guard:
        pair = _registry.get(key)
        if pair is None:
            pair = (threading.Lock(), _SidecarLock(key))
            _registry[key] = pair
        return pair


def _timeout_error(path: Path, timeout: float, batch_id: str | None) -> LockTimeout:
    return LockTimeout(
        f"batch {batch_id or path.stem} is locked: waited {timeout:g}s for {path}; another "
        "writer holds it — retry, or find the hung process holding the lock",
        path=str(path),
        timeout=timeout,
        batch_id=batch_id,
    )


@contextmanager
def batch_lock(
    path: Path, *, timeout: float = DEFAULT_LOCK_TIMEOUT, batch_id: str | None = None
) -> Iterator[None]:
    """Hold the exclusive lock on sidecar ``path`` for the ``with`` block."""
    thread_lock, process_lock = _locks_for(path)
    deadline = time.monotonic() + timeout
    if not thread_lock.acquire(timeout=max(timeout, 0.0)):
        raise _timeout_error(path, timeout, batch_id)
    try:
        while True:
            if process_lock.lockfile is not None and not process_lock.is_current():
                process_lock.reopen()  # the sidecar kept open was deleted or replaced
            remaining = max(deadline - time.monotonic(), 0.0)
            try:
                with os_errors(path, "lock"):
                    got = process_lock.acquire(
                        blocking=True, delay=_DELAY, max_delay=_MAX_DELAY, timeout=remaining
                    )
            except threading.ThreadError as e:
                raise StoreIOError(
                    f"cannot lock {path}: {e}; the filesystem must support POSIX locks",
                    path=str(path),
                ) from e
            if not got:
                raise _timeout_error(path, timeout, batch_id)
            if process_lock.is_current():
                break
            # The sidecar was deleted or replaced while we waited: lock the new one.
            process_lock.release()
            process_lock.reopen()
        try:
            yield
        finally:
            process_lock.release()
    finally:
        thread_lock.release()


def still_held(path: Path) -> bool:
    """Whether this process's lock on ``path`` is on the file that is there now.

    False when the sidecar was deleted or replaced while held: another writer
    may then hold a lock on the new file, and nothing may be written.
    """
    pair = _registry.get(str(path))
    return pair is not None and pair[1].acquired and pair[1].is_current()
