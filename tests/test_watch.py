"""Watchers: catch-up then live, order, at-least-once across SIGKILL, complete lines only."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from eventstore import SceneVersionStore
from eventstore.events import new_event_id, utc_now
from projections import CheckpointError, Projection, consumer_status, watch
from tests.conftest import on_shared_backends
from tests.helpers import child_env, scene
from tests.watching import DEADLINE, WatcherProcess

BATCHES = ["ep_001_BATCH_001", "ep_001_BATCH_002", "ep_002_BATCH_001"]
MODES = [[], ["--poll", "--interval", "0.05"]]
MODE_IDS = ["live", "poll"]

CONFORMER = """
import sys
from eventstore import SceneVersionStore
root, batch_id, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = SceneVersionStore("show", batch_id[:6], root=root)
for i in range(rounds):
    store.conform(batch_id, 2, reason=f"round {i}")
    store.conform(batch_id, 1, reason=f"round {i} back")
"""


def _setup(root: str | Path, batches: list[str] = BATCHES) -> None:
    for batch_id in batches:
        store = SceneVersionStore("show", batch_id[:6], root=root)
        store.write_scene_candidate(batch_id, scene(batch_id, shots=2))
        store.write_scene_candidate(batch_id, scene(batch_id, shots=3))


def _logged(root: str, kind: str) -> set[tuple[str, int]]:
    view = Projection("show", root=root)
    return {(e.batch_id, e.seq) for b in view.batches() for e in view.history(b) if e.type == kind}


def _in_seq_order(events: list[dict[str, Any]]) -> bool:
    last: dict[str, int] = {}
    for e in events:
        if e["seq"] <= last.get(e["batch_id"], 0):
            return False
        last[e["batch_id"]] = e["seq"]
    return True


@on_shared_backends
@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_sigkilled_watcher_resumes_without_losing_a_conform(
    backend_root: str, mode: list[str]
) -> None:
    root = backend_root
    _setup(root)
    args = ["--consumer", "boards", "--type", "conformed", "--start", "beginning", *mode]
    first = WatcherProcess(root, *args)
    writers: list[subprocess.Popen[str]] = []
    second = None
    try:
        writers = [
            subprocess.Popen(
                [sys.executable, "-c", CONFORMER, str(root), b, "15"],
                env=child_env(),
                stderr=subprocess.PIPE,
                text=True,
            )
            for b in BATCHES
        ]
        first.wait_for(lambda ev: len(ev) >= 12)
        first.kill()  # mid-stream: writers are still conforming
        for w in writers:
            _out, err = w.communicate(timeout=DEADLINE)
            assert w.returncode == 0, err
        expected = _logged(root, "conformed")
        assert len(expected) == 3 * 30
        second = WatcherProcess(root, *args)
        second.wait_for(
            lambda ev: {(e["batch_id"], e["seq"]) for e in first.events + ev} >= expected
        )
        assert second.terminate() == 0  # SIGTERM: a clean stop
    finally:
        for w in writers:
            if w.poll() is None:
                w.kill()
                w.wait()
        first.stop()
        if second is not None:
            second.stop()
    keys_first = [(e["batch_id"], e["seq"]) for e in first.events]
    keys_second = [(e["batch_id"], e["seq"]) for e in second.events]
    assert set(keys_first) | set(keys_second) == expected
    assert all(e["type"] == "conformed" for e in first.events + second.events)
    assert _in_seq_order(first.events) and _in_seq_order(second.events)
    # No event twice within one run (the second may have nothing left to deliver
    # when the first got everything before it was killed).
    assert all(n == 1 for n in Counter(keys_first).values())
    assert all(n == 1 for n in Counter(keys_second).values())
    assert len(set(keys_first) & set(keys_second)) <= 1  # at most the one in flight


def _torn_line(root: Path, batch_id: str) -> bytes:
    """The line a writer of a `derived` would append next — for cutting in half."""
    log = root / "show" / batch_id[:6] / "scenes" / f"{batch_id}.events.jsonl"
    last = log.read_bytes().split(b"\n")[-2]
    seq = json.loads(last)["seq"] + 1
    event = {
        "type": "derived",
        "seq": seq,
        "batch_id": batch_id,
        "version": 1,
        "at": utc_now(),
        "actor": "crashing@farm",
        "reason": None,
        "event_id": new_event_id(),
        "prev": hashlib.sha256(last).hexdigest(),
    }
    return json.dumps(event, separators=(",", ":")).encode()


@pytest.mark.parametrize("finish", ["completed", "cut_by_next_writer"])
@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_half_line_is_never_delivered(root: Path, mode: list[str], finish: str) -> None:
    a, marker = "ep_001_BATCH_001", "ep_001_BATCH_002"
    _setup(root, [a])
    store = SceneVersionStore("show", 1, root=root)
    store.conform(a, 2)
    log = root / "show" / "ep_001" / "scenes" / f"{a}.events.jsonl"
    watcher = WatcherProcess(root, "--start", "now", *mode)
    try:
        # A new batch's first event reaches it: logs created after the start are seen.
        store.write_scene_candidate(marker, scene(marker))
        watcher.wait_for(lambda ev: len(ev) == 1)
        line = _torn_line(root, a)
        with open(log, "ab") as f:
            f.write(line[: len(line) // 2])  # a writer dies mid-line
        store.write_scene_candidate(marker, scene(marker, shots=5))  # proof the watcher moved on
        watcher.wait_for(lambda ev: len(ev) == 2)
        if finish == "completed":
            with open(log, "ab") as f:
                f.write(line[len(line) // 2 :] + b"\n")
            wanted = json.loads(line)["event_id"]
        else:
            store.conform(a, 1)  # the next writer cuts the torn tail and appends its own line
            wanted = json.loads(log.read_bytes().split(b"\n")[-2])["event_id"]
        watcher.wait_for(lambda ev: len(ev) == 3)
        store.write_scene_candidate(marker, scene(marker, shots=7))
        watcher.wait_for(lambda ev: len(ev) == 4)
    finally:
        watcher.stop()
    assert [e["batch_id"] for e in watcher.events] == [marker, marker, a, marker]
    assert watcher.events[2]["event_id"] == wanted and watcher.events[2]["seq"] == 4
    assert _in_seq_order(watcher.events)


def test_api_catch_up_then_live_and_checkpoint(backend_root: str) -> None:
    root = backend_root
    _setup(root, BATCHES[:2])
    import threading

    stop = threading.Event()
    seen = []
    for event in watch(
        "show", root=root, consumer="api", start="beginning", poll=True, interval=0.02, stop=stop
    ):
        seen.append((event.batch_id, event.seq, event.type, event.episode, event.project))
        if len(seen) == 4:
            stop.set()
    assert sorted(seen) == [
        (b, s, "appended", "ep_001", "show") for b in BATCHES[:2] for s in (1, 2)
    ]
    status = consumer_status("show", root)
    assert status[0]["consumer"] == "api" and status[0]["lag"] == 0
    SceneVersionStore("show", 1, root=root).conform(BATCHES[0], 2)
    assert consumer_status("show", root)[0]["lag"] == 1
    # Resuming, the consumer gets exactly what came after its checkpoint (stop is set,
    # so the watcher ends once caught up).
    got = [e.type for e in watch("show", root=root, consumer="api", poll=True, stop=stop)]
    assert got == ["conformed"]
    assert consumer_status("show", root)[0]["lag"] == 0


def test_corrupt_checkpoint_is_an_error_naming_the_file(root: Path) -> None:
    _setup(root, BATCHES[:1])
    folder = root / "show" / ".scenelog" / "consumers"
    folder.mkdir(parents=True)
    (folder / "boards.json").write_text('{"consumer": "boards", "positions": {"ep_0')
    with pytest.raises(CheckpointError) as info:
        next(iter(watch("show", root=root, consumer="boards", poll=True)))
    assert "boards.json" in str(info.value)
    result = subprocess.run(
        [sys.executable, "-m", "projections", "watch", "--consumer", "boards", "--poll"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        env=child_env(SCENELOG_ROOT=str(root), SCENELOG_PROJECT="show"),
    )
    assert result.returncode == 4 and "boards.json" in result.stderr
    assert (folder / "boards.json").read_text().endswith('"ep_0')  # never reset


HANDLER = """
import json, os, sys
with open(sys.argv[1], "a") as f:
    f.write(json.dumps({k: v for k, v in os.environ.items() if k.startswith("SCENELOG_")}) + "\\n")
sys.exit(3 if os.environ["SCENELOG_TYPE"] == sys.argv[2] else 0)
"""


@on_shared_backends
def test_exec_handler_failure_stops_and_redelivers(backend_root: str, tmp_path: Path) -> None:
    root = backend_root
    a = BATCHES[0]
    _setup(root, [a])
    store = SceneVersionStore("show", 1, root=root)
    store.conform(a, 2, reason="$(touch PWNED); `touch PWNED2`")
    store.revert(a, 1, reason="back'; rm -rf / #")
    store.conform(a, 2)
    out = tmp_path / "handled.jsonl"
    env = child_env(SCENELOG_ROOT=str(root), SCENELOG_PROJECT="show")

    def run(fail_on: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "projections",
                "watch",
                "--consumer",
                "ci",
                "--start",
                "beginning",
                "--type",
                "conformed,reverted",
                "--poll",
                "--timeout",
                "1",
                "--",  # the handler and its arguments (issue 13 item 4)
                sys.executable,
                "-c",
                HANDLER,
                str(out),
                fail_on,
            ],
            capture_output=True,
            text=True,
            timeout=DEADLINE,
            env=env,
            cwd=tmp_path,
        )

    failed = run("reverted")
    assert failed.returncode == 1 and "exited 3" in failed.stderr and "seq 4" in failed.stderr
    handled = [json.loads(line) for line in out.read_text().splitlines()]
    assert [h["SCENELOG_SEQ"] for h in handled] == ["3", "4"]
    assert json.loads(handled[0]["SCENELOG_EVENT"])["reason"] == "$(touch PWNED); `touch PWNED2`"
    assert handled[0]["SCENELOG_BATCH_ID"] == a and handled[0]["SCENELOG_VERSION"] == "2"
    assert not list(tmp_path.glob("PWNED*")) and not list(Path.cwd().glob("PWNED*"))
    fixed = run("never")
    assert fixed.returncode == 0, fixed.stderr
    handled = [json.loads(line) for line in out.read_text().splitlines()]
    assert [h["SCENELOG_SEQ"] for h in handled] == ["3", "4", "4", "5"]  # the failed one again
    assert json.loads(handled[3]["SCENELOG_EVENT"])["type"] == "conformed"


@on_shared_backends
def test_watch_cli_max_events_and_consumers(backend_root: str) -> None:
    root = backend_root
    _setup(root, BATCHES[:1])
    env = child_env(SCENELOG_ROOT=str(root), SCENELOG_PROJECT="show")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "projections",
            "watch",
            "--consumer",
            "c",
            "--start",
            "beginning",
            "--max-events",
            "1",
            "--poll",
        ],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        env=env,
    )
    assert result.returncode == 0
    (line,) = result.stdout.splitlines()
    assert json.loads(line)["seq"] == 1 and json.loads(line)["project"] == "show"
    result = subprocess.run(
        [sys.executable, "-m", "projections", "consumers", "--json"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        env=env,
    )
    assert json.loads(result.stdout)[0]["lag"] == 1
    result = subprocess.run(
        [sys.executable, "-m", "projections", "watch", "--type", "nope"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        env=env,
    )
    assert result.returncode == 2
