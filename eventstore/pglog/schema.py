"""The PostgreSQL backend's schema: versioned, created by ``scenelog db init``.

Tables (DESIGN §9):

    scenelog_schema       one row per applied schema version
    scenelog_events       every event: the exact JSON line the file backend writes
    scenelog_bodies       scene bodies, written in the transaction of their event
    scenelog_heads        per batch, the head recorded at each commit (R27)
    scenelog_checkpoints  consumer checkpoints of watchers

Invariants:
- ``scenelog_events.line`` is ``text`` holding the file backend's line byte
  for byte (``jsonb`` would reorder keys and break the hash chain, R19).
- ``position`` (identity) orders events of one transaction; ``xid``
  (``pg_current_xact_id()``) orders transactions for the change feed, read
  only below ``pg_snapshot_xmin`` (a position order alone loses events of
  transactions that commit out of order).
- A trigger refuses UPDATE, DELETE and TRUNCATE of events and bodies for
  every role, the owner included: the log is append-only whatever the GRANTs.
- :func:`init_schema` runs in one transaction under an advisory lock: killed
  at any step, the database has the previous version or the new one, never
  half; run twice, the second run changes nothing.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SCHEMA_VERSION", "SchemaError", "init_schema", "schema_sql"]

SCHEMA_VERSION = 1
"""The version this code reads and writes."""

_INIT_LOCK = 0x5CE4E106  # advisory lock key: one `db init` at a time per database

_V1 = """
CREATE TABLE scenelog_events (
    project   text   NOT NULL,
    batch_id  text   NOT NULL,
    seq       bigint NOT NULL CHECK (seq > 0),
    position  bigint GENERATED ALWAYS AS IDENTITY,
    xid       xid8   NOT NULL DEFAULT pg_current_xact_id(),
    event_id  text   NOT NULL,
    line      text   NOT NULL,
    PRIMARY KEY (project, batch_id, seq)
);
CREATE INDEX scenelog_events_feed ON scenelog_events (project, xid, position);
CREATE INDEX scenelog_events_event_id ON scenelog_events (project, event_id);

CREATE TABLE scenelog_bodies (
    project   text  NOT NULL,
    batch_id  text  NOT NULL,
    name      text  NOT NULL,
    version   integer,
    data      bytea NOT NULL,
    PRIMARY KEY (project, batch_id, name)
);

CREATE TABLE scenelog_heads (
    project   text   NOT NULL,
    batch_id  text   NOT NULL,
    episode   text   NOT NULL,
    seq       bigint NOT NULL,
    hash      text   NOT NULL,
    PRIMARY KEY (project, batch_id)
);
CREATE INDEX scenelog_heads_episode ON scenelog_heads (project, episode);

CREATE TABLE scenelog_checkpoints (
    project   text        NOT NULL,
    consumer  text        NOT NULL,
    data      bytea       NOT NULL,
    saved_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project, consumer)
);

CREATE FUNCTION scenelog_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'scenelog: % on % refused: the log is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'events and bodies are never changed; restore from backup instead';
END
$$;
CREATE TRIGGER scenelog_events_append_only
    BEFORE UPDATE OR DELETE ON scenelog_events
    FOR EACH ROW EXECUTE FUNCTION scenelog_append_only();
CREATE TRIGGER scenelog_events_no_truncate
    BEFORE TRUNCATE ON scenelog_events
    FOR EACH STATEMENT EXECUTE FUNCTION scenelog_append_only();
CREATE TRIGGER scenelog_bodies_append_only
    BEFORE UPDATE OR DELETE ON scenelog_bodies
    FOR EACH ROW EXECUTE FUNCTION scenelog_append_only();
CREATE TRIGGER scenelog_bodies_no_truncate
    BEFORE TRUNCATE ON scenelog_bodies
    FOR EACH STATEMENT EXECUTE FUNCTION scenelog_append_only();
"""

_MIGRATIONS: dict[int, str] = {1: _V1}
"""SQL that takes the schema from version n-1 to n."""


class SchemaError(Exception):
    """Raised inside :func:`init_schema` when the database's schema is newer than this code."""


def schema_sql() -> str:
    """Every statement of the current schema, for DBAs who apply it by hand."""
    head = "CREATE TABLE scenelog_schema (version integer PRIMARY KEY, "
    head += "applied_at timestamptz NOT NULL DEFAULT now());\n"
    body = "".join(_MIGRATIONS[v] for v in sorted(_MIGRATIONS))
    tail = f"INSERT INTO scenelog_schema (version) VALUES ({SCHEMA_VERSION});\n"
    return head + body + tail


def _current(conn: Any) -> int:
    found = conn.execute("SELECT to_regclass('scenelog_schema') IS NOT NULL").fetchone()
    if not found or not found[0]:
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM scenelog_schema").fetchone()
    return int(row[0]) if row else 0


def init_schema(conninfo: str) -> tuple[int, int]:
    """Create or upgrade the schema in the database at ``conninfo``; (before, after) versions.

    One transaction under an advisory transaction lock: concurrent runs
    serialize, and the second finds nothing to do. Killed at any step, the
    transaction rolls back and the database keeps its previous version.
    Raises :class:`SchemaError` when the database has a newer schema.
    """
    import psycopg

    with psycopg.connect(conninfo, autocommit=False) as conn:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_INIT_LOCK,))
            before = _current(conn)
            if before > SCHEMA_VERSION:
                raise SchemaError(
                    f"the database has scenelog schema version {before}, newer than this "
                    f"scenelog's {SCHEMA_VERSION}: upgrade scenelog"
                )
            if before == 0:
                conn.execute(
                    "CREATE TABLE scenelog_schema (version integer PRIMARY KEY, "
                    "applied_at timestamptz NOT NULL DEFAULT now())"
                )
            for version in range(before + 1, SCHEMA_VERSION + 1):
                conn.execute(_MIGRATIONS[version].encode())
                conn.execute("INSERT INTO scenelog_schema (version) VALUES (%s)", (version,))
        return before, SCHEMA_VERSION
