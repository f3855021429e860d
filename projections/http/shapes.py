"""The JSON bodies of the HTTP API as msgspec Structs: the OpenAPI document's schemas.

The bodies themselves are built by the same ``to_dict`` calls as the CLI's
``--json``; these Structs describe them for the ``/schema`` document, and
``tests/test_serve.py`` decodes every answer into its Struct strictly
(unknown fields refused), so a shape that drifts from its description fails
a test. Structs the project already has (``VersionEntry``, ``Event``,
``AuditRow``, ``ShotChange``) are used as they are.
"""

from __future__ import annotations

from typing import Any

import msgspec

from eventstore import Event, VersionEntry
from projections.diff import ShotChange
from projections.projection import AuditRow

__all__ = [
    "AuditRow",
    "BatchRow",
    "DiffBody",
    "ErrorBody",
    "Event",
    "GateBody",
    "ManifestBody",
    "SceneBody",
    "ShotChange",
    "VersionEntry",
]


class BatchRow(msgspec.Struct, forbid_unknown_fields=True):
    """One batch of ``GET …/batches`` (``scenelog ls --json``)."""

    batch_id: str
    active_version: int | None
    state: str | None
    downstream: str | None
    fresh: bool
    newest_version: int | None
    awaiting_review: list[int]
    seq: int


class ManifestBody(msgspec.Struct, forbid_unknown_fields=True):
    """``GET …/batches/{b}``: the manifest of DESIGN §4 plus the gate."""

    schema_version: int
    batch_id: str
    active_version: int | None
    seq: int
    versions: list[VersionEntry]
    fresh: bool


class GateBody(msgspec.Struct, forbid_unknown_fields=True):
    """``GET …/gate`` (``scenelog gate --json``); 200 when fresh, 409 when blocked."""

    batch_id: str
    fresh: bool
    active_version: int | None
    why: str


class DiffBody(msgspec.Struct, forbid_unknown_fields=True):
    """``GET …/diff`` (``scenelog diff --json``)."""

    batch_id: str
    a: int
    b: int
    added: list[str]
    removed: list[str]
    moved: list[str]
    changed: list[ShotChange]
    other_keys: list[str]
    fingerprint_a: str
    fingerprint_b: str
    same_structure: bool
    dedup: str


class ErrorBody(msgspec.Struct, forbid_unknown_fields=True):
    """Every 4xx/5xx answer: the CLI's one-line message and the exception class."""

    error: str
    type: str


SceneBody = dict[str, Any]
"""A version body: ``scene_id``, ``beats`` and any other keys, as stored."""
