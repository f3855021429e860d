"""Scene bodies: parsing, validation, fingerprints, write-once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eventstore import (
    DamagedBody,
    Scene,
    SceneFormatError,
    VersionBodyExists,
    load_scene,
    structure_fingerprint,
)
from eventstore.scene import save_scene_once


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "JSON object"),
        ('{"beats": []}', "scene_id"),
        ('{"scene_id": 3, "beats": []}', "scene_id"),
        ('{"scene_id": "ep_001_BATCH_003"}', "beats"),
        ('{"scene_id": "ep_001_BATCH_003", "beats": {}}', "beats"),
        ('{"scene_id": "ep_001_BATCH_003", "beats": [{"x": 1}]}', "shot_id"),
        ('{"scene_id": "ep_001_BATCH_003", "beats": [{"shot_id": 7}]}', "shot_id"),
        ('{"scene_id": "ep_001_BATCH_003", "beats": ["a"]}', "shot_id"),
    ],
)
def test_malformed_scene_refused_with_reason(text: str, says: str) -> None:
    with pytest.raises(SceneFormatError) as info:
        Scene.from_json(text)
    assert isinstance(info.value, ValueError)
    assert says in str(info.value)


def test_size_and_depth_limits() -> None:
    body = json.dumps({"scene_id": "ep_001_BATCH_003", "beats": [], "pad": "x" * 5000})
    with pytest.raises(SceneFormatError, match="over the limit"):
        Scene.from_json(body, max_bytes=1000)
    deep = '{"scene_id": "ep_001_BATCH_003", "beats": [], "n": ' + "[" * 500 + "]" * 500 + "}"
    with pytest.raises(SceneFormatError, match="nested"):
        Scene.from_json(deep)


def test_unknown_keys_survive_round_trip(tmp_path: Path) -> None:
    text = json.dumps(
        {
            "scene_id": "ep_001_BATCH_003",
            "zeta": {"deep": [1, {"k": None}]},
            "alpha": 1.5,
            "beats": [{"shot_id": "a", "raw": {"description": "héllo", "extra": [True]}, "z": 1}],
        }
    )
    scene = Scene.from_json(text)
    path = tmp_path / "ep_001_BATCH_003.v002.json"
    save_scene_once(scene, path)
    loaded = load_scene(path)
    assert loaded.data == json.loads(text)
    assert list(loaded.data) == ["scene_id", "zeta", "alpha", "beats"]  # key order kept


def test_fingerprint_covers_every_beat_key_and_nothing_else() -> None:
    base = {
        "scene_id": "ep_001_BATCH_003",
        "beats": [{"shot_id": "a", "raw": {"description": "x"}}],
    }
    fp = structure_fingerprint(Scene(json.loads(json.dumps(base))))
    other_top = Scene({**json.loads(json.dumps(base)), "title": "changed"})
    assert structure_fingerprint(other_top) == fp
    changed_raw = json.loads(json.dumps(base))
    changed_raw["beats"][0]["raw"]["description"] = "y"
    assert structure_fingerprint(Scene(changed_raw)) != fp
    reordered = {
        "scene_id": "ep_001_BATCH_003",
        "beats": [{"raw": {"description": "x"}, "shot_id": "a"}],
    }
    assert structure_fingerprint(Scene(reordered)) == fp  # canonical: sorted keys
    import hashlib

    canonical = b'[{"raw":{"description":"x"},"shot_id":"a"}]'
    assert fp == hashlib.sha256(canonical).hexdigest()


def test_write_once_refuses_overwrite(tmp_path: Path) -> None:
    scene = Scene({"scene_id": "ep_001_BATCH_003", "beats": []})
    path = tmp_path / "ep_001_BATCH_003.v002.json"
    save_scene_once(scene, path)
    before = path.read_bytes()
    with pytest.raises(VersionBodyExists) as info:
        save_scene_once(Scene({"scene_id": "ep_001_BATCH_003", "beats": [{"shot_id": "b"}]}), path)
    assert isinstance(info.value, FileExistsError)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temp file left


def test_load_scene_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_scene(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(DamagedBody) as info:
        load_scene(bad)
    assert str(bad) in str(info.value)
