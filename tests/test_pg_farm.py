"""The farm on PostgreSQL (issue 12, "Done when"): writer processes over TCP, a watcher, kills.

Both tests start real processes that reach the session's throwaway server over
TCP on 127.0.0.1 (``pg_server.over_tcp``), each in a schema of its own
(``pg_url``), and stop everything they started before they return.

- The gap test: 4 writers, each on its own batch, for 10 s, while a real
  ``scenelog watch --consumer farm`` prints every event as a JSON line; the
  watcher is SIGKILLed once mid-run and started again with the same consumer.
  Nothing is missed, each run keeps per-batch seq order, and the only event
  delivered twice is the one the killed run had in flight (docs/SERVICE.md,
  "Durability windows": a killed watcher redelivers at most the event in
  flight — the checkpoint is saved when the watcher asks for the next event,
  after the line is printed).
- The kill test: 8 writers on 2 batches, 6 SIGKILLs at seeded random moments
  (the seed is printed; set ``SCENELOG_FARM_SEED`` to replay), killed writers
  restarted; every acknowledged event (a whole acknowledgement line) is stored,
  seqs are contiguous, no incomplete command is stored (R24), and verify finds
  no error.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest

pytest.importorskip("psycopg")

from eventstore.log import open_log
from projections import Projection
from projections.verify import verify
from tests.helpers import DEADLINE, REPO, child_env, scene
from tests.pgserver import PgServer

PROJECT = "show"
WRITE_SECONDS = 10.0
KILL_SECONDS = 8.0
KILLS = 6

_GAP_WRITER = """
import sys, time
from eventstore import SceneVersionStore
from tests.helpers import scene
url, batch, until = sys.argv[1], sys.argv[2], float(sys.argv[3])
store = SceneVersionStore("show", 1, root=url)
n = 0
while time.time() < until:
    n += 1
    version = store.write_scene_candidate(batch, scene(batch, shots=1 + n % 4, tag=str(n)))
    if n % 3 == 0:
        store.conform(batch, version)
        if n % 2 == 0:
            store.mark_derived(batch, version)
print(n, flush=True)
"""

_ACKING_WRITER = """
import sys, time
from eventstore import SceneVersionStore
from tests.helpers import scene
url, batch, until, name = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
store = SceneVersionStore("show", 1, root=url)
log = store.log
seen = log.last_seq(batch)
n = 0
while time.time() < until:
    n += 1
    version = store.write_scene_candidate(batch, scene(batch, shots=1 + n % 4, tag=name + str(n)))
    # The command returned: its event is committed; find its id (the version is its own).
    events = log.read(batch, after=seen)
    seen = events[-1].seq if events else seen
    ids = [e.event_id for e in events if e.type == "appended" and e.version == version]
    assert len(ids) == 1, (version, ids)
    print("ack", batch, version, ids[0], flush=True)
print("done", flush=True)
"""


def _spawn(code: str, *args: str, stdout: int | IO[str] = subprocess.PIPE) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(SCENELOG_ACTOR="farm@test"),
        cwd=str(REPO),
    )


def _stop(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
    for p in procs:
        p.communicate(timeout=DEADLINE)


class _Watcher:
    """A real ``scenelog watch`` process; a thread keeps its whole stdout lines."""

    def __init__(self, root: str) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "projections",
                "watch",
                "--consumer",
                "farm",
                "--root",
                root,
                "--project",
                PROJECT,
                "--start",
                "beginning",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(SCENELOG_ACTOR="farm@test"),
            cwd=str(REPO),
        )
        self.lines: list[str] = []
        self.cut = ""  # a last line without its newline (cut by SIGKILL): not delivered
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.endswith("\n"):
                self.lines.append(line)
            else:
                self.cut = line

    def delivered(self) -> list[tuple[str, int, str]]:
        found = []
        for line in list(self.lines):
            event = json.loads(line)
            found.append((event["batch_id"], event["seq"], event["event_id"]))
        return found

    def finish(self, sig: signal.Signals) -> str:
        """Send ``sig``, wait for the end of the process and its output; its stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        assert self.proc.stderr is not None
        err = self.proc.stderr.read()
        self.proc.wait(timeout=DEADLINE)
        self._reader.join(timeout=DEADLINE)
        return err


def _wait_for(condition: object, what: str, deadline: float) -> None:
    assert callable(condition)
    while not condition():
        assert time.monotonic() < deadline, f"deadline passed waiting for {what}"
        time.sleep(0.02)  # polling a child's output: nothing to be woken by


def _all_events(url: str, batches: list[str]) -> dict[str, list[tuple[str, int, str]]]:
    view = Projection(PROJECT, root=url)
    return {b: [(b, e.seq, e.event_id) for e in view.history(b)] for b in batches}


def _out_of_order(run: list[tuple[str, int, str]], batches: list[str]) -> str:
    """Where ``run`` breaks per-batch seq order (a gap, a repeat, a step back); "" if nowhere."""
    for b in batches:
        seqs = [seq for (batch, seq, _id) in run if batch == b]
        breaks = [(x, y) for x, y in itertools.pairwise(seqs) if y != x + 1]
        if breaks:
            return f"{b}: seq x was followed by y for (x, y) in {breaks}"
    return ""


def _with_xids(url: str, run: list[tuple[str, int, str]], batches: list[str]) -> str:
    """Around ``run``'s first break: ``batch:seq@xid/position`` (the feed's order); for messages."""
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT batch_id, seq, xid::text, position FROM scenelog_events "
            "WHERE batch_id = ANY(%s)",
            (batches,),
        ).fetchall()
    at = {(str(r[0]), int(r[1])): f"{r[2]}/{r[3]}" for r in rows}
    last: dict[str, int] = {}
    first_break = 0
    for i, (b, seq, _id) in enumerate(run):  # show 20 deliveries either side of the first break
        if b in last and seq != last[b] + 1:
            first_break = i
            break
        last[b] = seq
    window = run[max(0, first_break - 20) : first_break + 20]
    return " ".join(f"{b[-3:]}:{seq}@{at.get((b, seq))}" for (b, seq, _id) in window)


def test_gap_four_writers_on_four_batches_for_ten_seconds_while_a_watcher_follows(
    pg_server: PgServer, pg_url: str
) -> None:
    from eventstore import SceneVersionStore

    tcp = pg_server.over_tcp(pg_url)
    batches = [f"ep_001_BATCH_{n:03d}" for n in range(1, 5)]
    seed = SceneVersionStore(PROJECT, 1, root=tcp)
    for b in batches:  # the project exists before its watcher starts (it never creates one)
        seed.write_scene_candidate(b, scene(b))
    deadline = time.monotonic() + DEADLINE
    first = _Watcher(tcp)
    second: _Watcher | None = None
    until = time.time() + WRITE_SECONDS
    writers = [_spawn(_GAP_WRITER, tcp, b, str(until)) for b in batches]
    try:
        # Kill the watcher mid-run, once it has delivered events of every batch.
        _wait_for(
            lambda: (
                time.time() > until - WRITE_SECONDS / 2
                and {b for (b, _s, _i) in first.delivered()} == set(batches)
            ),
            "the first watcher to follow every batch",
            deadline,
        )
        first.finish(signal.SIGKILL)
        assert first.proc.returncode == -signal.SIGKILL
        second = _Watcher(tcp)
        for w in writers:
            out, err = w.communicate(timeout=DEADLINE)
            assert w.returncode == 0, err
            assert int(out) > 10, out  # each wrote all along
        written = _all_events(tcp, batches)
        every = {e for events in written.values() for e in events}
        watcher = second
        _wait_for(
            lambda: every <= set(first.delivered()) | set(watcher.delivered()),
            "the second watcher to deliver every event",
            deadline,
        )
        err = second.finish(signal.SIGTERM)
        assert second.proc.returncode == 0, err
    finally:
        _stop(writers)
        for w_ in (first, second):
            if w_ is not None and w_.proc.poll() is None:
                w_.finish(signal.SIGKILL)
    one, two = first.delivered(), second.delivered()
    # 0 missed: both runs together delivered every event of the log, nothing else.
    assert set(one) | set(two) == every
    # Per-batch order, without a gap, within each run; no duplicate within a run.
    for run in (one, two):
        problem = _out_of_order(run, batches)
        # On failure: the run as delivered, each event with its stored (xid, position).
        assert not problem, f"{problem}; delivered: {_with_xids(tcp, run, batches)}"

    assert len(set(one)) == len(one) and len(set(two)) == len(two)
    # Redelivery only across the kill: at most the event in flight, the killed run's last line.
    again = set(one) & set(two)
    assert len(again) <= 1, again
    if again:
        (event,) = again
        assert event == one[-1]
        assert event == next(e for e in two if e[0] == event[0])  # its batch resumes there
    print(f"written={len(every)} delivered={len(one)}+{len(two)} redelivered={len(again)} kills=1")


def _acks(text: str) -> list[str]:
    """The event ids of whole acknowledgement lines; a line cut by SIGKILL is none."""
    ids = []
    for line in text.splitlines(keepends=True):
        words = line.split()
        if line.endswith("\n") and len(words) == 4 and words[0] == "ack" and len(words[3]) == 32:
            ids.append(words[3])
    return ids


def test_eight_writers_on_two_batches_random_kills_lose_nothing_acknowledged(
    pg_server: PgServer, pg_url: str, tmp_path: Path
) -> None:
    from eventstore import SceneVersionStore

    seed = int(os.environ.get("SCENELOG_FARM_SEED") or random.randrange(2**32))
    print(f"SCENELOG_FARM_SEED={seed}")
    rng = random.Random(seed)
    tcp = pg_server.over_tcp(pg_url)
    batches = ["ep_001_BATCH_001", "ep_001_BATCH_002"]
    first = SceneVersionStore(PROJECT, 1, root=tcp)
    for b in batches:
        first.write_scene_candidate(b, scene(b))
    start = time.time()
    until = start + KILL_SECONDS
    moments = sorted(rng.uniform(0.5, KILL_SECONDS - 0.5) for _ in range(KILLS))
    outputs: list[Path] = []
    procs: list[subprocess.Popen[str]] = []
    slots: list[int] = []  # slot i is the i-th writer's current process, in procs

    def launch(slot: int) -> int:
        out = tmp_path / f"writer{len(outputs)}.out"
        outputs.append(out)
        with out.open("w") as f:
            procs.append(
                _spawn(_ACKING_WRITER, tcp, batches[slot % 2], str(until), str(slot), stdout=f)
            )
        return len(procs) - 1

    killed: list[int] = []
    try:
        slots = [launch(slot) for slot in range(8)]
        for moment in moments:
            time.sleep(max(0.0, start + moment - time.time()))  # a random moment, by design
            slot = rng.randrange(8)
            p = procs[slots[slot]]
            assert p.poll() is None, p.stderr.read() if p.stderr else ""
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=DEADLINE)
            killed.append(slots[slot])
            slots[slot] = launch(slot)
        for i, p in enumerate(procs):
            if i in killed:
                continue
            _out, err = p.communicate(timeout=DEADLINE)
            assert p.returncode == 0, err
    finally:
        _stop(procs)
    assert len(killed) == KILLS
    acknowledged = [i for out in outputs for i in _acks(out.read_text())]
    assert len(acknowledged) > 8 * 5  # every writer got going
    log = open_log(PROJECT, tcp)
    stored: set[str] = set()
    for b in batches:
        events = log.read(b)
        assert [e.seq for e in events] == list(range(1, len(events) + 1)), b
        raw = log.raw(b)
        assert raw.pending == [] and raw.torn == 0, b  # no incomplete command stored (R24)
        assert len(raw.lines) == len(events)
        stored.update(e.event_id for e in events)
    lost = set(acknowledged) - stored
    assert not lost, f"acknowledged but not stored (seed {seed}): {sorted(lost)}"
    report = verify(PROJECT, tcp)
    errors = [str(f) for f in report.findings if f.severity == "error"]
    assert errors == [], errors
    print(
        f"written={len(stored)} acknowledged={len(acknowledged)} kills={len(killed)} "
        f"processes={len(procs)}"
    )
