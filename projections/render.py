"""Human-readable renderings of manifests, histories and listings (for the CLI).

Pure functions: data in, text out. Tables are aligned and stay readable at
100 columns; long free text (reasons) is cut with an ellipsis only when the
caller asks (a person at a terminal): with ``max_last=None`` every character
is kept, as the CLI does for pipes, files and ``--wide``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from eventstore import Event, Manifest
from projections.projection import BatchSummary

__all__ = [
    "gate_line",
    "gate_why",
    "history_table",
    "ls_table",
    "manifest_summary",
    "manifest_table",
    "safe",
    "short_time",
    "table",
]


def table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], *, max_last: int | None = 40
) -> str:
    """Columns aligned to their widest cell; the last column is cut at ``max_last`` (None: never).

    Every cell is made safe for a terminal: line breaks become spaces and other
    control characters are shown escaped, so no actor or reason can break a
    row or send escape sequences.
    """
    cut = [[*map(safe, row[:-1]), _clip(safe(row[-1]), max_last)] if row else [] for row in rows]
    widths = [len(h) for h in headers]
    for row in cut:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in cut:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


_BREAKS = {"\n", "\r", "\t", "\v", "\f", "\x85", "\u2028", "\u2029"}


def safe(text: str) -> str:
    """``text`` on one line with control characters escaped (``\\x1b``)."""
    if text.isprintable():
        return text
    out = []
    for char in text:
        if char in _BREAKS:
            out.append(" ")
        elif not char.isprintable() and char != " ":
            out.append(char.encode("unicode_escape").decode("ascii"))
        else:
            out.append(char)
    return "".join(out)


def _clip(text: str, width: int | None) -> str:
    text = " ".join(text.split())  # newlines in a reason never break a row
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


def short_time(at: str) -> str:
    """``2026-11-26T12:00:00.123456Z`` → ``2026-11-26 12:00:00``."""
    return at[:19].replace("T", " ")


def _v(version: int | None) -> str:
    return "-" if version is None else f"v{version}"


def gate_why(manifest: Manifest | None) -> str:
    """``fresh (…)`` or ``blocked (…)``: the gate's answer and its reason (R16).

    The reason a gate is blocked is ``Manifest.blocked_reason`` (one statement
    for the library, this renderer, the CLI and ``gate --json``).
    """
    if manifest is None:
        return "fresh (no log: a flat batch is never blocked)"
    reason = manifest.blocked_reason()
    if reason is not None:
        return f"blocked ({reason})"
    return f"fresh (v{manifest.active_version} active, boards rebuilt)"


def gate_line(batch_id: str, manifest: Manifest | None) -> str:
    """One line saying whether dispatch may go ahead, and why."""
    return f"{batch_id}: {gate_why(manifest)}"


def manifest_summary(manifest: Manifest) -> str:
    """``ep_001_BATCH_003: active v2 (approved, derived) · 3 versions · seq 5 · fresh``."""
    active = manifest.active
    state = f" ({active.state}, {active.downstream})" if active else ""
    fresh = "fresh" if manifest.is_fresh else "blocked"
    count = len(manifest.versions)
    return (
        f"{manifest.batch_id}: active {_v(manifest.active_version)}{state} · "
        f"{count} version{'s' * (count != 1)} · seq {manifest.seq} · {fresh}"
    )


def manifest_table(manifest: Manifest) -> str:
    rows = []
    for e in manifest.versions:
        rows.append(
            [
                "*" if e.version == manifest.active_version else "",
                f"v{e.version}",
                e.state,
                e.downstream,
                e.kind,
                e.source,
                _v(e.parent_version),
                str(e.shot_count),
                short_time(e.created_at),
                e.structure_fingerprint[:12],
            ]
        )
    headers = ["", "VER", "STATE", "DOWNSTREAM", "KIND", "SOURCE", "PARENT", "SHOTS", "CREATED"]
    return manifest_summary(manifest) + "\n" + table([*headers, "FINGERPRINT"], rows)


def _move(event: Event) -> str:
    previous = getattr(event, "previous_active", None)
    if event.type in ("conformed", "reverted"):
        return f"{_v(previous)} → v{event.version}"
    return ""


def history_table(events: Sequence[Event], *, wide: bool = False) -> str:
    """Every event, one row each; the REASON column is cut at 40 characters unless ``wide``."""
    rows = [
        [
            str(e.seq),
            short_time(e.at),
            e.actor,
            e.type,
            f"v{e.version}",
            _move(e),
            e.reason or "",
        ]
        for e in events
    ]
    return table(
        ["SEQ", "TIME (UTC)", "ACTOR", "TYPE", "VER", "POINTER", "REASON"],
        rows,
        max_last=None if wide else 40,
    )


def ls_table(summaries: Sequence[BatchSummary]) -> str:
    rows = []
    for s in summaries:
        active, newest = s.active, s.newest
        rows.append(
            [
                s.batch_id,
                _v(s.manifest.active_version),
                active.state if active else "-",
                active.downstream if active else "-",
                "fresh" if s.manifest.is_fresh else "blocked",
                _v(newest.version if newest else None),
                ",".join(f"v{e.version}" for e in s.awaiting_review) or "-",
            ]
        )
    headers = ["BATCH", "ACTIVE", "STATE", "DOWNSTREAM", "GATE", "NEWEST", "AWAITING REVIEW"]
    return table(headers, rows)
