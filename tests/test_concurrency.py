"""R14 under real contention: 8 processes x 25 appends plus threads on one batch,
on every backend several processes share (file and PostgreSQL)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from typing import Any

from eventstore import SceneVersionStore, fold
from eventstore.log import open_log
from projections import Projection
from tests.conftest import on_shared_backends
from tests.helpers import BATCH, child_env, scene

PROCESSES, PER_PROCESS, THREADS, PER_THREAD = 8, 25, 3, 10

APPENDER = """
import sys
from eventstore import SceneVersionStore
from tests.helpers import scene
root, who, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = SceneVersionStore("show", 1, root=root)
for i in range(count):
    store.write_scene_candidate("ep_001_BATCH_003", scene(shots=2, tag=f"{who}-{i}"), reason=who)
"""


def checked_log(root: str, batch_id: str) -> list[dict[str, Any]]:
    """Assert seq contiguity, the hash chain and view == fold through the backend; the events."""
    raw = open_log("show", root).raw(batch_id)
    assert (raw.pending, raw.torn) == ([], 0)
    events = [json.loads(line) for line in raw.lines]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    prev = None
    for line, event in zip(raw.lines, events, strict=True):
        assert event["prev"] == prev
        prev = hashlib.sha256(line).hexdigest()
    view = Projection("show", root=root)
    assert view.require(batch_id) == fold(batch_id, view.history(batch_id))
    return events


@on_shared_backends
def test_r14_many_processes_and_threads_append_without_gaps_or_duplicates(
    backend_root: str,
) -> None:
    root = backend_root
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", APPENDER, str(root), f"p{n}", str(PER_PROCESS)],
            env=child_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(PROCESSES)
    ]
    store = SceneVersionStore("show", 1, root=root)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(PER_THREAD):
                store.write_scene_candidate(BATCH, scene(shots=2, tag=f"t{n}-{i}"), reason=f"t{n}")
        except BaseException as e:  # pragma: no cover - asserted below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    try:
        for p in procs:
            _out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    total = PROCESSES * PER_PROCESS + THREADS * PER_THREAD
    events = checked_log(root, BATCH)
    assert len(events) == total
    assert sorted(e["version"] for e in events) == list(range(1, total + 1))
    reasons = [e["reason"] for e in events]
    for n in range(PROCESSES):
        assert reasons.count(f"p{n}") == PER_PROCESS
    for n in range(THREADS):
        assert reasons.count(f"t{n}") == PER_THREAD
    bodies = [n for n in open_log("show", root).body_names(BATCH) if n != f"{BATCH}.json"]
    assert len(bodies) == total - 1  # v1 is the flat body of Case A
