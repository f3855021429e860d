"""verify against a damage table: each way a store is damaged in life is found, by file and line."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from eventstore import SceneVersionStore
from projections import verify
from tests.helpers import BATCH, child_env, scene


@pytest.fixture
def good(root: Path) -> Path:
    """A clean store: v1..v3, v2 conformed and derived, then v3 conformed (6 events)."""
    store = SceneVersionStore("show", 1, root=root)
    for shots in (2, 3, 4):
        store.write_scene_candidate(BATCH, scene(shots=shots))
    store.conform(BATCH, 2)
    store.mark_derived(BATCH, 2)
    store.conform(BATCH, 3)
    store.write_scene_candidate("ep_001_BATCH_004", scene("ep_001_BATCH_004"))
    return root / "show" / "ep_001" / "scenes"


def _lines(scenes: Path) -> list[bytes]:
    return (scenes / f"{BATCH}.events.jsonl").read_bytes().split(b"\n")[:-1]


def _write(scenes: Path, lines: list[bytes], tail: bytes = b"\n") -> None:
    (scenes / f"{BATCH}.events.jsonl").write_bytes(b"\n".join(lines) + tail)


def edited_line(scenes: Path) -> None:
    lines = _lines(scenes)
    lines[3] = lines[3].replace(b'"reason":null', b'"reason":"approved by nobody"')
    _write(scenes, lines)


def deleted_line(scenes: Path) -> None:
    lines = _lines(scenes)
    del lines[3]
    _write(scenes, lines)


def swapped_lines(scenes: Path) -> None:
    lines = _lines(scenes)
    lines[3], lines[4] = lines[4], lines[3]
    _write(scenes, lines)


def garbage_line(scenes: Path) -> None:
    lines = _lines(scenes)
    lines[2] = b"\x00\x00garbage"
    _write(scenes, lines)


def hand_added_event(scenes: Path) -> None:
    """A derived of a non-active version, appended by hand with a valid chain."""
    lines = _lines(scenes)
    event = json.loads(lines[4])  # derived v2, while v3 is now active
    event.update(seq=7, prev=hashlib.sha256(lines[-1]).hexdigest(), event_id="f" * 32)
    lines.append(json.dumps(event, separators=(",", ":")).encode())
    _write(scenes, lines)


def edited_body(scenes: Path) -> None:
    path = scenes / f"{BATCH}.v002.json"
    data = json.loads(path.read_bytes())
    data["beats"][0]["raw"]["description"] = "rewritten"
    path.write_text(json.dumps(data))


def renamed_body(scenes: Path) -> None:
    path = scenes / f"{BATCH}.v003.json"
    data = json.loads(path.read_bytes())
    data["scene_id"] = "ep_001_BATCH_009"
    path.write_text(json.dumps(data))


def deleted_body(scenes: Path) -> None:
    (scenes / f"{BATCH}.v003.json").unlink()


def orphan_body(scenes: Path) -> None:
    (scenes / f"{BATCH}.v004.json").write_bytes(scene(shots=9).to_json())


def torn_tail(scenes: Path) -> None:
    _write(scenes, _lines(scenes), b'\n{"type":"conformed","seq":7,"ba')


def garbage_view(scenes: Path) -> None:
    (scenes / f"{BATCH}.versions.json").write_bytes(b"\x89PNG garbage")


def stale_view(scenes: Path) -> None:
    view = json.loads((scenes / f"{BATCH}.versions.json").read_bytes())
    view["seq"], view["active_version"] = 5, 2
    (scenes / f"{BATCH}.versions.json").write_text(json.dumps(view))


def edited_view(scenes: Path) -> None:
    view = json.loads((scenes / f"{BATCH}.versions.json").read_bytes())
    view["versions"][2]["downstream"] = "derived"
    (scenes / f"{BATCH}.versions.json").write_text(json.dumps(view))


def unimported_manifest(scenes: Path) -> None:
    (scenes / "ep_001_BATCH_005.versions.json").write_text(
        json.dumps(
            {
                "schema_version": 2,
                "batch_id": "ep_001_BATCH_005",
                "active_version": 1,
                "versions": [],
            }
        )
    )


DAMAGE: list[tuple[Callable[[Path], None], str, str, int | None]] = [
    (edited_line, "hash_chain", "events.jsonl", 4),
    (deleted_line, "seq", "events.jsonl", 4),
    (swapped_lines, "seq", "events.jsonl", 4),
    (garbage_line, "unreadable", "events.jsonl", 3),
    (hand_added_event, "rule", "events.jsonl", 7),
    (edited_body, "body_edited", "v002.json", None),
    (renamed_body, "body_identity", "v003.json", None),
    (deleted_body, "body_missing", "v003.json", None),
    (orphan_body, "orphan_body", "v004.json", None),
    (torn_tail, "torn_tail", "events.jsonl", 7),
    (garbage_view, "view_corrupt", "versions.json", None),
    (stale_view, "view_stale", "versions.json", None),
    (edited_view, "view_differs", "versions.json", None),
    (unimported_manifest, "unimported", "BATCH_005.versions.json", None),
]


def test_clean_store_reports_clean(good: Path, root: Path) -> None:
    report = verify("show", root)
    assert report.ok and report.findings == []
    assert (report.batches, report.events) == (2, 7)


@pytest.mark.parametrize(
    ("damage", "check", "file", "line"), DAMAGE, ids=[d[0].__name__ for d in DAMAGE]
)
def test_damage_is_found_with_file_and_line(
    good: Path, root: Path, damage: Callable[[Path], None], check: str, file: str, line: int | None
) -> None:
    damage(good)
    report = verify("show", root)
    assert not report.ok
    found = [f for f in report.findings if f.check == check]
    assert found, report.findings
    assert found[0].path.endswith(file) and found[0].line == line, found[0]
    assert found[0].fix
    # Nothing else is blamed on the untouched batch.
    assert not [f for f in report.findings if f.batch_id == "ep_001_BATCH_004"]


def test_repair_views_rewrites_views_only(good: Path, root: Path) -> None:
    garbage_view(good)
    log_before = (good / f"{BATCH}.events.jsonl").read_bytes()
    report = verify("show", root, repair_views=True)
    assert report.ok and [f.check for f in report.findings] == ["view_corrupt"]
    assert report.findings[0].repaired
    assert verify("show", root).findings == []
    assert (good / f"{BATCH}.events.jsonl").read_bytes() == log_before


def test_verify_targets_and_cli(good: Path, root: Path) -> None:
    orphan_body(good)
    assert verify("show", root, target="ep_001_BATCH_004").ok
    assert not verify("show", root, target=BATCH).ok
    assert not verify("show", root, target="ep_001").ok
    env = child_env(SCENELOG_ROOT=str(root), SCENELOG_PROJECT="show")
    result = subprocess.run(
        [sys.executable, "-m", "projections", "verify", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False and data["findings"][0]["check"] == "orphan_body"
    result = subprocess.run(
        [sys.executable, "-m", "projections", "verify", "ep_001_BATCH_004"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0 and "clean" in result.stderr
