"""Issue 11 items 2, 5, 6: the store reaches storage only through the backend its root chooses.

- item 2: ``SceneVersionStore`` takes the backend ``open_log`` chooses, runs on
  a backend without files, and the file backend's guards (the reference's
  lock, R21, R29) live in its command session;
- item 5: the file backend's memory is owned by the FileLog instance (no
  module-level caches), and ``FileLog.forget`` is the public "new process";
- item 6: the store runs ``eventstore.rules.check_event`` before appending,
  and ``Manifest.blocked_reason`` is the one statement of why a gate is blocked.
"""

from __future__ import annotations

import importlib
import os
import threading
from pathlib import Path

import pytest

from eventstore import DamagedLog, LockTimeout, RuleViolation, SceneVersionStore
from eventstore.log import open_log
from eventstore.manifest import Manifest
from tests.helpers import BATCH, DEADLINE, scene, snapshot


def test_item2_the_store_takes_its_backend_from_the_root(tmp_path: Path) -> None:
    store = SceneVersionStore("show", 1, root=tmp_path)
    assert store.log is open_log("show", tmp_path)
    assert store.log is open_log("show", f"file://{tmp_path}")
    store.write_scene_candidate(BATCH, scene(shots=1))
    assert open_log("show", tmp_path).last_seq(BATCH) == 1


def test_item2_every_command_runs_on_a_backend_without_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = SceneVersionStore("show", 1, root="memory://p1-store-commands")
    assert store.write_scene_candidate(BATCH, scene(shots=1)) == 1  # Case A
    assert store.write_scene_candidate(BATCH, scene(shots=2)) == 2  # Case C
    again = store.write_candidate(BATCH, scene(shots=2), dedup_against_versions=True)
    assert (again.version, again.deduplicated) == (2, True)
    assert store.conform(BATCH, 2).active_version == 2
    derived = store.mark_derived(BATCH, 2)
    assert derived is not None and derived.blocked_reason() is None
    assert store.revert(BATCH, 1).active_version == 1
    assert [e.type for e in store.log.read(BATCH)] == [
        "appended",
        "appended",
        "conformed",
        "derived",
        "reverted",
    ]
    assert snapshot(tmp_path) == {}  # nothing reached a disk


def test_item6_the_store_runs_the_rule_check_before_appending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SceneVersionStore("show", 1, root=tmp_path)
    store.write_scene_candidate(BATCH, scene(shots=1))
    store.write_scene_candidate(BATCH, scene(shots=2))
    before = snapshot(tmp_path / "show" / "ep_001")
    seen: list[str] = []

    def refuse(fold: object, event: object, *, flat_name: str) -> str:
        seen.append(flat_name)
        return "a forged refusal"

    monkeypatch.setattr("eventstore.store.check_event", refuse)
    with pytest.raises(RuleViolation) as info:
        store.conform(BATCH, 2)
    assert "a forged refusal" in str(info.value) and "nothing was written" in str(info.value)
    assert info.value.seq == 3
    assert seen == [f"{BATCH}.json"]
    after = snapshot(tmp_path / "show" / "ep_001")
    assert {k: v for k, v in after.items() if not k.endswith(".lock")} == {
        k: v for k, v in before.items() if not k.endswith(".lock")
    }


def test_item6_blocked_reason_says_why_a_gate_is_blocked(tmp_path: Path) -> None:
    store = SceneVersionStore("show", 1, root=tmp_path)
    store.write_scene_candidate(BATCH, scene(shots=1))
    store.write_scene_candidate(BATCH, scene(shots=2))
    fresh = store.conform(BATCH, 1)
    assert fresh.is_fresh and fresh.blocked_reason() is None
    blocked = store.conform(BATCH, 2)
    assert not blocked.is_fresh
    assert blocked.blocked_reason() == "v2 active, boards not rebuilt"
    empty = Manifest(BATCH, None, 0, ())
    assert empty.blocked_reason() == "no active version"


@pytest.mark.parametrize(
    "module", ["eventstore.store", "eventstore.filelog.core", "eventstore.filelog.views"]
)
def test_item5_no_module_level_caches(module: str) -> None:
    """What the file backend remembers belongs to a FileLog, never to a module."""
    namespace = vars(importlib.import_module(module))
    caches = [
        name
        for name, value in namespace.items()
        if isinstance(value, dict | set | list) and not name.startswith("__")
    ]
    assert caches == []


def test_item5_forget_makes_a_backend_read_the_files_again(tmp_path: Path) -> None:
    """After ``forget()`` the backend knows nothing, as a new process: it reads the
    whole log again, so an edit that kept the log's size and mtime is found."""
    store = SceneVersionStore("show", 1, root=tmp_path)
    store.write_scene_candidate(BATCH, scene(shots=1))
    store.write_scene_candidate(BATCH, scene(shots=2))
    log = open_log("show", tmp_path)
    path = tmp_path / "show" / "ep_001" / "scenes" / f"{BATCH}.events.jsonl"
    data, st = path.read_bytes(), os.stat(path)
    at = data.index(b'"event_id":"') + len(b'"event_id":"')
    flipped = b"0" if data[at : at + 1] != b"0" else b"1"
    path.write_bytes(data[:at] + flipped + data[at + 1 :])  # same size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime
    log.forget()  # type: ignore[attr-defined]
    with pytest.raises(DamagedLog) as info:
        store.conform(BATCH, 2)
    assert info.value.line == 2 and "hash chain" in str(info.value)


def test_r29_a_thread_holding_the_reference_lock_runs_its_own_command(tmp_path: Path) -> None:
    from eventstore.filelog.views import reference_lock

    store = SceneVersionStore("show", 1, root=tmp_path, lock_timeout=0.5)
    store.write_scene_candidate(BATCH, scene(shots=1))
    store.write_scene_candidate(BATCH, scene(shots=2))
    scenes = tmp_path / "show" / "ep_001" / "scenes"
    (scenes / f"{BATCH}.versions.lock").write_bytes(b"")
    paths = store.layout.batch(BATCH)
    errors: list[BaseException] = []

    def other_thread() -> None:
        try:
            store.conform(BATCH, 2)
        except BaseException as e:  # reported below
            errors.append(e)

    with reference_lock(paths, timeout=DEADLINE):
        # This thread's command passes through the lock it holds (a tool such as
        # the importer takes it before its session) ...
        assert store.conform(BATCH, 2).active_version == 2
        # ... while another thread is still excluded by it.
        t = threading.Thread(target=other_thread)
        t.start()
        t.join(DEADLINE)
        assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], LockTimeout)
    assert "versions.lock" in str(errors[0])
    assert store.revert(BATCH, 1).active_version == 1
