"""The PostgreSQL backend's consumer checkpoints: rows of ``scenelog_checkpoints``.

Invariants:
- A save is one upsert statement (autocommit): the row holds the old
  checkpoint or the new one, never half; durable once the statement returns.
- A claim is a session-level advisory lock (``pg_try_advisory_lock``) held on
  a connection of its own for as long as the ``with`` block runs. It dies
  with that connection: a killed watcher's claim is released by the server
  when it notices the socket closed (set ``tcp_keepalives_*`` on the server
  for hosts that vanish). That notice is asynchronous, so a claimant tries
  for ``CLAIM_GRACE`` seconds before it gets ConsumerBusy naming the holder's
  pid and host (from its ``application_name`` in pg_stat_activity): a
  service restarted right after a crash comes up instead of failing.
- The ``with`` block ends with ``pg_advisory_unlock`` before the connection
  closes, so a claim released in order is free at once.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from eventstore.errors import ConsumerBusy
from eventstore.pglog.core import _application_name, describe_holder, lock_holder

if TYPE_CHECKING:
    from eventstore.pglog.core import PgLogCore

__all__ = ["CLAIM_GRACE", "claim", "delete", "load", "names", "save"]

CLAIM_GRACE = 1.0
"""Seconds a claim keeps trying while the name is held: a dead holder's
session may still be closing."""


def load(log: PgLogCore, consumer: str) -> bytes | None:
    with log.connections.connection() as conn:
        row = conn.execute(
            "SELECT data FROM scenelog_checkpoints WHERE project = %s AND consumer = %s",
            (log.project, consumer),
        ).fetchone()
    return None if row is None else bytes(row[0])


def save(log: PgLogCore, consumer: str, data: bytes, *, durable: bool = True) -> None:
    """One upsert; ``durable=False`` commits it without waiting for the WAL flush."""
    with log.connections.connection() as conn, conn.transaction():
        if not durable:
            conn.execute("SET LOCAL synchronous_commit = off")
        conn.execute(
            "INSERT INTO scenelog_checkpoints (project, consumer, data) VALUES (%s, %s, %s) "
            "ON CONFLICT (project, consumer) DO UPDATE SET data = EXCLUDED.data, saved_at = now()",
            (log.project, consumer, bytes(data)),
        )


def delete(log: PgLogCore, consumer: str) -> bool:
    with log.connections.connection() as conn:
        row = conn.execute(
            "DELETE FROM scenelog_checkpoints WHERE project = %s AND consumer = %s "
            "RETURNING consumer",
            (log.project, consumer),
        ).fetchone()
    return row is not None


def names(log: PgLogCore) -> list[str]:
    with log.connections.connection() as conn:
        rows = conn.execute(
            "SELECT consumer FROM scenelog_checkpoints WHERE project = %s ORDER BY consumer",
            (log.project,),
        ).fetchall()
    return [r[0] for r in rows]


@contextlib.contextmanager
def claim(log: PgLogCore, consumer: str) -> Iterator[None]:
    """Hold ``consumer`` exclusively across every host using the database."""
    key = log.key("consumer", consumer)
    conn = log.connections.dedicated(application_name=_application_name("watch"))
    held = False
    try:
        deadline = time.monotonic() + CLAIM_GRACE
        while True:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            held = bool(row and row[0])
            if held or time.monotonic() >= deadline:
                break
            time.sleep(0.02)  # no notification exists for an advisory lock's release
        if not held:
            holder = lock_holder(conn, key)
            raise ConsumerBusy(
                f"consumer {consumer!r} of project {log.project} at {log.label} is in use by "
                f"{describe_holder(holder)}; stop that watcher first, or use another "
                "consumer name",
                consumer=consumer,
                holder=holder or {},
            )
        yield
    finally:
        # Unlock before closing: a closed socket is released by the server only
        # when its backend process notices, so a claim made right after this
        # block would otherwise race the old session and find the name busy.
        # If the connection is already gone the server releases the lock itself.
        try:
            if held:
                import psycopg

                with contextlib.suppress(psycopg.Error):
                    conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
        finally:
            conn.close()  # also after an interrupt during the unlock
