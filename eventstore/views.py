"""Moved to :mod:`eventstore.filelog.views` (the file backend owns its views).

Temporary, for modules still being moved onto :class:`eventstore.log.EventLog`
(issue 11): delete it once nothing outside ``eventstore/filelog/`` imports it.
"""

from __future__ import annotations

from eventstore.filelog.views import (
    check_unimported,
    check_view,
    is_foreign_view,
    load_reference_manifest,
    read_view,
    reference_lock,
    reference_lock_path,
    repair_view,
    write_view,
)

__all__ = [
    "check_unimported",
    "check_view",
    "is_foreign_view",
    "load_reference_manifest",
    "read_view",
    "reference_lock",
    "reference_lock_path",
    "repair_view",
    "write_view",
]
