"""Issue 10, import side: items 4, 9 (import), 21 and 12 (``import --adopt``, R29)."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from eventstore import SceneVersionStore, structure_fingerprint
from projections import Projection, verify
from tests.helpers import DEADLINE, REPO, child_env, scene, scenelog, snapshot
from tests.test_import import reference_store

B = "ep_001_BATCH_003"


@pytest.fixture
def scenes(root: Path) -> Path:
    return root / "show" / "ep_001" / "scenes"


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def write_manifest(scenes: Path, manifest: dict[str, Any], batch_id: str = B) -> None:
    (scenes / f"{batch_id}.versions.json").write_text(json.dumps(manifest, indent=2) + "\n")


def batch_files(root: Path, batch_id: str = B) -> dict[str, str]:
    return {k: v for k, v in snapshot(root).items() if batch_id in k}


# ── item 4: numbers the reference writes as floats ───────────────────────────


def test_item4_active_version_2_0_imports_readable_and_2_5_is_refused_naming_the_field(
    root: Path, scenes: Path
) -> None:
    manifest = reference_store(scenes)
    manifest["active_version"] = 2.0  # what the reference writes after conform(B, 2.0)
    write_manifest(scenes, manifest)
    other = reference_store(scenes, "ep_001_BATCH_004")
    other["active_version"] = 2.5
    write_manifest(scenes, other, "ep_001_BATCH_004")
    refused_before = batch_files(root, "ep_001_BATCH_004")

    result = scenelog(root, "import", "ep_001")
    assert result.returncode == 1, result.stderr  # one manifest refused
    assert f"{B}: imported (3 versions, active v2)" in result.stdout
    assert "ep_001_BATCH_004: refused: active_version is 2.5, not a whole number" in result.stdout
    assert batch_files(root, "ep_001_BATCH_004") == refused_before

    shown = scenelog(root, "show", B, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["active_version"] == 2
    new_body = root / "new.json"
    new_body.write_bytes(scene(shots=9).to_json())
    added = scenelog(root, "add", B, str(new_body))
    assert added.returncode == 0 and added.stdout.strip().endswith("4"), added.stderr
    assert verify("show", root, target=B).ok


def _float_version(m: dict[str, Any]) -> None:
    m["versions"][1]["version"] = 2.0
    m["versions"][2]["parent_version"] = 2.0


def _float_shot_count(m: dict[str, Any]) -> None:
    m["versions"][0]["shot_count"] = float(m["versions"][0]["shot_count"])


def _float_parent(m: dict[str, Any]) -> None:
    m["versions"][1]["parent_version"] = 1.0


@pytest.mark.parametrize("change", [_float_version, _float_shot_count, _float_parent])
def test_item4_integral_floats_in_every_numeric_field_import_as_ints(
    root: Path, scenes: Path, change: Callable[[dict[str, Any]], None]
) -> None:
    manifest = reference_store(scenes)
    change(manifest)
    write_manifest(scenes, manifest)
    result = scenelog(root, "import")
    assert result.returncode == 0, result.stdout + result.stderr
    shown = scenelog(root, "show", B, "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    for entry in data["versions"]:
        for key in ("version", "shot_count", "parent_version"):
            assert entry[key] is None or type(entry[key]) is int, (key, entry[key])
    assert [e["version"] for e in data["versions"]] == [1, 2, 3]
    assert [e["shot_count"] for e in data["versions"]] == [2, 3, 4]
    assert [e["parent_version"] for e in data["versions"]] == [None, 1, 2]
    assert Projection("show", root=root).manifest(B) is not None
    assert verify("show", root).ok


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("active_version", True, "active_version is True, a boolean"),
        ("schema_version", 2.5, "schema_version is 2.5, not a whole number"),
        ("schema_version", 3, "schema_version 3 is not 2"),
    ],
)
def test_item4_booleans_and_fractions_are_refused_naming_the_field(
    root: Path, scenes: Path, key: str, value: object, says: str
) -> None:
    manifest = reference_store(scenes)
    manifest[key] = value
    write_manifest(scenes, manifest)
    before = snapshot(root)
    result = scenelog(root, "import")
    assert result.returncode == 1
    assert f"{B}: refused: " in result.stdout and says in result.stdout
    assert snapshot(root) == before


# ── item 9: created_at is a timestamp, written in the log's form ─────────────


def test_item9_created_at_is_normalized_to_utc_microseconds_z_with_4_digit_years(
    root: Path, scenes: Path
) -> None:
    manifest = reference_store(scenes)
    manifest["versions"][0]["created_at"] = "0999-05-01T00:30:00+01:00"  # an aware time
    manifest["versions"][1]["created_at"] = "2026-03-01T10:00:00.5"  # naive: taken as UTC
    manifest["versions"][2]["created_at"] = "2026-03-02T09:30:00Z"
    write_manifest(scenes, manifest)
    result = scenelog(root, "import")
    assert result.returncode == 0, result.stdout + result.stderr
    shown = scenelog(root, "show", B, "--json")
    assert shown.returncode == 0, shown.stderr
    stamps = [e["created_at"] for e in json.loads(shown.stdout)["versions"]]
    assert stamps == [
        "0999-04-30T23:30:00.000000Z",
        "2026-03-01T10:00:00.500000Z",
        "2026-03-02T09:30:00.000000Z",
    ]
    history = Projection("show", root=root).history(B)
    assert [e.at for e in history[:3]] == stamps
    assert sorted(stamps) == stamps  # text order is time order, year 999 included
    assert verify("show", root).ok


@pytest.mark.parametrize(
    "created_at",
    ["last tuesday", "2026-03-01", "0001-01-01T00:00:00+01:00", "2026-13-01T00:00:00Z", ""],
)
def test_item9_created_at_that_is_not_a_timestamp_refuses_the_manifest(
    root: Path, scenes: Path, created_at: str
) -> None:
    manifest = reference_store(scenes)
    manifest["versions"][1]["created_at"] = created_at
    write_manifest(scenes, manifest)
    before = snapshot(root)
    result = scenelog(root, "import")
    assert result.returncode == 1
    assert f"{B}: refused: entry v2: created_at {created_at!r} is not" in result.stdout
    assert snapshot(root) == before


# ── item 21: concurrent imports cooperate ────────────────────────────────────

_IMPORTER = """
import sys
from projections.cli import cli
print("ready", flush=True)
sys.stdin.read(1)  # the start line: every importer begins at once
raise SystemExit(cli("import", "ep_001"))
"""


def test_item21_concurrent_imports_all_finish_and_import_each_batch_once(
    root: Path, scenes: Path
) -> None:
    batches = [f"ep_001_BATCH_{n:03d}" for n in range(1, 31)]
    for batch_id in batches:
        reference_store(scenes, batch_id)
    env = child_env(SCENELOG_ROOT=str(root), SCENELOG_PROJECT="show")
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _IMPORTER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=str(REPO),
        )
        for _ in range(4)
    ]
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline() == "ready\n"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("g")
            child.stdin.flush()
        outputs = [child.communicate(timeout=DEADLINE) for child in children]
        results = [
            (child.returncode, output) for child, output in zip(children, outputs, strict=True)
        ]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    for code, (out, err) in results:
        assert code == 0, out + err
    imported_by = {batch_id: 0 for batch_id in batches}
    for _code, (out, _err) in results:
        for line in out.splitlines():
            batch_id, _, status = line.partition(": ")
            if status.startswith("imported"):
                imported_by[batch_id] += 1
    assert imported_by == {batch_id: 1 for batch_id in batches}
    projection = Projection("show", root=root)
    for batch_id in batches:
        history = projection.history(batch_id)
        assert [e.seq for e in history] == [1, 2, 3, 4]
        assert all(e.imported for e in history)
        assert projection.manifest(batch_id).active_version == 2  # type: ignore[union-attr]
    assert verify("show", root).ok


# ── item 12 (R29): import --adopt turns a foreign change into events ─────────


def scenelog_batch(root: Path) -> SceneVersionStore:
    """A scenelog batch with v1 (active, derived), v2 and v3 (candidates)."""
    store = SceneVersionStore("show", 1, root=root)
    for shots in (2, 3, 4):
        store.write_scene_candidate(B, scene(shots=shots), actor="tester")
    return store


@contextmanager
def reference_tool(scenes: Path, batch_id: str = B) -> Iterator[dict[str, Any]]:
    """A reference-era tool: flock on versions.lock, load, modify, rewrite versions.json."""
    manifest_path = scenes / f"{batch_id}.versions.json"
    fd = os.open(scenes / f"{batch_id}.versions.lock", os.O_CREAT | os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        manifest = json.loads(manifest_path.read_text())
        yield manifest
        tmp = manifest_path.with_name(manifest_path.name + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=2))
        os.replace(tmp, manifest_path)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def entry_of(manifest: dict[str, Any], version: int) -> dict[str, Any]:
    return next(e for e in manifest["versions"] if e["version"] == version)


def test_r29_adopt_turns_a_reference_append_conform_derive_and_revert_into_events(
    root: Path, scenes: Path
) -> None:
    scenelog_batch(root)
    body = scene(shots=5)
    (scenes / f"{B}.v004.json").write_bytes(body.to_json())
    with reference_tool(scenes) as manifest:
        manifest["versions"].append(
            {
                "version": 4,
                "artifact": f"{B}.v004.json",
                "state": "candidate",
                "downstream": "not_derived",
                "kind": "pickup",
                "source": "rederive",
                "parent_version": 3,
                "structure_fingerprint": structure_fingerprint(body),
                "shot_count": 5,
                "created_at": "2026-11-27T08:00:00+00:00",
            }
        )
        manifest["active_version"] = 3  # conform(B, 3)
        entry_of(manifest, 3)["state"] = "approved"
        entry_of(manifest, 3)["downstream"] = "derived"  # mark_derived(B, 3)
        entry_of(manifest, 2)["state"] = "approved"  # conform(B, 2) ...
        manifest["active_version"] = 2  # ... and revert(B, 2)
        foreign = json.loads(json.dumps(manifest))

    refused = scenelog(root, "conform", B, "4")  # R29: a foreign view is never overwritten
    assert refused.returncode == 3 and f"import --adopt {B}" in one_line(refused)
    result = scenelog(root, "--actor", "migration", "import", "--adopt", B)
    assert result.returncode == 0, result.stderr
    assert f"{B}: adopted appended v4, conformed v3, derived v3, conformed v2 (seq 7)" in (
        result.stdout
    )
    shown = scenelog(root, "show", B, "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data.pop("seq") == 7
    data.pop("fresh"), data.pop("blocked_reason")  # show --json adds them (docs/CLI.md)
    for entry in data["versions"]:
        entry.pop("body_path")
    foreign.pop("seq")
    entry_of(foreign, 4)["created_at"] = "2026-11-27T08:00:00.000000Z"
    assert data == foreign
    adopted = Projection("show", root=root).history(B)[3:]
    assert [(e.type, e.version) for e in adopted] == [
        ("appended", 4),
        ("conformed", 3),
        ("derived", 3),
        ("conformed", 2),
    ]
    assert all(e.imported and e.actor == "migration" for e in adopted)
    assert verify("show", root).ok
    # The view is scenelog's own again: a second adopt has nothing to do, commands work.
    before = snapshot(root)
    again = scenelog(root, "import", "--adopt", B)
    assert again.returncode == 0 and "nothing to adopt (seq 7)" in again.stdout
    assert snapshot(root) == before
    moved = scenelog(root, "conform", B, "4")
    assert moved.returncode == 0, moved.stderr


def test_r29_adopt_of_a_pointer_move_alone_is_one_revert(root: Path, scenes: Path) -> None:
    store = scenelog_batch(root)
    store.conform(B, 3)
    with reference_tool(scenes) as manifest:
        manifest["active_version"] = 1  # revert(B, 1)
    before = snapshot(root)
    dry = scenelog(root, "import", "--adopt", B, "--dry-run")
    assert dry.returncode == 0 and f"{B}: would adopt reverted v1 (seq 4)" in dry.stdout
    assert snapshot(root) == before
    result = scenelog(root, "import", "--adopt", B, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "batch_id": B,
        "status": "adopted",
        "seq": 5,
        "events": ["reverted v1"],
    }
    manifest_after = Projection("show", root=root).manifest(B)
    assert manifest_after is not None and manifest_after.active_version == 1


def _remove_v2(m: dict[str, Any], scenes: Path) -> str:
    m["versions"] = [e for e in m["versions"] if e["version"] != 2]
    m["active_version"] = 1
    return "v2 was removed"


def _change_fingerprint(m: dict[str, Any], scenes: Path) -> str:
    entry_of(m, 2)["structure_fingerprint"] = "0" * 64
    return "v2's structure_fingerprint changed"


def _unapprove(m: dict[str, Any], scenes: Path) -> str:
    entry_of(m, 1)["state"] = "candidate"
    return "v1 went from approved back to candidate"


def _underive(m: dict[str, Any], scenes: Path) -> str:
    entry_of(m, 1)["downstream"] = "not_derived"
    return "v1 went from derived back to not_derived"


def _append_foreign_body(m: dict[str, Any], scenes: Path) -> str:
    (scenes / f"{B}.v004.json").write_bytes(scene(shots=5).to_json())
    m["versions"].append({**entry_of(m, 3), "version": 4, "artifact": f"{B}.v004.json"})
    return "v4's body ep_001_BATCH_003.v004.json does not have the recorded fingerprint"


@pytest.mark.parametrize(
    "change", [_remove_v2, _change_fingerprint, _unapprove, _underive, _append_foreign_body]
)
def test_r29_adopt_refuses_what_no_event_explains_and_writes_nothing(
    root: Path, scenes: Path, change: Callable[[dict[str, Any], Path], str]
) -> None:
    scenelog_batch(root)
    with reference_tool(scenes) as manifest:
        says = change(manifest, scenes)
    before = snapshot(root)
    result = scenelog(root, "import", "--adopt", B)
    assert result.returncode == 3, result.stdout + result.stderr
    line = one_line(result)
    assert line.startswith("scenelog: error: cannot adopt") and says in line
    assert snapshot(root) == before


def test_r29_adopt_of_a_stale_scenelog_view_appends_nothing(root: Path, scenes: Path) -> None:
    store = scenelog_batch(root)
    view = scenes / f"{B}.versions.json"
    stale = view.read_bytes()  # scenelog's own view at seq 3
    store.conform(B, 3)
    view.write_bytes(stale)  # e.g. the view rewrite of seq 4 was lost
    result = scenelog(root, "import", "--adopt", B)
    assert result.returncode == 0, result.stderr
    assert "nothing to adopt (seq 4)" in result.stdout
    assert [e.type for e in Projection("show", root=root).history(B)][-1] == "conformed"
    manifest = Projection("show", root=root).manifest(B)
    assert manifest is not None and manifest.active_version == 3  # not reverted to v1


def test_r29_adopt_applies_a_change_made_on_a_stale_view_after_later_commands(
    root: Path, scenes: Path
) -> None:
    store = scenelog_batch(root)
    view = scenes / f"{B}.versions.json"
    stale = view.read_bytes()  # seq 3: v1 active
    store.conform(B, 3)  # seq 4; its view rewrite is lost
    view.write_bytes(stale)
    with reference_tool(scenes) as manifest:
        assert manifest["seq"] == 3
        manifest["active_version"] = 2  # the reference tool reverts to v2 after it
    result = scenelog(root, "import", "--adopt", B)
    assert result.returncode == 0, result.stderr
    assert f"{B}: adopted reverted v2 (seq 5)" in result.stdout
    manifest_after = Projection("show", root=root).manifest(B)
    assert manifest_after is not None and manifest_after.active_version == 2
    assert manifest_after.entry(3).state == "approved"  # type: ignore[union-attr]
    assert verify("show", root).ok


_HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


def test_r29_adopt_waits_for_the_reference_lock(root: Path, scenes: Path) -> None:
    scenelog_batch(root)
    with reference_tool(scenes) as manifest:
        manifest["active_version"] = 2
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(scenes / f"{B}.versions.lock")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        before = snapshot(root)
        blocked = scenelog(root, "--lock-timeout", "0.3", "import", "--adopt", B)
        assert blocked.returncode == 3, blocked.stdout + blocked.stderr
        assert "versions.lock" in one_line(blocked)
        assert snapshot(root) == before
        assert holder.stdin is not None
        holder.stdin.close()
        assert holder.wait(timeout=DEADLINE) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    result = scenelog(root, "import", "--adopt", B)
    assert result.returncode == 0 and "adopted reverted v2" in result.stdout, result.stderr


def test_r29_adopt_of_a_batch_without_a_log_says_to_import(root: Path, scenes: Path) -> None:
    reference_store(scenes)
    result = scenelog(root, "import", "--adopt", B)
    assert result.returncode == 3
    assert "scenelog import ep_001" in one_line(result)
    missing = scenelog(root, "import", "--adopt", "ep_001_BATCH_009")
    assert missing.returncode == 2 and "nothing to adopt" in one_line(missing)


def test_r29_adopt_mends_the_view_of_an_import_killed_before_its_view_rewrite(
    root: Path, scenes: Path
) -> None:
    reference_store(scenes)
    assert scenelog(root, "import").returncode == 0
    view = scenes / f"{B}.versions.json"
    view.write_bytes((scenes / f"{B}.versions.json.reference").read_bytes())  # as if killed
    refused = scenelog(root, "conform", B, "3")
    assert refused.returncode == 3 and f"import --adopt {B}" in one_line(refused)
    result = scenelog(root, "import", "--adopt", B)
    assert result.returncode == 0 and "nothing to adopt (seq 4)" in result.stdout, result.stderr
    assert scenelog(root, "conform", B, "3").returncode == 0
    assert verify("show", root).ok
