"""scenelog's read side: projections over the batch logs.

    from projections import Projection

``projection`` holds the per-batch and per-episode read models. This package
imports ``eventstore``; ``eventstore`` never imports it.
"""

from __future__ import annotations

from projections.projection import BatchSummary, Projection, parse_time

__all__ = ["BatchSummary", "Projection", "parse_time"]
