"""Rows 14a-14b: ``scenelog serve`` (issue 14) — the gate over HTTP and the live event stream.

One ``scenelog serve --port 0`` child process for the whole step, on its own
root (``<run folder>/http``, project ``bench``, four batches of two versions).

Row 14a, the gate over HTTP: ``GET …/batches/{b}/gate`` on one kept-open
connection (``httpx.Client``), p50 and p99 per request, against
``Projection.is_fresh`` in this process on the same batch; the two sides are
timed alternately in rounds (odd rounds in-process first, as ``timing.paired``
does), so both see the same disk and load. Target: HTTP p99 ≤ 10 ms; the ratio
to the in-process p50 is shown for information and decides nothing.

Row 14b, the event stream: ``SSE_SUBSCRIBERS`` concurrent SSE clients (one
asyncio loop in this process, one connection each) on the same server while a
child process makes ``SSE_EVENTS`` commands (conform back and forth over the
four batches, one event each). Delivery latency is receipt time minus the
event's ``at`` (same host clock), p50/p99 over every delivery; "missed" counts
events a subscriber did not get, got twice, or got a ``reset`` instead of —
it must be 0. Target: 0 missed, delivery p99 ≤ 1 s, on this loaded 2-core
machine where server, 100 clients and the writer share the cores.

Invariants: the fixture is built before any timed region; the server is
terminated and reaped whatever happens (``finally``), and its stderr is drained
so its log can never block it. Without litestar, uvicorn or httpx (the
``serve``/``test`` extras; ``bench`` alone does not pull them) the step returns
one row saying what is missing (it never fails the run).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from eventstore import SceneVersionStore
from projections import Projection

from .fixtures import PROJECT, REPO, scene
from .report import Row, missing
from .timing import pct, us

if TYPE_CHECKING:
    import httpx

GATE_REQUESTS = 2000
"""Requests of each side of row 14a, spread over the step's rounds."""
SSE_SUBSCRIBERS = 100
SSE_EVENTS = 1000
GATE_TARGET_S = 0.010
SSE_TARGET_S = 1.0
BATCHES = [f"ep_014_BATCH_{n:03d}" for n in range(1, 5)]

WRITER = """
import sys
from eventstore import SceneVersionStore
root, project, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
batches = sys.argv[4:]
store = SceneVersionStore(project, 14, root=root)
for i in range(count):
    batch_id = batches[i % len(batches)]
    store.conform(batch_id, 2 if (i // len(batches)) % 2 == 0 else 1, reason=f"move {i}")
"""


def _missing(what: str) -> list[Row]:
    return missing(
        "14. `scenelog serve`: gate over HTTP, SSE fan-out",
        "gate p99 ≤ 10 ms; SSE 0 missed, p99 ≤ 1 s",
        what,
    )


def _build(root: Path) -> None:
    store = SceneVersionStore(PROJECT, 14, root=root)
    for batch_id in BATCHES:
        store.write_scene_candidate(batch_id, scene(batch_id, 3))
        store.write_scene_candidate(batch_id, scene(batch_id, 4, salt="b"))


def _start_server(root: Path) -> tuple[subprocess.Popen[str], str]:
    """A ``scenelog serve`` child on a free port, and its base URL."""
    command = [sys.executable, "-m", "projections", "--root", str(root), "--project", PROJECT]
    proc = subprocess.Popen(
        [*command, "serve", "--port", "0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    if not line.startswith("scenelog: serving "):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"scenelog serve did not start: {line.strip()!r}")
    stderr = proc.stderr
    threading.Thread(target=lambda: stderr.read(), daemon=True).start()
    return proc, line.split()[2].rstrip("/")


def _gate(root: Path, url: str, rounds: int) -> tuple[list[float], list[float]]:
    """Per-request seconds of the gate over HTTP and of ``is_fresh``, interleaved."""
    import httpx

    view = Projection(PROJECT, root=root)
    batch_id = BATCHES[0]
    path = f"{url}/v1/projects/{PROJECT}/batches/{batch_id}/gate"
    per_round = max(1, GATE_REQUESTS // rounds)
    remote: list[float] = []
    local: list[float] = []

    def over_http(client: httpx.Client) -> None:
        for _ in range(per_round):
            start = time.perf_counter()
            response = client.get(path)
            remote.append(time.perf_counter() - start)
            if response.status_code not in (200, 409):
                raise RuntimeError(f"gate over HTTP answered {response.status_code}")

    def in_process() -> None:
        for _ in range(per_round):
            start = time.perf_counter()
            view.is_fresh(batch_id)
            local.append(time.perf_counter() - start)

    with httpx.Client(timeout=30) as client:
        client.get(path)  # connect once; every timed request reuses the connection
        view.is_fresh(batch_id)
        for i in range(rounds):
            if i % 2:
                in_process()
                over_http(client)
            else:
                over_http(client)
                in_process()
    return remote, local


def _at(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def _subscriber(
    client: httpx.AsyncClient, url: str, ready: asyncio.Event, counter: list[int]
) -> tuple[list[str], list[float], int]:
    """Event ids and delivery delays one subscriber saw, and its ``reset`` count."""
    ids: list[str] = []
    delays: list[float] = []
    resets = 0
    async with client.stream("GET", f"{url}/v1/projects/{PROJECT}/events") as response:
        kind = ""
        async for line in response.aiter_lines():
            if line == ": subscribed":
                counter[0] += 1
                if counter[0] == counter[1]:
                    ready.set()
            elif line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                received = time.time()
                if kind == "reset":
                    resets += 1
                    continue
                event = json.loads(line[6:])
                ids.append(event["event_id"])
                delays.append(received - _at(event["at"]))
                if len(ids) >= SSE_EVENTS:
                    break
    return ids, delays, resets


async def _stream(root: Path, url: str) -> tuple[list[float], int, int, float]:
    """Delays of every delivery, missed count, resets, seconds until all were delivered."""
    import httpx

    ready = asyncio.Event()
    counter = [0, SSE_SUBSCRIBERS]
    limits = httpx.Limits(max_connections=SSE_SUBSCRIBERS + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=httpx.Timeout(120), limits=limits) as client:
        tasks = [
            asyncio.create_task(_subscriber(client, url, ready, counter))
            for _ in range(SSE_SUBSCRIBERS)
        ]
        await asyncio.wait_for(ready.wait(), 60)
        start = time.perf_counter()
        writer = await asyncio.create_subprocess_exec(
            sys.executable, "-c", WRITER, str(root), PROJECT, str(SSE_EVENTS), *BATCHES, cwd=REPO
        )
        if await writer.wait() != 0:
            raise RuntimeError(f"the SSE writer exited with {writer.returncode}")
        results = await asyncio.wait_for(asyncio.gather(*tasks), 300)
        took = time.perf_counter() - start
    view = Projection(PROJECT, root=root)
    expected = {e.event_id for b in BATCHES for e in view.history(b) if e.type == "conformed"}
    missed = resets = 0
    delays: list[float] = []
    for ids, got, got_resets in results:
        missed += len(expected - set(ids)) + (len(ids) - len(set(ids)))
        delays.extend(got)
        resets += got_resets
    return delays, missed, resets, took


def row_http(root: Path, rounds: int) -> list[Row]:
    """Rows 14a (gate over HTTP vs ``is_fresh``) and 14b (SSE fan-out)."""
    absent = [m for m in ("litestar", "uvicorn", "httpx") if importlib.util.find_spec(m) is None]
    if absent:
        return _missing(f"not installed: {', '.join(absent)} (pip install -e '.[serve,test]')")
    home = root / "http"
    _build(home)
    proc, url = _start_server(home)
    try:
        remote, local = _gate(home, url, rounds)
        delays, missed, resets, took = asyncio.run(_stream(home, url))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    h50, h99, l50, l99 = pct(remote, 0.5), pct(remote, 0.99), pct(local, 0.5), pct(local, 0.99)
    d50, d99 = pct(delays, 0.5), pct(delays, 0.99)
    return [
        {
            "row": f"14a. gate over HTTP, kept-open connection ({len(remote):,} requests)",
            "ours": f"p50 {us(h50)}, p99 {us(h99)}",
            "base": f"p50 {us(l50)}, p99 {us(l99)}",
            "base_what": "`Projection.is_fresh` in-process, same batch",
            "ratio": h50 / l50,
            "target": "HTTP p99 ≤ 10 ms (ratio of p50s: information)",
            "ok": h99 <= GATE_TARGET_S,
        },
        {
            "row": f"14b. SSE: {SSE_SUBSCRIBERS} subscribers × {SSE_EVENTS:,} events",
            "ours": f"p50 {us(d50)}, p99 {us(d99)}",
            "base": "-",
            "base_what": "commit → delivery to every subscriber",
            "ratio": None,
            "target": "0 missed, p99 ≤ 1 s (loaded 2-core machine)",
            "ok": missed == 0 and resets == 0 and d99 <= SSE_TARGET_S,
            "note": f"{len(delays):,} deliveries, missed {missed}, resets {resets}, "
            f"all delivered in {took:.2f} s",
        },
    ]
