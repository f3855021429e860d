"""scenelog's read side: projections over the batch logs.

    from projections import Projection

``projection`` holds the per-batch and per-episode read models. This package
imports ``eventstore``; ``eventstore`` never imports it.
"""

from __future__ import annotations

from projections.diff import SceneDiff, ShotChange, diff_scenes
from projections.projection import AuditRow, BatchSummary, Projection, parse_time
from projections.verify import Finding, VerifyReport, verify
from projections.watcher import CheckpointError, Watcher, WatchEvent, consumer_status, watch

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
