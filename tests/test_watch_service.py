"""Issue 13 items 1-6: watchers that run as services for months, run as a user runs them.

Every CLI behaviour runs ``scenelog`` in a real process (``tests.helpers.scenelog``);
handlers are small executable Python files whose behaviour the test sets through
files next to them (``poison``: seqs to fail on; ``flaky``: runs to fail first).
Every process a test starts is stopped and waited for under ``DEADLINE``.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from eventstore import ConsumerBusy, FileLog, InvalidInput, Layout, SceneVersionStore
from eventstore.filelog import checkpoints
from projections import watch
from projections.cli import parse_command_line
from projections.watcher import (
    consumer_status,
    delete_consumer,
    parked_events,
    reset_consumer,
    retry_parked,
)
from tests.helpers import BATCH, DEADLINE, REPO, child_env, scene, scenelog

HANDLER = """#!{python}
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
event = json.loads(sys.stdin.read())
seq = event["seq"]
with open(os.path.join(here, "attempts.txt"), "a") as f:
    f.write(f"{{seq}}\\n")
with open(os.path.join(here, "argv.txt"), "w") as f:
    json.dump(sys.argv[1:], f)
poison = os.path.join(here, "poison")
if os.path.exists(poison) and str(seq) in open(poison).read().split():
    print(f"boom on seq {{seq}}", file=sys.stderr)
    sys.exit(7)
flaky = os.path.join(here, "flaky")
if os.path.exists(flaky):
    left = int(open(flaky).read())
    if left > 0:
        open(flaky, "w").write(str(left - 1))
        print("not yet", file=sys.stderr)
        sys.exit(5)
kill_at = os.path.join(here, "kill_at")
if os.path.exists(kill_at) and int(open(kill_at).read()) == seq:
    os.remove(kill_at)
    with open(os.path.join(here, "handled.txt"), "a") as f:
        f.write(f"{{seq}}\\n")
    os.kill(os.getppid(), 9)  # the watcher dies while this event is in flight
    sys.exit(0)
release = os.path.join(here, "release")
if os.path.exists(os.path.join(here, "hold")):
    open(os.path.join(here, "holding"), "a").write(f"{{seq}}\\n")
    import time
    deadline = time.monotonic() + 30
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.01)
with open(os.path.join(here, "handled.txt"), "a") as f:
    f.write(f"{{seq}}\\n")
"""


@pytest.fixture
def handler(tmp_path: Path) -> Path:
    folder = tmp_path / "handler"
    folder.mkdir()
    path = folder / "handler.py"
    path.write_text(HANDLER.format(python=sys.executable))
    path.chmod(0o755)
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A store whose batch has: add v1 (1), add v2 (2), conform 2 (3), revert 1 (4),
    conform 2 (5)."""
    root = tmp_path / "store"
    store = SceneVersionStore("show", 1, root=root)
    store.write_scene_candidate(BATCH, scene(BATCH, 3))
    store.write_scene_candidate(BATCH, scene(BATCH, 4))
    store.conform(BATCH, 2)
    store.revert(BATCH, 1)
    store.conform(BATCH, 2)
    return root


def _lines(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def _watch(root: Path, handler: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """The boards consumer catching up on conforms and reverts, then stopping."""
    return scenelog(
        root,
        "watch",
        "--consumer",
        "boards",
        "--start",
        "beginning",
        "--type",
        "conformed,reverted",
        "--poll",
        "--timeout",
        "0.5",
        *extra,
        "--",
        str(handler),
    )


def _consumers(root: Path) -> list[dict[str, Any]]:
    result = scenelog(root, "consumers", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert isinstance(rows, list)
    return rows


# ── item 1: the error policy, parked events, retry, reset, delete ────────────


def test_item1_poison_event_stops_every_restart_with_on_error_stop(
    root: Path, handler: Path
) -> None:
    (handler.parent / "poison").write_text("4")
    for _ in range(2):
        result = _watch(root, handler)
        assert result.returncode == 1
        last = result.stderr.strip().splitlines()[-1]
        assert "exited 7" in last and f"{BATCH} seq 4" in last and "--on-error skip" in last
        assert "boom on seq 4" in result.stderr  # the handler's stderr is passed on
    assert _lines(handler.parent / "handled.txt") == [3]
    assert _lines(handler.parent / "attempts.txt") == [3, 4, 4]  # every restart dies on 4


def test_item1_skip_parks_the_poison_event_and_retry_from_parked_redelivers_it(
    root: Path, handler: Path
) -> None:
    (handler.parent / "poison").write_text("4")
    result = _watch(root, handler, "--on-error", "skip")
    assert result.returncode == 0, result.stderr
    assert "exited 7" in result.stderr and "parked" in result.stderr
    assert _lines(handler.parent / "handled.txt") == [3, 5]
    (row,) = _consumers(root)
    assert row["parked"] == 1 and row["lag"] == 0
    (parked,) = row["parked_events"]
    assert parked["batch_id"] == BATCH and parked["seq"] == 4 and parked["type"] == "reverted"
    assert parked["exit_code"] == 7 and "boom on seq 4" in parked["stderr_tail"]
    assert parked["attempts"] == 1 and parked["event"]["version"] == 1
    table = scenelog(root, "consumers")
    assert re.search(r"^CONSUMER\s+LAG\s+PARKED", table.stdout, flags=re.M)
    assert re.search(r"^boards\s+0\s+1\s", table.stdout, flags=re.M)
    # A restart does not see the parked event again.
    again = _watch(root, handler, "--on-error", "skip")
    assert again.returncode == 0 and "1 parked events" in again.stderr
    assert _lines(handler.parent / "handled.txt") == [3, 5]

    # Retry while the handler still fails: it stays parked, one more attempt.
    retry = scenelog(root, "consumers", "retry", "boards", "--", str(handler))
    assert retry.returncode == 1
    assert retry.stderr.strip().splitlines()[-1].endswith("0 parked events handled, 1 still parked")
    (row,) = _consumers(root)
    assert row["parked"] == 1 and row["parked_events"][0]["attempts"] == 2

    # Fixed: retry hands it over, the parked list empties, the position stays.
    (handler.parent / "poison").unlink()
    retry = scenelog(root, "consumers", "retry", "boards", "--", str(handler))
    assert retry.returncode == 0, retry.stderr
    assert _lines(handler.parent / "handled.txt") == [3, 5, 4]
    (row,) = _consumers(root)
    assert row["parked"] == 0 and row["parked_events"] == [] and row["lag"] == 0


def test_item1_consumers_reset_to_batch_seq_beginning_and_now(root: Path, handler: Path) -> None:
    assert _watch(root, handler).returncode == 0
    handled = handler.parent / "handled.txt"
    assert _lines(handled) == [3, 4, 5]

    reset = scenelog(root, "consumers", "reset", "boards", "--to", f"{BATCH}:3")
    assert reset.returncode == 0, reset.stderr
    assert _consumers(root)[0]["lag"] == 2
    assert _watch(root, handler).returncode == 0
    assert _lines(handled) == [3, 4, 5, 4, 5]  # right after seq 3

    assert scenelog(root, "consumers", "reset", "boards", "--to", "beginning").returncode == 0
    assert _consumers(root)[0]["lag"] == 5
    assert _watch(root, handler).returncode == 0
    assert _lines(handled) == [3, 4, 5, 4, 5, 3, 4, 5]

    assert scenelog(root, "consumers", "reset", "boards", "--to", f"{BATCH}:0").returncode == 0
    assert _consumers(root)[0]["lag"] == 5  # BATCH:0 is the whole batch
    assert scenelog(root, "consumers", "reset", "boards", "--to", "now").returncode == 0
    assert _consumers(root)[0]["lag"] == 0
    result = _watch(root, handler)
    assert result.returncode == 0 and "resumes from its checkpoint" in result.stderr
    assert _lines(handled) == [3, 4, 5, 4, 5, 3, 4, 5]

    for bad in (f"{BATCH}:9", f"{BATCH}:x", "yesterday", "ep_001_BATCH_999:1"):
        refused = scenelog(root, "consumers", "reset", "boards", "--to", bad)
        assert refused.returncode == 2, (bad, refused.stderr)
        assert len(refused.stderr.strip().splitlines()) == 1
    missing = scenelog(root, "consumers", "reset", "nobody", "--to", "now")
    assert missing.returncode == 2 and "no consumer 'nobody'" in missing.stderr

    assert scenelog(root, "consumers", "delete", "boards").returncode == 0
    assert _consumers(root) == []
    assert scenelog(root, "consumers", "delete", "boards").returncode == 2


def test_item1_retry_policy_backs_off_and_then_stops(root: Path, handler: Path) -> None:
    (handler.parent / "flaky").write_text("2")
    result = _watch(root, handler, "--on-error", "retry", "--backoff", "0.05")
    assert result.returncode == 0, result.stderr
    assert "run 2 of 4 in 0.05 s" in result.stderr and "run 3 of 4 in 0.1 s" in result.stderr
    assert _lines(handler.parent / "attempts.txt") == [3, 3, 3, 4, 5]
    assert _lines(handler.parent / "handled.txt") == [3, 4, 5]

    (handler.parent / "flaky").write_text("9")
    assert scenelog(root, "consumers", "reset", "boards", "--to", "beginning").returncode == 0
    failed = _watch(root, handler, "--on-error", "retry", "--retries", "1", "--backoff", "0.05")
    assert failed.returncode == 1 and "exited 5" in failed.stderr.strip().splitlines()[-1]
    assert _lines(handler.parent / "attempts.txt") == [3, 3, 3, 4, 5, 3, 3]


def test_item1_managing_a_consumer_is_refused_while_its_watcher_runs(
    root: Path, handler: Path
) -> None:
    with _running(root, "watch", "--consumer", "boards", "--poll", "--", str(handler)) as proc:
        for args in (
            ["retry", "boards", "--", str(handler)],
            ["reset", "boards", "--to", "beginning"],
            ["delete", "boards"],
        ):
            result = scenelog(root, "consumers", *args)
            assert result.returncode == 3, result.stderr
            (line,) = result.stderr.strip().splitlines()
            assert f"pid {proc.pid}" in line and "stop that watcher first" in line
    assert [r["consumer"] for r in _consumers(root)] == ["boards"]


def test_item1_bad_policy_usage_is_refused_at_start(root: Path, handler: Path) -> None:
    for args in (
        ["watch", "--on-error", "skip", "--", str(handler)],  # parking needs a consumer
        ["watch", "--consumer", "c", "--on-error", "retry"],  # no handler to retry
        ["watch", "--on-error", "sometimes", "--", str(handler)],
        ["consumers", "retry", "boards"],  # no handler
    ):
        result = scenelog(root, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1


def test_item1_park_retry_reset_delete_on_every_backend(backend_root: str) -> None:
    """The same management through the Python API, on files, memory:// and PostgreSQL."""
    store = SceneVersionStore("show", 1, root=backend_root)
    store.write_scene_candidate(BATCH, scene(BATCH, 3))
    store.write_scene_candidate(BATCH, scene(BATCH, 4))
    store.conform(BATCH, 2)
    stop = threading.Event()
    stop.set()
    with watch("show", root=backend_root, consumer="api", start="beginning", stop=stop) as w:
        for event in w:
            if event.seq == 2:
                w.park(event, exit_code=9, stderr=b"x" * 5000 + b"tail of the error")
    (row,) = consumer_status("show", backend_root)
    assert row["parked"] == 1 and row["lag"] == 0
    (parked,) = parked_events("show", "api", backend_root)
    assert parked["seq"] == 2 and parked["exit_code"] == 9
    assert (
        parked["stderr_tail"].endswith("tail of the error") and len(parked["stderr_tail"]) == 2048
    )
    seen: list[int] = []

    def failing(event: dict[str, Any]) -> tuple[int | None, bytes]:
        seen.append(event["seq"])
        return 1, b"still broken"

    assert retry_parked("show", "api", failing, backend_root) == (0, 1)
    assert parked_events("show", "api", backend_root)[0]["attempts"] == 2
    assert retry_parked("show", "api", lambda e: (0, b""), backend_root) == (1, 0)
    assert seen == [2] and parked_events("show", "api", backend_root) == []

    reset_consumer("show", "api", "beginning", backend_root)
    assert consumer_status("show", backend_root)[0]["lag"] == 3
    reset_consumer("show", "api", "now", backend_root)
    assert consumer_status("show", backend_root)[0]["lag"] == 0
    if backend_root.startswith("postgres"):
        with pytest.raises(InvalidInput, match="not available on this backend"):
            reset_consumer("show", "api", f"{BATCH}:1", backend_root)
    else:
        reset_consumer("show", "api", f"{BATCH}:1", backend_root)
        assert consumer_status("show", backend_root)[0]["lag"] == 2
        with watch("show", root=backend_root, consumer="api", stop=stop) as w:
            assert [e.seq for e in w] == [2, 3]
        with pytest.raises(InvalidInput):
            reset_consumer("show", "api", f"{BATCH}:4", backend_root)
    store.revert(BATCH, 1)  # one event due: the watcher below stops inside its claim
    with watch("show", root=backend_root, consumer="api", stop=stop) as w:
        assert next(w).seq == 4
        with pytest.raises(ConsumerBusy):
            delete_consumer("show", "api", backend_root)
    # PostgreSQL frees a claim when the server sees its connection close, a moment
    # after the watcher closed it (reported to the pglog owner): wait for that there.
    _until(lambda: _deleted(backend_root))
    assert consumer_status("show", backend_root) == []


def _deleted(root: str) -> bool:
    try:
        delete_consumer("show", "api", root)
    except ConsumerBusy:
        assert root.startswith("postgres")
        return False
    return True


# ── item 2: grouped durability ────────────────────────────────────────────────


def _many(root: Path, pointer_moves: int) -> int:
    """Two versions and ``pointer_moves`` conforms back and forth; the last seq."""
    store = SceneVersionStore("show", 1, root=root)
    store.write_scene_candidate(BATCH, scene(BATCH, 3))
    store.write_scene_candidate(BATCH, scene(BATCH, 4))
    for i in range(pointer_moves):
        store.conform(BATCH, 2 - i % 2)
    return FileLog(Layout.of("show", root)).last_seq(BATCH)


def test_item2_a_killed_watcher_redelivers_only_the_event_in_flight(
    tmp_path: Path, handler: Path
) -> None:
    root = tmp_path / "store"
    last = _many(root, 38)
    assert last == 40
    (handler.parent / "kill_at").write_text("25")
    args = ["watch", "--consumer", "k", "--start", "beginning", "--poll", "--timeout", "0.5"]
    killed = scenelog(root, *args, "--", str(handler))
    assert killed.returncode == -signal.SIGKILL
    assert _lines(handler.parent / "handled.txt") == list(range(1, 26))
    resumed = scenelog(root, *args, "--", str(handler))
    assert resumed.returncode == 0, resumed.stderr
    # Every checkpoint was written (not every one fsync'd): only seq 25 comes again.
    assert _lines(handler.parent / "handled.txt") == [*range(1, 26), *range(25, last + 1)]


def test_item2_durable_saves_are_grouped_and_the_last_one_is_durable(tmp_path: Path) -> None:
    root = tmp_path / "store"
    assert _many(root, 298) == 300
    stop = threading.Event()
    stop.set()  # ends once caught up
    w = watch("show", root=root, consumer="g", start="beginning", poll=True, stop=stop)
    saves: list[bool] = []
    real = w.log.save_checkpoint

    def recording(consumer: str, data: bytes, *, durable: bool = True) -> None:
        saves.append(durable)
        real(consumer, data, durable=durable)

    w.log.save_checkpoint = recording  # type: ignore[method-assign]
    started = time.monotonic()
    with w:
        assert sum(1 for _event in w) == 300
    elapsed = time.monotonic() - started
    del w.log.save_checkpoint  # the shared FileLog's own method again
    assert len(saves) >= 300  # every event's checkpoint is written
    assert saves.count(True) <= 3 + elapsed / 0.05  # fsync'd at most every 50 ms (+ start, end)
    assert saves.count(False) >= 300 - saves.count(True)
    assert saves[-1] is True  # closing makes it durable
    folder = root / "show" / ".scenelog" / "consumers"
    saved = json.loads((folder / "g.json").read_bytes())  # NAME.json holds the last one
    assert json.loads(saved["position"])[BATCH][0] == 300


def test_item2_journal_lines_are_read_after_their_mark_only(tmp_path: Path) -> None:
    log = FileLog(Layout.of("show", tmp_path))
    log.save_checkpoint("j", b'{"n": 1}')
    log.save_checkpoint("j", b'{"n": 2}', durable=False)
    log.save_checkpoint("j", b'{"n": 3}', durable=False)
    assert log.load_checkpoint("j") == b'{"n": 3}'  # the next process sees every save
    journal = checkpoints.consumer_dir(log.layout) / "j.journal"
    before = journal.read_bytes()
    log.save_checkpoint("j", b'{"n": 4}')  # durable: NAME.json, then a mark in the journal
    assert log.load_checkpoint("j") == b'{"n": 4}'
    journal.write_bytes(before)  # a crash after the rename, before the mark:
    fd, _size = checkpoints._journals.pop(str(journal))  # the writer is gone
    os.close(fd)
    assert log.load_checkpoint("j") == b'{"n": 4}'  # the journal is older: ignored
    log.save_checkpoint("j", b'{"n": 5}', durable=False)
    with journal.open("ab") as f:
        f.write(b'{"n": 6')  # torn by a power loss
    assert log.load_checkpoint("j") == b'{"n": 5}'


# ── item 3: a truthful banner, progress on a terminal ─────────────────────────


def test_item3_banner_says_new_consumer_resume_or_plain_start(root: Path) -> None:
    args = ["watch", "--poll", "--timeout", "0.3"]
    first = scenelog(root, *args, "--consumer", "b", "--start", "beginning")
    assert "new consumer b starts at the beginning, 5 events to catch up" in first.stderr
    SceneVersionStore("show", 1, root=root).revert(BATCH, 1)
    second = scenelog(root, *args, "--consumer", "b", "--start", "beginning")
    banner = second.stderr.splitlines()[0]
    assert "consumer b resumes from its checkpoint of 20" in banner, banner
    assert "1 events to catch up" in banner and "start" not in banner.split("resumes")[1]
    plain = scenelog(root, *args)
    assert "starting now" in plain.stderr and "catch up" not in plain.stderr


def test_item3_progress_goes_to_stderr_only_when_it_is_a_terminal(tmp_path: Path) -> None:
    root = tmp_path / "store"
    assert _many(root, 98) == 100
    args = ["watch", "--start", "beginning", "--poll", "--timeout", "0.3"]
    piped = scenelog(root, *args)
    assert piped.returncode == 0 and "catching up" not in piped.stderr
    master, slave = pty.openpty()
    env = child_env(SCENELOG_ROOT=str(root), SCENELOG_PROJECT="show")
    proc = subprocess.Popen(
        [sys.executable, "-m", "projections", *args],
        stdout=subprocess.DEVNULL,
        stderr=slave,
        env=env,
        cwd=REPO,
    )
    os.close(slave)
    seen = b""
    try:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            elif proc.poll() is not None:
                break
    finally:
        proc.kill() if proc.poll() is None else None
        proc.wait(timeout=DEADLINE)
        os.close(master)
    assert proc.returncode == 0
    assert re.search(rb"catching up: 100/100 events, [\d,]+ events/s", seen), seen


# ── item 4: the handler after --, --exec only for one program ─────────────────


def test_item4_handler_after_double_dash_gets_its_own_flags(root: Path, handler: Path) -> None:
    result = scenelog(
        root, "watch", "--start", "beginning", "--poll", "--timeout", "0.3", "--max-events", "1",
        "--", str(handler), "--fast", "--timeout", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads((handler.parent / "argv.txt").read_text()) == ["--fast", "--timeout", "1"]
    assert _lines(handler.parent / "handled.txt") == [1]


def test_item4_flags_after_exec_are_the_watchers(root: Path, handler: Path) -> None:
    started = time.monotonic()
    result = scenelog(
        root, "watch", "--exec", str(handler), "--timeout", "0.5", "--poll", timeout=20
    )
    assert result.returncode == 0, result.stderr  # --timeout was honoured, not swallowed
    assert time.monotonic() - started < 20
    assert not (handler.parent / "argv.txt").exists()  # nothing arrived: no event


def test_item4_a_handler_that_cannot_run_is_refused_at_start(root: Path, handler: Path) -> None:
    for args in (
        ["--", str(handler.parent / "missing.sh")],
        ["--exec", "no-such-command-xyz"],
        ["--exec", sys.executable, "-c", "print(1)"],  # --exec takes one program
        [str(handler)],  # a handler goes after --
        ["--exec", str(handler), "--", str(handler)],
    ):
        result = scenelog(root, "watch", "--consumer", "c", "--poll", *args)
        assert result.returncode == 2, (args, result.stderr)
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("scenelog: error:")
    assert _consumers(root) == []  # refused before anything was read or saved


# ── item 5: the README's boards example, run as written ──────────────────────


def _readme_watchers() -> tuple[str, str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Watchers", 1)[1].split("\n## ", 1)[0]
    (block,) = (b for b in re.findall(r"```sh\n(.*?)```", section, flags=re.S) if "watch" in b)
    lines = block.strip().splitlines()
    assert lines[-1].startswith("scenelog watch ")
    return "\n".join(lines[:-1]), lines[-1]


def test_item5_readme_boards_example_opens_the_gate_after_a_revert(tmp_path: Path) -> None:
    setup, command = _readme_watchers()
    assert "conformed,reverted" in command
    root = tmp_path / "store"
    work = tmp_path / "work"
    tools = tmp_path / "bin"
    for folder in (work, tools):
        folder.mkdir()
    (tools / "render_boards").write_text('#!/bin/sh\necho "$@" >> "$RENDERED"\n')
    (tools / "render_boards").chmod(0o755)
    (tools / "scenelog").write_text(f'#!/bin/sh\nexec {sys.executable} -m projections "$@"\n')
    (tools / "scenelog").chmod(0o755)
    env = child_env(
        SCENELOG_ROOT=str(root),
        SCENELOG_PROJECT="show",
        SCENELOG_ACTOR="boards@farm",
        RENDERED=str(tmp_path / "rendered.txt"),
        PATH=f"{tools}{os.pathsep}{os.environ['PATH']}",
    )
    subprocess.run(["sh", "-ec", setup], cwd=work, env=env, check=True, timeout=DEADLINE)
    store = SceneVersionStore("show", 1, root=root)
    for shots in (3, 4, 5):  # v1 (active at once), v2, v3
        store.write_scene_candidate(BATCH, scene(BATCH, shots))

    def gate() -> int:
        return scenelog(root, "gate", BATCH).returncode

    with _running(root, *shlex.split(command)[1:], cwd=work, env=env):
        store.conform(BATCH, 3)
        _until(lambda: gate() == 0)  # the watcher built v3's boards
        store.revert(BATCH, 2)  # v2's boards were never built: blocked until derived
        _until(lambda: len(_history(root)) == 7)
        assert gate() == 0
    assert (tmp_path / "rendered.txt").read_text().split("\n")[:2] == [f"{BATCH} 3", f"{BATCH} 2"]
    types = [e["type"] for e in _history(root)]
    assert types[-4:] == ["conformed", "derived", "reverted", "derived"]


# ── item 6: a service: SIGTERM after the current event, a health file, a unit ─


def test_item6_sigterm_stops_after_the_current_event_and_health_tells_the_lag(
    root: Path, handler: Path, tmp_path: Path
) -> None:
    health = tmp_path / "health.json"
    (handler.parent / "hold").write_text("")
    args = ["watch", "--consumer", "svc", "--start", "beginning", "--type", "conformed"]
    with _running(root, *args, "--health", str(health), "--", str(handler)) as proc:
        _until(lambda: (handler.parent / "holding").exists())
        state = json.loads(health.read_text())
        assert state["pid"] == proc.pid and state["consumer"] == "svc"
        assert state["state"] == "catching_up" and state["lag"] >= 1 and state["updated_at"]
        proc.send_signal(signal.SIGTERM)  # while the handler runs seq 3
        (handler.parent / "release").write_text("")
        assert proc.wait(timeout=DEADLINE) == 0
    assert _lines(handler.parent / "handled.txt") == [3]  # finished 3, never started 5
    state = json.loads(health.read_text())
    assert state["state"] == "stopped" and state["last_event"]["seq"] == 3
    assert state["delivered"] == 1
    (handler.parent / "hold").unlink()
    again = scenelog(root, *args, "--poll", "--timeout", "0.3", "--", str(handler))
    assert again.returncode == 0
    assert _lines(handler.parent / "handled.txt") == [3, 5]  # resumed after 3


def test_item6_documented_unit_file_runs_a_valid_watch_command() -> None:
    unit = (REPO / "docs" / "scenelog-watch@.service").read_text()
    settings = dict(
        line.split("=", 1) for line in unit.splitlines() if "=" in line and line[0] != "#"
    )
    assert settings["Restart"] == "on-failure" and settings["KillMode"] == "mixed"
    argv = shlex.split(settings["ExecStart"].replace("%i", "boards"))
    assert Path(argv[0]).name == "scenelog" and argv[1] == "watch"
    args = parse_command_line(argv[1:])  # what `scenelog` itself does with this argv
    assert args.consumer == "boards" and args.health and args.on_error == "skip"
    assert args.command_line == ["--", "/opt/scenelog/handlers/boards.sh"]
    service = (REPO / "docs" / "SERVICE.md").read_text()
    for needed in ("scenelog-watch@.service", "--health", "--on-error", "power loss", "SIGTERM"):
        assert needed in service, needed


# ── helpers ───────────────────────────────────────────────────────────────────


class _running:
    """``scenelog ARGS`` in the background until its banner; SIGTERM and wait on exit."""

    def __init__(
        self, root: Path, *args: str, cwd: Path = REPO, env: dict[str, str] | None = None
    ) -> None:
        environment = env or child_env(SCENELOG_ROOT=str(root), SCENELOG_PROJECT="show")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "projections", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
            cwd=cwd,
        )

    def __enter__(self) -> subprocess.Popen[str]:
        assert self.proc.stderr is not None
        ready, _, _ = select.select([self.proc.stderr], [], [], DEADLINE)
        line = self.proc.stderr.readline() if ready else ""
        assert "scenelog: watching" in line, line
        return self.proc

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=DEADLINE)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            assert self.proc.stderr is not None
            self.proc.stderr.close()


def _until(condition: object) -> bool:
    """Poll ``condition()`` until it is true, under ``DEADLINE`` (an AssertionError after)."""
    assert callable(condition)
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.02)
    return True


def _history(root: Path) -> list[dict[str, object]]:
    result = scenelog(root, "history", BATCH, "--json")
    assert result.returncode == 0, result.stderr
    events = (
        json.loads(result.stdout)
        if result.stdout.lstrip().startswith("[")
        else [json.loads(line) for line in result.stdout.splitlines()]
    )
    assert isinstance(events, list)
    return events
