"""What verify reports: findings, the report, and the fixes it advises.

Invariants:
- A finding names where (a file and line on the file backend, a key on
  others), what is wrong and how to fix it; ``severity`` is ``error`` for
  damage and ``warning`` for what a crashed command leaves.
- No advice ever says to delete anything: an orphan body may be kept or
  archived; views are repaired by ``--repair-views``; logs are restored.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "IN_FLIGHT_CHECKS",
    "MAX_BODY_BYTES",
    "ORPHAN_FIX",
    "REPAIR",
    "RESTORE",
    "VIEW_CHECKS",
    "Finding",
    "VerifyReport",
]

MAX_BODY_BYTES = 256 * 1024 * 1024
"""Largest body verify reads; a bigger one is a finding (never read into memory)."""

RESTORE = "restore the log from backup; nothing else may edit a log"
ORPHAN_FIX = (
    "nothing to do: numbering skips it and no reader uses it; it is not part of the "
    "record, keep it or archive it"
)
REPAIR = "scenelog verify --repair-views (readers fold the log meanwhile)"

IN_FLIGHT_CHECKS = frozenset(
    {
        "torn_tail",
        "incomplete_command",
        "view_missing",
        "view_corrupt",
        "view_stale",
        "view_ahead",
        "head_lost",
        "head_edited",  # the record is rewritten in place: a read may meet a write
    }
)
"""Findings that a command in flight also produces; other findings are damage."""

VIEW_CHECKS = frozenset({"view_missing", "view_corrupt", "view_stale", "view_ahead"})
"""Findings that ``repair_views`` mends."""


class Finding(msgspec.Struct, frozen=True):
    """One thing wrong: where (file, line), what, and how to fix it."""

    batch_id: str
    check: str
    path: str
    line: int | None
    what: str
    fix: str
    severity: str = "error"
    repaired: bool = False

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = msgspec.to_builtins(self)
        return result

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        done = " [view repaired]" if self.repaired else ""
        return f"{where}: {self.severity}: {self.what}{done} — fix: {self.fix}"


class VerifyReport(msgspec.Struct):
    """Everything verify found, and how much it looked at."""

    findings: list[Finding]
    batches: int
    events: int

    @property
    def ok(self) -> bool:
        return not [f for f in self.findings if not f.repaired]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "batches": self.batches,
            "events": self.events,
            "findings": [f.to_dict() for f in self.findings],
        }
