"""Row 7: watcher latency (append returned → event delivered) and idle CPU, live and poll.

The watcher runs in a child process (``WATCHER``) that prints ``ready`` and
then one ``[seq, monotonic time]`` JSON line per delivered event; the parent
appends with random gaps of 2-20 ms and matches each delivered seq with the
moment its ``conform`` returned. Invariants: the idle CPU is measured over 5 s
with nothing appended, after a 1.5 s settle; the child is killed and reaped
whatever happens (``finally``).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from eventstore import SceneVersionStore

from .fixtures import PROJECT, REPO, scene
from .report import Row
from .timing import pct, us

WATCH_APPENDS = 200

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


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process ``pid`` has used (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def row_watch(root: Path, appends: int) -> list[Row]:
    """Rows 7 (live, then poll): latency percentiles over ``appends`` appends, idle CPU."""
    store = SceneVersionStore(PROJECT, 8, root=root)
    batch = "ep_008_BATCH_001"
    store.write_scene_candidate(batch, scene(batch, 12))
    store.write_scene_candidate(batch, scene(batch, 13))
    rows: list[Row] = []
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
            cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(5.0)  # idle: nothing is appended
            idle = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0)
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
