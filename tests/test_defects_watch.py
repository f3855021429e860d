"""Watcher defects of issue 10 (items 13-17, the watch parts of 6 and 22), each a test
that failed before its fix: replaced logs (R28), huge events for --exec handlers, stray
*.events.jsonl names, next(watch(...)), one watcher per consumer, errors at start.

Those not about the log files run on every backend (in-process ones) or on every
backend separate processes share (file, PostgreSQL)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from eventstore import InvalidInput, SceneVersionStore
from projections import consumer_status, watch
from tests.conftest import on_shared_backends, stored
from tests.helpers import scene
from tests.helpers import scenelog as _scenelog
from tests.watching import WatcherProcess

A = "ep_001_BATCH_001"
B = "ep_001_BATCH_002"


def _scenes(root: Path) -> Path:
    return root / "show" / "ep_001" / "scenes"


def _log(root: Path, batch_id: str = A) -> Path:
    return _scenes(root) / f"{batch_id}.events.jsonl"


def _events(root: Path, batch_id: str = A) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _log(root, batch_id).read_text().splitlines()]


def _setup(root: str | Path, *batches: str) -> SceneVersionStore:
    store = SceneVersionStore("show", 1, root=root)
    for batch_id in batches:
        store.write_scene_candidate(batch_id, scene(batch_id, shots=2))
        store.write_scene_candidate(batch_id, scene(batch_id, shots=3))
    return store


def _caught_up(root: str | Path, consumer: str, **kwargs: Any) -> list[Any]:
    """Every event a consumer gets now (poll mode, stop already set: ends once caught up)."""
    stop = threading.Event()
    stop.set()
    return list(watch("show", root=root, consumer=consumer, poll=True, stop=stop, **kwargs))


def _at_least(n: int) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda events: len(events) >= n


def _one_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("scenelog: error: "), stderr
    assert "unexpected" not in lines[0] and "Traceback" not in stderr, stderr
    return lines[0]


# ── item 13 / R28: a consumer follows the log it finds ──────────────────────


def test_r28_log_restored_from_an_older_backup_is_redelivered_with_a_warning(
    root: Path,
) -> None:
    store = _setup(root, A)
    store.conform(A, 2)  # seq 3
    backup = {p.name: p.read_bytes() for p in _scenes(root).iterdir() if p.is_file()}
    store.conform(A, 1)  # seq 4
    store.conform(A, 2)  # seq 5
    assert [e.seq for e in _caught_up(root, "boards", start="beginning")] == [1, 2, 3, 4, 5]
    for name, data in backup.items():  # the backup comes back (log and view)
        (_scenes(root) / name).write_bytes(data)
    store = SceneVersionStore("show", 1, root=root)
    store.conform(A, 1, reason="after the restore")  # a new seq 4
    store.conform(A, 2, reason="after the restore")  # a new seq 5
    restored = _events(root)
    assert [e["seq"] for e in restored] == [1, 2, 3, 4, 5]

    status = _scenelog(root, "consumers", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)[0]["lag"] == 5  # the whole log is due again

    result = _scenelog(
        root, "watch", "--consumer", "boards", "--poll", "--max-events", "5", "--timeout", "3"
    )
    assert result.returncode == 0, result.stderr
    got = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["event_id"] for e in got] == [e["event_id"] for e in restored]
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and A in warnings[0] and "seq 5" in warnings[0], result.stderr
    assert consumer_status("show", root)[0]["lag"] == 0
    assert _caught_up(root, "boards") == []  # and it goes on from there, no second warning


def test_r28_recreated_batch_folder_is_delivered_from_its_first_event(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _setup(root, A)
    store.conform(A, 2)
    assert len(_caught_up(root, "boards", start="beginning")) == 3
    shutil.rmtree(root / "show" / "ep_001")  # the batch folder is recreated from scratch
    SceneVersionStore("show", 1, root=root).write_scene_candidate(A, scene(A, shots=4))
    SceneVersionStore("show", 1, root=root).write_scene_candidate(A, scene(A, shots=5))
    fresh = [e["event_id"] for e in _events(root)]
    assert len(fresh) == 2
    assert consumer_status("show", root)[0]["lag"] == 2
    capsys.readouterr()
    got = _caught_up(root, "boards")
    assert [e.event_id for e in got] == fresh
    notices = capsys.readouterr().err.splitlines()  # the default: one line on stderr
    assert len(notices) == 1 and A in notices[0] and "warning" in notices[0]
    assert consumer_status("show", root)[0]["lag"] == 0


@pytest.mark.parametrize(
    ("mode", "how"),
    [([], "replaced"), (["--poll", "--interval", "0.05"], "truncated")],
    ids=["live-new-inode", "poll-same-inode"],
)
def test_r28_live_watcher_follows_a_log_replaced_while_it_runs(
    root: Path, mode: list[str], how: str
) -> None:
    store = _setup(root, A)
    store.conform(A, 2)
    backup = {p.name: p.read_bytes() for p in _scenes(root).iterdir() if p.is_file()}
    store.conform(A, 1)
    watcher = WatcherProcess(root, "--start", "beginning", *mode)
    try:
        watcher.wait_for(lambda ev: len(ev) == 4)
        for name, data in backup.items():
            target = _scenes(root) / name
            if how == "replaced":  # a restore that renames a copy in: a new inode
                copy = target.with_name(name + ".restore")
                copy.write_bytes(data)
                os.replace(copy, target)
            else:  # cp over the file: the same inode, shrunk
                target.write_bytes(data)
        SceneVersionStore("show", 1, root=root).conform(A, 1, reason="after the restore")
        wanted = _events(root)[-1]["event_id"]
        watcher.wait_for(lambda ev: any(e["event_id"] == wanted for e in ev))
        assert watcher.proc.poll() is None  # still running, not "damaged"
    finally:
        watcher.stop()
    after = watcher.events[4:]
    assert [e["seq"] for e in after] == list(range(1, len(after) + 1))  # again from seq 1
    assert any("warning" in line and A in line for line in watcher.stderr), watcher.stderr


def test_r28_log_rewritten_in_place_past_the_offset_is_noticed(root: Path) -> None:
    notices: list[str] = []
    store = _setup(root, A)
    store.conform(A, 2)
    backup = {p.name: p.read_bytes() for p in _scenes(root).iterdir() if p.is_file()}
    store.conform(A, 1)
    size = _log(root).stat().st_size
    stop = threading.Event()
    watcher = watch("show", root=root, start="beginning", poll=True, interval=0.01, stop=stop)
    watcher.on_notice = notices.append
    events = iter(watcher)
    try:
        assert [next(events).seq for _ in range(4)] == [1, 2, 3, 4]
        # Between two next() calls the watcher is idle: it finds the rewrite done, the
        # same inode, and the file longer than its offset.
        for name, data in backup.items():
            (_scenes(root) / name).write_bytes(data)
        store = SceneVersionStore("show", 1, root=root)
        store.conform(A, 1, reason="after the restore " + "x" * 200)
        store.conform(A, 2, reason="after the restore")
        assert _log(root).stat().st_size > size
        rewritten = [e["event_id"] for e in _events(root)]
        got = [next(events).event_id for _ in rewritten]
    finally:
        stop.set()
        events.close()
    assert got == rewritten
    assert len(notices) == 1 and A in notices[0] and "seq 4" in notices[0]


def test_r28_checkpoint_without_event_ids_is_read_and_rewritten_with_them(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _setup(root, A)
    store.conform(A, 2)
    lines = _log(root).read_bytes().split(b"\n")
    folder = root / "show" / ".scenelog" / "consumers"
    folder.mkdir(parents=True)
    old = {  # the checkpoint format before event ids
        "consumer": "old",
        "updated_at": "2026-11-26T12:00:00.000000Z",
        "positions": {A: {"seq": 2, "offset": len(lines[0]) + len(lines[1]) + 2}},
        "delivered_at": None,
    }
    (folder / "old.json").write_text(json.dumps(old))
    got = _caught_up(root, "old")
    assert [e.seq for e in got] == [3]  # resumed where it was
    assert "warning" not in capsys.readouterr().err
    saved = json.loads((folder / "old.json").read_text())
    assert "positions" not in saved  # rewritten in the form of issue 11
    seq, _offset, event_id = json.loads(saved["position"])[A]  # the file feed's position
    assert seq == 3 and event_id == _events(root)[2]["event_id"]


# ── item 14: every event reaches an --exec handler, whatever its size ───────

HANDLER = """
import json, os, sys
record = {
    "stdin": sys.stdin.read(),
    "file": open(os.environ["SCENELOG_EVENT_FILE"]).read(),
    "env": {k: v for k, v in os.environ.items() if k.startswith("SCENELOG_EVENT_") or k in (
        "SCENELOG_SEQ", "SCENELOG_BATCH_ID", "SCENELOG_TYPE", "SCENELOG_VERSION")},
    "has_event_env": "SCENELOG_EVENT" in os.environ,
}
with open(sys.argv[1], "a") as f:
    f.write(json.dumps(record) + "\\n")
"""


def test_item14_huge_event_reaches_the_handler(root: Path, tmp_path: Path) -> None:
    store = _setup(root, A)
    reason = "r" * (300 * 1024)
    store.conform(A, 2, reason=reason)
    store.conform(A, 1, reason="small")
    out = tmp_path / "handled.jsonl"
    result = _scenelog(
        root,
        "watch",
        "--consumer",
        "big",
        "--start",
        "beginning",
        "--type",
        "conformed",
        "--poll",
        "--max-events",
        "2",
        "--timeout",
        "5",
        "--",  # the handler and its arguments (issue 13 item 4)
        sys.executable,
        "-c",
        HANDLER,
        str(out),
    )
    assert result.returncode == 0, result.stderr
    big, small = (json.loads(line) for line in out.read_text().splitlines())
    assert json.loads(big["stdin"])["reason"] == reason
    assert json.loads(big["file"]) == json.loads(big["stdin"])
    assert not big["has_event_env"] and big["env"]["SCENELOG_EVENT_OMITTED"] == "1"
    assert big["env"]["SCENELOG_SEQ"] == "3" and big["env"]["SCENELOG_BATCH_ID"] == A
    assert big["env"]["SCENELOG_TYPE"] == "conformed" and big["env"]["SCENELOG_VERSION"] == "2"
    assert small["has_event_env"] and "SCENELOG_EVENT_OMITTED" not in small["env"]
    assert json.loads(small["file"])["reason"] == "small"
    assert not Path(big["env"]["SCENELOG_EVENT_FILE"]).exists()  # removed after the handler


# ── item 15: names that are not batch logs are ignored ──────────────────────


STRAY_NAMES = ("notes", "copy", "ep_001_BATCH_01", "ep_001_BATCH_0001", "ep_000_BATCH_001")


def test_item15_stray_events_files_are_ignored_by_a_live_watcher(root: Path) -> None:
    store = _setup(root, A)
    watcher = WatcherProcess(root, "--start", "now")
    strays = [_scenes(root) / f"{name}.events.jsonl" for name in STRAY_NAMES]
    strays.append(root / "show" / "ep_001" / "notes.events.jsonl")
    try:
        for round_, version in enumerate((2, 1, 2), start=1):
            # Each round: stray names change, then a real event; two rounds come after the
            # watcher's first full rescan, when it reads inotify notifications.
            lines = _log(root).read_bytes()  # valid event lines under names that are not logs
            for stray in strays:
                stray.write_bytes(lines)
            store.conform(A, version)
            watcher.wait_for(_at_least(round_))
        assert watcher.proc.poll() is None  # still running
    finally:
        watcher.stop()
    assert [(e["batch_id"], e["seq"]) for e in watcher.events] == [(A, 3), (A, 4), (A, 5)]


# ── item 16: watch() is an iterator ──────────────────────────────────────────


def test_item16_watch_returns_an_iterator(backend_root: str) -> None:
    root = backend_root
    _setup(root, A)
    stop = threading.Event()
    watcher = watch("show", root=root, start="beginning", poll=True, stop=stop)
    assert iter(watcher) is watcher
    assert next(watcher).seq == 1
    assert next(watcher).seq == 2
    watcher.close()
    stop.set()
    with watch("show", root=root, consumer="c", start="beginning", poll=True, stop=stop) as w:
        assert [e.seq for e in w] == [1, 2]


# ── item 17: one watcher per consumer name ──────────────────────────────────


@on_shared_backends
def test_item17_second_watcher_of_a_consumer_refuses_naming_the_holder(backend_root: str) -> None:
    root = backend_root
    store = _setup(root, A)
    first = WatcherProcess(root, "--consumer", "boards", "--poll", "--interval", "0.05")
    second = None
    try:
        refused = _scenelog(root, "watch", "--consumer", "boards", "--poll", "--timeout", "2")
        assert refused.returncode == 3, refused.stderr
        line = _one_error_line(refused.stderr)
        assert f"pid {first.proc.pid}" in line and socket.gethostname() in line
        other = _scenelog(root, "watch", "--consumer", "others", "--poll", "--timeout", "0.2")
        assert other.returncode == 0, other.stderr  # another name runs alongside
        first.kill()  # a crashed holder must not block the next start
        second = WatcherProcess(root, "--consumer", "boards", "--poll", "--interval", "0.05")
        store.conform(A, 2)
        second.wait_for(lambda ev: len(ev) == 1)
    finally:
        first.stop()
        if second is not None:
            second.stop()
    assert second.events[0]["seq"] == 3


def test_item17_two_watchers_of_one_consumer_in_one_process(backend_root: str) -> None:
    root = backend_root
    from eventstore.errors import ConsumerBusy  # (imported here: the base commit lacks it)

    _setup(root, A)
    stop = threading.Event()
    with watch("show", root=root, consumer="c", start="beginning", poll=True, stop=stop) as w:
        assert next(w).seq == 1
        w.commit()  # handled
        with pytest.raises(ConsumerBusy) as info:
            next(watch("show", root=root, consumer="c", poll=True, stop=stop))
        assert f"pid {os.getpid()}" in str(info.value)
    stop.set()
    assert [e.seq for e in _caught_up(root, "c")] == [2]  # free again once closed


# ── items 22 and 6: errors at start, one line ───────────────────────────────


@on_shared_backends
def test_item22_missing_or_non_executable_handler_is_refused_at_start(
    backend_root: str, tmp_path: Path
) -> None:
    root = backend_root
    _setup(root, A)
    not_executable = tmp_path / "handler.sh"
    not_executable.write_text("#!/bin/sh\nexit 0\n")
    not_executable.chmod(0o644)
    for handler in (str(tmp_path / "missing.sh"), str(not_executable), "no-such-command-xyz"):
        result = _scenelog(root, "watch", "--poll", "--timeout", "1", "--exec", handler)
        assert result.returncode == 2, result.stderr
        assert handler in _one_error_line(result.stderr)
        assert result.stdout == ""


def test_item22_consumer_on_a_read_only_store_is_one_clear_line(root: Path, tmp_path: Path) -> None:
    _setup(root, A)
    mount = tmp_path / "ro"
    mount.mkdir()
    try:
        subprocess.run(["mount", "--bind", str(root), str(mount)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"a read-only bind mount needs mount privileges here: {e}")
    try:
        subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(mount)], check=True, capture_output=True
        )
        result = _scenelog(mount, "watch", "--consumer", "boards", "--poll", "--timeout", "1")
        assert result.returncode == 4, result.stderr
        line = _one_error_line(result.stderr)
        assert "read-only" in line and "without --consumer" in line
        plain = _scenelog(mount, "watch", "--start", "beginning", "--poll", "--max-events", "2")
        assert plain.returncode == 0 and len(plain.stdout.splitlines()) == 2, plain.stderr
    finally:
        subprocess.run(["umount", str(mount)], check=True, capture_output=True)


@on_shared_backends
def test_item6_watch_on_a_missing_project_or_root_is_exit_2(
    backend_root: str, tmp_path: Path
) -> None:
    root = backend_root
    _setup(root, A)
    result = _scenelog(root, "watch", "--project", "shwo", "--poll", "--timeout", "1")
    assert result.returncode == 2 and "shwo" in _one_error_line(result.stderr)
    assert stored(root, "shwo") == {}  # nothing created
    missing = tmp_path / "unmounted"
    result = _scenelog(missing, "watch", "--poll", "--timeout", "1")
    assert result.returncode == 2 and str(missing) in _one_error_line(result.stderr)
    assert not missing.exists()
    with pytest.raises(InvalidInput):
        next(watch("shwo", root=root, poll=True))
