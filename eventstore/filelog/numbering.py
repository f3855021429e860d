"""R8 for the file backend: the highest ``vNNN`` body of a batch in its folder, now.

Invariants:
- Exact at the moment of the call, in every process: the scenes folder is
  listed unless a listing of it is known to be current — its mtime unchanged
  and older than the clock's granularity when the listing began (see
  :func:`_list_folder`), or, in a process that lists a folder a second time,
  kept up to date by inotify (see :class:`Listings`) — so a body placed by
  anyone while a process runs is seen by that process's next command.
- Listings are keyed on the folder's identity (device, inode), never its
  spelling (R23), and held by the FileLog that asked (:class:`Listings`, at
  most ``LIMIT`` folders), never by the module.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from eventstore.filelog.paths import BatchPaths
from eventstore.rules import body_version

__all__ = ["LIMIT", "Listings", "highest_on_disk"]

LIMIT = 4096
"""Scenes folders whose listing one FileLog keeps."""


def _body(name: str) -> tuple[str, int] | None:
    """(batch id, version) of a body's name as the store names bodies
    (:func:`eventstore.rules.body_version`); None for any other name."""
    at = name.rfind(".v")
    if at <= 0:
        return None
    version = body_version(name[:at], name)
    return None if version is None else (name[:at], version)


class _Listing:
    """One listing of a scenes folder: its names, and the folder's mtime when listed.

    ``trusted`` says the mtime was older than the clock's granularity before
    the listing began, so any later change of the folder's entries gets a
    different mtime; an untrusted listing serves only the command that made it.
    ``watch`` is the inotify watch that keeps the names current (None: none).
    (A plain class: a dataclass costs every command's start-up, issue 15.)
    """

    __slots__ = (
        "__weakref__", "body_names", "building", "highest", "mtime_ns", "names", "trusted", "watch",
    )  # fmt: skip

    def __init__(self, mtime_ns: int, trusted: bool, names: str) -> None:
        self.mtime_ns = mtime_ns
        self.trusted = trusted
        self.names = names
        self.highest: dict[str, int] = {}
        self.watch: int | None = None
        self.body_names: set[str] | None = None
        # While the folder is being listed: the changes seen meanwhile, applied after.
        self.building: list[tuple[bool, str]] | None = None

    def highest_of(self, batch_id: str) -> int:
        known = self.highest.get(batch_id)
        if known is None:
            # v1000 and up first (few), else the largest three-digit name, compared as
            # text: no per-name Python work in a folder of thousands of bodies. Each
            # name sits between slashes (a name can hold a newline, never a "/"); a
            # literal start lets the regex skip ahead.
            prefix = "/" + re.escape(batch_id) + r"\.v"
            long = re.findall(prefix + r"([1-9][0-9]{3,})\.json(?=/)", self.names)
            if long:
                known = max(map(int, long))
            else:
                short = re.findall(prefix + r"([0-9]{3})\.json(?=/)", self.names)
                known = int(max(short, default="000"))
            self.highest[batch_id] = known
        return known

    def added(self, name: str) -> None:
        """A name created or renamed in (only body names matter to R8)."""
        if self.building is not None:
            self.building.append((True, name))
            return
        body = _body(name)
        if body is None:
            return  # temp files, views, logs: every command makes a few
        bodies = self._bodies()
        if name in bodies:
            return  # renamed over an entry of the same name
        bodies.add(name)
        self.names += name + "/"
        known = self.highest.get(body[0])
        if known is not None:
            self.highest[body[0]] = max(known, body[1])

    def removed(self, name: str) -> None:
        """A name removed or renamed away."""
        if self.building is not None:
            self.building.append((False, name))
            return
        body = _body(name)
        if body is None or name not in self._bodies():
            return
        self._bodies().discard(name)
        self.names = self.names.replace("/" + name + "/", "/", 1)
        self.highest.pop(body[0], None)  # counted again from the names when asked

    def _bodies(self) -> set[str]:
        """The body names of the listing, as a set (made at the first change seen)."""
        if self.body_names is None:
            self.body_names = {n for n in self.names.split("/") if _body(n) is not None}
        return self.body_names


# inotify(7): the events that change a folder's names, and the watch's own end.
_IN_MOVED_FROM, _IN_MOVED_TO, _IN_CREATE, _IN_DELETE = 0x40, 0x80, 0x100, 0x200
_IN_DELETE_SELF, _IN_MOVE_SELF, _IN_UNMOUNT = 0x400, 0x800, 0x2000
_IN_Q_OVERFLOW, _IN_IGNORED, _IN_ONLYDIR = 0x4000, 0x8000, 0x01000000
_WATCH_MASK = (
    _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE | _IN_DELETE_SELF | _IN_MOVE_SELF
)
_GONE = _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_UNMOUNT | _IN_IGNORED
_LOCAL_FILESYSTEMS = frozenset(
    (
        0xEF53,  # ext2, ext3, ext4
        0x58465342,  # xfs
        0x9123683E,  # btrfs
        0xF2F52010,  # f2fs
        0xCA451A4E,  # bcachefs
        0x2FC12FC1,  # zfs
        0x01021994,  # tmpfs
        0x858458F6,  # ramfs
    )
)
"""statfs(2) types of filesystems whose changes all pass through this kernel. Not
overlay (a change made to a layer underneath is not seen), nor any network or
FUSE filesystem (another host's writes are not seen)."""
_EVENT = struct.Struct("iIII")
"""struct inotify_event: wd, mask, cookie, len (then len bytes of NUL-padded name)."""


class _Notify:
    """The process's one inotify instance, shared by every FileLog's listings.

    One per process, not one per FileLog: inotify instances are counted per
    user (``max_user_instances``, 128 by default), and a server holding many
    projects must not take them from the watchers on its host. The instance
    is a process resource like the lock table (eventstore.filelog.lock); what
    each FileLog knows stays in its own :class:`Listings`. A forked child
    starts without it. Every followed listing is read and changed only under
    ``guard``; a watch is removed when its last follower stops following.
    Only folders on a local filesystem are followed (:data:`_LOCAL_FILESYSTEMS`):
    inotify does not see what other hosts write to a network filesystem
    (there the mtime rule serves).
    """

    def __init__(self) -> None:
        self.guard = threading.Lock()
        self.fd = -1  # -2: inotify unavailable in this process
        self._add_watch: Any = None
        self._rm_watch: Any = None
        self.listeners: dict[int, weakref.WeakSet[_Listing]] = {}
        self.dropped: list[_Listing] = []  # by finalizers (no lock there): unfollowed at a drain
        self._statfs: Any = None
        self._statfs_buffer: Any = None
        self._fs_type: Any = None

    def follow(self, folder: Path, listing: _Listing) -> None:
        """Under ``guard``: from now on ``listing`` gets the folder's changes
        (buffered until :meth:`built`), if the folder is on a local filesystem
        and a watch can be had."""
        if self.fd == -1:
            try:
                import ctypes

                from eventstore.filelog.fsio import libc as load_libc

                libc = load_libc()
                self._statfs = libc.statfs
                self._statfs_buffer = ctypes.create_string_buffer(256)
                self._fs_type = ctypes.c_long.from_buffer(self._statfs_buffer)  # f_type is first
                fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
                self._add_watch, self._rm_watch = libc.inotify_add_watch, libc.inotify_rm_watch
                self.fd = fd if fd >= 0 else -2
            except (OSError, AttributeError):
                self.fd = -2
        if self.fd < 0 or not self.local(folder):
            return
        self.drain()  # what is queued already goes to the listings it concerns
        wd = int(self._add_watch(self.fd, os.fsencode(folder), _WATCH_MASK | _IN_ONLYDIR))
        if wd >= 0:
            listing.watch, listing.building = wd, []
            self.listeners.setdefault(wd, weakref.WeakSet()).add(listing)

    def local(self, folder: Path) -> bool:
        """Whether ``folder`` is on a filesystem whose every change inotify sees
        (``statfs``'s type, asked each time: device numbers of mounts are reused)."""
        if self._statfs(os.fsencode(folder), self._statfs_buffer) != 0:
            return False
        return self._fs_type.value & 0xFFFFFFFF in _LOCAL_FILESYSTEMS

    def built(self, listing: _Listing, names: str) -> None:
        """Under ``guard``: the listing's names are in; apply what changed meanwhile.

        Each change says what one name is after it, so replaying changes that
        the listing already shows ends where the folder is."""
        changes, listing.building = listing.building or [], None
        listing.names = names
        for present, name in changes:
            (listing.added if present else listing.removed)(name)

    def unfollow(self, listing: _Listing) -> None:
        """Under ``guard``: ``listing`` no longer follows its folder."""
        wd, listing.watch, listing.building = listing.watch, None, None
        if wd is None:
            return
        group = self.listeners.get(wd)
        if group is not None:
            group.discard(listing)
            if not group:
                del self.listeners[wd]
                self._rm_watch(self.fd, wd)

    def _unfollow_all(self) -> None:
        for wd, group in self.listeners.items():
            for listing in group:
                listing.watch, listing.building = None, None
            self._rm_watch(self.fd, wd)
        self.listeners.clear()

    def drain(self) -> None:
        """Under ``guard``: apply every change queued so far to the listings that follow it.

        Changes lost (a queue overflow) or half applied (an error, an interrupt)
        end every following: the next commands list their folders again."""
        if self.fd < 0:
            return
        try:
            while self.dropped:
                self.unfollow(self.dropped.pop())
            while True:
                try:
                    data = os.read(self.fd, 65536)
                except BlockingIOError:
                    return
                self._apply(data)
        except BaseException:
            self._unfollow_all()
            raise

    def _apply(self, data: bytes) -> None:
        offset = 0
        while offset + 16 <= len(data):
            wd, mask, _cookie, size = _EVENT.unpack_from(data, offset)
            raw = data[offset + 16 : offset + 16 + size].rstrip(b"\0")
            offset += 16 + size
            if mask & _IN_Q_OVERFLOW:  # changes were lost: every folder is listed again
                self._unfollow_all()
                continue
            followers = self.listeners.get(wd)
            if followers is None:
                continue
            if not followers:  # every listing that followed it is gone
                del self.listeners[wd]
                self._rm_watch(self.fd, wd)
            elif mask & _GONE:
                for listing in followers:
                    listing.watch, listing.building = None, None
                del self.listeners[wd]
                if not mask & _IN_IGNORED:
                    self._rm_watch(self.fd, wd)
            elif not raw.endswith(b".json"):
                continue  # not a body's name (temp files): nothing R8 counts
            elif mask & (_IN_CREATE | _IN_MOVED_TO):
                name = os.fsdecode(raw)
                for listing in followers:
                    listing.added(name)
            elif mask & (_IN_DELETE | _IN_MOVED_FROM):
                name = os.fsdecode(raw)
                for listing in followers:
                    listing.removed(name)

    def reset_in_child(self) -> None:
        """After fork: the parent's instance stays the parent's (a read here would
        take its events); the child opens its own when it needs one."""
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
        self.guard = threading.Lock()
        self.fd = -1
        self.listeners = {}
        self.dropped.clear()  # finalizers hold this list: emptied, not replaced


_notify = _Notify()
os.register_at_fork(after_in_child=_notify.reset_in_child)


class Listings:
    """The scenes folders one FileLog has listed, by (device, inode).

    A process that lists the same folder a second time (a long-lived writer
    adding candidates back to back: every body it writes changes the folder's
    mtime) asks inotify to report the folder's changes from then on, and lists
    it once more: from there each command reads the pending events (one
    ``read`` that usually finds none) instead of listing thousands of names.
    The events are queued by the kernel inside the call that creates, renames
    or removes an entry, so the names stay exact. A lost watch (folder removed
    or moved, queue overflow) drops the listing it served: the next command
    lists again. Where inotify is missing or refuses (no ctypes, no instance
    left for this user) the mtime rule alone serves. ctypes is loaded only
    then (~2 ms), never by a one-shot command.
    """

    def __init__(self) -> None:
        self.guard = threading.Lock()
        self.by_folder: dict[tuple[int, int], _Listing] = {}
        # Dropped without close(): its listings stop following at the next drain.
        weakref.finalize(self, _notify.dropped.extend, self.by_folder.values())

    def close(self) -> None:
        """Forget every listing (a watch ends with the last listing that follows it)."""
        with _notify.guard:
            for listing in self.by_folder.values():
                _notify.unfollow(listing)
        self.by_folder.clear()

    def keep(self, key: tuple[int, int], listing: _Listing) -> None:
        if len(self.by_folder) >= LIMIT:
            self.close()
        old = self.by_folder.get(key)
        if old is not None and old.watch is not None:
            with _notify.guard:
                _notify.unfollow(old)
        self.by_folder[key] = listing


_COARSE_CLOCK = getattr(time, "CLOCK_REALTIME_COARSE", 5 if sys.platform == "linux" else None)


def _clock_ns() -> tuple[int, int]:
    """(now as file timestamps see it, that clock's granularity), both in ns."""
    if _COARSE_CLOCK is not None:
        try:
            res = int(time.clock_getres(_COARSE_CLOCK) * 1e9)
            return time.clock_gettime_ns(_COARSE_CLOCK), max(res, 1_000_000)
        except OSError:
            pass
    return time.time_ns(), 10_000_000


def _list_folder(folder: Path, listings: Listings, follow: bool) -> _Listing | None:
    """List ``folder`` now; trust the listing later only while its mtime stays put.

    The clock is read before the folder's mtime and the mtime before its
    names: a change after the listing began is stamped no earlier than that
    clock, so it moves the mtime away from the one recorded, provided that
    mtime is older than the clock by the timestamp granularity. A filesystem
    whose stamps look coarse (whole milliseconds) gets a 2 s margin.

    ``follow``: on a local filesystem, the listing follows the folder's
    changes from before its names are read (see :class:`_Notify`); it keeps
    following only if the folder is the same one (device, inode) before and
    after.
    """
    now, granularity = _clock_ns()
    try:
        before = os.stat(folder)
    except (FileNotFoundError, NotADirectoryError):
        return None
    mtime = before.st_mtime_ns
    if mtime % 1_000_000 == 0:
        granularity = 2_000_000_000
    listing = _Listing(mtime, mtime + granularity <= now, "")
    if follow:
        with _notify.guard:
            _notify.follow(folder, listing)
    try:
        names = "/" + "/".join(os.listdir(folder)) + "/"
        after = os.stat(folder) if listing.watch is not None else before
    except BaseException as e:
        with _notify.guard:
            _notify.unfollow(listing)
        if isinstance(e, (FileNotFoundError, NotADirectoryError)):
            return None
        raise
    if listing.watch is None and listing.building is None:
        listing.names = names
    else:
        with _notify.guard:
            try:
                _notify.built(listing, names)
            except BaseException:
                _notify.unfollow(listing)
                raise
            if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
                _notify.unfollow(listing)  # replaced while listed: this command's only
                listing.trusted = False
    listings.keep((before.st_dev, before.st_ino), listing)
    return listing


def highest_on_disk(paths: BatchPaths, listings: Listings) -> int:
    """The highest ``.vNNN.json`` of the batch in its folder, at this moment (R8)."""
    try:
        st = os.stat(paths.scenes_dir)
    except (FileNotFoundError, NotADirectoryError):
        return 0
    key = (st.st_dev, st.st_ino)
    with listings.guard:
        listing = listings.by_folder.get(key)
        if listing is not None and listing.watch is not None:
            with _notify.guard:
                _notify.drain()
                if listing.watch is not None:
                    return listing.highest_of(paths.batch_id)
        if listing is None or not listing.trusted or listing.mtime_ns != st.st_mtime_ns:
            listing = _list_folder(paths.scenes_dir, listings, follow=listing is not None)
            if listing is None:
                return 0
        if listing.watch is not None:
            with _notify.guard:  # another FileLog's drain may be changing it
                return listing.highest_of(paths.batch_id)
        return listing.highest_of(paths.batch_id)
