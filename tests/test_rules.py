"""One test (at least) per rule R1-R22 of DESIGN §6, named after the rule."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eventstore import (
    BodyMissing,
    IdentityMismatch,
    InvalidInput,
    NoLog,
    NotActiveVersion,
    Scene,
    SceneVersionStore,
    SeqMismatch,
    UnimportedManifest,
    UnknownBatch,
    UnregisteredVersion,
    VersionBodyExists,
    fold,
)
from eventstore.filelog import core as log_module
from eventstore.filelog.core import read_log_events
from projections import Projection, verify
from tests.conftest import stored
from tests.helpers import BATCH, child_env, scene, snapshot


def events_of(scenes_dir: Path, batch_id: str = BATCH) -> list[dict[str, object]]:
    path = scenes_dir / f"{batch_id}.events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def three_versions(store: SceneVersionStore) -> None:
    assert store.write_scene_candidate(BATCH, scene(shots=2)) == 1
    assert store.write_scene_candidate(BATCH, scene(shots=3)) == 2
    assert store.write_scene_candidate(BATCH, scene(shots=4)) == 3


# ── R1 / R2: refusals before any disk access ─────────────────────────────────


def test_r1_identity_halt_writes_nothing_not_even_a_lock(
    any_store: SceneVersionStore, backend_root: str
) -> None:
    with pytest.raises(IdentityMismatch) as info:
        any_store.write_scene_candidate(BATCH, scene("ep_001_BATCH_004"))
    assert isinstance(info.value, ValueError)
    assert BATCH in str(info.value) and "ep_001_BATCH_004" in str(info.value)
    assert stored(backend_root) == {}
    if "://" not in backend_root:
        assert snapshot(Path(backend_root)) == {}  # not even the root folder


def test_r1_identity_halt_on_existing_batch_appends_nothing(
    any_store: SceneVersionStore, backend_root: str
) -> None:
    three_versions(any_store)
    before = stored(backend_root)
    with pytest.raises(IdentityMismatch):
        any_store.write_scene_candidate(BATCH, scene("ep_001_BATCH_009"))
    assert stored(backend_root) == before


@pytest.mark.parametrize(
    ("call", "kwargs"),
    [
        ("write", {"kind": "retake"}),
        ("write", {"state": "final"}),
        ("write", {"parent_version": 0}),
        ("write", {"parent_version": True}),
        ("write", {"source": 3}),
        ("write", {"batch_id": "ep_1_BATCH_3"}),
        ("write", {"batch_id": "ep_002_BATCH_003"}),
        ("write", {"batch_id": "../x"}),
        ("write", {"batch_id": "ep_001_BATCH_\u0663\u0660\u0663"}),
        ("conform", {"version": 0}),
        ("conform", {"version": -1}),
        ("conform", {"version": True}),
        ("conform", {"version": "2"}),
        ("conform", {"expected_seq": -1}),
        ("revert", {"version": 1.0}),
        ("revert", {"batch_id": "ep_001_batch_003"}),
        ("derived", {"version": None}),
        ("derived", {"batch_id": "ep_001_BATCH_003\n"}),
    ],
)
def test_r2_validation_first_nothing_written(
    any_store: SceneVersionStore, backend_root: str, call: str, kwargs: dict[str, object]
) -> None:
    kwargs = dict(kwargs)  # the parameter is shared by every backend's run
    batch_id = kwargs.pop("batch_id", BATCH)
    with pytest.raises(InvalidInput) as info:
        if call == "write":
            sc = scene(batch_id if isinstance(batch_id, str) else BATCH)
            any_store.write_scene_candidate(batch_id, sc, **kwargs)  # type: ignore[arg-type]
        else:
            version = kwargs.pop("version", 1)
            method = {
                "conform": any_store.conform,
                "revert": any_store.revert,
                "derived": any_store.mark_derived,
            }[call]
            method(batch_id, version, **kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    assert stored(backend_root) == {}


@pytest.mark.parametrize(
    "project", ["../x", ".", "..", "a/b", "", "-x", "x" * 65, "sh\u00f6w", "/abs"]
)
def test_r2_project_name_outside_grammar_refused(root: Path, project: str) -> None:
    with pytest.raises(InvalidInput):
        SceneVersionStore(project, 1, root=root)
    with pytest.raises(InvalidInput):
        Projection(project, root=root)
    assert snapshot(root) == {}


@pytest.mark.parametrize("episode", [0, 1000, "ep_1", "ep_0001", "\u0661", True, None, "ep_000"])
def test_r2_episode_outside_grammar_refused(root: Path, episode: object) -> None:
    with pytest.raises(InvalidInput):
        SceneVersionStore("show", episode, root=root)  # type: ignore[arg-type]


@pytest.mark.parametrize("episode", [1, "1", "001", "ep_001"])
def test_r2_episode_forms_accepted(root: Path, episode: object) -> None:
    assert SceneVersionStore("show", episode, root=root).episode == "ep_001"  # type: ignore[arg-type]


# ── R3-R7: the append cases, the pointer, dedup ─────────────────────────────


def test_r3_case_a_first_write_is_flat_v1_active_and_fresh(
    store: SceneVersionStore, scenes_dir: Path, view: Projection
) -> None:
    sc = scene()
    assert store.write_scene_candidate(BATCH, sc, reason="first derivation") == 1
    flat = scenes_dir / f"{BATCH}.json"
    assert Scene.from_json(flat.read_bytes()) == sc
    assert not list(scenes_dir.glob(f"{BATCH}.v[0-9]*.json"))
    (event,) = events_of(scenes_dir)
    assert event["type"] == "appended" and event["version"] == 1
    assert event["artifact"] == flat.name and event["source"] == "initial"
    assert (event["state"], event["downstream"]) == ("approved", "derived")
    assert event["reason"] == "first derivation" and event["actor"] == "tester@farm"
    manifest = view.manifest(BATCH)
    assert manifest is not None and manifest.active_version == 1
    assert view.is_fresh(BATCH)


def test_r4_case_b_registers_flat_in_place_in_one_append(
    store: SceneVersionStore, scenes_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenes_dir.mkdir(parents=True)
    flat = scenes_dir / f"{BATCH}.json"
    legacy = (
        b'{"scene_id": "ep_001_BATCH_003",\n "beats": [{"shot_id": "a", "x": 1}], "legacy": true}'
    )
    flat.write_bytes(legacy)
    writes: list[int] = []
    real_write = log_module._FileSession._write

    def counting_write(self: log_module._FileSession, data: bytes, offset: int) -> None:
        writes.append(data.count(b"\n"))
        real_write(self, data, offset)

    monkeypatch.setattr(log_module._FileSession, "_write", counting_write)
    assert store.write_scene_candidate(BATCH, scene(), kind="pickup") == 2
    assert writes == [2]  # both events, one write
    assert flat.read_bytes() == legacy  # bytes untouched, no copy, no rename
    assert sorted(p.name for p in scenes_dir.glob(f"{BATCH}*.json")) == [
        f"{BATCH}.json",
        f"{BATCH}.v002.json",
        f"{BATCH}.versions.json",
    ]
    v1, v2 = events_of(scenes_dir)
    assert v1["artifact"] == flat.name and v1["source"] == "legacy_flat"
    assert (v1["state"], v1["downstream"], v1["kind"], v1["parent_version"]) == (
        "approved",
        "derived",
        "reshoot",
        None,
    )
    assert v1["shot_count"] == 1
    from eventstore import structure_fingerprint

    assert v1["structure_fingerprint"] == structure_fingerprint([{"shot_id": "a", "x": 1}])
    assert (v2["version"], v2["kind"], v2["downstream"]) == (2, "pickup", "not_derived")
    manifest = store.conform(BATCH, 1)  # pointer stayed on v1: conform is a no-op
    assert manifest.active_version == 1 and manifest.seq == 2


def test_r5_case_c_appends_candidate_pointer_stays(
    any_store: SceneVersionStore, any_view: Projection
) -> None:
    any_store.write_scene_candidate(BATCH, scene(shots=2))
    version = any_store.write_scene_candidate(
        BATCH,
        scene(shots=5),
        parent_version=1,
        source="script_fix",
        state="approved",
        kind="pickup",
    )
    assert version == 2
    manifest = any_view.manifest(BATCH)
    assert manifest is not None
    entry = manifest.entry(2)
    assert entry is not None
    assert (
        entry.state,
        entry.downstream,
        entry.kind,
        entry.source,
        entry.parent_version,
        entry.shot_count,
    ) == ("approved", "not_derived", "pickup", "script_fix", 1, 5)
    assert manifest.active_version == 1


def test_r6_only_conform_and_revert_move_the_pointer(
    any_store: SceneVersionStore, any_view: Projection
) -> None:
    three_versions(any_store)
    assert any_view.require(BATCH).active_version == 1
    any_store.conform(BATCH, 3)
    assert any_view.require(BATCH).active_version == 3
    any_store.write_scene_candidate(BATCH, scene(shots=9))
    any_store.mark_derived(BATCH, 3)
    assert any_view.require(BATCH).active_version == 3
    any_store.revert(BATCH, 2)
    assert any_view.require(BATCH).active_version == 2


def test_r7_dedup_returns_registered_version_and_appends_nothing(
    any_store: SceneVersionStore, backend_root: str
) -> None:
    three_versions(any_store)
    before = stored(backend_root)
    assert any_store.write_scene_candidate(BATCH, scene(shots=3), dedup_against_versions=True) == 2
    assert stored(backend_root) == before
    # A change only in raw (the prompt source) is a real change: appended.
    assert (
        any_store.write_scene_candidate(BATCH, scene(shots=3, tag="!"), dedup_against_versions=True)
        == 4
    )
    # Default: always append, even for the same structure.
    assert any_store.write_scene_candidate(BATCH, scene(shots=3)) == 5


def test_r7_dedup_in_case_b_still_registers_v1(store: SceneVersionStore, scenes_dir: Path) -> None:
    scenes_dir.mkdir(parents=True)
    (scenes_dir / f"{BATCH}.json").write_bytes(scene(shots=2).to_json())
    assert store.write_scene_candidate(BATCH, scene(shots=2), dedup_against_versions=True) == 1
    assert [e["version"] for e in events_of(scenes_dir)] == [1]
    assert not list(scenes_dir.glob(f"{BATCH}.v[0-9]*.json"))


# ── R8 / R9: numbering and the commit point ─────────────────────────────────


def test_r8_numbering_skips_orphan_bodies(store: SceneVersionStore, scenes_dir: Path) -> None:
    store.write_scene_candidate(BATCH, scene(shots=1))
    store.write_scene_candidate(BATCH, scene(shots=2))
    # Orphans a crashed writer leaves sit right above the highest version.
    (scenes_dir / f"{BATCH}.v003.json").write_bytes(scene(shots=7).to_json())
    (scenes_dir / f"{BATCH}.v004.json").write_bytes(scene(shots=7).to_json())
    assert store.write_scene_candidate(BATCH, scene(shots=3)) == 5
    # Any body on disk, however far ahead, is skipped by a process that starts anew.
    (scenes_dir / f"{BATCH}.v009.json").write_bytes(scene(shots=7).to_json())
    store.log.forget()  # type: ignore[attr-defined]
    fresh = SceneVersionStore("show", 1, root=store.layout.root)
    assert fresh.write_scene_candidate(BATCH, scene(shots=4)) == 10


def test_r8_version_numbers_past_999(store: SceneVersionStore, scenes_dir: Path) -> None:
    store.write_scene_candidate(BATCH, scene(shots=1))
    (scenes_dir / f"{BATCH}.v999.json").write_bytes(scene(shots=7).to_json())
    assert store.write_scene_candidate(BATCH, scene(shots=3)) == 1000
    assert (scenes_dir / f"{BATCH}.v1000.json").exists()
    assert store.write_scene_candidate(BATCH, scene(shots=4)) == 1001


def test_r8_write_once_guard_refuses_existing_body(
    store: SceneVersionStore, scenes_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.write_scene_candidate(BATCH, scene(shots=1))
    store.write_scene_candidate(BATCH, scene(shots=2))
    (scenes_dir / f"{BATCH}.v003.json").write_bytes(scene(shots=7).to_json())
    before = snapshot(scenes_dir)
    # Pretend the numbering missed v003 (a foreign writer raced us): the body stays.
    monkeypatch.setattr(log_module._FileSession, "highest_body_version", lambda self: 0)
    monkeypatch.setattr(log_module._FileSession, "body_exists", lambda self, name: False)
    with pytest.raises(VersionBodyExists) as info:
        store.write_scene_candidate(BATCH, scene(shots=9))
    assert isinstance(info.value, FileExistsError)
    assert snapshot(scenes_dir) == before


def test_r9_failed_event_append_leaves_orphan_body_only(
    store: SceneVersionStore, scenes_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.write_scene_candidate(BATCH, scene(shots=1))

    def refuse(self: object, data: bytes, offset: int) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(log_module._FileSession, "_write", refuse)
        with pytest.raises(OSError):
            store.write_scene_candidate(BATCH, scene(shots=2))
    assert (scenes_dir / f"{BATCH}.v002.json").exists()  # body first (R9)
    assert [e["version"] for e in events_of(scenes_dir)] == [1]
    assert store.write_scene_candidate(BATCH, scene(shots=3)) == 3


# ── R10-R13: conform, revert, mark_derived ──────────────────────────────────


def test_r10_conform_moves_pointer_and_approves_only(
    store: SceneVersionStore, scenes_dir: Path, view: Projection
) -> None:
    three_versions(store)
    bodies = {p.name: p.read_bytes() for p in scenes_dir.glob(f"{BATCH}.v[0-9]*.json")}
    manifest = store.conform(BATCH, 3, reason="director approved")
    assert manifest.active_version == 3
    entry = manifest.entry(3)
    assert entry is not None and (entry.state, entry.downstream) == ("approved", "not_derived")
    assert {p.name: p.read_bytes() for p in scenes_dir.glob(f"{BATCH}.v[0-9]*.json")} == bodies
    last = events_of(scenes_dir)[-1]
    assert (last["type"], last["previous_active"], last["reason"]) == (
        "conformed",
        1,
        "director approved",
    )
    assert view.manifest(BATCH) == manifest


def test_r10_conform_refusals(store: SceneVersionStore, scenes_dir: Path) -> None:
    with pytest.raises(NoLog) as no_log:
        store.conform(BATCH, 1)
    assert isinstance(no_log.value, ValueError)
    assert not scenes_dir.exists()
    three_versions(store)
    with pytest.raises(UnregisteredVersion) as unreg:
        store.conform(BATCH, 9)
    assert isinstance(unreg.value, ValueError) and "9" in str(unreg.value)
    (scenes_dir / f"{BATCH}.v002.json").unlink()
    with pytest.raises(BodyMissing) as missing:
        store.conform(BATCH, 2)
    assert isinstance(missing.value, FileNotFoundError)
    (scenes_dir / f"{BATCH}.v003.json").write_bytes(scene("ep_001_BATCH_777").to_json())
    with pytest.raises(IdentityMismatch):
        store.conform(BATCH, 3)
    assert [e["type"] for e in events_of(scenes_dir)] == ["appended"] * 3


def test_r11_revert_moves_only_the_pointer(
    any_store: SceneVersionStore, any_view: Projection
) -> None:
    three_versions(any_store)
    any_store.conform(BATCH, 2)
    any_store.mark_derived(BATCH, 2)
    any_store.conform(BATCH, 3)
    assert not any_view.is_fresh(BATCH)
    before = any_view.require(BATCH)
    after = any_store.revert(BATCH, 2, reason="v3 broke continuity")
    assert after.active_version == 2
    assert after.versions == before.versions  # no state, no downstream change
    assert any_view.is_fresh(BATCH)  # v2 was derived: dispatch-ready at once
    with pytest.raises(NoLog):
        any_store.revert("ep_001_BATCH_099", 1)
    with pytest.raises(UnregisteredVersion):
        any_store.revert(BATCH, 4)


def test_r12_mark_derived_without_log_returns_none_and_writes_nothing(
    store: SceneVersionStore, root: Path, scenes_dir: Path
) -> None:
    assert store.mark_derived(BATCH, 1) is None
    assert snapshot(root) == {}
    scenes_dir.mkdir(parents=True)
    (scenes_dir / f"{BATCH}.json").write_bytes(scene().to_json())  # a legacy flat batch
    before = snapshot(root)
    assert store.mark_derived(BATCH, 1) is None
    assert snapshot(root) == before


def test_r12_mark_derived_refuses_non_active_version(
    any_store: SceneVersionStore, any_view: Projection
) -> None:
    three_versions(any_store)
    any_store.conform(BATCH, 2)
    before = any_view.history(BATCH)
    with pytest.raises(NotActiveVersion) as info:
        any_store.mark_derived(BATCH, 3)
    assert isinstance(info.value, ValueError)
    assert "v3" in str(info.value) and "v2" in str(info.value)
    assert any_view.history(BATCH) == before
    manifest = any_store.mark_derived(BATCH, 2)
    assert manifest is not None and manifest.is_fresh


def test_r13_commands_that_change_nothing_append_nothing(
    any_store: SceneVersionStore, any_view: Projection
) -> None:
    three_versions(any_store)
    any_store.conform(BATCH, 2)
    any_store.mark_derived(BATCH, 2)
    count = len(any_view.history(BATCH))
    assert any_store.conform(BATCH, 2).seq == count
    assert any_store.revert(BATCH, 2).seq == count
    manifest = any_store.mark_derived(BATCH, 2)
    assert manifest is not None and manifest.seq == count
    assert len(any_view.history(BATCH)) == count
    # Reverting to the active v1 of a fresh batch: nothing either.
    any_store.write_scene_candidate("ep_001_BATCH_004", scene("ep_001_BATCH_004"))
    assert any_store.revert("ep_001_BATCH_004", 1).seq == 1


# ── R15-R17: expected_seq, the gate, views ──────────────────────────────────


def test_r15_expected_seq_mismatch_refused(
    any_store: SceneVersionStore, any_view: Projection
) -> None:
    three_versions(any_store)
    with pytest.raises(SeqMismatch) as info:
        any_store.conform(BATCH, 2, expected_seq=2)
    assert isinstance(info.value, ValueError)
    assert (info.value.expected, info.value.actual) == (2, 3)
    assert "2" in str(info.value) and "3" in str(info.value)
    with pytest.raises(SeqMismatch):
        any_store.mark_derived(BATCH, 1, expected_seq=4)
    assert len(any_view.history(BATCH)) == 3
    assert any_store.conform(BATCH, 2, expected_seq=3).seq == 4
    assert any_store.revert(BATCH, 1, expected_seq=4).seq == 5


def test_r16_gate(store: SceneVersionStore, view: Projection, scenes_dir: Path) -> None:
    with pytest.raises(UnknownBatch):  # neither log nor flat body: unknown, never fresh
        view.is_fresh(BATCH)
    scenes_dir.mkdir(parents=True)
    (scenes_dir / "ep_001_BATCH_005.json").write_bytes(scene("ep_001_BATCH_005").to_json())
    assert view.is_fresh("ep_001_BATCH_005")  # legacy flat, no log
    three_versions(store)
    assert view.is_fresh(BATCH)  # v1 active and derived
    store.conform(BATCH, 3)
    assert not view.is_fresh(BATCH)
    store.mark_derived(BATCH, 3)
    assert view.is_fresh(BATCH)


def test_r17_view_equals_fold_and_deleting_views_loses_nothing(
    store: SceneVersionStore, view: Projection, scenes_dir: Path
) -> None:
    three_versions(store)
    store.conform(BATCH, 3)
    view_path = scenes_dir / f"{BATCH}.versions.json"
    log_path = scenes_dir / f"{BATCH}.events.jsonl"
    folded = fold(BATCH, read_log_events(log_path, BATCH))
    assert json.loads(view_path.read_bytes()) == folded.to_dict()
    assert view.manifest(BATCH) == folded
    view_path.unlink()
    assert view.manifest(BATCH) == folded
    # The read mended the view for tools that read versions.json directly.
    assert json.loads(view_path.read_bytes()) == folded.to_dict()
    assert not view.repair_view(BATCH)
    view_path.write_text("{}")
    assert view.repair_view(BATCH)
    assert json.loads(view_path.read_bytes()) == folded.to_dict()


def test_r17_stale_or_corrupt_view_is_not_trusted(
    store: SceneVersionStore, view: Projection, scenes_dir: Path
) -> None:
    three_versions(store)
    view_path = scenes_dir / f"{BATCH}.versions.json"
    stale = view_path.read_bytes()
    store.conform(BATCH, 2)
    view_path.write_bytes(stale)  # a writer died before rewriting its view
    manifest = view.manifest(BATCH)
    assert manifest is not None and manifest.active_version == 2 and manifest.seq == 4
    view_path.write_bytes(b'{"schema_version": 2, "batch_')
    assert view.manifest(BATCH) == manifest
    forged = json.loads(stale)
    forged["seq"], forged["active_version"] = 4, 3
    view_path.write_text(json.dumps(forged))
    # Same seq, different content: readers fold the log instead, and `verify` finds it.
    assert view.manifest(BATCH) == manifest and manifest.active_version == 2
    report = verify("show", scenes_dir.parents[2])
    assert not report.ok and any("differs from the fold" in str(f) for f in report.findings)


def test_r18_torn_tail_through_the_store(
    store: SceneVersionStore, view: Projection, scenes_dir: Path
) -> None:
    three_versions(store)
    log_path = scenes_dir / f"{BATCH}.events.jsonl"
    with open(log_path, "ab") as f:
        f.write(b'{"type":"conformed","seq":4')
    assert view.require(BATCH).seq == 3
    assert store.conform(BATCH, 2).seq == 4
    assert [e.seq for e in view.history(BATCH)] == [1, 2, 3, 4]


def test_r19_every_line_links_to_the_one_before(store: SceneVersionStore, scenes_dir: Path) -> None:
    import hashlib

    three_versions(store)
    store.conform(BATCH, 2)
    lines = (scenes_dir / f"{BATCH}.events.jsonl").read_bytes().split(b"\n")[:-1]
    assert json.loads(lines[0])["prev"] is None
    for before, line in itertools.pairwise(lines):
        assert json.loads(line)["prev"] == hashlib.sha256(before).hexdigest()


def test_r20_command_returns_after_fsync_of_line_and_folder(
    store: SceneVersionStore, scenes_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        target = os.readlink(f"/proc/self/fd/{fd}")
        size = os.fstat(fd).st_size
        synced.append(f"{os.path.basename(target)}:{size}")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    store.write_scene_candidate(BATCH, scene())
    log_path = scenes_dir / f"{BATCH}.events.jsonl"
    size = log_path.stat().st_size
    assert f"{log_path.name}:{size}" in synced  # the line, at its full length
    assert any(s.startswith("scenes:") for s in synced)  # the folder: log and body created
    synced.clear()
    store.conform(BATCH, 1)  # no-op, nothing to sync
    store.write_scene_candidate(BATCH, scene(shots=5))
    assert f"{log_path.name}:{log_path.stat().st_size}" in synced
    body_synced = [s for s in synced if s.startswith(".ep_001_BATCH_003.v002.json")]
    assert body_synced, synced  # the body's bytes before its link and event


def test_r21_reference_manifest_without_log_is_refused(
    store: SceneVersionStore, view: Projection, scenes_dir: Path
) -> None:
    scenes_dir.mkdir(parents=True)
    reference = {
        "schema_version": 1,
        "batch_id": BATCH,
        "active_version": 1,
        "versions": [
            {
                "version": 1,
                "artifact": f"{BATCH}.json",
                "state": "approved",
                "downstream": "derived",
                "kind": "reshoot",
                "source": "legacy_flat",
                "parent_version": None,
                "structure_fingerprint": "ab",
                "shot_count": 3,
                "created_at": "2026-01-01T00:00:00.000000Z",
            }
        ],
    }
    (scenes_dir / f"{BATCH}.versions.json").write_text(json.dumps(reference, indent=2))
    (scenes_dir / f"{BATCH}.json").write_bytes(scene().to_json())
    before = snapshot(scenes_dir)
    for command in (
        lambda: store.write_scene_candidate(BATCH, scene()),
        lambda: store.conform(BATCH, 1),
        lambda: store.revert(BATCH, 1),
        lambda: store.mark_derived(BATCH, 1),
        lambda: view.manifest(BATCH),
        lambda: view.is_fresh(BATCH),
    ):
        with pytest.raises(UnimportedManifest) as info:
            command()
        assert "scenelog import" in str(info.value)
    assert snapshot(scenes_dir) == before


HOLD_LOCK = """
import sys
from eventstore import FileLog, Layout
log = FileLog(Layout.of("show", sys.argv[1]))
with log.session(sys.argv[2]):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_r22_readers_never_lock(store: SceneVersionStore, view: Projection, root: Path) -> None:
    three_versions(store)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(root), BATCH],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        # A writer with a short timeout is refused; every read still answers.
        short = SceneVersionStore("show", 1, root=root, lock_timeout=0.2)
        with pytest.raises(TimeoutError):
            short.conform(BATCH, 2)
        assert view.require(BATCH).seq == 3
        assert len(view.history(BATCH)) == 3
        assert view.is_fresh(BATCH)
        assert view.as_of(BATCH, seq=1).active_version == 1
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
