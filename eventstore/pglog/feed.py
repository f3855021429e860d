"""The PostgreSQL backend's change feed: (xid8, position) order below the snapshot's xmin.

Invariants:
- A feed position is ``pg:<xid>:<position>``: every event of a transaction
  with a smaller xid, and of the same transaction with a smaller or equal
  position, was delivered. It is opaque to callers and durable (xids never
  go backwards in a cluster, 64-bit with epoch). A feed opened "now" while
  transactions were in flight carries that snapshot too
  (``pg:<xid>:<position>:s<xmin>:<xmax>:<xip,…>``): the events visible in it
  count as delivered, those of the transactions in flight do not; it is
  dropped once every one of those has ended and been delivered.
- :meth:`PgFeed.read` delivers only rows whose ``xid`` is below
  ``pg_snapshot_xmin(pg_current_snapshot())``: every transaction below it has
  ended, so no row can still appear before the position (reading by
  ``position`` alone loses rows of transactions that commit out of order).
  A command is one transaction: a reader never sees part of one (R24).
  Per batch, commands hold the batch's lock from before their first write
  (when the xid is assigned) to COMMIT, so a batch's events come in seq order.
- An open transaction that holds an xid anywhere in the cluster holds the
  feed back until it ends (set ``idle_in_transaction_session_timeout``).
- Wake-up: LISTEN on a connection of the feed's own, opened before the first
  read (so no NOTIFY between a read and a wait is missed); writers NOTIFY
  after COMMIT. A slow poll (``SLOW_POLL`` seconds) covers a lost NOTIFY or
  a broken listener; ``poll=`` asks for polling only.
- R28: a position names the event it was taken after (``:e<event_id>``).
  When the feed opens, that event must still be at that (xid, position),
  and the xid one the cluster has reached; otherwise the database is not
  the one the position was taken on (restored from an older backup, or
  another database): the feed warns once, naming the batches, and delivers
  the project again from the start. (A restore under a running feed is
  noticed when the watcher restarts.)
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from eventstore.errors import InvalidInput
from eventstore.log import Feed, FeedItem, check_feed_start
from eventstore.pglog.core import NOTIFY_CHANNEL, _application_name

if TYPE_CHECKING:
    import psycopg

    from eventstore.pglog.core import PgLogCore

__all__ = ["SLOW_POLL", "PgFeed", "Position", "format_position", "parse_position"]

SLOW_POLL = 2.0
"""Seconds a woken feed waits at most before looking anyway (a lost NOTIFY)."""

_BATCH_ROWS = 5000
_MAX_POSITION = 2**63 - 1

_READ_SQL = """
SELECT xid::text AS xid_text, position, batch_id, line FROM scenelog_events
WHERE project = %s AND (xid, position) > (%s::text::xid8, %s)
  AND xid < pg_snapshot_xmin(pg_current_snapshot())
  {also}
ORDER BY scenelog_events.xid, position
LIMIT %s
"""
_LAG_SQL = """
SELECT count(*) FROM scenelog_events
WHERE project = %s AND (xid, position) > (%s::text::xid8, %s)
  {also}
"""
_NOT_SEEN = "AND NOT pg_visible_in_snapshot(xid, %s::text::pg_snapshot)"
_EPISODE = "AND starts_with(batch_id, %s)"


class Position(NamedTuple):
    """Where a feed stands: after (xid, position), the row of event ``event_id``;
    ``seen``: a snapshot whose events count as delivered too (a feed opened
    "now" while transactions were in flight)."""

    xid: int
    position: int
    seen: str | None = None
    event_id: str | None = None


_POSITION_RE = re.compile(r"pg:([0-9]+):([0-9]+)(?::e([0-9A-Za-z_-]{1,64}))?(?::s([0-9:,]+))?")


def format_position(at: Position) -> str:
    text = f"pg:{at.xid}:{at.position}"
    if at.event_id:
        text += f":e{at.event_id}"
    if at.seen:
        text += f":s{at.seen}"
    return text


def parse_position(text: str) -> Position:
    """A feed position's parts; InvalidInput for anything else."""
    match = _POSITION_RE.fullmatch(text)
    if match is None:
        raise InvalidInput(
            f"feed position {text!r} is not one of the PostgreSQL backend's (pg:XID:POSITION); "
            "it belongs to another backend — reset the consumer (`scenelog consumers`)",
            value=text,
        )
    xid, position, event_id, seen = match.groups()
    return Position(int(xid), int(position), seen, event_id)


class PgFeed(Feed):
    """The project's events after a position, woken by NOTIFY."""

    def __init__(
        self,
        log: PgLogCore,
        position: str | None,
        *,
        start: str = "now",
        episode: str | None = None,
        poll: float | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        check_feed_start(start)
        self._log = log
        self._episode = episode
        self._poll = poll
        self._warn = warn
        self._listener: psycopg.Connection[Any] | None = None
        if poll is None:
            self._listen()
        with log.connections.connection() as conn:
            row = conn.execute(
                "SELECT pg_snapshot_xmin(s)::text, pg_snapshot_xmax(s)::text, s::text "
                "FROM pg_current_snapshot() AS s"
            ).fetchone()
        assert row is not None
        xmin, xmax, snapshot = int(row[0]), int(row[1]), str(row[2])
        at = Position(0, 0)
        if position is not None:
            at = parse_position(position)
            if not self._still_there(at, xmax):
                if warn is not None:
                    warn(
                        f"scenelog: warning: the database at {log.label} no longer holds the "
                        f"event at this feed's position (restored from an older backup, or "
                        f"another database): delivering project {log.project} again from the "
                        f"beginning ({self._batch_list()})"
                    )
                at = Position(0, 0)
        elif start == "now":
            # Every event visible now counts as delivered; a transaction in flight
            # (below the snapshot's xmax but not in it) is delivered when it commits.
            at = Position(xmin - 1, _MAX_POSITION, snapshot if xmin < xmax else None)
        self._at = at

    @property
    def position(self) -> str:
        return format_position(self._at)

    def _still_there(self, at: Position, xmax: int) -> bool:
        """R28: whether the database still holds the event the position was taken after."""
        if at.xid >= xmax:
            return False  # a transaction id this cluster has not reached
        if at.event_id is None:
            return True
        with self._log.connections.connection() as conn:
            row = conn.execute(
                "SELECT event_id FROM scenelog_events WHERE project = %s "
                "AND xid = %s::text::xid8 AND position = %s",
                (self._log.project, str(at.xid), at.position),
            ).fetchone()
        return row is not None and row[0] == at.event_id

    def _batch_list(self) -> str:
        log = self._log
        found = [b for episode in log.episodes() for b in log.batches(episode)]
        if self._episode:
            found = [b for b in found if b.startswith(self._episode + "_")]
        shown = ", ".join(found[:20]) + (f" and {len(found) - 20} more" if len(found) > 20 else "")
        return f"batches: {shown}" if found else "it holds no batch now"

    def _where(self) -> tuple[str, list[object]]:
        at = self._at
        also, params = "", list[object]()
        if at.seen:
            also = _NOT_SEEN
            params.append(at.seen)
        if self._episode:
            also += " " + _EPISODE
            params.append(self._episode + "_")
        return also, params

    def _listen(self) -> None:
        try:
            conn = self._log.connections.dedicated(application_name=_application_name("feed"))
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
        except Exception:
            self._listener = None  # the slow poll stands in until the next wait
            return
        self._listener = conn

    def read(self) -> list[FeedItem]:
        log = self._log
        items: list[FeedItem] = []
        while True:
            at = self._at
            also, extra = self._where()
            with log.connections.connection() as conn:
                if at.seen:
                    self._drop_seen(conn)
                rows = conn.execute(
                    _READ_SQL.format(also=also),
                    [log.project, str(at.xid), at.position, *extra, _BATCH_ROWS],
                ).fetchall()
            for xid_text, pos, batch_id, line in rows:
                event = log._decode(line.encode(), -1, batch_id)
                self._at = Position(int(xid_text), pos, self._at.seen, event.event_id)
                items.append(FeedItem(batch_id, event, self.position))
            if len(rows) < _BATCH_ROWS:
                return items

    def _drop_seen(self, conn: psycopg.Connection[Any]) -> None:
        """Once every transaction in flight at the "now" snapshot has ended, forget it."""
        at = self._at
        assert at.seen is not None
        seen_xmax = int(at.seen.split(":")[1])
        row = conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text").fetchone()
        if row is None or int(row[0]) < seen_xmax:
            return
        # Every transaction below seen_xmax has ended, so its events are below the
        # xmin of the next read, which delivers them; the rest come after seen_xmax - 1.
        pending = conn.execute(
            "SELECT count(*) FROM scenelog_events WHERE project = %s "
            "AND (xid, position) > (%s::text::xid8, %s) AND xid < %s::text::xid8 "
            "AND NOT pg_visible_in_snapshot(xid, %s::text::pg_snapshot)",
            (self._log.project, str(at.xid), at.position, str(seen_xmax), at.seen),
        ).fetchone()
        if pending and pending[0] == 0 and (at.xid, at.position) < (seen_xmax - 1, _MAX_POSITION):
            self._at = Position(seen_xmax - 1, _MAX_POSITION)
        elif pending and pending[0] == 0:
            self._at = Position(at.xid, at.position, None, at.event_id)

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + max(timeout, 0.0)
        if self._poll is not None:
            time.sleep(max(0.0, min(self._poll, timeout)))
            return
        if self._listener is None or self._listener.closed:
            self._listen()
        listener = self._listener
        if listener is None:
            time.sleep(max(0.0, min(SLOW_POLL, timeout)))
            return
        limit = min(deadline, time.monotonic() + SLOW_POLL)
        while True:
            left = limit - time.monotonic()
            if left <= 0:
                return
            try:
                for note in listener.notifies(timeout=left, stop_after=1):
                    if note.payload == self._log.project:
                        return
            except Exception:
                with contextlib.suppress(Exception):
                    listener.close()
                self._listener = None
                return

    def lag(self) -> int:
        log = self._log
        at = self._at
        also, extra = self._where()
        with log.connections.connection() as conn:
            row = conn.execute(
                _LAG_SQL.format(also=also), [log.project, str(at.xid), at.position, *extra]
            ).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(Exception):
                listener.close()
