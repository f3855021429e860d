"""Queries over a scripted history: as_of, diff, audit, episode listings.

The library's queries run on each backend (``backend_root``); the CLI's on each
backend another process shares (file, PostgreSQL).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from eventstore import InvalidInput, Scene, SceneVersionStore, fold
from eventstore import store as store_module
from projections import Projection
from tests.conftest import on_shared_backends
from tests.helpers import child_env

B3, B4 = "ep_001_BATCH_003", "ep_002_BATCH_004"


def body(batch_id: str, shots: list[tuple[str, str]], **extra: object) -> Scene:
    beats = [{"shot_id": s, "raw": {"description": d}} for s, d in shots]
    return Scene({"scene_id": batch_id, "beats": beats, **extra})


@pytest.fixture
def scripted(backend_root: str, monkeypatch: pytest.MonkeyPatch) -> Projection:
    """The scripted history on each backend."""
    return script(backend_root, monkeypatch)


@pytest.fixture
def scripted_shared(backend_root: str, monkeypatch: pytest.MonkeyPatch) -> Projection:
    """The scripted history where the CLI (another process) reads it too."""
    return script(backend_root, monkeypatch)


def script(root: Path | str, monkeypatch: pytest.MonkeyPatch) -> Projection:
    """Events at 10:00, 10:01, … on 2026-11-20 (one minute apart), across two episodes."""
    clock = (f"2026-11-20T10:{m:02d}:00.000000Z" for m in itertools.count())
    monkeypatch.setattr(store_module, "utc_now", lambda: next(clock))
    s1, s2 = SceneVersionStore("show", 1, root=root), SceneVersionStore("show", 2, root=root)
    s1.write_scene_candidate(B3, body(B3, [("a", "x"), ("b", "y"), ("c", "z")]))  # 10:00
    s1.write_scene_candidate(
        B3, body(B3, [("b", "y"), ("a", "x"), ("c", "Z"), ("d", "new")]), reason="script v2"
    )  # 10:01
    s1.conform(B3, 2, actor="sup.ana", reason="dailies")  # 10:02
    s2.write_scene_candidate(B4, body(B4, [("a", "x")]))  # 10:03
    s1.mark_derived(B3, 2, actor="boards@farm")  # 10:04
    s2.write_scene_candidate(B4, body(B4, [("a", "x")], title="renamed"))  # 10:05
    s2.conform(B4, 2, actor="sup.bob", reason="title fix")  # 10:06
    s1.revert(B3, 1, actor="sup.ana", reason="continuity")  # 10:07
    return Projection("show", root=root)


def test_as_of_every_seq_is_the_prefix_fold(scripted: Projection) -> None:
    events = scripted.history(B3)
    assert len(events) == 5
    for seq in range(len(events) + 1):
        assert scripted.as_of(B3, seq=seq) == fold(B3, events[:seq])


def test_as_of_time_at_and_between_events(scripted: Projection) -> None:
    at = scripted.as_of
    assert at(B3, at="2026-11-20T10:02:00Z").active_version == 2  # exactly at the conform
    assert at(B3, at="2026-11-20T10:01:59.999999Z").active_version == 1  # just before it
    between = at(B3, at="2026-11-20T10:03:30+00:00")  # between 10:02 and 10:04
    assert between.seq == 3 and not between.is_fresh
    assert at(B3, at="2026-11-20T11:04:00+01:00").is_fresh  # 10:04 UTC, other zone
    assert at(B3, at="2026-11-20T09:00:00Z").seq == 0
    assert at(B3, at="2030-01-01T00:00:00Z") == scripted.require(B3)
    from datetime import UTC, datetime

    assert at(B3, at=datetime(2026, 11, 20, 10, 2, tzinfo=UTC)).active_version == 2
    with pytest.raises(InvalidInput):
        at(B3, at="2026-11-20T10:02:00")  # no zone
    with pytest.raises(InvalidInput):
        at(B3, at=datetime(2026, 11, 20, 10, 2))  # naive


def test_diff_by_shot(scripted: Projection) -> None:
    diff = scripted.diff(B3, 1, 2)
    assert diff.added == ["d"] and diff.removed == []
    assert diff.moved == ["b"] or diff.moved == ["a"]
    assert [(c.shot_id, c.keys) for c in diff.changed] == [("c", ["raw.description"])]
    assert not diff.same_structure and "dedup appends" in diff.dedup
    same = scripted.diff(B4, 1, 2)
    assert same.same_structure and same.other_keys == ["title"]
    assert "returns v1" in same.dedup and "title" in same.dedup
    with pytest.raises(ValueError, match="not registered"):
        scripted.diff(B3, 1, 9)


def test_audit_filters(scripted: Projection) -> None:
    rows = scripted.audit()
    assert [(r.batch_id, r.type, r.from_version, r.to_version, r.actor) for r in rows] == [
        (B3, "conformed", 1, 2, "sup.ana"),
        (B4, "conformed", 1, 2, "sup.bob"),
        (B3, "reverted", 2, 1, "sup.ana"),
    ]
    assert [r.to_version for r in scripted.audit(episode=2)] == [2]
    assert [r.actor for r in scripted.audit(actor="sup.bob")] == ["sup.bob"]
    window = scripted.audit(since="2026-11-20T10:02:00Z", until="2026-11-20T10:06:00Z")
    assert [r.at[11:16] for r in window] == ["10:02", "10:06"]
    assert [r.type for r in scripted.audit(types=("derived",))] == ["derived"]
    with pytest.raises(InvalidInput):
        scripted.audit(types=("approved",))


@on_shared_backends
def test_audit_and_diff_cli(scripted_shared: Projection, backend_root: str) -> None:
    env = child_env(SCENELOG_ROOT=backend_root, SCENELOG_PROJECT="show")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "projections", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )

    result = run("audit", "--csv")
    assert result.returncode == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["reason"] for r in rows] == ["dailies", "title fix", "continuity"]
    result = run("audit", "ep_001", "--json", "--by", "sup.ana", "--type", "reverted")
    assert [row["to_version"] for row in json.loads(result.stdout)] == [1]
    result = run("audit", "--type", "bogus")
    assert result.returncode == 2
    result = run("diff", B3, "1", "2", "--json")
    assert result.returncode == 0 and json.loads(result.stdout)["added"] == ["d"]
    result = run("diff", B3, "1", "2")
    assert "changed" in result.stdout and "c: raw.description" in result.stdout
    assert run("diff", B3, "1", "7").returncode == 3
    result = run("show", B3, "--at", "2026-11-20T10:03:00Z", "--json")
    assert json.loads(result.stdout)["active_version"] == 2
