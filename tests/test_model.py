"""Model-based test: random command sequences against a pure model of R1-R16.

Hypothesis drives all four commands — valid and invalid, over several
batches, Cases A/B/C, dedup on and off, expected_seq right and wrong, orphan
bodies, store objects reopened as a new process would — and after every step
the store's manifest must equal the model's, the view the fold, and every
refusal the one the model predicts. Runs derandomized; a failure prints the
steps and a reproduction blob.

``StoreMachine`` runs on the file backend (with legacy flat and orphan bodies,
which are files, and the view files); ``BackendMachine`` runs the same commands
and checks on the memory and PostgreSQL backends, a fresh store per example.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from eventstore import (
    IdentityMismatch,
    InvalidInput,
    NoLog,
    NotActiveVersion,
    Scene,
    SceneVersionStore,
    SeqMismatch,
    UnknownBatch,
    UnregisteredVersion,
    structure_fingerprint,
)
from eventstore.log import open_log
from eventstore.memlog import MemoryLog
from projections import Projection
from tests.conftest import stored

BATCHES = ["ep_001_BATCH_001", "ep_001_BATCH_002", "ep_001_BATCH_003"]
batches = st.sampled_from(BATCHES)
shapes = st.tuples(st.integers(1, 3), st.sampled_from(["", "x"]))
versions = st.integers(1, 3)
expectations = st.sampled_from(["none", "right", "wrong"])


def body(batch_id: str, shape: tuple[int, str]) -> Scene:
    shots, tag = shape
    return Scene(
        {
            "scene_id": batch_id,
            "beats": [{"shot_id": f"s{i}", "raw": {"d": f"{i}{tag}"}} for i in range(shots)],
        }
    )


@dataclass
class Entry:
    version: int
    artifact: str
    state: str
    downstream: str
    kind: str
    source: str
    parent_version: int | None
    structure_fingerprint: str
    shot_count: int


@dataclass
class BatchModel:
    entries: list[Entry] = field(default_factory=list)
    active: int | None = None
    seq: int = 0
    flat_fp: str | None = None  # a legacy flat body on disk, no log
    flat_shots: int = 0
    disk_max: int = 0

    def entry(self, version: int) -> Entry | None:
        return next((e for e in self.entries if e.version == version), None)

    @property
    def max_version(self) -> int:
        return max((e.version for e in self.entries), default=0)


class StoreMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="scenelog-model-"))
        self.models = {b: BatchModel() for b in BATCHES}
        self.reopen()

    def teardown(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def scenes(self) -> Path:
        return self.root / "show" / "ep_001" / "scenes"

    @rule()
    def reopen(self) -> None:
        """A new store object and a process that remembers nothing."""
        open_log("show", self.root).forget()  # type: ignore[attr-defined]
        self.store = SceneVersionStore("show", 1, root=self.root)

    def expected(self, model: BatchModel, how: str) -> int | None:
        return {"none": None, "right": model.seq, "wrong": model.seq + 3}[how]

    # ── commands ────────────────────────────────────────────────────────────

    @rule(batch_id=batches, shape=shapes, wrong=st.sampled_from(["id", "kind", "state"]))
    def add_refused(self, batch_id: str, shape: tuple[int, str], wrong: str) -> None:
        """R1/R2: a renumbered scene, an unknown kind or state: refused, nothing written."""
        scene_id = BATCHES[(BATCHES.index(batch_id) + 1) % 3] if wrong == "id" else batch_id
        self.refused(
            lambda: self.store.write_scene_candidate(
                batch_id,
                body(scene_id, shape),
                kind="retake" if wrong == "kind" else "pickup",
                state="final" if wrong == "state" else "candidate",
            ),
            IdentityMismatch if wrong == "id" else InvalidInput,
        )

    @rule(
        batch_id=batches,
        shape=shapes,
        dedup=st.booleans(),
        kind=st.sampled_from(["pickup", "reshoot"]),
        state=st.sampled_from(["candidate", "approved"]),
        parent=st.none() | versions,
    )
    def add(
        self,
        batch_id: str,
        shape: tuple[int, str],
        dedup: bool,
        kind: str,
        state: str,
        parent: int | None,
    ) -> None:
        m = self.models[batch_id]
        fp = structure_fingerprint(body(batch_id, shape))
        registered = {e.version for e in m.entries} | ({1} if m.flat_fp is not None else set())
        if parent is not None and parent not in registered:  # R25: refused, nothing written
            self.refused(
                lambda: self.store.write_scene_candidate(
                    batch_id, body(batch_id, shape), parent_version=parent
                ),
                InvalidInput,
            )
            return None
        got = self.store.write_scene_candidate(
            batch_id,
            body(batch_id, shape),
            dedup_against_versions=dedup,
            kind=kind,
            state=state,
            parent_version=parent,
        )
        if m.seq == 0 and m.flat_fp is None:  # Case A
            m.entries.append(
                Entry(
                    1,
                    f"{batch_id}.json",
                    "approved",
                    "derived",
                    kind,
                    "initial",
                    None,
                    fp,
                    shape[0],
                )
            )
            m.active, m.seq = 1, 1
            assert got == 1
            return None
        if m.seq == 0:  # Case B
            assert m.flat_fp is not None
            m.entries.append(
                Entry(
                    1,
                    f"{batch_id}.json",
                    "approved",
                    "derived",
                    "reshoot",
                    "legacy_flat",
                    None,
                    m.flat_fp,
                    m.flat_shots,
                )
            )
            m.active, m.seq, m.flat_fp = 1, 1, None
            if dedup and m.entries[0].structure_fingerprint == fp:
                assert got == 1
                return None
        elif dedup:
            hit = next((e.version for e in m.entries if e.structure_fingerprint == fp), None)
            if hit is not None:
                assert got == hit
                return None
        version = max(m.max_version, m.disk_max) + 1
        m.entries.append(
            Entry(
                version,
                f"{batch_id}.v{version:03d}.json",
                state,
                "not_derived",
                kind,
                "rederive",
                parent,
                fp,
                shape[0],
            )
        )
        m.seq += 1
        assert got == version
        return None

    @rule(batch_id=batches, version=versions, how=expectations, revert=st.booleans())
    def move_pointer(self, batch_id: str, version: int, how: str, revert: bool) -> None:
        m = self.models[batch_id]
        method = self.store.revert if revert else self.store.conform
        expected_seq = self.expected(m, how)
        call = lambda: method(batch_id, version, expected_seq=expected_seq)  # noqa: E731
        if m.seq == 0:
            return self.refused(call, NoLog)
        if how == "wrong":
            return self.refused(call, SeqMismatch)
        entry = m.entry(version)
        if entry is None:
            return self.refused(call, UnregisteredVersion)
        changes = m.active != version or (not revert and entry.state != "approved")
        if changes:
            m.active = version
            if not revert:
                entry.state = "approved"
            m.seq += 1
        assert call().seq == m.seq
        return None

    @rule(batch_id=batches, version=versions, how=expectations)
    def mark_derived(self, batch_id: str, version: int, how: str) -> None:
        m = self.models[batch_id]
        expected_seq = self.expected(m, how)
        call = lambda: self.store.mark_derived(  # noqa: E731
            batch_id, version, expected_seq=expected_seq
        )
        if m.seq == 0:
            assert call() is None
            return None
        if how == "wrong":
            return self.refused(call, SeqMismatch)
        entry = m.entry(version)
        if entry is None:
            return self.refused(call, UnregisteredVersion)
        if version != m.active:
            return self.refused(call, NotActiveVersion)
        if entry.downstream != "derived":
            entry.downstream = "derived"
            m.seq += 1
        result = call()
        assert result is not None and result.seq == m.seq
        return None

    @rule(batch_id=batches, shape=shapes)
    def legacy_flat(self, batch_id: str, shape: tuple[int, str]) -> None:
        """A flat body from before versioning appears (only where nothing exists yet)."""
        m = self.models[batch_id]
        flat = self.scenes() / f"{batch_id}.json"
        if m.seq or flat.exists():
            return
        flat.parent.mkdir(parents=True, exist_ok=True)
        flat.write_bytes(body(batch_id, shape).to_json())
        m.flat_fp, m.flat_shots = structure_fingerprint(body(batch_id, shape)), shape[0]

    @rule(batch_id=batches, ahead=st.integers(1, 2))
    def orphan_body(self, batch_id: str, ahead: int) -> None:
        """A body left by a writer that died before its event (R8 must skip it)."""
        m = self.models[batch_id]
        version = max(m.max_version, m.disk_max, 1) + ahead
        path = self.scenes() / f"{batch_id}.v{version:03d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body(batch_id, (1, "orphan")).to_json())
        m.disk_max = max(m.disk_max, version)

    def where(self) -> str | Path:
        """The root readers are given."""
        return self.root

    def held(self) -> object:
        """What the store holds (its files, lock files aside)."""
        if not self.scenes().exists():
            return {}
        return {p.name: p.read_bytes() for p in self.scenes().glob("*") if p.suffix != ".lock"}

    def refused(self, call: Any, error: type[Exception]) -> None:
        before = self.held()
        try:
            call()
        except error:
            pass
        else:
            raise AssertionError(f"expected {error.__name__}")
        assert self.held() == before

    def check_view(self, batch_id: str, manifest: Any) -> None:
        view = json.loads((self.scenes() / f"{batch_id}.versions.json").read_bytes())
        assert view == manifest.to_dict()

    # ── the check ────────────────────────────────────────────────────────────

    @invariant()
    def store_matches_model(self) -> None:
        if not hasattr(self, "models"):
            return
        reader = Projection("show", root=self.where())
        for batch_id, m in self.models.items():
            if m.seq == 0 and m.flat_fp is None:  # R16: neither log nor flat body
                try:
                    reader.manifest(batch_id)
                except UnknownBatch:
                    continue
                raise AssertionError(f"{batch_id} has no log and no flat body: unknown")
            manifest = reader.manifest(batch_id)
            if m.seq == 0:
                assert manifest is None
                continue
            assert manifest is not None
            got = manifest.to_dict()
            for entry in got["versions"]:
                entry.pop("created_at")
            assert got == {
                "schema_version": 2,
                "batch_id": batch_id,
                "active_version": m.active,
                "seq": m.seq,
                "versions": [vars(e) for e in m.entries],
            }
            self.check_view(batch_id, manifest)


StoreMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=50, deadline=None, derandomize=True, print_blob=True
)
TestStoreModel = StoreMachine.TestCase


class BackendMachine(StoreMachine):
    """The model on a backend without files: no legacy flat or orphan bodies to place."""

    new_root: Callable[[], str]
    """A fresh, empty store's root (set by the test)."""
    drop_root: Callable[[str], None]

    @initialize()
    def setup(self) -> None:
        self.root_url = type(self).new_root()
        self.models = {b: BatchModel() for b in BATCHES}
        self.reopen()

    def teardown(self) -> None:
        if hasattr(self, "root_url"):
            type(self).drop_root(self.root_url)

    @rule()
    def reopen(self) -> None:
        """A new store object (the backend's state is checked against its storage)."""
        self.store = SceneVersionStore("show", 1, root=self.root_url)

    def legacy_flat(self, batch_id: str, shape: tuple[int, str]) -> None:
        """Not a rule here: a legacy flat body is a file."""

    def orphan_body(self, batch_id: str, ahead: int) -> None:
        """Not a rule here: an orphan body is a file left by a dead writer."""

    def held(self) -> object:
        return stored(self.root_url)

    def check_view(self, batch_id: str, manifest: Any) -> None:
        pass  # no view files

    def where(self) -> str | Path:
        return self.root_url


@pytest.mark.parametrize(
    ("backend", "examples"), [("memory", 100), ("postgres", 15)], ids=["memory", "postgres"]
)
def test_model_on_every_backend(
    request: pytest.FixtureRequest, backend: str, examples: int
) -> None:
    class Machine(BackendMachine):
        pass

    if backend == "memory":
        Machine.new_root = staticmethod(lambda: f"memory://model-{uuid.uuid4().hex}")
        Machine.drop_root = staticmethod(lambda url: MemoryLog.reset(url.split("://", 1)[1]))
    else:
        server = request.getfixturevalue("pg_server")
        Machine.new_root = staticmethod(server.new_store)
        Machine.drop_root = staticmethod(server.drop_store)
    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=50,
            deadline=None,
            derandomize=True,
            print_blob=True,
        ),
    )
