"""scenelog's read side: projections over the batch logs.

    from projections import Projection

``projection`` holds the per-batch and per-episode read models. This package
imports ``eventstore``; ``eventstore`` never imports it.
"""

from __future__ import annotations

import typing as _typing

from projections.projection import AuditRow, BatchSummary, Projection, parse_time

# Eager, light, and bound after its subpackage: ``projections.verify`` is the function.
from projections.verify import Finding, VerifyReport, verify

if _typing.TYPE_CHECKING:
    from projections.diff import SceneDiff, ShotChange, diff_scenes
    from projections.watcher import CheckpointError, Watcher, WatchEvent, consumer_status, watch

_LAZY = {
    "SceneDiff": "projections.diff",
    "ShotChange": "projections.diff",
    "diff_scenes": "projections.diff",
    "CheckpointError": "projections.watcher",
    "Watcher": "projections.watcher",
    "WatchEvent": "projections.watcher",
    "consumer_status": "projections.watcher",
    "watch": "projections.watcher",
}
"""Names whose module loads when first asked for (issue 15: a ``gate`` loads no diff
or watcher code)."""

__all__ = [
    "AuditRow",
    "BatchSummary",
    "CheckpointError",
    "Finding",
    "Projection",
    "SceneDiff",
    "ShotChange",
    "VerifyReport",
    "WatchEvent",
    "Watcher",
    "consumer_status",
    "diff_scenes",
    "parse_time",
    "verify",
    "watch",
]


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'projections' has no attribute {name!r}")
    import importlib

    value = globals()[name] = getattr(importlib.import_module(module), name)
    return value
