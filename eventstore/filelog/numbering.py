"""R8 for the file backend: the highest ``vNNN`` body of a batch in its folder, now.

Invariants:
- Exact at the moment of the call, in every process: the scenes folder is
  listed unless a listing of it is known to be current — its mtime unchanged
  and older than the clock's granularity when the listing began (see
  :func:`_list_folder`) — so a body placed by anyone while a process runs is
  seen by that process's next command.
- Listings are keyed on the folder's identity (device, inode), never its
  spelling (R23), and held by the FileLog that asked (:class:`Listings`, at
  most ``LIMIT`` folders), never by the module.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

from eventstore.filelog.paths import BatchPaths

__all__ = ["LIMIT", "Listings", "highest_on_disk"]

LIMIT = 4096
"""Scenes folders whose listing one FileLog keeps."""


class _Listing:
    """One listing of a scenes folder: its names, and the folder's mtime when listed.

    ``trusted`` says the mtime was older than the clock's granularity before
    the listing began, so any later change of the folder's entries gets a
    different mtime; an untrusted listing serves only the command that made it.
    (A plain class: a dataclass costs every command's start-up, issue 15.)
    """

    __slots__ = ("highest", "mtime_ns", "names", "trusted")

    def __init__(self, mtime_ns: int, trusted: bool, names: str) -> None:
        self.mtime_ns = mtime_ns
        self.trusted = trusted
        self.names = names
        self.highest: dict[str, int] = {}

    def highest_of(self, batch_id: str) -> int:
        known = self.highest.get(batch_id)
        if known is None:
            # v1000 and up first (few), else the largest three-digit name, compared as
            # text: no per-name Python work in a folder of thousands of bodies. Each
            # name sits between newlines; a literal start lets the regex skip ahead.
            prefix = "\n" + re.escape(batch_id) + r"\.v"
            long = re.findall(prefix + r"([1-9][0-9]{3,})\.json(?=\n)", self.names)
            if long:
                known = max(map(int, long))
            else:
                short = re.findall(prefix + r"([0-9]{3})\.json(?=\n)", self.names)
                known = int(max(short, default="000"))
            self.highest[batch_id] = known
        return known


Listings = dict[tuple[int, int], _Listing]
"""Listings of scenes folders, by the folder's (device, inode)."""

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


def _list_folder(folder: Path, listings: Listings) -> _Listing:
    """List ``folder`` now; trust the listing later only while its mtime stays put.

    The clock is read before the folder's mtime and the mtime before its
    names: a change after the listing began is stamped no earlier than that
    clock, so it moves the mtime away from the one recorded, provided that
    mtime is older than the clock by the timestamp granularity. A filesystem
    whose stamps look coarse (whole milliseconds) gets a 2 s margin.
    """
    now, granularity = _clock_ns()
    try:
        st = os.stat(folder)
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return _Listing(0, False, "")
    mtime = st.st_mtime_ns
    if mtime % 1_000_000 == 0:
        granularity = 2_000_000_000
    listing = _Listing(mtime, mtime + granularity <= now, "\n" + "\n".join(names) + "\n")
    if len(listings) >= LIMIT:
        listings.clear()
    listings[(st.st_dev, st.st_ino)] = listing
    return listing


def highest_on_disk(paths: BatchPaths, listings: Listings) -> int:
    """The highest ``.vNNN.json`` of the batch in its folder, at this moment (R8)."""
    try:
        st = os.stat(paths.scenes_dir)
    except (FileNotFoundError, NotADirectoryError):
        return 0
    listing = listings.get((st.st_dev, st.st_ino))
    if listing is None or not listing.trusted or listing.mtime_ns != st.st_mtime_ns:
        listing = _list_folder(paths.scenes_dir, listings)
    return listing.highest_of(paths.batch_id)
