"""The PostgreSQL backend: ``postgresql://…`` roots (DESIGN §9, issue 12).

:class:`PgLog` is :class:`eventstore.log.EventLog` over a PostgreSQL database:

    schema       the versioned schema and ``init_schema`` (``scenelog db init``)
    core         connections, reads, heads, bodies, the locked session (R14, R19, R22, R24, R27)
    feed         the change feed: (xid8, position) below the snapshot's xmin, LISTEN/NOTIFY
    checkpoints  consumer checkpoints in a table; the claim is a session advisory lock
    errors       OutcomeUnknown, SchemaMissing, DatabaseUnavailable

Only this package knows SQL. psycopg is imported when a ``postgresql://`` root
is first used, never for file roots. Instances are shared per (URL, project)
within a process, and one pool per URL, so every store, projection and
watcher of a process reaching one database shares one cache and one pool.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractContextManager

from eventstore.log import Feed
from eventstore.pglog import checkpoints
from eventstore.pglog.core import Connections, PgLogCore, redact
from eventstore.pglog.errors import DatabaseUnavailable, OutcomeUnknown, SchemaMissing
from eventstore.pglog.schema import SCHEMA_VERSION, init_schema

__all__ = [
    "SCHEMA_VERSION",
    "DatabaseUnavailable",
    "OutcomeUnknown",
    "PgLog",
    "SchemaMissing",
    "init_schema",
    "is_pg_root",
    "open_pg",
    "redact",
]

_LIMIT = 256
_guard = threading.Lock()
_pools: OrderedDict[str, Connections] = OrderedDict()
_logs: OrderedDict[tuple[str, str], PgLog] = OrderedDict()


def is_pg_root(text: str) -> bool:
    """Whether a root names a PostgreSQL database."""
    return text.startswith(("postgresql://", "postgres://"))


class PgLog(PgLogCore):
    """Events, bodies, heads and consumer checkpoints of one project in PostgreSQL."""

    # ── the change feed and consumers ─────────────────────────────────────

    def feed(
        self,
        position: str | None,
        *,
        start: str = "now",
        episode: str | None = None,
        poll: float | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> Feed:
        from eventstore.pglog.feed import PgFeed

        return PgFeed(self, position, start=start, episode=episode, poll=poll, warn=warn)

    def load_checkpoint(self, consumer: str) -> bytes | None:
        return checkpoints.load(self, consumer)

    def save_checkpoint(self, consumer: str, data: bytes, *, durable: bool = True) -> None:
        checkpoints.save(self, consumer, data, durable=durable)

    def delete_checkpoint(self, consumer: str) -> bool:
        return checkpoints.delete(self, consumer)

    def consumers(self) -> list[str]:
        return checkpoints.names(self)

    def claim(self, consumer: str) -> AbstractContextManager[None]:
        return checkpoints.claim(self, consumer)


def open_pg(url: str, project: str) -> PgLog:
    """The shared PgLog of ``project`` in the database at ``url`` (bounded registry)."""
    with _guard:
        found = _logs.get((url, project))
        if found is not None:
            _logs.move_to_end((url, project))
            return found
        connections = _pools.get(url)
        if connections is None:
            connections = _pools[url] = Connections(url, redact(url))
            while len(_pools) > _LIMIT:
                _pools.popitem(last=False)[1].close()
        found = _logs[(url, project)] = PgLog(connections, project)
        while len(_logs) > _LIMIT:
            _logs.popitem(last=False)
        return found
