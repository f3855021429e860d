"""Issue 10, the log's defects: items 1 (R23), 2 (R24), 3, 18 and the write side of 11 (R27).

Multi-process tests start real processes (fork) and stop them under a deadline.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import hashlib
import json
import multiprocessing
import os
import random
import select
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventstore import (
    Conformed,
    Derived,
    FileLog,
    Layout,
    SceneVersionStore,
    StoreIOError,
)
from eventstore.events import new_event_id, utc_now
from eventstore.filelog.core import read_log_events, tail_position, tail_seq
from eventstore.filelog.feed import _Tail
from eventstore.log import open_log
from projections.verify import verify
from tests.helpers import DEADLINE, run_child, scene
from tests.integrity import check_batch
from tests.log_contract import BATCH, appended, derived

PROJECT = "show"
COMMAND = 2001  # events per command in the kill test, like the import
KILLS = 30


def _derived(batch_id: str = BATCH, reason: str | None = "why") -> Derived:
    return Derived(
        seq=0,
        batch_id=batch_id,
        version=1,
        at=utc_now(),
        actor="t",
        reason=reason,
        event_id=new_event_id(),
        prev=None,
    )


def _spellings(tmp_path: Path) -> list[Path]:
    """Four spellings of one root: plain, through a symlink, with `..`, and both."""
    real = tmp_path / "store"
    (real / "sub").mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    return [real, link, real / "sub" / "..", link / "sub" / ".."]


def _deliver(tail: _Tail) -> list[int]:
    """What a watcher delivers from ``tail`` now (the seqs), moving on as the watcher does."""
    found = tail.read()
    for event, offset in found:
        tail.seq, tail.offset = event.seq, offset
    return [event.seq for event, _ in found]


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().split(b"\n")[:-1]]


def _committed_prefix(data: bytes) -> bytes:
    """The test's own reading of R24: cut after the last line whose ``more`` is absent."""
    end = data.rfind(b"\n") + 1
    lines = data[:end].split(b"\n")[:-1]
    while lines and json.loads(lines[-1]).get("more", 0):
        end -= len(lines.pop()) + 1
    return data[:end]


# --- item 1, R23: one batch, one lock, whatever the spelling of the root ---------------


def test_r23_two_spellings_of_a_root_share_one_lock(tmp_path: Path) -> None:
    roots = _spellings(tmp_path)
    logs = [FileLog(Layout.of(PROJECT, r)) for r in roots]
    with logs[0].session(BATCH) as session:
        session.append([appended(1)])
    rounds, errors = 150, []

    def work(log: FileLog) -> None:
        try:
            for _ in range(rounds):
                with log.session(BATCH) as session:
                    session.append([_derived()])
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(log,)) for log in logs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    path = logs[0].path(BATCH)
    events = _lines(path)
    assert [e["seq"] for e in events] == list(range(1, 2 + 4 * rounds))
    assert all(
        e["prev"] == hashlib.sha256(line).hexdigest()
        for e, line in zip(events[1:], path.read_bytes().split(b"\n"), strict=False)
    )
    # One backend, so one memory of the batch, for every spelling (its owner is shared).
    keys = {log.layout.batch(BATCH).identity() for log in logs}
    assert len(keys) == 1 and len({id(open_log(PROJECT, r)) for r in roots}) == 1


def test_r23_threads_conforming_through_real_and_link_keep_the_log_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SCENELOG_ROOT", raising=False)
    real, link = _spellings(tmp_path)[:2]
    setup = SceneVersionStore(PROJECT, 1, root=real)
    for shots in (1, 2, 3):
        setup.write_scene_candidate(BATCH, scene(shots=shots))
    errors: list[Exception] = []

    def work(root: Path, versions: tuple[int, int]) -> None:
        store = SceneVersionStore(PROJECT, 1, root=root)
        try:
            for i in range(60):
                store.conform(BATCH, versions[i % 2], reason=f"{root.name}{i}")
        except Exception as e:  # reported below
            errors.append(e)

    threads = [
        threading.Thread(target=work, args=(root, pair))
        for root in (real, link)
        for pair in ((1, 2), (2, 3))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    check_batch(real / PROJECT / "ep_001" / "scenes", BATCH)
    report = verify(PROJECT, real)
    assert report.ok, [str(f) for f in report.findings]


def _two_spellings_in_one_process(root: str, link: str, rounds: int) -> None:
    logs = [FileLog(Layout.of(PROJECT, r)) for r in (root, link)]

    def work(log: FileLog) -> None:
        for _ in range(rounds):
            with log.session(BATCH) as session:
                session.append([_derived()])

    threads = [threading.Thread(target=work, args=(log,)) for log in logs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_r23_processes_each_with_both_spellings_append_contiguously(tmp_path: Path) -> None:
    real, link = _spellings(tmp_path)[:2]
    log = FileLog(Layout.of(PROJECT, real))
    with log.session(BATCH) as session:
        session.append([appended(1)])
    ctx = multiprocessing.get_context("fork")
    children = [
        ctx.Process(target=_two_spellings_in_one_process, args=(str(real), str(link), 100))
        for _ in range(3)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(DEADLINE)
    try:
        assert [child.exitcode for child in children] == [0, 0, 0]
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
    events = read_log_events(log.path(BATCH), BATCH)
    assert [e.seq for e in events] == list(range(1, 602))
    with log.session(BATCH) as session:  # the writer's own check of seq and chain
        assert session.fold.seq == 601


# --- item 2, R24: a command is all or nothing for every reader ------------------------


def test_r24_multi_event_commands_mark_their_boundary_and_single_ones_stay_unchanged(
    tmp_path: Path,
) -> None:
    log = FileLog(Layout.of(PROJECT, tmp_path))
    with log.session(BATCH) as session:
        session.append([appended(1)])
        session.append([appended(2), appended(3), derived(1)])
        session.append([derived(2)])
    events = _lines(log.path(BATCH))
    assert [e.get("more") for e in events] == [None, 2, 1, None, None]
    # A single-event command is byte-identical to the event's encoding: no mark.
    first = log.path(BATCH).read_bytes().split(b"\n")[0]
    assert b"more" not in first
    # Readers never see the mark as part of an event.
    assert "more" not in log.read(BATCH)[1].to_dict()


def _write_prefix(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def _command_bytes(tmp_path: Path, count: int) -> tuple[bytes, bytes]:
    """(log with v1, the same log after one ``count``-event command): real writer bytes."""
    scratch = FileLog(Layout.of(PROJECT, tmp_path / "scratch"))
    with scratch.session(BATCH) as session:
        session.append([appended(1)])
    before = scratch.path(BATCH).read_bytes()
    with scratch.session(BATCH) as session:
        session.append([_derived() for _ in range(count)])
    return before, scratch.path(BATCH).read_bytes()


def test_r24_no_prefix_of_a_command_shows_an_event_and_the_next_writer_removes_it_whole(
    tmp_path: Path,
) -> None:
    before, after = _command_bytes(tmp_path, 5)
    command = after[len(before) :]
    cuts = sorted(
        {command.index(b"\n", 1) + 1, *random.Random(5).sample(range(1, len(command)), 40)}
    )
    for n, cut in enumerate(cuts):
        root = tmp_path / f"r{n}"
        log = FileLog(Layout.of(PROJECT, root))
        path = log.path(BATCH)
        path.parent.mkdir(parents=True)
        path.write_bytes(before + command[:cut])
        assert [e.seq for e in log.read(BATCH)] == [1], cut
        assert tail_position(path, BATCH) == (len(before), 1), cut
        assert tail_seq(path, BATCH) == 1
        tail = _Tail(path, 0, 0)
        assert _deliver(tail) == [1], cut
        log.forget()  # a new process
        with log.session(BATCH) as session:
            assert session.fold.seq == 1
            session.append([_derived()])
        data = path.read_bytes()
        assert data.startswith(before) and data.count(b"\n") == 2, cut
        torn = list(path.parent.glob(f"{path.name}.torn.*"))
        assert [t.read_bytes() for t in torn] == [command[:cut]]
        assert _deliver(tail) == [2]


def _big_commands(root: str, batch_id: str, pause: tuple[int, int, int, int] | None) -> None:
    """Child: append 2,001-event commands until killed.

    With ``pause = (command, piece, tell_fd, wait_fd)`` the child's writes of the log go
    to the kernel in 64 KiB pieces, as the kernel itself may cut a large write at page
    boundaries; after piece ``piece`` of big command ``command`` it tells the parent and
    waits to be killed there.
    """
    if pause is not None:
        command, piece, tell_fd, wait_fd = pause
        real_write = os.write
        big = 0

        def write(fd: int, data: Any) -> int:
            nonlocal big
            if len(data) < 65536:
                return real_write(fd, data)
            big += 1
            view, done, pieces = memoryview(data), 0, 0
            while done < len(view):
                done += real_write(fd, view[done : done + 65536])
                pieces += 1
                if big == command and pieces == piece:
                    real_write(tell_fd, b"!")
                    os.read(wait_fd, 1)  # never answered: killed here
            return done

        os.write = write
    log = FileLog(Layout.of(PROJECT, root))
    with log.session(batch_id) as session:
        session.append([appended(1, batch_id)])
    reason = "x" * 300
    while True:
        with log.session(batch_id) as session:
            session.append([_derived(batch_id, reason) for _ in range(COMMAND)])


def _readers_see_whole_commands(path: Path, batch_id: str, tail: _Tail) -> int:
    """Every reader agrees on a count of events made of whole commands only; returns it."""
    events = read_log_events(path, batch_id)
    count = len(events)
    assert count == 0 or count % COMMAND == 1, count
    position = tail_position(path, batch_id)
    assert position is not None and position[1] == count
    assert position[0] == len(_committed_prefix(path.read_bytes()))
    _deliver(tail)
    assert tail.seq == count
    return count


@pytest.fixture
def fast_root(tmp_path: Path) -> Iterator[Path]:
    """A root on tmpfs when there is one: the test is about readers, not the disk."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else tmp_path
    root = base / f"scenelog-test-{os.getpid()}-{time.monotonic_ns()}"
    root.mkdir()
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_r24_sigkill_of_a_2001_event_command_is_never_seen_and_removed_whole(
    fast_root: Path,
) -> None:
    """36 SIGKILLs of a child appending 2,001-event commands (~1.4 MB each): 30 stopped inside
    a write at a random 64 KiB piece of the first or second command, 6 at a random moment.
    Readers and a watcher never see a partial command; the next writer removes it whole."""
    rng = random.Random(24)
    ctx = multiprocessing.get_context("fork")
    log = FileLog(Layout.of(PROJECT, fast_root))
    cut_mid_command = 0
    for round_ in range(KILLS + 6):
        batch_id = f"ep_001_BATCH_{round_ + 1:03d}"
        path = log.path(batch_id)
        tell_r, tell_w = os.pipe()
        wait_r, wait_w = os.pipe()
        pause = (rng.choice((1, 2)), rng.randint(1, 14), tell_w, wait_r)
        child = ctx.Process(
            target=_big_commands,
            args=(str(fast_root), batch_id, pause if round_ < KILLS else None),
        )
        child.start()
        tail = _Tail(path, 0, 0)
        try:
            if round_ < KILLS:
                ready, _, _ = select.select([tell_r], [], [], DEADLINE)
                assert ready, "the child never reached its pause"
                # Frozen inside the write: every reader sees whole commands only.
                _readers_see_whole_commands(path, batch_id, tail)
            else:
                time.sleep(rng.uniform(0.0, 0.15))  # a random moment to kill at
            os.kill(child.pid or 0, signal.SIGKILL)
        finally:
            if child.is_alive():
                child.kill()
            child.join(DEADLINE)
            for fd in (tell_r, tell_w, wait_r, wait_w):
                os.close(fd)
        assert child.exitcode == -signal.SIGKILL
        if not path.exists():
            continue  # killed before its first write
        data = path.read_bytes()
        committed = _committed_prefix(data)
        if b"\n" in data[len(committed) :]:
            cut_mid_command += 1
        count = _readers_see_whole_commands(path, batch_id, tail)
        log.forget()  # the next writer is a new process
        with log.session(batch_id) as session:
            assert session.fold.seq == count
            session.append([_derived(batch_id)])
        assert path.read_bytes().startswith(committed)
        assert path.read_bytes().count(b"\n") == count + 1
        torn = b"".join(t.read_bytes() for t in path.parent.glob(f"{path.name}.torn.*"))
        assert torn == data[len(committed) :]
        assert _deliver(tail) == [count + 1]
        for leftover in path.parent.glob(f"{batch_id}.*"):
            leftover.unlink()
    # Kills inside a write must have cut commands, or this test proved nothing.
    assert cut_mid_command >= KILLS, cut_mid_command


def test_r24_disk_full_mid_command_shows_no_line_to_any_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = FileLog(Layout.of(PROJECT, tmp_path))
    with log.session(BATCH) as session:
        session.append([appended(1)])
    path = log.path(BATCH)
    before = path.read_bytes()
    tail = _Tail(path, 0, 0)
    assert len(_deliver(tail)) == 1
    seen: list[tuple[object, ...]] = []
    real_write = os.write
    calls = 0

    def write(fd: int, data: Any) -> int:
        nonlocal calls
        if not os.readlink(f"/proc/self/fd/{fd}").endswith(".events.jsonl"):
            return real_write(fd, data)
        calls += 1
        if calls == 1:  # a short write: three complete lines and half of the fourth
            data = bytes(data)
            cut = data.index(b"\n", data.index(b"\n", data.index(b"\n") + 1) + 1) + 40
            return real_write(fd, data[:cut])
        log.forget()
        seen.append(
            (
                [e.seq for e in read_log_events(path, BATCH)],
                tail_position(path, BATCH),
                _deliver(tail),
            )
        )
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as m:
        m.setattr(os, "write", write)
        with pytest.raises(StoreIOError), log.session(BATCH) as session:
            session.append([_derived() for _ in range(6)])
    assert seen == [([1], (len(before), 1), [])]
    assert path.read_bytes() == before
    with log.session(BATCH) as session:
        assert session.fold.seq == 1
        session.append([_derived(), _derived()])
    assert _deliver(tail) == [2, 3]


def test_r24_verify_reports_an_incomplete_command_as_a_warning_not_damage(
    tmp_path: Path,
) -> None:
    before, after = _command_bytes(tmp_path, 3)
    store = SceneVersionStore(PROJECT, 1, root=tmp_path / "v")
    store.write_scene_candidate(BATCH, scene(shots=1))
    path = FileLog(Layout.of(PROJECT, tmp_path / "v")).path(BATCH)
    line = path.read_bytes()
    command = after[len(before) :]
    # The same command re-chained onto this log, cut after its second line.
    scratch_lines = command.split(b"\n")[:2]
    prev = hashlib.sha256(line[:-1]).hexdigest()
    rechained = []
    for raw in scratch_lines:
        event = json.loads(raw)
        event["prev"] = prev
        encoded = json.dumps(event, separators=(",", ":")).encode()
        prev = hashlib.sha256(encoded).hexdigest()
        rechained.append(encoded)
    _write_prefix(path, b"\n".join(rechained) + b"\n")
    report = verify(PROJECT, tmp_path / "v")
    found = [f for f in report.findings if f.severity != "warning"]
    assert found == [], [str(f) for f in found]
    assert any("incomplete command" in f.what for f in report.findings)


# --- item 3: validate, then write ---------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "conform of an unregistered version",
        "a version registered twice",
        "`at` that is not a time",
        "an event of another batch",
    ],
)
def test_item3_append_refuses_before_writing(tmp_path: Path, bad: str) -> None:
    log = FileLog(Layout.of(PROJECT, tmp_path))
    with log.session(BATCH) as session:
        session.append([appended(1)])
    path = log.path(BATCH)
    before = path.read_bytes()
    event: Any = {
        "conform of an unregistered version": Conformed(
            seq=0,
            batch_id=BATCH,
            version=7,
            at=utc_now(),
            actor="t",
            reason=None,
            event_id=new_event_id(),
            prev=None,
            previous_active=1,
        ),
        "a version registered twice": appended(1),
        "`at` that is not a time": Derived(
            seq=0,
            batch_id=BATCH,
            version=1,
            at="last tuesday",
            actor="t",
            reason=None,
            event_id=new_event_id(),
            prev=None,
        ),
        "an event of another batch": derived(1, "ep_001_BATCH_009"),
    }[bad]
    with log.session(BATCH) as session:
        with pytest.raises(ValueError) as info:
            session.append([derived(1), event])
        assert "nothing was written" in str(info.value)
        assert session.fold.seq == 1  # the session still shows the file's state
        session.append([derived(1)])  # and can go on
    assert path.read_bytes().startswith(before)
    assert [e.seq for e in log.read(BATCH)] == [1, 2]
    log.forget()
    with log.session(BATCH) as session:
        assert session.fold.seq == 2


# --- item 18: a long-running process touches 10,000 batches under ulimit -n 256 ------


def test_item18_ten_thousand_batches_under_ulimit_256(tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    # tmpfs keeps 10,000 first writes (fsync of file and folder each) within seconds.
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else tmp_path
    root = base / f"scenelog-item18-{os.getpid()}-{time.monotonic_ns()}"
    code = """
        import resource, sys
        from pathlib import Path
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        from eventstore import FileLog, Layout
        from tests.log_contract import appended
        log = FileLog(Layout.of("show", Path(sys.argv[1])))
        count = int(sys.argv[2])
        for i in range(count):
            batch_id = f"ep_{i // 999 + 1:03d}_BATCH_{i % 999 + 1:03d}"
            with log.session(batch_id) as session:
                session.append([appended(1, batch_id)])
        for i in range(0, count, 97):  # and back to early ones, whose sidecars were closed
            batch_id = f"ep_{i // 999 + 1:03d}_BATCH_{i % 999 + 1:03d}"
            with log.session(batch_id) as session:
                assert session.fold.seq == 1
        print(len(list(Path("/proc/self/fd").iterdir())))
    """
    try:
        done = run_child(code, str(root), "10000")
        assert done.returncode == 0, done.stderr[-2000:]
        assert int(done.stdout) < 128  # open files stay bounded
    finally:
        import shutil

        shutil.rmtree(root, ignore_errors=True)


def test_item18_open_sidecars_are_bounded_in_process(tmp_path: Path) -> None:
    log = FileLog(Layout.of(PROJECT, tmp_path))
    before = len(os.listdir("/proc/self/fd"))
    for i in range(1, 400):
        with log.session(f"ep_001_BATCH_{i:03d}"):
            pass
    assert len(os.listdir("/proc/self/fd")) - before <= 100  # 64 sidecars at most, not 399


def test_item18_many_stores_in_one_process_share_one_inotify_and_give_their_fds_back(
    tmp_path: Path,
) -> None:
    """300 stores (a server holding many projects), each a long-lived writer whose
    folder R8 follows with inotify: one inotify instance for the process (they are
    counted per user, 128 by default, and watchers need theirs), and the fds of a
    store that is dropped are closed."""

    def fds() -> list[str]:
        targets = []
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(FileNotFoundError):  # the listing's own fd, closed
                targets.append(os.readlink(f"/proc/self/fd/{fd}"))
        return targets

    def inotify() -> int:
        return sum(1 for target in fds() if "inotify" in target)

    for i in range(300):
        store = SceneVersionStore(PROJECT, 1, root=tmp_path / f"r{i}")
        for shots in range(1, 4):
            store.write_scene_candidate(BATCH, scene(shots=shots))
        # Another process places an orphan: this long-lived writer skips it.
        (tmp_path / f"r{i}" / PROJECT / "ep_001" / "scenes" / f"{BATCH}.v009.json").write_bytes(
            scene(shots=9).to_json()
        )
        assert store.write_scene_candidate(BATCH, scene(shots=10)) == 10
        assert inotify() == 1
    del store

    # A log dropped without forget() closes its head records and kept logs.
    def held_here() -> list[str]:
        mine = str(tmp_path / "dropped")
        return [t for t in fds() if t.startswith(mine) and not t.endswith(".lock")]

    log = FileLog(Layout.of(PROJECT, tmp_path / "dropped"))
    with log.session(BATCH) as session:
        session.append([appended(1)])
    assert len(held_here()) == 2  # its head record and its log, kept for the next command
    del log, session
    gc.collect()
    assert held_here() == []


# --- item 11, write side (R27): the head is recorded at each commit --------------------


def test_r27_head_is_recorded_at_each_commit_outside_the_scenes_folder(tmp_path: Path) -> None:
    log = FileLog(Layout.of(PROJECT, tmp_path))
    assert log.head(BATCH) == (0, None)
    assert log.recorded_head(BATCH) is None
    with log.session(BATCH) as session:
        session.append([appended(1)])
        session.append([appended(2), derived(2)])
    path = log.path(BATCH)
    last = path.read_bytes().split(b"\n")[-2]
    assert log.head(BATCH) == (3, hashlib.sha256(last).hexdigest())
    assert log.recorded_head(BATCH) == log.head(BATCH)
    record = tmp_path / PROJECT / ".scenelog" / "heads" / BATCH
    assert record.is_file()
    assert not list(path.parent.glob("*head*"))


def test_r27_an_edited_last_line_no_longer_matches_the_recorded_head(tmp_path: Path) -> None:
    log = FileLog(Layout.of(PROJECT, tmp_path))
    with log.session(BATCH) as session:
        session.append([appended(1)])
        session.append([derived(1)])
    recorded = log.recorded_head(BATCH)
    path = log.path(BATCH)
    path.write_bytes(
        path.read_bytes().replace(b'"actor":"t","reason":"why"', b'"actor":"x","reason":"why"')
    )
    assert recorded is not None and log.head(BATCH)[0] == recorded[0]
    assert log.head(BATCH)[1] != recorded[1]


def test_r27_head_steps_over_an_incomplete_command(tmp_path: Path) -> None:
    before, after = _command_bytes(tmp_path, 4)
    log = FileLog(Layout.of(PROJECT, tmp_path / "h"))
    path = log.path(BATCH)
    path.parent.mkdir(parents=True)
    command = after[len(before) :]
    path.write_bytes(before + command[: command.rindex(b"\n", 0, len(command) - 1) + 1])
    assert log.head(BATCH) == (1, hashlib.sha256(before[:-1]).hexdigest())


def test_r27_a_record_is_never_ahead_of_the_durable_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record is written after the fsync: a failed fsync leaves the old record."""
    log = FileLog(Layout.of(PROJECT, tmp_path))
    with log.session(BATCH) as session:
        session.append([appended(1)])
    recorded = log.recorded_head(BATCH)

    def fsync(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    with monkeypatch.context() as m:
        m.setattr(os, "fsync", fsync)
        with pytest.raises(StoreIOError), log.session(BATCH) as session:
            session.append([derived(1)])
    assert log.recorded_head(BATCH) == recorded


def test_r23_a_recreated_batch_folder_is_one_lock_again_for_every_spelling(
    tmp_path: Path,
) -> None:
    """Spellings seen before the scenes folder was deleted and made again find one lock."""
    roots = _spellings(tmp_path)
    logs = [FileLog(Layout.of(PROJECT, r)) for r in roots]
    for log in logs:  # every spelling has taken the lock once
        with log.session(BATCH) as session:
            if session.fold.seq == 0:
                session.append([appended(1)])
    scenes = roots[0] / PROJECT / "ep_001" / "scenes"
    shutil.rmtree(scenes)
    scenes.mkdir()
    with logs[1].session(BATCH) as session:
        assert session.fold.seq == 0
        session.append([appended(1)])
    errors: list[Exception] = []

    def work(log: FileLog) -> None:
        try:
            for _ in range(50):
                with log.session(BATCH) as session:
                    session.append([_derived()])
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(log,)) for log in logs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert [e.seq for e in logs[0].read(BATCH)] == list(range(1, 202))


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def is_set(self) -> bool:
        return time.monotonic() > self.at


def test_r24_a_watcher_never_delivers_an_incomplete_command(tmp_path: Path) -> None:
    from projections import watch

    before, after = _command_bytes(tmp_path, 3)
    root = tmp_path / "w"
    log = FileLog(Layout.of(PROJECT, root))
    path = log.path(BATCH)
    path.parent.mkdir(parents=True)
    command = after[len(before) :]
    path.write_bytes(before + command[: command.rindex(b"\n", 0, len(command) - 1) + 1])
    events = iter(
        watch(PROJECT, root=root, start="beginning", poll=True, interval=0.01, stop=_Deadline(20))
    )
    first = next(events)
    assert (first.seq, first.type) == (1, "appended")
    with log.session(BATCH) as session:  # removes the incomplete command, then appends
        (written,) = session.append([_derived(reason="after")])
    second = next(events)
    assert (second.seq, second.event_id) == (2, written.event_id)
    close = getattr(events, "close", None)
    if close is not None:
        close()


def test_r24_an_import_killed_mid_write_is_imported_again(tmp_path: Path) -> None:
    from eventstore.importer import import_manifests
    from projections import Projection
    from tests.test_import import reference_store

    root = tmp_path / "store"
    reference_store(root / PROJECT / "ep_001" / "scenes")
    code = """
        import os, signal, sys
        from eventstore.importer import import_manifests
        real = os.write
        def write(fd, data):
            if os.readlink(f"/proc/self/fd/{fd}").endswith(".events.jsonl"):
                data = bytes(data)
                real(fd, data[: data.index(b"\\n") + 1])  # one complete line, then killed
                os.kill(os.getpid(), signal.SIGKILL)
            return real(fd, data)
        os.write = write
        import_manifests("show", sys.argv[1])
    """
    killed = run_child(code, str(root))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    log = FileLog(Layout.of(PROJECT, root))
    path = log.path(BATCH)
    assert path.read_bytes().count(b"\n") == 1  # the first line of the import is there
    assert log.read(BATCH) == [] and log.last_seq(BATCH) == 0 and not log.exists(BATCH)
    outcomes = import_manifests(PROJECT, root)
    assert [(o.batch_id, o.status) for o in outcomes] == [(BATCH, "imported")]
    manifest = Projection(PROJECT, root=root).manifest(BATCH)
    assert manifest is not None and [e.version for e in manifest.versions] == [1, 2, 3]
