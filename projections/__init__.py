"""scenelog's read side: projections over the batch logs.

    from projections import Projection

``projection`` holds the per-batch and per-episode read models. This package
imports ``eventstore``; ``eventstore`` never imports it.
"""

from __future__ import annotations

from projections.diff import SceneDiff, ShotChange, diff_scenes
from projections.projection import AuditRow, BatchSummary, Projection, parse_time
from projections.verify import Finding, VerifyReport, verify

__all__ = [
    "AuditRow",
    "BatchSummary",
    "Finding",
    "Projection",
    "SceneDiff",
    "ShotChange",
    "VerifyReport",
    "diff_scenes",
    "parse_time",
    "verify",
]
