"""Benchmark rows for `scenelog serve` (issue 14), measured side by side on one machine.

    .venv/bin/pip install -q -e '.[serve,test]' && .venv/bin/python scripts/bench_http.py

Row 1, the gate over HTTP: ``GET …/batches/{b}/gate`` on one kept-open
connection (httpx.Client) against a ``scenelog serve`` child process, p50 and
p99 per request, next to ``Projection.is_fresh`` in this process on the same
batch — interleaved in rounds so both see the same disk and load.

Row 2, the event stream: SUBSCRIBERS concurrent SSE clients (one asyncio
process, one connection each) on the same server while a child process makes
EVENTS commands (conform back and forth on a few batches, one event each).
Delivery latency is receipt time minus the event's ``at`` (same host clock),
p50/p99 over every delivery; "missed" counts events a subscriber did not get
(or got twice, or got a ``reset`` for) — it must be 0.

Prints a Markdown table. Another engineer folds these rows into the
``benchmarks`` package; until then this script stands alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from eventstore import Scene, SceneVersionStore  # noqa: E402
from projections import Projection  # noqa: E402

BATCHES = [f"ep_001_BATCH_{n:03d}" for n in range(1, 5)]

WRITER = """
import sys
from eventstore import SceneVersionStore
root, count = sys.argv[1], int(sys.argv[2])
batches = sys.argv[3:]
store = SceneVersionStore("bench", 1, root=root)
for i in range(count):
    batch_id = batches[i % len(batches)]
    store.conform(batch_id, 2 if (i // len(batches)) % 2 == 0 else 1, reason=f"move {i}")
"""


def _scene(batch_id: str, shots: int) -> Scene:
    beats = [{"shot_id": f"sh{i:03d}", "raw": {"d": f"shot {i}"}} for i in range(shots)]
    return Scene({"scene_id": batch_id, "beats": beats})


def _build(root: Path) -> None:
    store = SceneVersionStore("bench", 1, root=root)
    for batch_id in BATCHES:
        store.write_scene_candidate(batch_id, _scene(batch_id, 3))
        store.write_scene_candidate(batch_id, _scene(batch_id, 4))


def _start_server(root: Path) -> tuple[subprocess.Popen[str], str]:
    serve = ["serve", "--port", "0"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "projections", "--root", str(root), "--project", "bench", *serve],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        cwd=str(REPO),
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    if not line.startswith("scenelog: serving "):
        proc.kill()
        raise SystemExit(f"serve did not start: {line}")
    return proc, line.split()[2].rstrip("/")


def _quantiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def bench_gate(root: Path, url: str, requests: int, rounds: int) -> dict[str, tuple[float, float]]:
    view = Projection("bench", root=root)
    batch_id = BATCHES[0]
    path = f"{url}/v1/projects/bench/batches/{batch_id}/gate"
    http: list[float] = []
    local: list[float] = []
    with httpx.Client(timeout=30) as client:
        client.get(path)  # connect once; the rest reuse it
        for _ in range(rounds):
            for _ in range(requests // rounds):
                began = time.perf_counter()
                r = client.get(path)
                http.append(time.perf_counter() - began)
                assert r.status_code in (200, 409)
            for _ in range(requests // rounds):
                began = time.perf_counter()
                view.is_fresh(batch_id)
                local.append(time.perf_counter() - began)
    return {"http": _quantiles(http), "local": _quantiles(local)}


def _at(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def _subscriber(
    client: httpx.AsyncClient, url: str, events: int, ready: asyncio.Event, counter: list[int]
) -> tuple[list[str], list[float], int]:
    ids: list[str] = []
    delays: list[float] = []
    resets = 0
    async with client.stream("GET", f"{url}/v1/projects/bench/events") as response:
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
                if len(ids) >= events:
                    break
    return ids, delays, resets


async def _stream_run(root: Path, url: str, subscribers: int, events: int) -> dict[str, Any]:
    ready = asyncio.Event()
    counter = [0, subscribers]
    limits = httpx.Limits(max_connections=subscribers + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=httpx.Timeout(120), limits=limits) as client:
        tasks = [
            asyncio.create_task(_subscriber(client, url, events, ready, counter))
            for _ in range(subscribers)
        ]
        await asyncio.wait_for(ready.wait(), 60)
        began = time.perf_counter()
        writer = await asyncio.create_subprocess_exec(
            sys.executable, "-c", WRITER, str(root), str(events), *BATCHES, cwd=str(REPO)
        )
        await writer.wait()
        wrote = time.perf_counter() - began
        results = await asyncio.wait_for(asyncio.gather(*tasks), 300)
        took = time.perf_counter() - began
    view = Projection("bench", root=root)
    expected = {e.event_id for b in BATCHES for e in view.history(b) if e.type == "conformed"}
    missed = 0
    delays: list[float] = []
    resets = 0
    for ids, got_delays, got_resets in results:
        missed += len(expected - set(ids)) + (len(ids) - len(set(ids)))
        delays.extend(got_delays)
        resets += got_resets
    return {
        "deliveries": len(delays),
        "delay": _quantiles(delays),
        "missed": missed,
        "resets": resets,
        "write_s": wrote,
        "all_delivered_s": took,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--events", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="scenelog-bench-http-") as tmp:
        root = Path(tmp) / "store"
        _build(root)
        proc, url = _start_server(root)
        try:
            gate = bench_gate(root, url, args.requests, args.rounds)
            stream = asyncio.run(_stream_run(root, url, args.subscribers, args.events))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    ms = 1000.0
    (h50, h99), (l50, l99) = gate["http"], gate["local"]
    d50, d99 = stream["delay"]
    print("| row | p50 | p99 | notes |")
    print("| --- | --- | --- | --- |")
    print(
        f"| gate over HTTP (kept-open connection) | {h50 * ms:.2f} ms | {h99 * ms:.2f} ms | "
        f"{args.requests} requests; {h50 / l50:.1f}× the in-process p50 |"
    )
    print(
        f"| `Projection.is_fresh` in-process | {l50 * ms:.3f} ms | {l99 * ms:.3f} ms | same batch |"
    )
    print(
        f"| SSE: {args.subscribers} subscribers × {args.events} events, commit→delivery | "
        f"{d50 * ms:.1f} ms | {d99 * ms:.1f} ms | {stream['deliveries']} deliveries, "
        f"missed {stream['missed']}, resets {stream['resets']}; writer {stream['write_s']:.2f} s, "
        f"all delivered {stream['all_delivered_s']:.2f} s |"
    )
    return 0 if stream["missed"] == 0 and stream["resets"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
