"""Rows 8a-8c: scenelog against a peer, eventsourcing 9 with its SQLite recorder.

8a compares row 1's per-command time with one ``save`` of one event; 8c times
the append of a project under the ``lazy`` view policy and the peer's ``save``
interleaved in one run; 8b
compares a full fold of a 20,000-event log (view deleted) with an aggregate
rebuild of 20,000 events. Invariants: the peer's database lives in the run's
folder; without eventsourcing installed the row says how to install it and
misses (it never fails the run with an ImportError).
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any

from .fixtures import big_log
from .policy import conformer
from .reads import fold_timer
from .report import Row
from .timing import paired, per_op, seconds, us

PEER_OPS = 200
REPLAY_EVENTS = 20_000


def _not_installed() -> list[Row]:
    return [
        {
            "row": "8. peer: eventsourcing (SQLite)",
            "ours": "-",
            "base": "-",
            "base_what": "not installed: pip install -e '.[bench]'",
            "ratio": None,
            "target": "ahead on both",
            "ok": False,
        }
    ]


def row_peer(root: Path, rounds: int, ours_append: float) -> list[Row]:
    """Rows 8a and 8b; ``ours_append`` is row 1's seconds per command."""
    # The ignores cover a venv without the bench extra; with it they are unused.
    try:
        from eventsourcing.application import Application  # type: ignore[import-not-found, unused-ignore]
        from eventsourcing.domain import Aggregate, event  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return _not_installed()

    class Batch(Aggregate):  # type: ignore[misc, unused-ignore]
        @event("Created")  # type: ignore[untyped-decorator, unused-ignore]
        def __init__(self, batch_id: str) -> None:
            self.batch_id, self.active = batch_id, 1

        @event("Conformed")  # type: ignore[untyped-decorator, unused-ignore]
        def conform(self, version: int, reason: str) -> None:
            self.active = version

    os.environ.update(
        PERSISTENCE_MODULE="eventsourcing.sqlite", SQLITE_DBNAME=str(root / "peer.sqlite")
    )
    app: Application[Any] = Application()
    agg = Batch("ep_009_BATCH_001")
    app.save(agg)

    def theirs_append(n: int) -> None:
        for i in range(n):
            agg.conform(1 + i % 2, "approved in dailies")
            app.save(agg)

    theirs_a = statistics.median(per_op(theirs_append, PEER_OPS) for _ in range(rounds))
    # 8c: the lazy policy's append against the same peer, interleaved in one run.
    ours_lazy = conformer(root, "lazy", "bench_peer")
    lazy, theirs_c = paired(
        lambda: per_op(ours_lazy, PEER_OPS), lambda: per_op(theirs_append, PEER_OPS), rounds
    )
    for _ in range(REPLAY_EVENTS // 1000):
        for i in range(1000):
            agg.conform(1 + i % 2, "approved in dailies")
        app.save(agg)
    batch = "ep_009_BATCH_002"
    big_log(root, batch, REPLAY_EVENTS, 2)

    def theirs_replay() -> float:
        return seconds(lambda: app.repository.get(agg.id))

    a, b = paired(fold_timer(root, batch), theirs_replay, rounds)
    return [
        {
            "row": "8a. peer: durable append, one event per command",
            "ours": us(ours_append),
            "base": us(theirs_a),
            "base_what": "eventsourcing 9 + SQLite, one event per save",
            "ratio": ours_append / theirs_a,
            "target": "< 1× (ahead)",
            "ok": ours_append < theirs_a,
        },
        {
            "row": f"8b. peer: replay {REPLAY_EVENTS:,} events",
            "ours": us(a),
            "base": us(b),
            "base_what": "eventsourcing aggregate rebuild",
            "ratio": a / b,
            "target": "< 1× (ahead)",
            "ok": a < b,
        },
        {
            "row": "8c. peer: durable append, view policy lazy",
            "ours": us(lazy),
            "base": us(theirs_c),
            "base_what": "eventsourcing 9 + SQLite, one event per save (interleaved)",
            "ratio": lazy / theirs_c,
            "target": "≤ 0.75× (ahead by a third)",
            "ok": lazy / theirs_c <= 0.75,
        },
    ]
