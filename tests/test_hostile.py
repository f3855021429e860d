"""Hostile input: every crafted id, name, body, reason or handler argument is refused or
made harmless, and nothing is ever written outside the project folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from eventstore import InvalidInput, SceneVersionStore
from projections import Projection, verify, watch
from tests.helpers import child_env, scene, snapshot
from tests.helpers import scenelog as cli

B = "ep_001_BATCH_001"

BAD_PROJECTS = ["../evil", "..", ".", "/abs", "a/b", "x\x00y", "x\ny", "sh\u043ew", "-rf", ""]
BAD_BATCHES = [
    "../ep_001_BATCH_001",
    "ep_001_BATCH_001/../../x",
    "/etc/passwd",
    "ep_001_BATCH_00\x00",
    "ep_001_BATCH_001\n",
    "ep_\u0660\u0660\u0661_BATCH_001",
    "ep_001_\u0412ATCH_001",
    "ep_001_BATCH_\uff10\uff10\uff11",
    "ep_001_BATCH_001 ",
    "EP_001_BATCH_001",
]


@pytest.mark.parametrize("project", BAD_PROJECTS)
def test_project_names_that_escape_are_refused(tmp_path: Path, project: str) -> None:
    root = tmp_path / "store"
    before = snapshot(tmp_path)
    with pytest.raises(InvalidInput):
        SceneVersionStore(project, 1, root=root)
    if "\x00" not in project:
        result = cli(root, f"--project={project}", "add", B, "-", stdin=scene(B).to_json().decode())
        assert result.returncode == 2 and result.stderr.startswith(
            "scenelog: error: invalid project"
        )
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("batch_id", BAD_BATCHES)
def test_batch_ids_that_escape_or_look_alike_are_refused(tmp_path: Path, batch_id: str) -> None:
    root = tmp_path / "store"
    store = SceneVersionStore("show", 1, root=root)
    before = snapshot(tmp_path)
    with pytest.raises(InvalidInput):
        store.write_scene_candidate(batch_id, scene(batch_id))
    for call in (store.conform, store.revert, store.mark_derived):
        with pytest.raises(InvalidInput):
            call(batch_id, 1)
    with pytest.raises(InvalidInput):
        Projection("show", root=root).manifest(batch_id)
    if "\x00" not in batch_id:
        body = json.dumps({"scene_id": batch_id, "beats": []})
        assert cli(root, "add", batch_id, "-", stdin=body).returncode == 2
        assert cli(root, "show", batch_id).returncode == 2
    assert snapshot(tmp_path) == before


def test_huge_and_deep_bodies_are_refused_with_nothing_written(tmp_path: Path) -> None:
    root = tmp_path / "store"
    big = json.dumps({"scene_id": B, "beats": [{"shot_id": "a", "pad": "x" * 5000}]})
    result = cli(root, "add", B, "-", stdin=big, SCENELOG_MAX_SCENE_BYTES="1000")
    assert result.returncode == 2 and "over the limit" in result.stderr
    deep = '{{"scene_id": "{}", "beats": [], "x": {}}}'.format(B, "[" * 5000 + "]" * 5000)
    result = cli(root, "add", B, "-", stdin=deep)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert snapshot(tmp_path) == {}


REASONS = [
    "line one\nline two\r\nthree",
    "\x00\x07\x1b[31mred\x1b[0m",
    "quote \" backslash \\ and 'single'",
    "separators \u2028 \u2029 and \x85",
    '{"type":"conformed","seq":99}\n{"fake":1}',
    "\U0001f3ac \u0645\u0634\u0647\u062f",
]


def test_reasons_and_actors_never_break_a_line(root: Path) -> None:
    store = SceneVersionStore("show", 1, root=root)
    store.write_scene_candidate(B, scene(B, shots=1))
    store.write_scene_candidate(B, scene(B, shots=2))
    for n, text in enumerate(REASONS):
        store.conform(B, 2 - n % 2, actor=text, reason=text)
    log = root / "show" / "ep_001" / "scenes" / f"{B}.events.jsonl"
    lines = log.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) - 1 == 2 + len(REASONS)  # one event per line
    events = Projection("show", root=root).history(B)
    assert [e.reason for e in events[2:]] == REASONS
    assert [e.actor for e in events[2:]] == REASONS
    table = cli(root, "history", B)
    assert table.returncode == 0 and len(table.stdout.splitlines()) == 1 + len(events)
    assert verify("show", root).ok


def test_exec_arguments_are_never_a_shell(root: Path, tmp_path: Path) -> None:
    store = SceneVersionStore("show", 1, root=root)
    store.write_scene_candidate(B, scene(B, shots=1))
    store.write_scene_candidate(B, scene(B, shots=2))
    store.conform(B, 2, reason="$(touch PWNED_REASON); `touch PWNED_TICK` | touch PWNED_PIPE")
    out = tmp_path / "argv.json"
    handler = (
        "import json, os, sys; "
        "json.dump([sys.argv[1:], os.environ['SCENELOG_EVENT']], open(sys.argv[1], 'w'))"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "projections",
            "watch",
            "--start",
            "beginning",
            "--consumer",
            "x",
            "--type",
            "conformed",
            "--max-events",
            "1",
            "--poll",
            "--",  # the handler and its arguments (issue 13 item 4)
            sys.executable,
            "-c",
            handler,
            str(out),
            "; touch PWNED_ARG",
            "$(touch PWNED_SUB)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=child_env(SCENELOG_ROOT=str(root), SCENELOG_PROJECT="show"),
    )
    assert result.returncode == 0, result.stderr
    argv, event = json.loads(out.read_text())
    assert argv == [str(out), "; touch PWNED_ARG", "$(touch PWNED_SUB)"]
    assert json.loads(event)["reason"].startswith("$(touch PWNED_REASON)")
    assert not list(tmp_path.rglob("PWNED*"))


def test_a_log_naming_a_file_outside_its_batch_is_refused(root: Path) -> None:
    store = SceneVersionStore("show", 1, root=root)
    store.write_scene_candidate(B, scene(B, shots=1))
    store.write_scene_candidate(B, scene(B, shots=2))
    log = root / "show" / "ep_001" / "scenes" / f"{B}.events.jsonl"
    forged = log.read_bytes().replace(
        b'"artifact":"ep_001_BATCH_001.v002.json"', b'"artifact":"../../../../etc/passwd"'
    )
    log.write_bytes(forged)
    store.log.forget()  # type: ignore[attr-defined]
    with pytest.raises(Exception) as info:  # refused before anything outside is opened
        store.conform(B, 2)
    assert isinstance(info.value, ValueError)
    findings = verify("show", root).findings
    assert any(f.check == "rule" and "artifact" in f.what for f in findings)
    assert not any("/etc/" in f.path for f in findings)  # verify looked inside the batch only


def test_consumer_names_cannot_escape(root: Path) -> None:
    for name in ("../x", "a/b", ".hidden", ""):
        with pytest.raises(InvalidInput):
            watch("show", root=root, consumer=name)
