"""Row 8: a named consumer's catch-up against a plain catch-up of the same events.

Measured as the issue measured it, as a user runs it: ``scenelog watch
--start beginning --episode 9 --max-events 10000`` with stdout to /dev/null,
with ``--consumer NAME`` (a fresh name per round) and without. Both read every
event of episode 9 (``CONSUMER_EVENTS`` over ``CONSUMER_BATCHES`` batches,
built once, without fsync, outside the timed region); the consumer side also
checkpoints after every event (grouped durability: a journal line per event,
a durable save per 50 ms or 10,000 events) and closes with a durable save. The
note gives the same comparison inside one process through ``projections.watch``
(no process start, no printing: the checkpoint's cost alone).
Invariants: the sides alternate (``paired``); a round ends when the last
event is delivered; every process started is waited for.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

from projections import watch

from .fixtures import PROJECT, REPO, big_log
from .report import Row
from .timing import paired, seconds, us

CONSUMER_EVENTS = 10_000
CONSUMER_BATCHES = 20
_names = itertools.count()


def _cli(root: Path, consumer: str | None) -> float:
    command = [sys.executable, "-m", "projections", "--root", str(root), "--project", PROJECT]
    command += ["watch", "--start", "beginning", "--episode", "9", "--poll"]
    command += ["--max-events", str(CONSUMER_EVENTS)]
    command += [] if consumer is None else ["--consumer", consumer]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return seconds(
        lambda: subprocess.run(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True
        )
    )


def _api(root: Path, consumer: str | None) -> float:
    def run() -> None:
        delivered = 0
        with watch(PROJECT, root=root, episode=9, consumer=consumer, start="beginning") as w:
            for _event in w:
                delivered += 1
                if delivered == CONSUMER_EVENTS:
                    w.commit()
                    break

    return seconds(run)


def row_consumer(root: Path, rounds: int) -> list[Row]:
    """Row 8: seconds to catch up on 10k events with a consumer vs without."""
    per = CONSUMER_EVENTS // CONSUMER_BATCHES
    for i in range(CONSUMER_BATCHES):
        big_log(root, f"ep_009_BATCH_{i + 1:03d}", per - 1, 2)  # + its closing conform
    n = max(rounds, 3)
    ours, base = paired(lambda: _cli(root, f"bench-{next(_names)}"), lambda: _cli(root, None), n)
    api_ours, api_base = paired(
        lambda: _api(root, f"bench-{next(_names)}"), lambda: _api(root, None), n
    )
    ratio = ours / base
    return [
        {
            "row": f"8. consumer catch-up ({CONSUMER_EVENTS:,} events, scenelog watch)",
            "ours": us(ours),
            "base": us(base),
            "base_what": "the same catch-up without --consumer",
            "ratio": ratio,
            "target": "≤ 1.5×",
            "ok": ratio <= 1.5,
            "note": f"in-process watch(): {us(api_ours)} vs {us(api_base)} "
            f"({api_ours / api_base:.2f}×); a journal line per event, a durable save per 50 ms",
        }
    ]
