"""Import of reference-format manifests, written the way the reference store writes them."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from eventstore import SceneVersionStore, import_manifests, structure_fingerprint
from projections import Projection, verify
from tests.helpers import child_env, scene, snapshot

B = "ep_001_BATCH_003"


def reference_store(scenes: Path, batch_id: str = B) -> dict[str, Any]:
    """Re-enact the reference's history for one batch: a legacy flat v1 materialized by the
    first re-derive, two candidates, a conform, a mark_derived and a revert."""
    scenes.mkdir(parents=True, exist_ok=True)
    bodies = {1: scene(batch_id, shots=2), 2: scene(batch_id, shots=3), 3: scene(batch_id, shots=4)}
    (scenes / f"{batch_id}.json").write_bytes(bodies[1].to_json())
    for v in (2, 3):
        (scenes / f"{batch_id}.v{v:03d}.json").write_bytes(bodies[v].to_json())

    def entry(
        v: int, artifact: str, state: str, downstream: str, source: str, parent: int | None, at: str
    ) -> dict[str, Any]:
        return {
            "version": v,
            "artifact": artifact,
            "state": state,
            "downstream": downstream,
            "kind": "reshoot",
            "source": source,
            "parent_version": parent,
            "structure_fingerprint": structure_fingerprint(bodies[v]),
            "shot_count": len(bodies[v].beats),
            "created_at": at,
        }

    manifest: dict[str, Any] = {
        "schema_version": 2,
        "batch_id": batch_id,
        "active_version": 1,
        "versions": [
            entry(
                1,
                f"{batch_id}.json",
                "approved",
                "derived",
                "legacy_flat",
                None,
                "2026-03-01T10:00:00.000001Z",
            ),
            entry(
                2,
                f"{batch_id}.v002.json",
                "candidate",
                "not_derived",
                "rederive",
                1,
                "2026-03-01T10:00:00.000002Z",
            ),
        ],
    }
    manifest["versions"].append(
        entry(
            3,
            f"{batch_id}.v003.json",
            "candidate",
            "not_derived",
            "rederive",
            2,
            "2026-03-02T09:30:00+00:00",
        )
    )
    manifest["active_version"] = 3  # conform v3
    manifest["versions"][2]["state"] = "approved"
    manifest["versions"][2]["downstream"] = "derived"  # mark_derived v3
    manifest["active_version"] = 2  # revert to v2 (state untouched)
    # atomic_write_json: indented JSON replacing the file.
    (scenes / f"{batch_id}.versions.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


@pytest.fixture
def scenes(root: Path) -> Path:
    return root / "show" / "ep_001" / "scenes"


def test_import_reproduces_the_manifest_and_is_idempotent(root: Path, scenes: Path) -> None:
    original = reference_store(scenes)
    flat_bytes = (scenes / f"{B}.json").read_bytes()
    (outcome,) = import_manifests("show", root, actor="migration@studio")
    assert (outcome.status, outcome.versions, outcome.active_version) == ("imported", 3, 2)
    env = child_env(SCENELOG_ROOT=str(root), SCENELOG_PROJECT="show")
    shown = subprocess.run(
        [sys.executable, "-m", "projections", "show", B, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    seq = data.pop("seq")
    data.pop("fresh"), data.pop("blocked_reason")  # show --json adds them (docs/CLI.md)
    for entry in data["versions"]:
        assert Path(entry.pop("body_path")).is_file()
    original["versions"][2]["created_at"] = "2026-03-02T09:30:00.000000Z"  # the log's form (item 9)
    assert data == original and seq == 4  # 3 appended + the recorded pointer
    history = Projection("show", root=root).history(B)
    assert all(e.imported and e.actor == "migration@studio" for e in history)
    assert all("imported from reference manifest" in (e.reason or "") for e in history)
    assert (scenes / f"{B}.versions.json.reference").exists()
    assert (scenes / f"{B}.json").read_bytes() == flat_bytes
    assert verify("show", root).ok
    before = snapshot(root)
    assert import_manifests("show", root) == []
    assert snapshot(root) == before
    # The batch is an ordinary scenelog batch now.
    store = SceneVersionStore("show", 1, root=root)
    assert store.write_scene_candidate(B, scene(shots=7)) == 4
    assert store.conform(B, 4).active_version == 4


def test_import_cli_dry_run_writes_nothing(root: Path, scenes: Path) -> None:
    reference_store(scenes)
    before = snapshot(root)
    env = child_env(SCENELOG_ROOT=str(root), SCENELOG_PROJECT="show")
    result = subprocess.run(
        [sys.executable, "-m", "projections", "import", "ep_001", "--dry-run"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0 and "would import (3 versions, active v2)" in result.stdout
    assert snapshot(root) == before
    result = subprocess.run(
        [sys.executable, "-m", "projections", "import", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0 and json.loads(result.stdout)[0]["status"] == "imported"


def _break_duplicate(m: dict[str, Any], scenes: Path) -> None:
    m["versions"].append(copy.deepcopy(m["versions"][1]))


def _break_active(m: dict[str, Any], scenes: Path) -> None:
    m["active_version"] = 9


def _break_body(m: dict[str, Any], scenes: Path) -> None:
    (scenes / f"{B}.v003.json").unlink()


def _break_entry(m: dict[str, Any], scenes: Path) -> None:
    del m["versions"][0]["shot_count"]


@pytest.mark.parametrize(
    ("breaker", "says"),
    [
        (_break_duplicate, "more than once"),
        (_break_active, "active_version 9"),
        (_break_body, "v003.json is missing"),
        (_break_entry, "missing ['shot_count']"),
    ],
)
def test_import_refuses_manifests_that_break_the_reference_invariants(
    root: Path, scenes: Path, breaker: Any, says: str
) -> None:
    manifest = reference_store(scenes)
    breaker(manifest, scenes)
    (scenes / f"{B}.versions.json").write_text(json.dumps(manifest, indent=2))
    reference_store(scenes, "ep_001_BATCH_004")  # a sound one beside it still imports
    before = {k: v for k, v in snapshot(root).items() if B in k}
    outcomes = {o.batch_id: o for o in import_manifests("show", root)}
    assert outcomes[B].status == "refused" and says in "; ".join(outcomes[B].problems)
    assert outcomes["ep_001_BATCH_004"].status == "imported"
    assert {k: v for k, v in snapshot(root).items() if B in k} == before
    env = child_env(SCENELOG_ROOT=str(root), SCENELOG_PROJECT="show")
    result = subprocess.run(
        [sys.executable, "-m", "projections", "import"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 1 and f"{B}: refused" in result.stdout
