"""What verify may ask the file backend beyond reads: is a command in flight (issue 11 stub)."""

from __future__ import annotations

from eventstore.layout import BatchPaths

__all__ = ["batch_busy"]


def batch_busy(paths: BatchPaths) -> bool:
    raise NotImplementedError
