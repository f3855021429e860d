"""Id grammars and path mapping (DESIGN §1-2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventstore import InvalidInput, Layout
from eventstore.layout import normalize_episode, validate_batch_id, validate_version


@pytest.mark.parametrize(
    "batch_id",
    [
        "ep_1_BATCH_3",
        "ep_001_BATCH_03",
        "ep_001_BATCH_0003",
        "ep_000_BATCH_001",
        "EP_001_BATCH_003",
        "ep_001_BATCH_00\u0663",
        "ep_\uff10\uff10\uff11_BATCH_003",
        "../ep_001_BATCH_003",
        "ep_001_BATCH_003/..",
        "ep_001_BATCH_003\n",
        "ep_001_BATCH_003\x00",
        "",
        None,
        3,
    ],
)
def test_batch_id_grammar_refuses(batch_id: object) -> None:
    with pytest.raises(InvalidInput):
        validate_batch_id(batch_id)


def test_batch_id_grammar_accepts() -> None:
    assert validate_batch_id("ep_999_BATCH_000") == "ep_999_BATCH_000"


@pytest.mark.parametrize("version", [0, -1, True, False, "2", 1.0, None])
def test_version_must_be_int_at_least_one(version: object) -> None:
    with pytest.raises(InvalidInput):
        validate_version(version)


def test_episode_normalization() -> None:
    assert normalize_episode(7) == normalize_episode("7") == normalize_episode("007") == "ep_007"
    assert normalize_episode("ep_123") == "ep_123"


def test_paths(tmp_path: Path) -> None:
    paths = Layout.of("show", tmp_path).batch("ep_002_BATCH_010")
    base = tmp_path / "show" / "ep_002" / "scenes"
    assert paths.flat == base / "ep_002_BATCH_010.json"
    assert paths.body(2) == base / "ep_002_BATCH_010.v002.json"
    assert paths.body(1000) == base / "ep_002_BATCH_010.v1000.json"
    assert paths.log == base / "ep_002_BATCH_010.events.jsonl"
    assert paths.view == base / "ep_002_BATCH_010.versions.json"
    assert paths.lock == base / "ep_002_BATCH_010.lock"
    with pytest.raises(InvalidInput):
        paths.artifact("../../etc/passwd")
    with pytest.raises(InvalidInput):
        paths.artifact("ep_002_BATCH_011.v002.json")
    assert paths.artifact("ep_002_BATCH_010.v002.json") == paths.body(2)


def test_root_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCENELOG_ROOT", str(tmp_path))
    assert Layout.of("show").root == tmp_path
    monkeypatch.delenv("SCENELOG_ROOT")
    monkeypatch.chdir(tmp_path)
    assert Layout.of("show").root == tmp_path
