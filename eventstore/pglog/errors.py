"""Errors only the PostgreSQL backend raises (each a subclass of the store's tree).

    OutcomeUnknown(StoreIOError)   4   the connection died during COMMIT
    SchemaMissing(InvalidInput)    2   the database has no (or an old) scenelog schema
    DatabaseUnavailable(StoreIOError) 4 the server cannot be reached

Messages name the root by its label (the URL with the password redacted), never
the password.
"""

from __future__ import annotations

from eventstore.errors import InvalidInput, StoreIOError

__all__ = ["DatabaseUnavailable", "OutcomeUnknown", "SchemaMissing"]


class OutcomeUnknown(StoreIOError):
    """The connection was lost while COMMIT was in flight: the events may or may not be there.

    Facts: ``batch_id``, ``event_ids`` (look for them with ``scenelog history``
    or ``SELECT … WHERE event_id = …``), ``root`` (redacted).
    """

    batch_id: str
    event_ids: list[str]
    root: str


class SchemaMissing(InvalidInput):
    """The database has no scenelog schema, or an older one: run ``scenelog db init``."""

    root: str
    found: int
    expected: int


class DatabaseUnavailable(StoreIOError):
    """The server could not be reached, or refused the connection."""

    root: str
