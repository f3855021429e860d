"""Rows 3a-3c: four contending processes, on one batch and on four.

Each contender is a separate process, ``scripts/bench.py --worker SPEC`` (SPEC
is JSON), that waits for a shared wall-clock start, appends ``count`` times and
prints ``{"elapsed", "waits"}`` as one JSON line. Invariants: throughput is the
total appends over the slowest worker's elapsed time; a scenelog worker only
targets its own two versions, so every call appends an event; after the rounds
every one-batch call's reason is in the log exactly once (else 3a misses).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import eventstore.filelog.core as log_module
from eventstore import SceneVersionStore
from eventstore.filelog.core import read_log_events

from .fixtures import BENCH_SCRIPT, PROJECT, Primitive, conformed_line, no_fsync, scene
from .report import Row
from .timing import pct, us

WORKERS = 4
COUNT = 150  # appends per worker per round


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One contending process (run as ``bench.py --worker SPEC``)."""
    root, kind, count, wid = Path(spec["root"]), spec["kind"], spec["count"], spec["id"]
    waits: list[float] = []
    if kind == "primitive":
        prim = Primitive(root / "contended", spec["file"])
        fd_lock = prim.lock_fd
        while time.time() < spec["start_at"]:
            time.sleep(0.001)
        start = time.perf_counter()
        for i in range(count):
            line = conformed_line("ep_001_BATCH_001", 1 + i % 2, prim.prev) + b"\n"
            t = time.perf_counter()
            fcntl.flock(fd_lock, fcntl.LOCK_EX)
            waits.append(time.perf_counter() - t)
            os.write(prim.fd, line)
            os.fsync(prim.fd)
            fcntl.flock(fd_lock, fcntl.LOCK_UN)
        return {"elapsed": time.perf_counter() - start, "start": start, "waits": waits}

    # The log looks its lock up in its module namespace at every append: time it there.
    namespace = vars(log_module)
    if "batch_lock" not in namespace:
        raise RuntimeError("eventstore.log has no batch_lock to time: update contention.worker")
    real_lock: Callable[..., AbstractContextManager[None]] = namespace["batch_lock"]

    @contextlib.contextmanager
    def timed_lock(*args: Any, **kwargs: Any) -> Iterator[None]:
        t = time.perf_counter()
        with real_lock(*args, **kwargs):
            waits.append(time.perf_counter() - t)
            yield

    namespace["batch_lock"] = timed_lock
    store = SceneVersionStore(spec.get("project", PROJECT), 3, root=root)
    batch = spec["batch"]
    mine = (2 * wid + 1, 2 * wid + 2)  # only this worker targets them: every call appends
    while time.time() < spec["start_at"]:
        time.sleep(0.001)
    start = time.perf_counter()
    for i in range(count):
        store.conform(batch, mine[i % 2], reason=f"{spec['tag']}w{wid}-{i}")
    return {"elapsed": time.perf_counter() - start, "waits": waits}


def contend(root: Path, specs: list[dict[str, Any]]) -> tuple[float, list[float]]:
    """Run one worker process per spec from a common start; appends/s and all lock waits."""
    start_at = time.time() + 1.0
    procs = []
    for spec in specs:
        spec = {**spec, "root": str(root), "start_at": start_at}
        procs.append(
            subprocess.Popen(
                [sys.executable, str(BENCH_SCRIPT), "--worker", json.dumps(spec)],
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"worker failed ({p.returncode})")
        results.append(json.loads(out))
    total = sum(s["count"] for s in specs)
    wall = max(r["elapsed"] for r in results)
    return total / wall, [w for r in results for w in r["waits"]]


def reasons_in_log(root: Path, batch: str, project: str = PROJECT) -> dict[str, int]:
    """How many times each reason occurs in ``batch``'s log."""
    counts: dict[str, int] = {}
    log = root / project / batch[:6] / "scenes" / f"{batch}.events.jsonl"
    for event in read_log_events(log, batch):
        if event.reason:
            counts[event.reason] = counts.get(event.reason, 0) + 1
    return counts


def row_contended(root: Path, rounds: int) -> list[Row]:
    """Rows 3a (throughput), 3b (p99 lock wait), 3c (4 batches vs one)."""
    store = SceneVersionStore(PROJECT, 3, root=root)
    batches = [f"ep_003_BATCH_{n:03d}" for n in range(1, 5)]
    with no_fsync():
        for batch in batches:
            for v in range(9):
                store.write_scene_candidate(batch, scene(batch, 12, str(v)))
            store.conform(batch, 9)  # nobody's: every worker's first conform appends
    count = COUNT
    ours1: list[float] = []
    prim1: list[float] = []
    ours4: list[float] = []
    waits_ours: list[float] = []
    waits_prim: list[float] = []
    for r in range(rounds):
        rate, waits = contend(
            root,
            [
                {"kind": "ours", "batch": batches[0], "count": count, "id": w, "tag": f"one{r}-"}
                for w in range(WORKERS)
            ],
        )
        ours1.append(rate)
        waits_ours += waits
        rate, waits = contend(
            root,
            [
                {"kind": "primitive", "file": f"one{r}", "count": count, "id": w}
                for w in range(WORKERS)
            ],
        )
        prim1.append(rate)
        waits_prim += waits
        rate, _ = contend(
            root,
            [
                {"kind": "ours", "batch": batches[w], "count": count, "id": w, "tag": f"four{r}-"}
                for w in range(WORKERS)
            ],
        )
        ours4.append(rate)
    # No lost or duplicated events: every worker's every call is in the log, once.
    reasons = reasons_in_log(root, batches[0])
    expected = [
        f"one{r}-w{w}-{i}" for r in range(rounds) for w in range(WORKERS) for i in range(count)
    ]
    lost = sum(1 for reason in expected if reason not in reasons)
    duplicated = sum(1 for n in reasons.values() if n > 1)
    o1, p1, o4 = (statistics.median(x) for x in (ours1, prim1, ours4))
    p99, p99_prim = pct(waits_ours, 0.99), pct(waits_prim, 0.99)
    return [
        {
            "row": "3a. 4 processes, one batch: throughput",
            "ours": f"{o1:,.0f}/s",
            "base": f"{p1:,.0f}/s",
            "base_what": "the primitive, 4 processes, one file",
            "ratio": o1 / p1,
            "target": "≥ 0.8×, none lost",
            "ok": o1 / p1 >= 0.8 and not lost and not duplicated,
            "note": f"lost {lost}, duplicated {duplicated}",
        },
        {
            "row": "3b. 4 processes, one batch: p99 lock wait",
            "ours": us(p99),
            "base": us(p99_prim),
            "base_what": "blocking flock, same load",
            "ratio": p99 / p99_prim,
            "target": "≤ 50 ms",
            "ok": p99 <= 0.05,
        },
        {
            "row": "3c. 4 processes, 4 batches vs one batch",
            "ours": f"{o4:,.0f}/s",
            "base": f"{o1:,.0f}/s",
            "base_what": "scenelog, 4 processes, one batch",
            "ratio": o4 / o1,
            "target": "≥ 1.5×",
            "ok": o4 / o1 >= 1.5,
        },
    ]
