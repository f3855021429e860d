"""The PostgreSQL backend's log core: connections, reads, heads, bodies and the session.

:class:`PgLogCore` implements the log part of :class:`eventstore.log.EventLog`
over the tables of :mod:`eventstore.pglog.schema`; :class:`eventstore.pglog.PgLog`
adds the change feed and consumer checkpoints.

Invariants:
- ``line`` holds the exact bytes the file backend writes (``encode_event``,
  the R24 ``more`` mark, ``prev`` = sha256 of the line before, R19), so a log
  copied between backends is byte-identical and its chain verifies.
- One command = one transaction (R14, R20, R24): ``pg_advisory_xact_lock`` on
  the batch under ``lock_timeout`` (LockTimeout naming the holder), then a
  *separate* statement (its snapshot is taken after the lock wait) reads the
  rows past what this instance has folded and checks seq contiguity and the
  hash chain; the events are validated against a copy of the fold as the
  file session does (item 3), inserted with one INSERT, the bodies written
  in the session and the recorded head (R27) go in the same transaction,
  then COMMIT, then NOTIFY (outside the transaction: inside it takes a
  cluster-wide lock). Readers see whole commands only (R24) and never wait
  for writers (R22, MVCC).
- Bodies are rows written in the transaction of their ``appended`` event: a
  session that ends without an append leaves none (no orphan bodies), and
  R8's highest body is ``max(version)`` over the table.
- A refused append (RuleViolation) or any error before COMMIT rolls the
  transaction back: nothing is written. A connection lost *during* COMMIT
  raises :class:`~eventstore.pglog.errors.OutcomeUnknown` with the event ids
  to look for, never success.
- Per instance, a bounded cache keeps each batch's folded state, last seq and
  last line hash, so an append reads only what others added since. Before
  trusting it, the session re-reads the cached last line and compares its
  hash (a restored database is noticed).
- Connections come from a ``psycopg_pool.ConnectionPool`` owned by the
  instance and made again in a forked child (a pool's sockets never cross a
  fork). The password is only ever in the conninfo handed to libpq; every
  message names the root by :attr:`label`.
- A process keeps at most ``_OPEN_POOLS`` pools open (each holds a
  connection even when idle): opening one more closes the least recently
  used, which opens again on its next use. Connections in use when their
  pool closes finish their work and are closed when given back; a command
  that finds its pool just closed takes a connection from the new one.

Crash at each step of an append: before COMMIT reaches the server, the
server rolls back (nothing written); after COMMIT, the whole command is
durable (``synchronous_commit``) and the NOTIFY may be lost, which only
delays watchers until their slow poll.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from eventstore.errors import (
    BodyMissing,
    DamagedLog,
    InvalidInput,
    LockTimeout,
    RuleViolation,
    StoreIOError,
    VersionBodyExists,
)
from eventstore.events import Event, decode_event, decode_lines
from eventstore.log import (
    DEFAULT_LOCK_TIMEOUT,
    EventLog,
    Head,
    LogSession,
    RawLog,
    line_hash,
)
from eventstore.manifest import Fold
from eventstore.pglog.errors import DatabaseUnavailable, OutcomeUnknown, SchemaMissing
from eventstore.pglog.schema import SCHEMA_VERSION
from eventstore.rules import body_version, seal_command

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

__all__ = [
    "NOTIFY_CHANNEL",
    "Connections",
    "PgLogCore",
    "advisory_key",
    "describe_holder",
    "lock_holder",
    "redact",
]

NOTIFY_CHANNEL = "scenelog"
"""Every commit sends ``pg_notify('scenelog', project)`` after COMMIT."""

_CACHE_LIMIT = 4096
"""Batches whose folded state one instance keeps; the least recently used go first."""

_POOL_MAX = 16
_OPEN_POOLS = 8
"""Pools a process keeps open at once (one per root in use): a server's connections are few."""
_EPISODE_RE = re.compile(r"(ep_[0-9]{3})_BATCH_[0-9]{3}")


# ── roots, labels, keys ─────────────────────────────────────────────────────


_USERINFO_PW = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/@?#:]*):[^/?#]*@")
_QUERY_PW = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (userinfo and ``password=`` parameter)."""
    return _QUERY_PW.sub(r"\1***", _USERINFO_PW.sub(r"\1:***@", url))


def advisory_key(kind: str, namespace: str, project: str, name: str) -> int:
    """The bigint advisory-lock key of a batch (``kind="batch"``) or a consumer name.

    Advisory locks are per database: ``namespace`` (the schema the store's
    tables are in) keeps two stores of one database apart.
    """
    text = f"scenelog\0{kind}\0{namespace}\0{project}\0{name}"
    digest = hashlib.blake2b(text.encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def _key_parts(key: int) -> tuple[int, int]:
    """(classid, objid) under which ``pg_locks`` shows a bigint advisory key."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return unsigned >> 32, unsigned & 0xFFFFFFFF


_HOLDER_SQL = """
SELECT a.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local'),
       to_char(coalesce(a.xact_start, a.backend_start) AT TIME ZONE 'UTC',
               'YYYY-MM-DD"T"HH24:MI:SS"Z"')
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.classid = %s::bigint::oid AND l.objid = %s::bigint::oid
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
LIMIT 1
"""
_APP_RE = re.compile(r"scenelog(?: [a-z]+)? pid ([0-9]+) on (\S+)")


def lock_holder(conn: psycopg.Connection[Any], key: int) -> dict[str, Any] | None:
    """Who holds advisory ``key`` now: ``pid`` and ``host`` of the client, ``since``,
    ``server_pid``, ``client_addr``; None when nobody does (or it cannot be seen)."""
    try:
        row = conn.execute(_HOLDER_SQL, _key_parts(key)).fetchone()
    except Exception:
        return None
    if row is None:
        return None
    server_pid, app, addr, since = row
    match = _APP_RE.fullmatch(app)
    return {
        "pid": int(match.group(1)) if match else "?",
        "host": match.group(2) if match else addr,
        "since": since or "?",
        "server_pid": server_pid,
        "client_addr": addr,
        "application_name": app,
    }


def describe_holder(holder: dict[str, Any] | None) -> str:
    """ "pid N on host H (since T)", or "an unknown client"."""
    if not holder:
        return "an unknown client"
    return f"pid {holder['pid']} on host {holder['host']} (since {holder['since']})"


def _application_name(role: str = "") -> str:
    what = f"scenelog {role} " if role else "scenelog "
    return f"{what}pid {os.getpid()} on {socket.gethostname()}"[:63]


def _episode_of(batch_id: str) -> str:
    match = _EPISODE_RE.fullmatch(batch_id)
    if match is None:
        raise InvalidInput(
            f"invalid batch id {batch_id!r}: expected ep_NNN_BATCH_NNN", value=batch_id
        )
    return match.group(1)


def _check_body_name(batch_id: str, name: str) -> int | None:
    if name == f"{batch_id}.json":
        return None
    version = body_version(batch_id, name)
    if version is None:
        raise InvalidInput(
            f"artifact {name!r} does not belong to batch {batch_id}", value=name, batch_id=batch_id
        )
    return version


# ── connections ─────────────────────────────────────────────────────────────

_open_guard = threading.Lock()
_open: OrderedDict[int, Connections] = OrderedDict()
"""The Connections whose pool is open, least recently used first (``_OPEN_POOLS``)."""


def _used(connections: Connections) -> None:
    """Note that ``connections``' pool was just used (it goes last in the eviction order)."""
    with _open_guard:
        if id(connections) in _open:
            _open.move_to_end(id(connections))


def _opened(connections: Connections) -> list[Connections]:
    """Register a newly opened pool; the Connections to close to stay within bounds."""
    with _open_guard:
        _open[id(connections)] = connections
        _open.move_to_end(id(connections))
        evicted: list[Connections] = []
        while len(_open) > _OPEN_POOLS:
            evicted.append(_open.popitem(last=False)[1])
        return evicted


def _closed(connections: Connections) -> None:
    with _open_guard:
        if _open.get(id(connections)) is connections:
            del _open[id(connections)]


class Connections:
    """The pool of one database, checked once for reachability and schema.

    Made again in a forked child: a pool's sockets and threads never cross a fork.
    """

    def __init__(self, conninfo: str, label: str) -> None:
        self.conninfo = conninfo
        self.label = label
        self._guard = threading.Lock()
        self._pool: ConnectionPool[Any] | None = None
        self._pid = -1
        self._namespace = ""
        self._inherited: list[ConnectionPool[Any]] = []

    def namespace(self) -> str:
        """The schema holding the store's tables (``search_path``), checked with the schema."""
        self.pool()
        return self._namespace

    def _unavailable(self, e: BaseException) -> DatabaseUnavailable:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return DatabaseUnavailable(
            f"cannot reach the database at {self.label}: {first} — check that the server runs "
            "and the root URL (host, port, database, user; passwords from PGPASSFILE or "
            "PGPASSWORD)",
            root=self.label,
        )

    def _check_schema(self) -> None:
        import psycopg

        try:
            with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=10) as conn:
                row = conn.execute(
                    "SELECT to_regclass('scenelog_schema') IS NOT NULL, "
                    "coalesce((SELECT relnamespace::regnamespace::text FROM pg_class "
                    "WHERE oid = to_regclass('scenelog_events')), current_schema(), '')"
                ).fetchone()
                self._namespace = str(row[1]) if row else ""
                found = 0
                if row and row[0]:
                    got = conn.execute("SELECT coalesce(max(version), 0) FROM scenelog_schema")
                    version_row = got.fetchone()
                    found = int(version_row[0]) if version_row else 0
        except psycopg.OperationalError as e:
            raise self._unavailable(e) from e
        if found != SCHEMA_VERSION:
            if found > SCHEMA_VERSION:
                what = f"has scenelog schema version {found}, newer than this scenelog's "
                what += f"{SCHEMA_VERSION}: upgrade scenelog"
            elif found == 0:
                what = f"has no scenelog schema: run `scenelog db init {self.label}`"
            else:
                what = f"has scenelog schema version {found}: run `scenelog db init {self.label}` "
                what += f"to upgrade it to {SCHEMA_VERSION}"
            raise SchemaMissing(
                f"the database at {self.label} {what}",
                root=self.label,
                found=found,
                expected=SCHEMA_VERSION,
            )

    def pool(self) -> ConnectionPool[Any]:
        pool = self._pool
        if pool is not None and self._pid == os.getpid():
            _used(self)
            return pool
        with self._guard:
            if self._pool is not None and self._pid == os.getpid():
                return self._pool
            from psycopg_pool import ConnectionPool

            self._check_schema()
            pool = ConnectionPool(
                self.conninfo,
                min_size=1,
                max_size=_POOL_MAX,
                kwargs={"autocommit": True, "application_name": _application_name()},
                open=True,
                name=self.label,
            )
            if self._pool is not None:
                # A parent's pool, inherited through fork: kept referenced and never
                # closed here, or finalizing its connections would end the parent's.
                self._inherited.append(self._pool)
            self._pool, self._pid = pool, os.getpid()
        for other in _opened(self):  # outside our guard: close() takes the other's
            if other is not self:
                other.close()
        return pool

    @contextlib.contextmanager
    def connection(self, timeout: float = 60.0) -> Iterator[psycopg.Connection[Any]]:
        """A pooled autocommit connection; DatabaseUnavailable when none can be had."""
        import psycopg
        from psycopg_pool import PoolClosed, PoolTimeout

        pool = self.pool()
        try:
            try:
                conn = pool.getconn(timeout=timeout)
            except PoolClosed:  # closed by another thread to stay in bounds: open it again
                pool = self.pool()
                conn = pool.getconn(timeout=timeout)
        except PoolTimeout as e:
            raise DatabaseUnavailable(
                f"no connection to the database at {self.label} came free within {timeout:g}s "
                f"({_POOL_MAX} in use by this process) — retry, or look for hung commands",
                root=self.label,
            ) from e
        except psycopg.OperationalError as e:
            raise self._unavailable(e) from e
        try:
            yield conn
        except psycopg.Error as e:
            raise self._translate(e, conn) from e
        finally:
            pool.putconn(conn)  # rolled back there if a transaction is still open

    def _translate(self, e: psycopg.Error, conn: psycopg.Connection[Any]) -> Exception:
        """A psycopg error escaping a read or write, as one of the store's errors."""
        import psycopg

        if isinstance(e, psycopg.OperationalError) and conn.closed:
            return self._unavailable(e)
        if isinstance(e, psycopg.errors.UndefinedTable):
            return SchemaMissing(
                f"the database at {self.label} has no scenelog tables ({_first_line(e)}): run "
                f"`scenelog db init {self.label}`",
                root=self.label,
                found=0,
                expected=SCHEMA_VERSION,
            )
        if isinstance(e, psycopg.errors.InsufficientPrivilege):
            hint = "the role needs the GRANTs of docs/POSTGRES.md (Roles)"
        else:
            hint = "see the server's log"
        return StoreIOError(
            f"the database at {self.label} refused: {_first_line(e)}; {hint}",
            root=self.label,
        )

    def dedicated(self, **kwargs: Any) -> psycopg.Connection[Any]:
        """A connection of its own (LISTEN, a consumer's claim), not from the pool."""
        import psycopg

        try:
            return psycopg.connect(
                self.conninfo,
                autocommit=True,
                application_name=kwargs.pop("application_name", _application_name()),
                **kwargs,
            )
        except psycopg.OperationalError as e:
            raise self._unavailable(e) from e

    def close(self) -> None:
        """Close the pool (it opens again on the next use); connections in use finish first."""
        with self._guard:
            pool, self._pool = self._pool, None
            if pool is not None:
                if self._pid == os.getpid():
                    pool.close()
                else:
                    self._inherited.append(pool)  # a parent's: never finalized here
        _closed(self)


# ── the session ─────────────────────────────────────────────────────────────


@dataclass
class _Cached:
    """What one instance knows of one batch: always a committed command boundary."""

    fold: Fold
    last_hash: str | None = None

    @property
    def seq(self) -> int:
        return self.fold.seq


_INSERT_EVENTS = """
INSERT INTO scenelog_events (project, batch_id, seq, event_id, line)
SELECT %s, %s, s, e, l FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS t(s, e, l)
"""
_UPSERT_HEAD = """
INSERT INTO scenelog_heads (project, batch_id, episode, seq, hash) VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (project, batch_id) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash
"""


class _PgSession(LogSession):
    """A batch under its advisory transaction lock, on one pooled connection."""

    def __init__(
        self, log: PgLogCore, conn: psycopg.Connection[Any], batch_id: str, timeout: float
    ) -> None:
        self._log = log
        self._conn = conn
        self.batch_id = batch_id
        self._episode = _episode_of(batch_id)
        self._timeout = timeout
        self._key = log.key("batch", batch_id)
        self._cached = _Cached(Fold(batch_id, path=log.where(batch_id)))
        self._open = False

    @property
    def fold(self) -> Fold:
        return self._cached.fold

    # ── the transaction ──

    def begin(self) -> None:
        """BEGIN, take the batch's lock under ``lock_timeout``, catch up with the table."""
        import psycopg
        from psycopg import sql

        conn = self._conn
        log = self._log
        millis = max(1, int(self._timeout * 1000))  # 0 would mean "wait for ever"
        known = log._known(self.batch_id)
        # One round trip, five statements (simple protocol, values quoted by psycopg):
        # the last one takes its snapshot after the lock wait, so it sees every
        # command committed before the lock was granted. The timeout is for the
        # batch's lock only.
        query = sql.SQL(
            "BEGIN; SET LOCAL lock_timeout = {millis}; SELECT pg_advisory_xact_lock({key}); "
            "SET LOCAL lock_timeout = 0; "
            "SELECT seq, line FROM scenelog_events WHERE project = {project} "
            "AND batch_id = {batch} AND seq >= {since} ORDER BY seq"
        ).format(
            millis=sql.Literal(f"{millis}ms"),
            key=sql.Literal(self._key),
            project=sql.Literal(log.project),
            batch=sql.Literal(self.batch_id),
            since=sql.Literal(known.seq if known else 0),
        )
        self._open = True
        try:
            cursor = conn.execute(query)
        except psycopg.errors.LockNotAvailable as e:
            self.rollback()
            holder = lock_holder(conn, self._key)
            raise LockTimeout(
                f"batch {self.batch_id} is locked: waited {self._timeout:g}s at "
                f"{log.label}; another writer holds it ({describe_holder(holder)}) — "
                "retry, or find the hung client holding the lock",
                path=log.where(self.batch_id),
                timeout=self._timeout,
                batch_id=self.batch_id,
                holder=holder,
            ) from e
        except BaseException:
            self.rollback()
            raise
        while cursor.nextset():
            pass
        rows = cursor.fetchall()
        self._cached = log._catch_up(conn, self.batch_id, known, rows)

    def _reopen(self) -> None:
        """A second write in one session: the lock went with the first COMMIT (or a
        refusal's ROLLBACK); take it again and check that nobody wrote meanwhile."""
        held = self._cached
        self.begin()
        if (self._cached.seq, self._cached.last_hash) != (held.seq, held.last_hash):
            self.rollback()
            raise StoreIOError(
                f"batch {self.batch_id} changed between two writes of one command at "
                f"{self._log.label}; nothing more was written — run the command again",
                batch_id=self.batch_id,
            )
        self._cached = held  # the fold the command holds goes on
        self._log._remember(self.batch_id, held)

    def rollback(self) -> None:
        if self._open:
            self._open = False
            with contextlib.suppress(Exception):
                self._conn.execute("ROLLBACK")

    # ── bodies (written in the transaction, committed with the events) ──

    def highest_body_version(self) -> int:
        row = self._conn.execute(
            "SELECT coalesce(max(version), 0) FROM scenelog_bodies "
            "WHERE project = %s AND batch_id = %s",
            (self._log.project, self.batch_id),
        ).fetchone()
        return int(row[0]) if row else 0

    def body_exists(self, name: str) -> bool:
        return self._log._body_exists(self._conn, self.batch_id, name)

    def read_body(self, name: str) -> bytes:
        return self._log._read_body(self._conn, self.batch_id, name)

    def write_body(self, name: str, data: bytes) -> None:
        """Insert the body in this session's transaction: it commits with the next append.

        A session that ends without an append leaves no body (no orphans).
        """
        version = _check_body_name(self.batch_id, name)
        if not self._open:
            self._reopen()
        row = self._conn.execute(
            "INSERT INTO scenelog_bodies (project, batch_id, name, version, data) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1",
            (self._log.project, self.batch_id, name, version, bytes(data)),
        ).fetchone()
        if row is None:
            raise VersionBodyExists(
                f"refusing to overwrite existing version body {name} of batch {self.batch_id}: "
                "bodies are immutable; run `scenelog verify` to inspect the batch",
                path=self._log.where(self.batch_id, name),
                batch_id=self.batch_id,
            )

    # ── the commit ──

    def append(self, events: Sequence[Event]) -> list[Event]:
        """Validate every event against a copy of the fold, insert them, COMMIT, NOTIFY.

        RuleViolation (nothing written) for an event the file session would
        refuse; OutcomeUnknown if the connection dies during COMMIT.
        """
        import psycopg

        if not events:
            return []
        if not self._open:
            self._reopen()
        cached = self._cached
        fold = cached.fold.copy()
        try:
            committed, encoded, prev = seal_command(fold, events, self.batch_id, cached.last_hash)
        except RuleViolation:
            self.rollback()
            raise
        seq = fold.seq
        lines = [line.decode() for line in encoded]
        conn = self._conn
        project = self._log.project
        ids = [e.event_id for e in committed]
        self._open = False
        try:
            # One round trip: the INSERT, the recorded head (R27), COMMIT, then NOTIFY
            # outside the transaction (inside, it takes a cluster-wide lock).
            with conn.pipeline():
                conn.execute(
                    _INSERT_EVENTS,
                    (project, self.batch_id, [e.seq for e in committed], ids, lines),
                )
                conn.execute(_UPSERT_HEAD, (project, self.batch_id, self._episode, seq, prev))
                conn.execute("COMMIT")
                conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, project))
        except psycopg.Error as e:
            self._log._forget(self.batch_id)
            if not self._committed_after_error(conn, ids):
                raise StoreIOError(
                    f"batch {self.batch_id}: the database at {self._log.label} refused the "
                    f"append ({_first_line(e)}); nothing was written — run the command again",
                    batch_id=self.batch_id,
                    root=self._log.label,
                ) from e
            # Committed; only the NOTIFY failed: watchers find the events by their slow poll.
        except BaseException:
            self._log._forget(self.batch_id)  # interrupted with the outcome unread
            raise
        # The session's fold object moves on in place, as a file session's does:
        # a command that kept ``session.fold`` reads the state after its append.
        cached.fold.apply_all(committed)
        cached.last_hash = prev
        self._log._remember(self.batch_id, cached)
        return committed

    def _committed_after_error(self, conn: psycopg.Connection[Any], ids: list[str]) -> bool:
        """After the commit's round trip failed: whether the events are in the table.

        Asked on the same connection when it still works (the server aborted
        the transaction, or only the NOTIFY after COMMIT failed). When the
        connection is gone the outcome cannot be known here: OutcomeUnknown
        with the event ids to look for, never success.
        """
        try:
            if conn.closed or getattr(conn, "broken", False):
                raise ConnectionError("connection lost")
            with contextlib.suppress(Exception):
                if conn.info.transaction_status != 0:  # not idle: an aborted transaction
                    conn.execute("ROLLBACK")
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM scenelog_events WHERE project = %s "
                "AND event_id = %s)",
                (self._log.project, ids[0]),
            ).fetchone()
            return bool(row and row[0])
        except Exception as e:
            raise OutcomeUnknown(
                f"batch {self.batch_id}: the connection to {self._log.label} was lost during "
                f"COMMIT; the outcome is unknown — look for event ids {', '.join(ids)} "
                f"(`scenelog history {self.batch_id}`) before running the command again",
                batch_id=self.batch_id,
                event_ids=ids,
                root=self._log.label,
            ) from e


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


# ── the log ─────────────────────────────────────────────────────────────────


class PgLogCore(EventLog):
    """One project's events and bodies in a PostgreSQL database."""

    def __init__(self, connections: Connections, project: str) -> None:
        self.project = project
        self.label = connections.label
        self.connections = connections
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._cache_guard = threading.Lock()

    def __repr__(self) -> str:
        return f"PgLog({self.label!r}, {self.project!r})"

    def key(self, kind: str, name: str) -> int:
        """The advisory-lock key of a batch or consumer of this store."""
        return advisory_key(kind, self.connections.namespace(), self.project, name)

    def where(self, batch_id: str, name: str | None = None) -> str:
        """How findings name the batch's log (or one of its bodies): no password."""
        base = f"{self.label} {self.project}/{batch_id}"
        return f"{base}/{name}" if name else f"{base} (scenelog_events)"

    # ── the cache ──

    def _remember(self, batch_id: str, cached: _Cached) -> None:
        with self._cache_guard:
            self._cache.pop(batch_id, None)
            self._cache[batch_id] = cached
            while len(self._cache) > _CACHE_LIMIT:
                self._cache.popitem(last=False)

    def _forget(self, batch_id: str) -> None:
        with self._cache_guard:
            self._cache.pop(batch_id, None)

    def _known(self, batch_id: str) -> _Cached | None:
        """A private copy of what this instance folded of the batch (None: nothing)."""
        with self._cache_guard:
            known = self._cache.get(batch_id)
        return _Cached(known.fold.copy(), known.last_hash) if known and known.seq else None

    def _catch_up(
        self,
        conn: psycopg.Connection[Any],
        batch_id: str,
        known: _Cached | None,
        rows: list[tuple[int, str]],
    ) -> _Cached:
        """Under the batch lock: ``known`` brought up to the table, checked.

        ``rows`` are the batch's rows from ``known.seq`` on (all rows when
        ``known`` is None), read by a statement that began after the lock was
        granted. When the row at ``known.seq`` no longer has the hash this
        instance saw (a restored database), the batch is read again whole.
        """
        cached = known
        if cached is not None:
            first = rows[0] if rows else None
            if (
                first
                and first[0] == cached.seq
                and line_hash(first[1].encode()) == cached.last_hash
            ):
                rows = rows[1:]
            else:
                cached = None  # the table is not what this instance saw (restored?): start over
                rows = conn.execute(
                    "SELECT seq, line FROM scenelog_events WHERE project = %s AND batch_id = %s "
                    "ORDER BY seq",
                    (self.project, batch_id),
                ).fetchall()
        if cached is None:
            cached = _Cached(Fold(batch_id, path=self.where(batch_id)))
        if rows:
            try:
                self._absorb(cached, rows, batch_id)
            except BaseException:
                self._forget(batch_id)
                raise
        self._remember(batch_id, cached)
        return cached

    def _absorb(self, cached: _Cached, rows: list[tuple[int, str]], batch_id: str) -> None:
        """Check seq contiguity and the hash chain of rows new to this instance, then fold."""
        seq = cached.seq
        prev = cached.last_hash
        events: list[Event] = []
        for row_seq, text in rows:
            line = text.encode()
            event = self._decode(line, row_seq, batch_id)
            seq += 1
            if event.seq != seq or row_seq != seq:
                raise self._damaged(row_seq, f"seq {event.seq} where {seq} was due", batch_id)
            if event.prev != prev:
                raise self._damaged(
                    row_seq, "hash chain broken (a line before it was edited or removed)", batch_id
                )
            prev = line_hash(line)
            events.append(event)
        cached.fold.apply_all(events)
        cached.last_hash = prev

    def _damaged(self, seq: int, what: str, batch_id: str) -> DamagedLog:
        return DamagedLog(
            f"{self.where(batch_id)} seq {seq}: {what}; the log of batch {batch_id} is damaged "
            "— run `scenelog verify` and restore the database from backup",
            path=self.where(batch_id),
            line=seq,
            batch_id=batch_id,
        )

    def _decode(self, line: bytes, seq: int, batch_id: str) -> Event:
        try:
            return decode_event(line)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise self._damaged(seq, f"unreadable event ({e})", batch_id) from e

    # ── discovery ──

    def project_exists(self) -> bool:
        with self.connections.connection() as conn:
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM scenelog_heads WHERE project = %s) "
                "OR EXISTS (SELECT 1 FROM scenelog_checkpoints WHERE project = %s)",
                (self.project, self.project),
            ).fetchone()
        return bool(row and row[0])

    def episodes(self) -> list[str]:
        with self.connections.connection() as conn:
            rows = conn.execute(
                "SELECT DISTINCT episode FROM scenelog_heads WHERE project = %s "
                "AND episode <> 'ep_000' ORDER BY episode",
                (self.project,),
            ).fetchall()
        return [r[0] for r in rows]

    def batches(self, episode: str) -> list[str]:
        with self.connections.connection() as conn:
            rows = conn.execute(
                "SELECT batch_id FROM scenelog_heads WHERE project = %s AND episode = %s "
                "ORDER BY batch_id",
                (self.project, episode),
            ).fetchall()
        return [r[0] for r in rows]

    # ── reads (no lock, R22) ──

    def exists(self, batch_id: str) -> bool:
        return self.head(batch_id).seq > 0

    def read(self, batch_id: str, *, after: int = 0) -> list[Event]:
        with self.connections.connection() as conn:
            row = conn.execute(
                "SELECT string_agg(line, E'\\n' ORDER BY seq) FROM scenelog_events "
                "WHERE project = %s AND batch_id = %s AND seq > %s",
                (self.project, batch_id, after),
            ).fetchone()
        if not row or row[0] is None:
            return []
        data = row[0].encode() + b"\n"
        try:
            return decode_lines(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            pass
        for number, line in enumerate(data.split(b"\n")[:-1], start=after + 1):
            self._decode(line, number, batch_id)
        raise self._damaged(after + 1, "unreadable events", batch_id)

    def head(self, batch_id: str) -> Head:
        with self.connections.connection() as conn:
            row = conn.execute(
                "SELECT seq, line FROM scenelog_events WHERE project = %s AND batch_id = %s "
                "ORDER BY seq DESC LIMIT 1",
                (self.project, batch_id),
            ).fetchone()
        if row is None:
            return Head(0, None)
        return Head(int(row[0]), line_hash(row[1].encode()))

    def last_seq(self, batch_id: str) -> int:
        with self.connections.connection() as conn:
            row = conn.execute(
                "SELECT max(seq) FROM scenelog_events WHERE project = %s AND batch_id = %s",
                (self.project, batch_id),
            ).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def raw(self, batch_id: str) -> RawLog:
        with self.connections.connection() as conn:
            rows = conn.execute(
                "SELECT line FROM scenelog_events WHERE project = %s AND batch_id = %s "
                "ORDER BY seq",
                (self.project, batch_id),
            ).fetchall()
        return RawLog([r[0].encode() for r in rows], [], 0, self.where(batch_id))

    def recorded_head(self, batch_id: str) -> Head | None:
        with self.connections.connection() as conn:
            row = conn.execute(
                "SELECT seq, hash FROM scenelog_heads WHERE project = %s AND batch_id = %s",
                (self.project, batch_id),
            ).fetchone()
        return None if row is None else Head(int(row[0]), row[1])

    def busy(self, batch_id: str) -> bool:
        key = self.key("batch", batch_id)
        with self.connections.connection() as conn:
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                "AND objsubid = 1 AND classid = %s::bigint::oid AND objid = %s::bigint::oid "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))",
                _key_parts(key),
            ).fetchone()
        return bool(row and row[0])

    # ── bodies ──

    def _body_exists(self, conn: psycopg.Connection[Any], batch_id: str, name: str) -> bool:
        row = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM scenelog_bodies WHERE project = %s AND batch_id = %s "
            "AND name = %s)",
            (self.project, batch_id, name),
        ).fetchone()
        return bool(row and row[0])

    def _read_body(self, conn: psycopg.Connection[Any], batch_id: str, name: str) -> bytes:
        row = conn.execute(
            "SELECT data FROM scenelog_bodies WHERE project = %s AND batch_id = %s AND name = %s",
            (self.project, batch_id, name),
        ).fetchone()
        if row is None:
            where = self.where(batch_id, name)
            raise BodyMissing(
                f"scene body {where} of batch {batch_id} is missing; restore it from backup",
                path=where,
                batch_id=batch_id,
            )
        return bytes(row[0])

    def body_exists(self, batch_id: str, name: str) -> bool:
        with self.connections.connection() as conn:
            return self._body_exists(conn, batch_id, name)

    def read_body(self, batch_id: str, name: str) -> bytes:
        with self.connections.connection() as conn:
            return self._read_body(conn, batch_id, name)

    def body_names(self, batch_id: str) -> list[str]:
        with self.connections.connection() as conn:
            rows = conn.execute(
                "SELECT name FROM scenelog_bodies WHERE project = %s AND batch_id = %s "
                "ORDER BY name",
                (self.project, batch_id),
            ).fetchall()
        return [r[0] for r in rows]

    # ── the commit ──

    @contextlib.contextmanager
    def session(
        self, batch_id: str, *, timeout: float = DEFAULT_LOCK_TIMEOUT
    ) -> Iterator[LogSession]:
        _episode_of(batch_id)
        with self.connections.connection(timeout=max(timeout, 0) + 60.0) as conn:
            session = _PgSession(self, conn, batch_id, timeout)
            try:
                session.begin()
                yield session
            finally:
                session.rollback()
