"""R14 under real contention: 8 processes x 25 appends plus threads on one batch."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from eventstore import SceneVersionStore
from tests.helpers import BATCH, child_env, scene
from tests.integrity import check_batch

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


def test_r14_many_processes_and_threads_append_without_gaps_or_duplicates(root: Path) -> None:
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
    scenes_dir = root / "show" / "ep_001" / "scenes"
    events = check_batch(scenes_dir, BATCH)
    assert len(events) == total
    assert sorted(e["version"] for e in events) == list(range(1, total + 1))
    reasons = [e["reason"] for e in events]
    for n in range(PROCESSES):
        assert reasons.count(f"p{n}") == PER_PROCESS
    for n in range(THREADS):
        assert reasons.count(f"t{n}") == PER_THREAD
    bodies = sorted(scenes_dir.glob(f"{BATCH}.v[0-9]*.json"))
    assert len(bodies) == total - 1  # v1 is the flat body of Case A
