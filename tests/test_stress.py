"""Stress: 8 writer processes with mixed commands over a few batches, 2 watchers.

Bounded (a fixed number of commands, every process under a deadline) and
seeded: the seed is printed in every failure message; set
SCENELOG_STRESS_SEED to replay another one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from eventstore import SceneVersionStore
from projections import verify
from tests.helpers import child_env, scene
from tests.integrity import check_batch
from tests.watching import DEADLINE, WatcherProcess

SEED = int(os.environ.get("SCENELOG_STRESS_SEED", "20261126"))
BATCHES = ["ep_001_BATCH_001", "ep_001_BATCH_002", "ep_001_BATCH_003"]
WRITERS, COMMANDS = 8, 60

WRITER = """
import json, random, sys
from eventstore import NotActiveVersion, SceneVersionStore
from projections import Projection
from tests.helpers import scene
root, seed, me, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
rng = random.Random(seed)
store, reader = SceneVersionStore("show", 1, root=root), Projection("show", root=root)
batches = ["ep_001_BATCH_001", "ep_001_BATCH_002", "ep_001_BATCH_003"]
done = []
for i in range(count):
    batch = rng.choice(batches)
    op = rng.choice(["add", "add", "conform", "revert", "derived"])
    reason = f"{me}-{i}"
    versions = [e.version for e in reader.require(batch).versions]
    if op == "add":
        v = store.write_scene_candidate(batch, scene(batch, shots=rng.randint(1, 4), tag=reason),
                                        reason=reason, dedup_against_versions=rng.random() < 0.2)
        done.append(["add", batch, v, reason])
    elif op in ("conform", "revert"):
        m = getattr(store, op)(batch, rng.choice(versions), reason=reason)
        done.append([op, batch, m.active_version, reason])
    else:
        active = reader.require(batch).active_version
        try:
            store.mark_derived(batch, active, reason=reason)
            done.append(["derived", batch, active, reason])
        except NotActiveVersion:
            done.append(["raced", batch, active, reason])  # the pointer moved meanwhile: refused
print(json.dumps(done))
"""


def test_stress_writers_and_watchers(root: Path) -> None:
    store = SceneVersionStore("show", 1, root=root)
    for batch in BATCHES:
        store.write_scene_candidate(batch, scene(batch, shots=2))
    live = WatcherProcess(root, "--consumer", "live", "--type", "conformed", "--start", "beginning")
    poll = WatcherProcess(
        root,
        "--consumer",
        "poll",
        "--type",
        "conformed",
        "--start",
        "beginning",
        "--poll",
        "--interval",
        "0.05",
    )
    writers: list[subprocess.Popen[str]] = []
    try:
        writers = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, str(root), str(SEED + n), f"w{n}", str(COMMANDS)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=child_env(),
            )
            for n in range(WRITERS)
        ]
        done = []
        for w in writers:
            out, err = w.communicate(timeout=DEADLINE)
            assert w.returncode == 0, f"seed {SEED}: {err}"
            done += json.loads(out)
        scenes = root / "show" / "ep_001" / "scenes"
        conforms = set()
        for batch in BATCHES:
            events = check_batch(scenes, batch)
            appended = [e["version"] for e in events if e["type"] == "appended"]
            assert appended == list(range(1, len(appended) + 1)), f"seed {SEED}: {appended}"
            by_reason = {e["reason"]: e for e in events}
            for op, b, version, reason in done:
                if b != batch or op == "raced":
                    continue
                if op == "add" and reason not in by_reason:
                    # A dedup hit appends nothing: the version it returned must exist.
                    assert version in appended, f"seed {SEED}: {reason} lost"
                elif op == "add":
                    assert by_reason[reason]["version"] == version, f"seed {SEED}: {reason}"
            conforms |= {(batch, e["seq"]) for e in events if e["type"] == "conformed"}
        for watcher in (live, poll):
            watcher.wait_for(lambda ev: {(e["batch_id"], e["seq"]) for e in ev} >= conforms)
    finally:
        for w in writers:
            if w.poll() is None:
                w.kill()
                w.wait()
        live.stop()
        poll.stop()
    for watcher in (live, poll):
        seen = [(e["batch_id"], e["seq"]) for e in watcher.events]
        assert len(seen) == len(set(seen)) == len(conforms), f"seed {SEED}"
        for batch in BATCHES:
            seqs = [s for b, s in seen if b == batch]
            assert seqs == sorted(seqs), f"seed {SEED}: {batch} out of order"
    report = verify("show", root)
    assert report.ok and not report.findings, f"seed {SEED}: {report.findings}"
