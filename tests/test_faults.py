"""Faults of the machine: disk full, read-only store, hung lock holder, deleted lock file,
garbage in place of a log or a body. Each gives a clear error, loses nothing acknowledged,
and leaves no half line for a later append to glue onto."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from eventstore import (
    DamagedBody,
    DamagedLog,
    LockTimeout,
    SceneVersionStore,
    StoreIOError,
)
from projections import Projection
from tests.helpers import DEADLINE, child_env, scene, snapshot
from tests.integrity import check_batch

B = "ep_001_BATCH_003"


@pytest.fixture
def ready(store: SceneVersionStore, scenes_dir: Path) -> Path:
    store.write_scene_candidate(B, scene(shots=1))
    store.write_scene_candidate(B, scene(shots=2))
    store.conform(B, 2, reason="acknowledged")
    return scenes_dir


def failing_writes(
    monkeypatch: pytest.MonkeyPatch,
    match: Callable[[str], bool],
    code: int,
    *,
    partial: bool = True,
) -> None:
    """Make os.write fail with ``code`` on files whose path matches (half written first)."""
    real = os.write

    def write(fd: int, data: Any) -> int:
        target = os.readlink(f"/proc/self/fd/{fd}")
        if match(target):
            if partial and len(data) > 1:
                real(fd, bytes(data[: len(data) // 2]))
            raise OSError(code, os.strerror(code))
        return real(fd, data)

    real_writev = os.writev

    def writev(fd: int, buffers: Any) -> int:
        if match(os.readlink(f"/proc/self/fd/{fd}")):
            return write(fd, b"".join(buffers))
        return real_writev(fd, buffers)

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "writev", writev)


def test_disk_full_during_the_event_leaves_no_half_line(
    store: SceneVersionStore, ready: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = ready / f"{B}.events.jsonl"
    before = log.read_bytes()
    with monkeypatch.context() as m:
        failing_writes(m, lambda p: p.endswith(".events.jsonl"), errno.ENOSPC)
        with pytest.raises(StoreIOError) as info:
            store.conform(B, 1)
    assert isinstance(info.value, OSError) and "disk is full" in str(info.value)
    assert log.read_bytes() == before  # the half line was cut back
    assert store.conform(B, 1).seq == 4  # and the next command goes on
    check_batch(ready, B)


def test_disk_full_during_the_body_appends_nothing(
    store: SceneVersionStore, ready: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(ready)
    with monkeypatch.context() as m:
        failing_writes(m, lambda p: ".v003.json" in p, errno.ENOSPC)
        with pytest.raises(StoreIOError):
            store.write_scene_candidate(B, scene(shots=3))
    assert snapshot(ready) == before  # no body, no temp file, no event
    assert store.write_scene_candidate(B, scene(shots=3)) == 3


def test_disk_full_during_the_view_keeps_the_command(
    store: SceneVersionStore, ready: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as m:
        failing_writes(m, lambda p: ".versions.json" in p, errno.ENOSPC)
        manifest = store.revert(B, 1, reason="made it")  # committed: the view is only a cache
        assert manifest.active_version == 1
        assert Projection("show", root=store.layout.root).require(B).active_version == 1
    assert Projection("show", root=store.layout.root).require(B).seq == 4
    check_batch(ready, B)  # the read mended the view once the disk had room


def test_read_only_store_says_so_and_changes_nothing(
    store: SceneVersionStore, ready: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(ready)
    real_open = os.open

    def read_only(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(os, "open", read_only)
        store.log.forget()  # type: ignore[attr-defined]
        with pytest.raises(StoreIOError) as info:
            store.write_scene_candidate(B, scene(shots=5))
        assert "read-only" in str(info.value)
        with pytest.raises(StoreIOError):
            store.conform(B, 1)
        assert Projection("show", root=store.layout.root).require(B).active_version == 2
    assert snapshot(ready) == before


HOLDER = """
import sys
from eventstore import FileLog, Layout, Scene
from eventstore.events import Derived, new_event_id, utc_now
log = FileLog(Layout.of("show", sys.argv[1]))
with log.session("ep_001_BATCH_003") as session:
    print("held", flush=True)
    if sys.stdin.readline().strip() == "append":
        try:
            session.append([Derived(seq=0, batch_id="ep_001_BATCH_003", version=2, at=utc_now(),
                                    actor="a", reason="late", event_id=new_event_id(), prev=None)])
            print("appended", flush=True)
        except Exception as e:
            print(type(e).__name__, e, flush=True)
"""


def _holder(root: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_hung_lock_holder_times_out_naming_the_lock(root: Path, ready: Path) -> None:
    holder = _holder(root)
    try:
        short = SceneVersionStore("show", 1, root=root, lock_timeout=0.3)
        with pytest.raises(LockTimeout) as info:
            short.conform(B, 1)
        assert str(ready / f"{B}.lock") in str(info.value)
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys\nfrom projections.cli import main\nmain()",
                "conform",
                B,
                "1",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=child_env(
                SCENELOG_ROOT=str(root), SCENELOG_PROJECT="show", SCENELOG_LOCK_TIMEOUT="0.3"
            ),
        )
        assert result.returncode == 3 and ".lock" in result.stderr, result.stderr
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(timeout=60)


def test_deleted_lock_file_never_lets_two_writers_append(root: Path, ready: Path) -> None:
    holder = _holder(root)
    try:
        (ready / f"{B}.lock").unlink()  # someone "cleans up" while the lock is held
        store = SceneVersionStore("show", 1, root=root, lock_timeout=5)
        assert store.revert(B, 1).seq == 4  # locks the new sidecar
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.write("append\n")
        holder.stdin.flush()
        answer = holder.stdout.readline()
        assert answer.startswith("StoreIOError") and "lock file" in answer
    finally:
        if holder.stdin is not None:
            holder.stdin.close()
        holder.wait(timeout=60)
    events = check_batch(ready, B)
    assert [e["type"] for e in events] == ["appended", "appended", "conformed", "reverted"]


def test_a_writer_already_waiting_when_the_lock_file_is_deleted_takes_the_new_one(
    root: Path, ready: Path
) -> None:
    # The holder keeps the old (deleted) sidecar locked for as long as it runs; a
    # writer that was waiting on it must notice the deletion and lock the file
    # that is at the path now, long before its timeout.
    from eventstore.filelog import lock as lock_module

    holder = _holder(root)
    outcome: list[object] = []
    store = SceneVersionStore("show", 1, root=root, lock_timeout=DEADLINE)

    def waiter() -> None:
        try:
            outcome.append(store.revert(B, 1).seq)
        except Exception as e:  # reported below
            outcome.append(e)

    thread = threading.Thread(target=waiter)
    try:
        thread.start()
        deadline = time.monotonic() + DEADLINE
        # Until the waiter holds its thread lock, i.e. it is inside the acquisition.
        while not any(e.thread_lock.locked() for e in list(lock_module._registry.values())):
            assert time.monotonic() < deadline, "the waiter never started waiting"
            time.sleep(0.001)  # polling another thread's state: nothing to be woken by
        (ready / f"{B}.lock").unlink()
        thread.join(DEADLINE)
        assert not thread.is_alive() and outcome == [4], outcome
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)


def test_garbage_log_stops_reads_and_writes(store: SceneVersionStore, ready: Path) -> None:
    log = ready / f"{B}.events.jsonl"
    log.write_bytes(b"\x00\xffnot a log at all\n" * 3)
    store.log.forget()  # type: ignore[attr-defined]
    before = snapshot(ready)
    with pytest.raises(DamagedLog) as info:
        store.conform(B, 1)
    assert info.value.line == 1 and str(log) in str(info.value)
    with pytest.raises(DamagedLog):
        Projection("show", root=store.layout.root).history(B)
    assert snapshot(ready) == before


def test_garbage_body_is_a_damaged_store(store: SceneVersionStore, ready: Path) -> None:
    (ready / f"{B}.json").write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(DamagedBody) as info:
        store.revert(B, 1)
    assert f"{B}.json" in str(info.value)
    assert len(check_batch(ready, B)) == 3


def test_an_error_right_after_locking_leaves_no_lock_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stat refused right after the POSIX lock was taken (the check of the lock
    # file against its path): the command fails, and nothing stays held — not
    # the thread lock, not the POSIX lock another process would wait on.
    from eventstore.filelog import lock as lock_module

    sidecar = tmp_path / "ep_001_BATCH_003.lock"

    def refused(self: object) -> bool:
        raise PermissionError(errno.EACCES, "Permission denied", str(sidecar))

    monkeypatch.setattr(lock_module._SidecarLock, "is_current", refused)
    with pytest.raises(StoreIOError), lock_module.batch_lock(sidecar, timeout=1):
        pass
    monkeypatch.undo()
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            "import fcntl, sys\nf = open(sys.argv[1], 'a')\n"
            "fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\nprint('locked')",
            str(sidecar),
        ],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert other.stdout == "locked\n", other.stderr
    with lock_module.batch_lock(sidecar, timeout=1):  # and this process takes it again
        pass
