"""scenelog's write side: the batch log, its events, and the store's commands.

    from eventstore import SceneVersionStore, Scene, load_scene, structure_fingerprint

Modules: ``layout`` (ids, paths), ``scene`` (bodies), ``events`` (the four
event types and their codec), ``manifest`` (the fold), ``lock``, ``log`` (the
log interface and its file backend), ``views`` (``versions.json``),
``store`` (the commands), ``errors``. Nothing here imports ``projections``.
"""

from __future__ import annotations

import typing as _typing

from eventstore.errors import (
    BodyMissing,
    ConsumerBusy,
    DamagedBody,
    DamagedLog,
    DamagedStore,
    ForeignView,
    IdentityMismatch,
    InvalidInput,
    LockTimeout,
    NoLog,
    NotActiveVersion,
    RuleViolation,
    SceneFormatError,
    ScenelogError,
    SeqMismatch,
    StoreIOError,
    UnimportedManifest,
    UnknownBatch,
    UnregisteredVersion,
    VersionBodyExists,
)
from eventstore.events import (
    EVENT_TYPES,
    Appended,
    Conformed,
    Derived,
    Event,
    Reverted,
)
from eventstore.filelog import FileLog
from eventstore.filelog.paths import BatchPaths, Layout
from eventstore.log import EventLog, LogSession, open_log
from eventstore.manifest import Manifest, VersionEntry, fold
from eventstore.scene import Scene, load_scene, structure_fingerprint

if _typing.TYPE_CHECKING:
    from eventstore.importer import ImportOutcome, import_manifests
    from eventstore.store import KINDS, STATES, CandidateResult, SceneVersionStore

_LAZY = {
    "ImportOutcome": "eventstore.importer",
    "import_manifests": "eventstore.importer",
    "KINDS": "eventstore.store",
    "STATES": "eventstore.store",
    "CandidateResult": "eventstore.store",
    "SceneVersionStore": "eventstore.store",
}
"""Names whose module loads when first asked for: a read (``scenelog gate``) loads
neither the commands nor the importer (issue 15)."""

__all__ = [
    "EVENT_TYPES",
    "KINDS",
    "STATES",
    "Appended",
    "BatchPaths",
    "BodyMissing",
    "CandidateResult",
    "Conformed",
    "ConsumerBusy",
    "DamagedBody",
    "DamagedLog",
    "DamagedStore",
    "Derived",
    "Event",
    "EventLog",
    "FileLog",
    "ForeignView",
    "IdentityMismatch",
    "ImportOutcome",
    "InvalidInput",
    "Layout",
    "LockTimeout",
    "LogSession",
    "Manifest",
    "NoLog",
    "NotActiveVersion",
    "Reverted",
    "RuleViolation",
    "Scene",
    "SceneFormatError",
    "SceneVersionStore",
    "ScenelogError",
    "SeqMismatch",
    "StoreIOError",
    "UnimportedManifest",
    "UnknownBatch",
    "UnregisteredVersion",
    "VersionBodyExists",
    "VersionEntry",
    "fold",
    "import_manifests",
    "load_scene",
    "open_log",
    "structure_fingerprint",
]


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'eventstore' has no attribute {name!r}")
    import importlib

    value = globals()[name] = getattr(importlib.import_module(module), name)
    return value
