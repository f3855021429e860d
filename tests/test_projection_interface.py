"""Issue 11 item 2: Projection, import, adopt and the HTTP app reach storage only through
the log interface (``eventstore.log.EventLog``), on every backend.

The reference-era part of the interface (``legacy_manifest``, ``legacy_lock``,
``keep_legacy_manifest``, ``write_snapshot``) is proven twice: on files, where
it is ``versions.json`` and its ``flock``, and on a backend that is not files
(a memory log that keeps reference manifests), which import and adopt drive
through those methods alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventstore import (
    InvalidInput,
    LockTimeout,
    Scene,
    SceneVersionStore,
    UnknownBatch,
    import_manifests,
    structure_fingerprint,
)
from eventstore.adopt import adopt_view
from eventstore.log import open_log
from eventstore.manifest import Fold, encode_manifest
from eventstore.memlog import MemoryLog
from projections import Projection
from tests.helpers import BATCH, scene

REPO = Path(__file__).resolve().parent.parent

# ── Projection on every backend ──────────────────────────────────────────────


def test_item2_body_bytes_and_body_path_on_every_backend(backend_root: str) -> None:
    store = SceneVersionStore("show", 1, root=backend_root)
    store.write_scene_candidate(BATCH, scene(shots=2))
    store.write_scene_candidate(BATCH, scene(shots=5))
    view = Projection("show", root=backend_root)
    assert view.body_bytes(BATCH, 2) == scene(shots=5).to_json()
    assert view.body(BATCH, 2) == scene(shots=5)
    path = view.body_path(BATCH, 2)
    if "://" in backend_root:  # memory and postgresql keep bodies in no file
        assert path is None
    else:
        assert path is not None and Path(path).read_bytes() == view.body_bytes(BATCH, 2)
        assert Path(path).name == f"{BATCH}.v002.json"
    with pytest.raises(ValueError, match="not registered"):
        view.body_bytes(BATCH, 3)


def test_item2_blocked_reason_is_the_manifests_on_every_backend(backend_root: str) -> None:
    store = SceneVersionStore("show", 1, root=backend_root)
    store.write_scene_candidate(BATCH, scene(shots=2))
    store.write_scene_candidate(BATCH, scene(shots=3))
    view = Projection("show", root=backend_root)
    assert view.blocked_reason(BATCH) is None and view.is_fresh(BATCH)
    store.conform(BATCH, 2)
    assert view.blocked_reason(BATCH) == "v2 active, boards not rebuilt"
    assert view.blocked_reason(BATCH) == view.require(BATCH).blocked_reason()
    assert not view.is_fresh(BATCH)


def test_r16_unknown_project_or_batch_on_every_backend(backend_root: str) -> None:
    SceneVersionStore("show", 1, root=backend_root).write_scene_candidate(BATCH, scene())
    wrong = Projection("shwo", root=backend_root)
    with pytest.raises(UnknownBatch) as info:
        wrong.is_fresh(BATCH)
    assert "shwo" in str(info.value) or "not mounted" in str(info.value)
    with pytest.raises(InvalidInput, match="shwo"):
        wrong.batches()
    with pytest.raises(UnknownBatch, match="ep_001_BATCH_077"):
        Projection("show", root=backend_root).manifest("ep_001_BATCH_077")
    assert Projection("show", root=backend_root).batches() == [BATCH]


def test_item2_projection_of_a_memory_root_touches_no_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    root = "memory://projection-touches-no-folder"
    try:
        SceneVersionStore("show", 1, root=root).write_scene_candidate(BATCH, scene())
        view = Projection("show", root=root)
        assert view.require(BATCH).seq == 1 and view.history(BATCH)[0].type == "appended"
        assert view.log.label == root and "memory" in repr(view)
    finally:
        MemoryLog.reset("projection-touches-no-folder")
    assert list(tmp_path.iterdir()) == []


_READERS = [
    "projections/projection.py",
    "projections/diff.py",
    "eventstore/importer.py",
    "eventstore/adopt.py",
    *sorted(str(p.relative_to(REPO)) for p in (REPO / "projections" / "http").glob("*.py")),
]


@pytest.mark.parametrize("module", _READERS)
def test_item2_readers_name_no_file_of_the_store(module: str) -> None:
    source = (REPO / module).read_text(encoding="utf-8")
    banned = re.compile(
        r"events\.jsonl|\.read_bytes|os\.open|eventstore\.filelog|eventstore\.views|"
        r"\bBatchPaths\b|\bLayout\.of\b|load_scene"
    )
    assert banned.findall(source) == [], module


# ── the reference-era interface on files ────────────────────────────────────


def _reference_batch(scenes: Path) -> bytes:
    """A reference-era batch: flat v1 and v2 bodies and the reference's versions.json."""
    scenes.mkdir(parents=True, exist_ok=True)
    bodies = {1: scene(shots=2), 2: scene(shots=3)}
    (scenes / f"{BATCH}.json").write_bytes(bodies[1].to_json())
    (scenes / f"{BATCH}.v002.json").write_bytes(bodies[2].to_json())
    data = _manifest(bodies)
    (scenes / f"{BATCH}.versions.json").write_bytes(data)
    return data


def _manifest(bodies: dict[int, Scene], active: int = 1, states: str = "candidate") -> bytes:
    def entry(v: int) -> dict[str, object]:
        body = bodies[v]
        return {
            "version": v,
            "artifact": f"{BATCH}.json" if v == 1 else f"{BATCH}.v{v:03d}.json",
            "state": "approved" if v == 1 else states,
            "downstream": "derived" if v == 1 else "not_derived",
            "kind": "reshoot",
            "source": "legacy_flat" if v == 1 else "rederive",
            "parent_version": None if v == 1 else v - 1,
            "structure_fingerprint": structure_fingerprint(body),
            "shot_count": len(body.beats),
            "created_at": f"2026-03-01T10:00:0{v}.000000Z",
        }

    manifest = {
        "schema_version": 2,
        "batch_id": BATCH,
        "active_version": active,
        "versions": [entry(v) for v in sorted(bodies)],
    }
    return (json.dumps(manifest, indent=2) + "\n").encode()


def test_item2_file_legacy_manifest_is_versions_json_and_its_backup(
    root: Path, scenes_dir: Path
) -> None:
    original = _reference_batch(scenes_dir)
    log = open_log("show", root)
    assert log.legacy_manifest(BATCH) == original
    assert log.legacy_manifest("ep_001_BATCH_009") is None
    assert log.unimported("ep_001") == [BATCH]
    backup = scenes_dir / f"{BATCH}.versions.json.reference"
    backup.write_bytes(b"left by an import that died before its append")
    log.keep_legacy_manifest(BATCH, original)
    assert backup.read_bytes() == original
    inode = backup.stat().st_ino
    log.keep_legacy_manifest(BATCH, original)  # the same bytes: left alone
    assert backup.stat().st_ino == inode
    (outcome,) = import_manifests("show", root)
    assert outcome.status == "imported" and log.unimported("ep_001") == []
    snapshot = log.snapshot(BATCH)  # the import's commit wrote scenelog's view in its place
    assert snapshot is not None and log.legacy_manifest(BATCH) == encode_manifest(snapshot)


def test_r29_file_legacy_lock_is_the_reference_flock_and_never_creates_it(
    root: Path, scenes_dir: Path
) -> None:
    _reference_batch(scenes_dir)
    log = open_log("show", root)
    lock = scenes_dir / f"{BATCH}.versions.lock"
    with log.legacy_lock(BATCH, timeout=0.01):
        pass
    assert not lock.exists()  # never created by scenelog
    lock.touch()
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a reference-era tool holds it
        with pytest.raises(LockTimeout), log.legacy_lock(BATCH, timeout=0.05):
            pass
        with pytest.raises(LockTimeout):
            import_manifests("show", root, lock_timeout=0.05)
        assert not log.exists(BATCH)
    finally:
        os.close(fd)
    with log.legacy_lock(BATCH, timeout=1.0):
        pass


# ── the reference-era interface on a backend that is not files ──────────────


class ReferenceMemoryLog(MemoryLog):
    """A memory log that also keeps reference manifests: what import and adopt may use."""

    def __init__(self, name: str, project: str) -> None:
        super().__init__(name, project)
        self.manifests: dict[str, bytes] = {}
        self.kept: dict[str, bytes] = {}
        self.locked: list[str] = []

    def unimported(self, episode: str) -> list[str]:
        return sorted(b for b in self.manifests if b[:6] == episode and not self.exists(b))

    def legacy_manifest(self, batch_id: str) -> bytes | None:
        return self.manifests.get(batch_id)

    @contextlib.contextmanager
    def legacy_lock(self, batch_id: str, *, timeout: float) -> Iterator[None]:
        self.locked.append(batch_id)
        yield

    def keep_legacy_manifest(self, batch_id: str, data: bytes) -> None:
        self.kept[batch_id] = data

    def write_snapshot(self, fold: Fold) -> None:
        self.manifests[fold.batch_id] = fold.view_bytes()


@pytest.fixture
def reference_memory() -> Iterator[ReferenceMemoryLog]:
    log = ReferenceMemoryLog("reference-memory", "show")
    bodies = {1: scene(shots=2), 2: scene(shots=3)}
    with log.session(BATCH) as session:  # bodies without a log, as the reference left them
        session.write_body(f"{BATCH}.json", bodies[1].to_json())
        session.write_body(f"{BATCH}.v002.json", bodies[2].to_json())
    log.manifests[BATCH] = _manifest(bodies)
    yield log


def test_item2_import_and_adopt_use_only_the_interface(
    reference_memory: ReferenceMemoryLog,
) -> None:
    log = reference_memory
    original = log.manifests[BATCH]
    (outcome,) = import_manifests("show", "memory://unused", episode=1, log=log, actor="m@s")
    assert (outcome.status, outcome.versions, outcome.active_version) == ("imported", 2, 1)
    assert log.kept == {BATCH: original} and log.locked == [BATCH]
    events = log.read(BATCH)
    assert [e.type for e in events] == ["appended", "appended"] and all(e.imported for e in events)
    assert events[0].reason == f"imported from reference manifest {BATCH}.versions.json"
    assert import_manifests("show", "memory://unused", episode=1, log=log) == []

    # A reference-era tool conforms v2 in its manifest: adopt explains it with events.
    bodies = {1: scene(shots=2), 2: scene(shots=3)}
    log.manifests[BATCH] = _manifest(bodies, active=2, states="approved")
    adopted = adopt_view("show", BATCH, "memory://unused", log=log)
    assert (adopted.status, adopted.events) == ("adopted", ["conformed v2"])
    assert log.read(BATCH)[-1].type == "conformed" and log.locked == [BATCH, BATCH]
    # The same content in the reference's spelling: rewritten as scenelog's, no event.
    log.manifests[BATCH] = _manifest(bodies, active=2, states="approved")
    again = adopt_view("show", BATCH, "memory://unused", log=log)
    assert (again.status, again.events, again.seq) == ("unchanged", [], 3)
    fold = Fold(BATCH).apply_all(log.read(BATCH))
    assert log.manifests[BATCH] == fold.view_bytes()
