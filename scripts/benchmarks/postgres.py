"""Rows 13a-13f: the PostgreSQL backend against eventsourcing's PostgreSQL recorder.

One throwaway server for the whole step, started the way ``tests/pgserver.py``
does it (``initdb``/``pg_ctl`` of the newest ``/usr/lib/postgresql/*/bin``
through ``runuser -u postgres``), but durable: ``fsync`` and
``synchronous_commit`` on, as a studio runs it. Both sides reach it over TCP
on 127.0.0.1, scenelog in database ``scenelog``, eventsourcing 9
(``PERSISTENCE_MODULE=eventsourcing.postgres``, ``POSTGRES_*`` settings) in
database ``peer``.

Rows: appends/s with one writer; 4 processes on one batch; 4 processes on 4
batches against 4 processes on 4 aggregates (target: ahead by ≥ 1.5×); replay
of 100,000 events (a fresh read and fold against an aggregate rebuild; target:
ahead); watcher latency p50/p99 (target p99 ≤ 10 ms).

Invariants: every worker is a separate process started from a common
wall-clock start; throughput is total appends over the slowest worker's time;
each scenelog worker conforms only its own two versions, so every call
appends; the 100k-event fixtures are built outside any timed region (ours by
one bulk INSERT of lines made by the file backend, chained and byte-identical;
theirs by saves of 1,000 events); the server is stopped and its folder removed
whatever happens. Without server binaries, psycopg or eventsourcing, the step
returns one row saying what is missing (it never fails the run).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .fixtures import REPO, big_log, scene
from .report import Row, missing
from .timing import paired, pct, seconds, us

PROJECT = "bench"
FILE_PROJECT = "bench_pg"
"""The file-root project the 100k-event fixture's lines are made in."""
WORKERS = 4
COUNT = 150
"""Appends per worker per round (and per round of the single writer)."""
REPLAY_EVENTS = 100_000
WATCH_APPENDS = 200


def _missing(what: str) -> list[Row]:
    return missing(
        "13. PostgreSQL backend vs eventsourcing (PostgreSQL)",
        "ahead on 4×4 by ≥ 1.5× and on replay; watcher p99 ≤ 10 ms",
        what,
    )


def _run_as_postgres(*args: str) -> None:
    done = subprocess.run(
        ["runuser", "-u", "postgres", "--", *args], capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()}")


@contextlib.contextmanager
def server() -> Iterator[tuple[str, int]]:
    """A durable throwaway cluster on 127.0.0.1: yields (bin folder, port); stopped at the end."""
    import pwd

    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    if not found:
        raise LookupError("no PostgreSQL server binaries (apt-get install postgresql)")
    bindir = os.path.dirname(found[-1])
    pw = pwd.getpwnam("postgres")
    folder = tempfile.mkdtemp(prefix="scenelog-bench-pg-")
    os.chmod(folder, 0o755)
    data = os.path.join(folder, "data")
    os.mkdir(data, 0o700)
    for path in (folder, data):
        os.chown(path, pw.pw_uid, pw.pw_gid)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    started = False
    try:
        _run_as_postgres(
            os.path.join(bindir, "initdb"), "--auth=trust", "--username=postgres",
            "--encoding=UTF8", "--locale=C", "-D", data,
        )  # fmt: skip
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={folder} "
            "-c max_connections=100 -c idle_in_transaction_session_timeout=60s"
        )
        _run_as_postgres(
            os.path.join(bindir, "pg_ctl"), "-D", data, "-l", os.path.join(folder, "log"),
            "-o", options, "-w", "start",
        )  # fmt: skip
        started = True
        yield bindir, port
    finally:
        if started:
            with contextlib.suppress(Exception):
                _run_as_postgres(os.path.join(bindir, "pg_ctl"), "-D", data, "-m", "fast", "stop")
        shutil.rmtree(folder, ignore_errors=True)


# ── workers: separate processes ─────────────────────────────────────────────

WORKER = """
import json, os, sys, time
spec = json.loads(sys.argv[1])
if spec["kind"] == "ours":
    from eventstore import SceneVersionStore
    store = SceneVersionStore(spec["project"], spec["batch"][:6], root=spec["url"])
    mine = (2 * spec["id"] + 1, 2 * spec["id"] + 2)
    def one(i):
        store.conform(spec["batch"], mine[i % 2], reason=f"w{spec['id']}-{i}")
else:
    os.environ.update(spec["env"])
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event
    class Batch(Aggregate):
        @event("Created")
        def __init__(self, batch_id):
            self.batch_id, self.active = batch_id, 1
        @event("Conformed")
        def conform(self, version, reason):
            self.active = version
    app = Application()
    agg = Batch(spec["batch"])
    app.save(agg)
    def one(i):
        agg.conform(1 + i % 2, "approved in dailies")
        app.save(agg)
one(0)  # connections and caches warm before the start
while time.time() < spec["start_at"]:
    time.sleep(0.001)
start = time.perf_counter()
for i in range(1, spec["count"] + 1):
    one(i)
print(json.dumps({"elapsed": time.perf_counter() - start}))
"""


def _contend(specs: list[dict[str, Any]]) -> float:
    """Appends/s of one worker process per spec from a common start (slowest worker's time)."""
    start_at = time.time() + 2.0
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, json.dumps({**spec, "start_at": start_at})],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
        )
        for spec in specs
    ]
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"worker failed ({p.returncode})")
        results.append(json.loads(out))
    return float(sum(s["count"] for s in specs) / max(r["elapsed"] for r in results))


# ── fixtures ────────────────────────────────────────────────────────────────


def _bulk_log(root: Path, url: str, batch: str) -> None:
    """A 100k-event batch in the database: lines made by the file backend, one INSERT."""
    import psycopg

    from eventstore.log import line_hash
    from eventstore.log import open_log as open_any

    big_log(root, batch, REPLAY_EVENTS, 2, project=FILE_PROJECT)
    source = open_any(FILE_PROJECT, str(root))
    lines = source.raw(batch).lines
    seqs = list(range(1, len(lines) + 1))
    ids = [json.loads(line)["event_id"] for line in lines]
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO scenelog_events (project, batch_id, seq, event_id, line) "
            "SELECT %s, %s, s, e, l FROM unnest(%s::bigint[], %s::text[], %s::text[]) "
            "AS t(s, e, l)",
            (PROJECT, batch, seqs, ids, [line.decode() for line in lines]),
        )
        for name in source.body_names(batch):
            version = int(name.rsplit(".v", 1)[1][:3]) if ".v" in name else None
            conn.execute(
                "INSERT INTO scenelog_bodies (project, batch_id, name, version, data) "
                "VALUES (%s, %s, %s, %s, %s)",
                (PROJECT, batch, name, version, source.read_body(batch, name)),
            )
        conn.execute(
            "INSERT INTO scenelog_heads (project, batch_id, episode, seq, hash) "
            "VALUES (%s, %s, %s, %s, %s)",
            (PROJECT, batch, batch[:6], len(lines), line_hash(lines[-1])),
        )


WATCHER = """
import sys, time, json
from projections import watch
def ready():
    print("ready", flush=True)
for e in watch("bench", root=sys.argv[1], episode=8, types=["conformed"], on_ready=ready):
    print(json.dumps([e.seq, time.monotonic()]), flush=True)
"""


def _watch_latencies(url: str) -> list[float]:
    from eventstore import SceneVersionStore

    store = SceneVersionStore(PROJECT, 8, root=url)
    batch = "ep_008_BATCH_001"
    store.write_scene_candidate(batch, scene(batch, 12))
    store.write_scene_candidate(batch, scene(batch, 13))
    proc = subprocess.Popen(
        [sys.executable, "-c", WATCHER, url],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "ready"
        returned: dict[int, float] = {}
        turn = 0
        for _ in range(WATCH_APPENDS):
            turn ^= 1
            manifest = store.conform(batch, 1 + turn)
            returned[manifest.seq] = time.monotonic()
            time.sleep(random.uniform(0.002, 0.02))  # the gaps between commands of a farm
        latencies = []
        for _ in range(WATCH_APPENDS):
            seq, at = json.loads(proc.stdout.readline())
            latencies.append(max(at - returned[seq], 0.0))
        return latencies
    finally:
        proc.kill()
        proc.wait()


# ── the rows ────────────────────────────────────────────────────────────────


def row_postgres(root: Path, rounds: int) -> list[Row]:
    """Rows 13a-13f on one throwaway server; ``rounds`` rounds of each contended measure."""
    try:
        import eventsourcing.postgres  # type: ignore[import-not-found, unused-ignore]  # noqa: F401
        import psycopg
    except ImportError:
        return _missing("not installed: pip install -e '.[postgres]' 'eventsourcing[postgres]'")
    try:
        context = server()
        _bindir, port = context.__enter__()
    except (LookupError, KeyError, RuntimeError, OSError) as e:
        return _missing(f"no server: {e}")
    try:
        return _rows(root, port, max(1, rounds), psycopg)
    finally:
        context.__exit__(None, None, None)


def _rows(root: Path, port: int, rounds: int, psycopg: Any) -> list[Row]:
    from eventstore import SceneVersionStore
    from eventstore.log import open_log
    from eventstore.manifest import Fold
    from eventstore.pglog import init_schema

    admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("CREATE DATABASE scenelog")
        conn.execute("CREATE DATABASE peer")
    url = f"postgresql://postgres@127.0.0.1:{port}/scenelog"
    init_schema(url)
    peer_env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": "peer",
        "POSTGRES_HOST": "127.0.0.1",
        "POSTGRES_PORT": str(port),
        "POSTGRES_USER": "postgres",
        "POSTGRES_PASSWORD": "",
        "CREATE_TABLE": "y",
    }
    store = SceneVersionStore(PROJECT, 3, root=url)
    batches = [f"ep_003_BATCH_{n:03d}" for n in range(1, WORKERS + 1)]
    for batch in batches:
        for v in range(2 * WORKERS + 1):
            store.write_scene_candidate(batch, scene(batch, 12, str(v)))
        store.conform(batch, 2 * WORKERS + 1)  # nobody's: every worker's first conform appends

    def ours(n: int, bs: list[str]) -> list[dict[str, Any]]:
        return [
            {"kind": "ours", "project": PROJECT, "url": url, "batch": bs[w % len(bs)],
             "count": COUNT, "id": w}
            for w in range(n)
        ]  # fmt: skip

    def theirs(n: int, tag: str, count: int = COUNT) -> list[dict[str, Any]]:
        # The recorder's table is created once, below: workers that all ran
        # CREATE TABLE IF NOT EXISTS at once could fail in the catalog
        # ("tuple concurrently updated").
        env = {**peer_env, "CREATE_TABLE": "n"}
        return [
            {"kind": "theirs", "env": env, "batch": f"{tag}{w}", "count": count} for w in range(n)
        ]

    _contend([{**theirs(1, "setup-", 1)[0], "env": peer_env}])  # creates the table

    one_ours: list[float] = []
    one_theirs: list[float] = []
    shared: list[float] = []
    four_ours: list[float] = []
    four_theirs: list[float] = []
    for r in range(rounds):
        one_ours.append(_contend(ours(1, batches)))
        one_theirs.append(_contend(theirs(1, f"one{r}-")))
        shared.append(_contend(ours(WORKERS, batches[:1])))
        four_ours.append(_contend(ours(WORKERS, batches)))
        four_theirs.append(_contend(theirs(WORKERS, f"four{r}-")))
    o1, t1, s1, o4, t4 = (
        statistics.median(x) for x in (one_ours, one_theirs, shared, four_ours, four_theirs)
    )

    # Replay: 100k events, a fresh read and fold against an aggregate rebuild.
    big = "ep_013_BATCH_001"
    _bulk_log(root, url, big)
    os.environ.update(peer_env)
    from eventsourcing.application import Application  # type: ignore[import-not-found, unused-ignore]
    from eventsourcing.domain import Aggregate, event  # type: ignore[import-not-found, unused-ignore]

    class Batch(Aggregate):  # type: ignore[misc, unused-ignore]
        @event("Created")  # type: ignore[untyped-decorator, unused-ignore]
        def __init__(self, batch_id: str) -> None:
            self.batch_id, self.active = batch_id, 1

        @event("Conformed")  # type: ignore[untyped-decorator, unused-ignore]
        def conform(self, version: int, reason: str) -> None:
            self.active = version

    app: Any = Application()
    agg = Batch(big)
    for _ in range(REPLAY_EVENTS // 1000):
        for i in range(1000):
            agg.conform(1 + i % 2, "approved in dailies")
        app.save(agg)
    log = open_log(PROJECT, url)

    def ours_replay() -> float:
        return seconds(lambda: Fold(big).apply_all(log.read(big)).manifest())

    def theirs_replay() -> float:
        return seconds(lambda: app.repository.get(agg.id))

    replay_ours, replay_theirs = paired(ours_replay, theirs_replay, rounds)
    latencies = _watch_latencies(url)
    p50, p99 = pct(latencies, 0.5), pct(latencies, 0.99)
    peer = "eventsourcing 9, PostgreSQL recorder, same server"
    return [
        {
            "row": "13a. PostgreSQL: appends/s, 1 writer",
            "ours": f"{o1:,.0f}/s",
            "base": f"{t1:,.0f}/s",
            "base_what": f"{peer}, one event per save",
            "ratio": o1 / t1,
            "target": "reported",
            "ok": True,
        },
        {
            "row": "13b. PostgreSQL: appends/s, 4 processes on 1 batch",
            "ours": f"{s1:,.0f}/s",
            "base": f"{o1:,.0f}/s",
            "base_what": "scenelog on PostgreSQL, 1 writer",
            "ratio": s1 / o1,
            "target": "reported",
            "ok": True,
        },
        {
            "row": "13c. PostgreSQL: appends/s, 4 processes × 4 batches",
            "ours": f"{o4:,.0f}/s",
            "base": f"{t4:,.0f}/s",
            "base_what": f"{peer}, 4 processes × 4 aggregates",
            "ratio": o4 / t4,
            "target": "≥ 1.5× (ahead)",
            "ok": o4 / t4 >= 1.5,
        },
        {
            "row": f"13d. PostgreSQL: replay {REPLAY_EVENTS:,} events",
            "ours": us(replay_ours),
            "base": us(replay_theirs),
            "base_what": f"{peer}, aggregate rebuild",
            "ratio": replay_ours / replay_theirs,
            "target": "< 1× (ahead)",
            "ok": replay_ours < replay_theirs,
        },
        {
            "row": "13e. PostgreSQL: watcher latency p50",
            "ours": us(p50),
            "base": "-",
            "base_what": "LISTEN/NOTIFY, append returned → delivered",
            "ratio": None,
            "target": "reported",
            "ok": True,
        },
        {
            "row": "13f. PostgreSQL: watcher latency p99",
            "ours": us(p99),
            "base": "-",
            "base_what": f"{WATCH_APPENDS} appends 2-20 ms apart",
            "ratio": None,
            "target": "≤ 10 ms",
            "ok": p99 <= 0.010,
        },
    ]
