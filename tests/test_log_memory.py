"""MemoryLog (``memory://NAME``): the contract, plus what an in-process store promises.

Issue 11 item 3: every store, projection and watcher of a process naming the
same ``memory://NAME`` shares one store, whose lines are the file backend's
bytes; ``backend_root`` runs behaviour tests on both backends.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventstore import EventLog, FileLog, Layout, SceneVersionStore, open_log
from eventstore.errors import InvalidInput
from eventstore.events import Event
from eventstore.log import Head, line_hash
from eventstore.memlog import MemoryLog
from projections import Projection, consumer_status, watch
from tests.helpers import DEADLINE, scene
from tests.log_contract import BATCH, OTHER, EventLogContract, appended, commit, derived


def _name(tmp_path: Path) -> str:
    return f"contract{tmp_path}"


class TestMemoryLogContract(EventLogContract):
    def make_log(self, tmp_path: Path) -> EventLog:
        return MemoryLog.named(_name(tmp_path), "show")

    def forget(self, tmp_path: Path) -> EventLog:
        MemoryLog.reset(_name(tmp_path))
        return self.make_log(tmp_path)

    @pytest.fixture(autouse=True)
    def _forget_at_the_end(self, tmp_path: Path) -> Iterator[None]:
        yield
        MemoryLog.reset(_name(tmp_path))


@pytest.fixture
def name(tmp_path: Path) -> Iterator[str]:
    yield _name(tmp_path)
    MemoryLog.reset(_name(tmp_path))


def test_item3_one_instance_per_name_and_project(name: str) -> None:
    log = MemoryLog.named(name, "show")
    assert MemoryLog.named(name, "show") is log
    assert open_log("show", f"memory://{name}") is log
    assert MemoryLog.named(name, "other") is not log
    assert MemoryLog.named(name + "x", "show") is not log
    assert log.label == f"memory://{name}" and log.project == "show"
    commit(log, appended(1))
    assert open_log("show", f"memory://{name}").exists(BATCH)
    assert not MemoryLog.named(name, "other").exists(BATCH)


def test_item3_reset_forgets_everything_under_the_name(name: str) -> None:
    log = MemoryLog.named(name, "show")
    elsewhere = MemoryLog.named(name + "-kept", "show")
    try:
        commit(log, appended(1))
        commit(elsewhere, appended(1))
        with log.session(BATCH) as session:
            session.write_body(f"{BATCH}.v002.json", b"two")
        log.save_checkpoint("boards", b"{}")
        MemoryLog.reset(name)
        fresh = MemoryLog.named(name, "show")
        for seen in (fresh, log):
            assert not seen.project_exists()
            assert not seen.exists(BATCH) and seen.head(BATCH) == Head(0, None)
            assert seen.body_names(BATCH) == [] and seen.consumers() == []
        assert elsewhere.exists(BATCH)
    finally:
        MemoryLog.reset(name + "-kept")


def test_item3_lines_are_the_bytes_the_file_backend_writes(name: str, tmp_path: Path) -> None:
    memory = MemoryLog.named(name, "show")
    files = FileLog(Layout.of("show", tmp_path))
    commands: list[list[Event]] = [[appended(1), appended(2), derived(1)], [appended(3)]]
    for events in commands:
        for log in (memory, files):
            commit(log, *events)
    lines = memory.raw(BATCH).lines
    assert lines == files.raw(BATCH).lines
    on_disk = tmp_path / "show" / "ep_001" / "scenes" / f"{BATCH}.events.jsonl"
    assert on_disk.read_bytes() == b"".join(line + b"\n" for line in lines)
    assert memory.head(BATCH) == files.head(BATCH) == Head(4, line_hash(lines[-1]))


def test_item3_lock_timeout_names_the_holder(name: str) -> None:
    log = MemoryLog.named(name, "show")
    with log.session(BATCH):
        assert log.busy(BATCH)
        with pytest.raises(TimeoutError) as info, log.session(BATCH, timeout=0):
            pass
        assert "MainThread" in str(info.value) and BATCH in str(info.value)
    assert not log.busy(BATCH)


def test_item3_a_feed_position_of_another_kind_is_refused(name: str) -> None:
    log = MemoryLog.named(name, "show")
    with pytest.raises(InvalidInput):
        log.feed('{"ep_001_BATCH_003": [1, 40, "x"]}')
    with pytest.raises(InvalidInput):
        log.feed("not json")
    with pytest.raises(InvalidInput):
        log.feed(None, start="yesterday")


def test_item3_snapshot_is_the_fold_at_the_head(name: str) -> None:
    log = MemoryLog.named(name, "show")
    assert log.snapshot(BATCH) is None
    commit(log, appended(1), appended(2))
    commit(log, derived(1))
    snap = log.snapshot(BATCH)
    assert snap is not None and snap.seq == 3 and snap.active_version == 1
    assert snap.versions[0].downstream == "derived"
    assert log.snapshot(OTHER) is None


# ── behaviour on every backend (the fixture others parametrize on) ─────────


def test_item4_store_and_projection_round_trip(backend_root: str) -> None:
    store = SceneVersionStore("show", 1, root=backend_root)
    first, second = scene(), scene(tag=" reshot")
    assert store.write_scene_candidate(BATCH, first) == 1
    assert store.write_scene_candidate(BATCH, second) == 2
    view = Projection("show", root=backend_root)
    assert view.is_fresh(BATCH)  # v1 is active and derived (R3)
    store.conform(BATCH, 2)
    assert not view.is_fresh(BATCH)
    store.mark_derived(BATCH, 2)
    manifest = view.manifest(BATCH)
    assert manifest is not None
    assert (manifest.active_version, manifest.seq) == (2, 4)
    assert [(v.version, v.state, v.downstream) for v in manifest.versions] == [
        (1, "approved", "derived"),
        (2, "approved", "derived"),
    ]
    assert view.is_fresh(BATCH)
    history = view.history(BATCH)
    assert [e.type for e in history] == ["appended", "appended", "conformed", "derived"]
    assert all(e.actor == "tester@farm" for e in history)
    assert view.body(BATCH, 1) == first and view.body(BATCH, 2) == second
    assert view.batches(1) == [BATCH] and view.episodes() == ["ep_001"]
    log = open_log("show", backend_root)
    assert log.head(BATCH).seq == 4
    assert log.raw(BATCH).lines[-1] == log.raw(BATCH).lines[3]


def test_item3_a_memory_root_writes_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SCENELOG_ROOT", raising=False)
    root = f"memory://{name}"
    store = SceneVersionStore("show", 1, root=root)
    store.write_scene_candidate(BATCH, scene())
    store.write_scene_candidate(BATCH, scene(tag="b"))
    store.conform(BATCH, 2)
    assert Projection("show", root=root).manifest(BATCH) is not None
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError):  # R16: an unknown project never answers "fresh"
        Projection("nope", root=root).is_fresh(BATCH)


def test_item3_a_watcher_follows_every_backend(backend_root: str) -> None:
    store = SceneVersionStore("show", 1, root=backend_root)
    store.write_scene_candidate(BATCH, scene())
    stop = threading.Event()
    guard = threading.Timer(DEADLINE, stop.set)  # a broken feed ends the test, never hangs it
    guard.start()
    watcher = watch("show", root=backend_root, start="beginning", consumer="boards", stop=stop)
    try:
        first = next(watcher)
        store.write_scene_candidate(BATCH, scene(tag=" reshot"))
        second = next(watcher)
        watcher.commit()
    finally:
        watcher.close()
        guard.cancel()
    assert (first.batch_id, first.seq, first.type) == (BATCH, 1, "appended")
    assert (second.seq, second.type, second.version) == (2, "appended", 2)
    (status,) = consumer_status("show", backend_root)
    assert status["consumer"] == "boards" and status["lag"] == 0
    store.conform(BATCH, 2)
    assert consumer_status("show", backend_root)[0]["lag"] == 1
