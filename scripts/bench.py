"""scenelog benchmark: every row a ratio against what it stands on, measured side by side.

    .venv/bin/pip install -q -e '.[bench]' && .venv/bin/python scripts/bench.py

Each row runs scenelog and its baseline in the same process (or the same set of
processes), interleaved over several rounds, and reports the median of each
and their ratio — never an absolute time compared with a number from
elsewhere. Prints one Markdown table and writes it, with a description of the
machine and the command, to docs/PERFORMANCE.md (``--no-write`` to skip).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from eventstore import (  # noqa: E402
    Conformed,
    FileLog,
    Layout,
    Scene,
    SceneVersionStore,
)
from eventstore.events import decode_lines, encode_event, new_event_id, utc_now  # noqa: E402
from eventstore.log import read_log_events  # noqa: E402
from projections import Projection  # noqa: E402

PROJECT = "bench"
Row = dict[str, Any]


# ── helpers ──────────────────────────────────────────────────────────────────


def scene(batch_id: str, shots: int, salt: str = "") -> Scene:
    beats = [
        {"shot_id": f"sh{i:04d}", "raw": {"description": f"shot {i} {salt}"}} for i in range(shots)
    ]
    return Scene({"scene_id": batch_id, "beats": beats})


@contextlib.contextmanager
def no_fsync() -> Iterator[None]:
    """Setup only: build large fixtures without paying for durability."""
    real = os.fsync
    os.fsync = lambda fd: None
    try:
        yield
    finally:
        os.fsync = real


def paired(
    ours: Callable[[], float], base: Callable[[], float], rounds: int
) -> tuple[float, float]:
    """Run both alternately ``rounds`` times; medians of their per-op seconds."""
    a, b = [], []
    for i in range(rounds):
        if i % 2:
            b.append(base())
            a.append(ours())
        else:
            a.append(ours())
            b.append(base())
    return statistics.median(a), statistics.median(b)


def per_op(fn: Callable[[int], None], n: int) -> float:
    start = time.perf_counter()
    fn(n)
    return (time.perf_counter() - start) / n


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} µs" if seconds < 0.01 else f"{seconds * 1e3:,.1f} ms"


def conformed_line(batch_id: str, version: int, prev: str) -> bytes:
    return encode_event(
        Conformed(
            seq=1,
            batch_id=batch_id,
            version=version,
            at=utc_now(),
            actor="bench@farm",
            reason="approved in dailies",
            event_id=new_event_id(),
            prev=prev,
            previous_active=1,
        )
    )


class Primitive:
    """The bare durable append: encode + flock + write + fsync of one line."""

    def __init__(self, folder: Path, name: str = "primitive") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.lock_fd = os.open(folder / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        self.fd = os.open(folder / f"{name}.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.prev = "0" * 64

    def append(self, n: int) -> None:
        for i in range(n):
            line = conformed_line("ep_001_BATCH_001", 1 + i % 2, self.prev) + b"\n"
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
            os.write(self.fd, line)
            os.fsync(self.fd)
            fcntl.flock(self.lock_fd, fcntl.LOCK_UN)


# ── rows ─────────────────────────────────────────────────────────────────────


def row_single_append(root: Path, rounds: int) -> Row:
    store = SceneVersionStore(PROJECT, 1, root=root)
    batch = "ep_001_BATCH_001"
    store.write_scene_candidate(batch, scene(batch, 12))
    store.write_scene_candidate(batch, scene(batch, 13))
    prim = Primitive(root / "prim1")
    turn = [0]

    def ours(n: int) -> None:
        for _ in range(n):
            turn[0] ^= 1
            store.conform(batch, 1 + turn[0], reason="approved in dailies")

    a, b = paired(lambda: per_op(ours, 200), lambda: per_op(prim.append, 200), rounds)
    return {
        "row": "1. single-writer pointer append",
        "ours": us(a),
        "base": us(b),
        "base_what": "encode+flock+write+fsync",
        "ratio": a / b,
        "target": "≤ 1.5×",
        "ok": a / b <= 1.5,
        "ours_s": a,
    }


class ReferenceStore:
    """How the reference mutates: read the whole manifest, append, rewrite it atomically."""

    def __init__(self, folder: Path, batch_id: str) -> None:
        self.folder, self.batch_id = folder, batch_id
        folder.mkdir(parents=True, exist_ok=True)
        self.manifest = folder / f"{batch_id}.versions.json"
        self.lock = folder / f"{batch_id}.versions.lock"

    def _atomic(self, path: Path, data: bytes) -> None:
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dfd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def append(self, body: Scene) -> int:
        fd = os.open(self.lock, os.O_CREAT | os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            manifest = json.loads(self.manifest.read_bytes())
            n = max(v["version"] for v in manifest["versions"]) + 1
            target = self.folder / f"{self.batch_id}.v{n:03d}.json"
            self._atomic(target, body.to_json())
            from eventstore import structure_fingerprint

            manifest["versions"].append(
                {
                    "version": n,
                    "artifact": target.name,
                    "state": "candidate",
                    "downstream": "not_derived",
                    "kind": "reshoot",
                    "source": "rederive",
                    "parent_version": None,
                    "structure_fingerprint": structure_fingerprint(body),
                    "shot_count": len(body.beats),
                    "created_at": utc_now(),
                }
            )
            self._atomic(self.manifest, json.dumps(manifest, indent=2).encode())
            return n
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def seed(self, versions: int, body: Scene) -> None:
        entries = [
            {
                "version": v,
                "artifact": f"{self.batch_id}.v{v:03d}.json",
                "state": "candidate",
                "downstream": "not_derived",
                "kind": "reshoot",
                "source": "rederive",
                "parent_version": None,
                "structure_fingerprint": "0" * 64,
                "shot_count": 12,
                "created_at": utc_now(),
            }
            for v in range(1, versions + 1)
        ]
        self.manifest.write_text(
            json.dumps(
                {
                    "schema_version": 2,
                    "batch_id": self.batch_id,
                    "active_version": 1,
                    "versions": entries,
                },
                indent=2,
            )
        )


def row_candidates(root: Path, rounds: int) -> list[Row]:
    store = SceneVersionStore(PROJECT, 2, root=root)
    small, large = "ep_002_BATCH_010", "ep_002_BATCH_999"
    with no_fsync():
        for batch, count in ((small, 10), (large, 1000)):
            for v in range(count):
                store.write_scene_candidate(batch, scene(batch, 12, f"seed {v}"))
    ref = ReferenceStore(root / "reference", large)
    ref.seed(1000, scene(large, 12))
    counter = [0]

    def ours(batch: str) -> Callable[[int], None]:
        def run(n: int) -> None:
            for _ in range(n):
                counter[0] += 1
                store.write_scene_candidate(batch, scene(batch, 12, str(counter[0])))

        return run

    def reference(n: int) -> None:
        for _ in range(n):
            counter[0] += 1
            ref.append(scene(large, 12, str(counter[0])))

    small_s, large_s, ref_s = [], [], []
    for _ in range(rounds):
        small_s.append(per_op(ours(small), 40))
        large_s.append(per_op(ours(large), 40))
        ref_s.append(per_op(reference, 40))
    a10, a1000, r1000 = (statistics.median(x) for x in (small_s, large_s, ref_s))
    return [
        {
            "row": "2a. candidate append, 1,000 vs 10 versions",
            "ours": us(a1000),
            "base": us(a10),
            "base_what": "scenelog at 10 versions",
            "ratio": a1000 / a10,
            "target": "≤ 1.3× (flat)",
            "ok": a1000 / a10 <= 1.3,
        },
        {
            "row": "2b. candidate append at 1,000 versions vs reference design",
            "ours": us(a1000),
            "base": us(r1000),
            "base_what": "read+append+atomic rewrite+fsync of versions.json",
            "ratio": a1000 / r1000,
            "target": "< 1× (ahead)",
            "ok": a1000 < r1000,
        },
    ]


def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One contending process (run as `bench.py --worker SPEC`)."""
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
    import eventstore.log as log_module

    real_lock = log_module.batch_lock

    @contextlib.contextmanager
    def timed_lock(*args: Any, **kwargs: Any) -> Iterator[None]:
        t = time.perf_counter()
        with real_lock(*args, **kwargs):
            waits.append(time.perf_counter() - t)
            yield

    log_module.batch_lock = timed_lock  # type: ignore[assignment]
    store = SceneVersionStore(PROJECT, 3, root=root)
    batch = spec["batch"]
    mine = (2 * wid + 1, 2 * wid + 2)  # only this worker targets them: every call appends
    while time.time() < spec["start_at"]:
        time.sleep(0.001)
    start = time.perf_counter()
    for i in range(count):
        store.conform(batch, mine[i % 2], reason=f"{spec['tag']}w{wid}-{i}")
    return {"elapsed": time.perf_counter() - start, "waits": waits}


def _contend(root: Path, specs: list[dict[str, Any]]) -> tuple[float, list[float]]:
    start_at = time.time() + 1.0
    procs = []
    for spec in specs:
        spec = {**spec, "root": str(root), "start_at": start_at}
        procs.append(
            subprocess.Popen(
                [sys.executable, __file__, "--worker", json.dumps(spec)],
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


def row_contended(root: Path, rounds: int) -> list[Row]:
    store = SceneVersionStore(PROJECT, 3, root=root)
    batches = [f"ep_003_BATCH_{n:03d}" for n in range(1, 5)]
    with no_fsync():
        for batch in batches:
            for v in range(9):
                store.write_scene_candidate(batch, scene(batch, 12, str(v)))
            store.conform(batch, 9)  # nobody's: every worker's first conform appends
    count = 150
    ours1, prim1, ours4, waits_ours, waits_prim = [], [], [], [], []
    for r in range(rounds):
        rate, waits = _contend(
            root,
            [
                {"kind": "ours", "batch": batches[0], "count": count, "id": w, "tag": f"one{r}-"}
                for w in range(4)
            ],
        )
        ours1.append(rate)
        waits_ours += waits
        rate, waits = _contend(
            root,
            [{"kind": "primitive", "file": f"one{r}", "count": count, "id": w} for w in range(4)],
        )
        prim1.append(rate)
        waits_prim += waits
        rate, _ = _contend(
            root,
            [
                {"kind": "ours", "batch": batches[w], "count": count, "id": w, "tag": f"four{r}-"}
                for w in range(4)
            ],
        )
        ours4.append(rate)
    # No lost or duplicated events: every worker's every call is in the log, once.
    reasons = Counter_of(root, batches[0])
    expected = [f"one{r}-w{w}-{i}" for r in range(rounds) for w in range(4) for i in range(count)]
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


def Counter_of(root: Path, batch: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    log = root / PROJECT / batch[:6] / "scenes" / f"{batch}.events.jsonl"
    for event in read_log_events(log, batch):
        if event.reason:
            counts[event.reason] = counts.get(event.reason, 0) + 1
    return counts


def _big_log(root: Path, batch: str, events: int, versions: int) -> Path:
    """A log of ``versions`` appended events then pointer events up to ``events``."""
    log = FileLog(Layout.of(PROJECT, root))
    store = SceneVersionStore(PROJECT, batch[:6], root=root)
    with no_fsync():
        for v in range(versions):
            store.write_scene_candidate(batch, scene(batch, 12, str(v)))
        active, remaining = 1, events - versions
        while remaining > 0:
            chunk = []
            for _ in range(min(5000, remaining)):
                target = active % versions + 1
                chunk.append(
                    Conformed(
                        seq=0,
                        batch_id=batch,
                        version=target,
                        at=utc_now(),
                        actor="sup.ana@studio",
                        reason="approved in dailies",
                        event_id=new_event_id(),
                        prev=None,
                        previous_active=active,
                    )
                )
                active = target
            with log.session(batch) as session:
                session.append(chunk)
            remaining -= len(chunk)
        store.conform(batch, active % versions + 1)  # rewrites the view at the end
    return log.path(batch)


def fold_timer(root: Path, batch: str) -> Callable[[], float]:
    """Seconds for a reader's manifest of ``batch`` with its view deleted (a full fold)."""
    reader = Projection(PROJECT, root=root)
    view = reader.layout.batch(batch).view

    def timed() -> float:
        view.unlink(missing_ok=True)
        start = time.perf_counter()
        reader.manifest(batch)
        return time.perf_counter() - start

    return timed


def row_fold(root: Path, rounds: int) -> Row:
    batch = "ep_004_BATCH_001"
    path = _big_log(root, batch, 100_000, 100)
    data = path.read_bytes()

    def base() -> float:
        start = time.perf_counter()
        decode_lines(data)
        return time.perf_counter() - start

    a, b = paired(fold_timer(root, batch), base, rounds)
    return {
        "row": "4. fold of a 100k-event log (view deleted)",
        "ours": us(a),
        "base": us(b),
        "base_what": "msgspec decode_lines of the same bytes",
        "ratio": a / b,
        "target": "≤ 2×",
        "ok": a / b <= 2,
        "note": f"{100_000 / a:,.0f} events/s",
    }


def row_manifest(root: Path, rounds: int) -> Row:
    big, small = "ep_005_BATCH_001", "ep_005_BATCH_002"
    _big_log(root, big, 100_000, 10)
    _big_log(root, small, 11, 10)
    reader = Projection(PROJECT, root=root)

    def read(batch: str) -> Callable[[int], None]:
        def run(n: int) -> None:
            for _ in range(n):
                reader.manifest(batch)

        return run

    a, b = paired(lambda: per_op(read(big), 2000), lambda: per_op(read(small), 2000), rounds)
    return {
        "row": "5. manifest read, 100k events vs 10 (10 versions each)",
        "ours": us(a),
        "base": us(b),
        "base_what": "scenelog on the 10-event batch",
        "ratio": a / b,
        "target": "≤ 1.5×",
        "ok": a / b <= 1.5,
    }


def row_episode(root: Path, rounds: int) -> Row:
    store = SceneVersionStore(PROJECT, 6, root=root)
    with no_fsync():
        for n in range(2000):
            batch = f"ep_006_BATCH_{n % 1000:03d}" if n < 1000 else None
            if batch is None:
                break
            store.write_scene_candidate(batch, scene(batch, 8))
            if n % 3 == 0:
                store.write_scene_candidate(batch, scene(batch, 9))
                store.conform(batch, 2)
    store7 = SceneVersionStore(PROJECT, 7, root=root)
    with no_fsync():
        for n in range(1000):
            batch = f"ep_007_BATCH_{n:03d}"
            store7.write_scene_candidate(batch, scene(batch, 8))
    reader = Projection(PROJECT, root=root)
    views = [
        reader.layout.batch(b).view
        for ep in ("ep_006", "ep_007")
        for b in reader.layout.batch_ids(ep)
    ]
    assert len(views) == 2000

    def ours() -> float:
        start = time.perf_counter()
        pending = reader.pending("ep_006") + reader.pending("ep_007")
        assert len(pending) == 334
        return time.perf_counter() - start

    def base() -> float:
        start = time.perf_counter()
        for view in views:
            with open(view, "rb") as f:
                f.read()
        return time.perf_counter() - start

    a, b = paired(ours, base, rounds)
    return {
        "row": "6. `pending` over 2,000 batches",
        "ours": us(a),
        "base": us(b),
        "base_what": "reading the 2,000 views' bytes",
        "ratio": a / b,
        "target": "≤ 3×",
        "ok": a / b <= 3,
    }


WATCHER = """
import sys, time, json, threading
from projections import watch
root, poll = sys.argv[1], sys.argv[2] == "poll"
def ready():
    print("ready", flush=True)
for e in watch("bench", root=root, episode=8, types=["conformed"], poll=poll, interval=0.1,
               on_ready=ready):
    print(json.dumps([e.seq, time.monotonic()]), flush=True)
"""


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def row_watch(root: Path, appends: int) -> list[Row]:
    store = SceneVersionStore(PROJECT, 8, root=root)
    batch = "ep_008_BATCH_001"
    store.write_scene_candidate(batch, scene(batch, 12))
    store.write_scene_candidate(batch, scene(batch, 13))
    rows = []
    for mode in ("live", "poll"):
        proc = subprocess.Popen(
            [sys.executable, "-c", WATCHER, str(root), mode],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert proc.stdout is not None
        try:
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(1.5)  # let the live loop's first rescan pass before measuring
            cpu0, t0 = _cpu_seconds(proc.pid), time.monotonic()
            time.sleep(5.0)  # idle: nothing is appended
            idle = (_cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0)
            returned: dict[int, float] = {}
            turn = 0
            for _ in range(appends):
                turn ^= 1
                manifest = store.conform(batch, 1 + turn)
                returned[manifest.seq] = time.monotonic()
                time.sleep(random.uniform(0.002, 0.02))
            latencies = []
            for _ in range(appends):
                seq, at = json.loads(proc.stdout.readline())
                latencies.append(max(at - returned[seq], 0.0))
        finally:
            proc.kill()
            proc.wait()
        p50, p99 = pct(latencies, 0.5), pct(latencies, 0.99)
        if mode == "live":
            ok = p50 <= 0.010 and p99 <= 0.050 and idle < 0.02
            target = "p50 ≤ 10 ms, p99 ≤ 50 ms, idle < 2% CPU"
        else:
            ok = p99 <= 0.150 and idle < 0.02
            target = "p99 ≤ interval (100 ms) + 50 ms"
        rows.append(
            {
                "row": f"7. watcher latency, {mode} ({appends} appends)",
                "ours": f"p50 {us(p50)}, p99 {us(p99)}",
                "base": "-",
                "base_what": "append returned → event delivered",
                "ratio": None,
                "target": target,
                "ok": ok,
                "note": f"idle CPU {idle * 100:.2f}%",
            }
        )
    return rows


def row_peer(root: Path, rounds: int, ours_append: float) -> list[Row]:
    try:
        from eventsourcing.application import Application
        from eventsourcing.domain import Aggregate, event
    except ImportError:
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

    class Batch(Aggregate):  # type: ignore[misc]
        @event("Created")
        def __init__(self, batch_id: str) -> None:
            self.batch_id, self.active = batch_id, 1

        @event("Conformed")
        def conform(self, version: int, reason: str) -> None:
            self.active = version

    os.environ.update(
        PERSISTENCE_MODULE="eventsourcing.sqlite", SQLITE_DBNAME=str(root / "peer.sqlite")
    )
    app: Application = Application()
    agg = Batch("ep_009_BATCH_001")
    app.save(agg)

    def theirs_append(n: int) -> None:
        for i in range(n):
            agg.conform(1 + i % 2, "approved in dailies")
            app.save(agg)

    theirs_a = statistics.median(per_op(theirs_append, 200) for _ in range(rounds))
    replay_events = 20_000
    for _ in range(replay_events // 1000):
        for i in range(1000):
            agg.conform(1 + i % 2, "approved in dailies")
        app.save(agg)
    batch = "ep_009_BATCH_002"
    _big_log(root, batch, replay_events, 2)

    def theirs_replay() -> float:
        start = time.perf_counter()
        app.repository.get(agg.id)
        return time.perf_counter() - start

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
            "row": f"8b. peer: replay {replay_events:,} events",
            "ours": us(a),
            "base": us(b),
            "base_what": "eventsourcing aggregate rebuild",
            "ratio": a / b,
            "target": "< 1× (ahead)",
            "ok": a < b,
        },
    ]


# ── report ───────────────────────────────────────────────────────────────────


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    fs = subprocess.run(["df", "-T", tempfile.gettempdir()], capture_output=True, text=True)
    fstype = fs.stdout.splitlines()[-1].split()[1] if fs.returncode == 0 else "?"
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem} RAM, {fstype} filesystem, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"msgspec {msgspec.__version__}"
    )


def table(rows: list[Row]) -> str:
    lines = [
        "| row | scenelog | baseline | ratio | target | pass |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}×"
        note = f" ({r['note']})" if r.get("note") else ""
        lines.append(
            f"| {r['row']} | {r['ours']}{note} | {r['base']} — {r['base_what']} | "
            f"{ratio} | {r['target']} | {'pass' if r['ok'] else '**MISS**'} |"
        )
    return "\n".join(lines)


def _single(rows: list[Row], root: Path, rounds: int) -> float:
    """Row 1's per-command time (measured now if row 1 did not run)."""
    for row in rows:
        if "ours_s" in row:
            return float(row["ours_s"])
    return float(row_single_append(root, rounds)["ours_s"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=5, help="rounds per row (default 5)")
    parser.add_argument("--dir", help="folder to build the stores in (default: a temp folder)")
    parser.add_argument("--no-write", action="store_true", help="do not write docs/PERFORMANCE.md")
    parser.add_argument(
        "--only", help="comma-separated step names, e.g. single,episode (implies --no-write)"
    )
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(json.loads(args.worker))))
        return 0
    root = Path(args.dir or tempfile.mkdtemp(prefix="scenelog-bench-"))
    rounds = args.rounds
    started = time.time()
    rows: list[Row] = []
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("single append", lambda: rows.append(row_single_append(root, rounds))),
        ("candidates", lambda: rows.extend(row_candidates(root, rounds))),
        ("contended", lambda: rows.extend(row_contended(root, max(3, rounds // 2)))),
        ("fold", lambda: rows.append(row_fold(root, rounds))),
        ("manifest", lambda: rows.append(row_manifest(root, rounds))),
        ("episode", lambda: rows.append(row_episode(root, rounds))),
        ("watch", lambda: rows.extend(row_watch(root, 200))),
        ("peer", lambda: rows.extend(row_peer(root, rounds, _single(rows, root, rounds)))),
    ]
    if args.only:
        wanted = set(args.only.split(","))
        steps = [s for s in steps if s[0].split()[0] in wanted]
        args.no_write = True
    for name, step in steps:
        t = time.time()
        print(f"bench: {name}…", file=sys.stderr, flush=True)
        step()
        print(f"bench: {name} done in {time.time() - t:.0f}s", file=sys.stderr, flush=True)
    result = table(rows)
    print(result)
    if not args.no_write:
        doc = REPO / "docs" / "PERFORMANCE.md"
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        doc.write_text(
            "# Performance\n\nEvery row is measured side by side with its baseline in one run "
            "(interleaved rounds, medians), and reported as a ratio; absolute times are for "
            "orientation only — this machine's shared disk swings ±30% between runs.\n\n"
            f"Machine: {machine()}.\n\n"
            "Command: `.venv/bin/pip install -q -e '.[bench]' && .venv/bin/python scripts/bench.py`"
            f" (run took {time.time() - started:.0f} s, {stamp}).\n\n"
            f"{result}\n\n{NOTES}"
        )
    shutil.rmtree(root, ignore_errors=True) if not args.dir else None
    return 0 if all(r["ok"] for r in rows) else 1


NOTES = """## How to read it

- **1** pays, per command, validation, the batch lock (a thread lock and a POSIX
  lock on the `.lock` sidecar through fasteners), a stat to catch up on other
  writers, the body check of R10, the event, the view rewrite, and the fsync.
  The primitive pays only encode, `flock`, write and fsync.
- **2** a candidate append writes its body durably (fsync of the body and of the
  folder) before its event; the view rewrite grows with the number of versions,
  everything else is O(1) thanks to the per-process log cache.
- **3** fsync happens after the lock is released (one fsync makes every earlier
  write durable), so contending writers overlap their fsyncs.
- **4, 5, 6** readers never lock: a manifest read is the view plus the log's last
  line; a fold decodes the whole log with `decode_lines` in one call.
- **7** inotify via watchfiles with a 4 ms step; poll mode rescans sizes every
  100 ms. The idle CPU is the live watcher's, measured over 5 s with nothing
  appended. `scripts/bench.py --only watch` runs this row alone.

## Rows that miss, and why

**1 (single-writer append, ~2.1–2.8× the primitive; target 1.5×).** Profiled
with cProfile and by timing each step. What was done: fsync moved after the
lock is released; paths, actor and body identity cached per process (a body
is re-read only if its inode, size or mtime changed); the lock sidecar kept
open between acquisitions; the log's last seq read with `pread` from its end;
the view swapped in with `renameat2(RENAME_EXCHANGE)` + unlink instead of a
rename over the old file (ext4's `auto_da_alloc` made that rename flush the new
file's data: 140 µs → 28 µs). What is left is the price of R17: rewriting the
`versions.json` view atomically after every commit creates and removes an inode
and rewrites a directory entry, and the log's `fsync` then has to commit that
metadata too. Measured in isolation on this disk, the same command without the
view write runs at ~1.4–1.5× the primitive. Writing the view in place (no new
inode) would meet the target but lets a reader see half a file; writing it
after returning would let tools that read `versions.json` see the old pointer
after `conform` returned. Neither is worth 100 µs.

**3a (4 processes on one batch, ~0.35–0.5× the primitive; target 0.8×).** The
lock is held for the catch-up (reading and checking the lines the other three
wrote), the body check, the append and the view rewrite: ~250 µs under
contention against the primitive's ~20 µs, of which the view rewrite is ~90 µs
(its metadata competes with the other writers' journal commits). Shorter lock
polling delays (0.05–2 ms) changed nothing measurable; without the view write
the row reaches ~0.65–0.7×. Four processes on two cores also preempt a lock
holder. Contention on different batches scales (3c), which is the case a farm
has: jobs of one batch are serialized by the pipeline anyway.

**8a (append vs eventsourcing + SQLite)** swings around 1× between runs
(0.8–1.7×): SQLite in WAL mode pays one fsync per transaction like us, and the
view rewrite of row 1 is what decides it.
"""

if __name__ == "__main__":
    raise SystemExit(main())
