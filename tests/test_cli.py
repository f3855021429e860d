"""The `scenelog` command as a user runs it: real processes, exit codes, stdout/stderr."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from projections.cli import cli
from tests.helpers import child_env, scene

B1 = "ep_001_BATCH_001"


def run(root: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``scenelog ARGS`` in a real process, with the store in ``root``."""
    env = child_env(SCENELOG_ROOT=str(root), SCENELOG_PROJECT="show", SCENELOG_ACTOR="cli@test")
    return subprocess.run(
        [sys.executable, "-m", "projections", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def call(root: Path, *args: str) -> tuple[int, str, str]:
    """``scenelog ARGS`` in this process (fast, for the many happy-path checks)."""
    out, err = io.StringIO(), io.StringIO()
    old = dict(os.environ)
    os.environ.update(SCENELOG_ROOT=str(root), SCENELOG_PROJECT="show", SCENELOG_ACTOR="cli@test")
    try:
        code = cli(*args, out=out, err=err)
    finally:
        os.environ.clear()
        os.environ.update(old)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def batch(tmp_path: Path) -> Path:
    """A store with B1 at v1 (active, derived) and v2 (candidate)."""
    root = tmp_path / "store"
    for shots in (2, 3):
        path = tmp_path / f"s{shots}.json"
        path.write_bytes(scene(B1, shots=shots).to_json())
        assert call(root, "add", B1, str(path))[0] == 0
    return root


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scenelog: error: "), result.stderr
    assert "Traceback" not in result.stderr


# ── add ──────────────────────────────────────────────────────────────────────


def test_add_prints_version_and_json(tmp_path: Path) -> None:
    root = tmp_path / "store"
    body = scene(B1, shots=2).to_json().decode()
    result = run(root, "add", B1, "-", "--reason", "first", stdin=body)
    assert (result.returncode, result.stdout, result.stderr) == (0, "1\n", "")
    result = run(root, "add", B1, "-", "--dedup", "--json", stdin=body)
    assert result.returncode == 0
    assert json.loads(result.stdout) == {
        "batch_id": B1,
        "version": 1,
        "deduplicated": True,
        "seq": 1,
    }


def test_add_errors(tmp_path: Path, batch: Path) -> None:
    assert_one_line_error(run(batch, "add", B1, "-", stdin="{not json"), 2)
    assert_one_line_error(run(batch, "add", B1, str(tmp_path / "missing.json")), 2)
    assert_one_line_error(run(batch, "add", "ep_1_BATCH_1", "-", stdin="{}"), 2)
    other = scene("ep_001_BATCH_002").to_json().decode()
    assert_one_line_error(run(batch, "add", B1, "-", stdin=other), 3)  # identity halt
    own = scene(B1).to_json().decode()
    assert_one_line_error(run(batch, "add", B1, "-", "--kind", "retake", stdin=own), 2)


# ── conform / revert / derived ───────────────────────────────────────────────


def test_pointer_commands_print_summary(batch: Path) -> None:
    result = run(batch, "conform", B1, "v2", "--reason", "approved")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{B1}: active v2 (approved, not_derived)")
    code, out, _ = call(batch, "derived", B1, "2", "--json")
    assert code == 0 and json.loads(out)["versions"][1]["downstream"] == "derived"
    code, out, _ = call(batch, "revert", B1, "1", "--expect-seq", "4")
    assert code == 0 and "active v1" in out
    code, out, _ = call(batch, "derived", "ep_001_BATCH_050", "1", "--json")
    assert (code, out) == (0, "null\n")


def test_pointer_command_errors(batch: Path) -> None:
    assert_one_line_error(run(batch, "conform", B1, "9"), 3)  # unregistered
    assert_one_line_error(run(batch, "conform", B1, "2", "--expect-seq", "7"), 3)
    assert_one_line_error(run(batch, "revert", "ep_001_BATCH_050", "1"), 3)  # no log
    assert_one_line_error(run(batch, "derived", B1, "2"), 3)  # not active: race guard
    assert_one_line_error(run(batch, "conform", B1, "zero"), 2)
    assert_one_line_error(run(batch, "revert", B1, "0"), 2)


def test_damaged_log_exits_4(batch: Path) -> None:
    log = batch / "show" / "ep_001" / "scenes" / f"{B1}.events.jsonl"
    lines = log.read_bytes().split(b"\n")
    log.write_bytes(b"garbage\n" + b"\n".join(lines[1:]))
    assert_one_line_error(run(batch, "conform", B1, "2"), 4)
    assert_one_line_error(run(batch, "history", B1), 4)


def test_unimported_manifest_exits_3(tmp_path: Path) -> None:
    scenes = tmp_path / "show" / "ep_001" / "scenes"
    scenes.mkdir(parents=True)
    (scenes / f"{B1}.versions.json").write_text('{"schema_version": 1, "versions": []}')
    result = run(tmp_path, "add", B1, "-", stdin=scene(B1).to_json().decode())
    assert_one_line_error(result, 3)
    assert "scenelog import" in result.stderr


# ── reads ────────────────────────────────────────────────────────────────────


def test_show(batch: Path) -> None:
    result = run(batch, "show", B1)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{B1}: active v1")
    assert "FINGERPRINT" in lines[1] and lines[2].startswith("*") and len(lines) == 4
    assert all(len(line) <= 100 for line in lines)
    code, out, _ = call(batch, "show", B1, "--json")
    data = json.loads(out)
    assert list(data) == ["schema_version", "batch_id", "active_version", "seq", "versions"]
    code, out, _ = call(batch, "show", B1, "--at-seq", "1", "--json")
    assert code == 0 and len(json.loads(out)["versions"]) == 1
    assert_one_line_error(run(batch, "show", "ep_001_BATCH_077"), 2)
    assert_one_line_error(run(batch, "show", B1, "--at", "yesterday"), 2)


def test_history(batch: Path) -> None:
    call(batch, "conform", B1, "2", "--reason", "multi\nline reason")
    result = run(batch, "history", B1)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["SEQ", "TIME", "(UTC)", "ACTOR", "TYPE", "VER", "POINTER", "REASON"]
    assert "v1 → v2" in lines[3] and "multi line reason" in lines[3] and len(lines) == 4
    result = run(batch, "history", B1, "--json")
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["seq"] for e in events] == [1, 2, 3] and events[2]["reason"] == "multi\nline reason"
    assert_one_line_error(run(batch, "history", "ep_001_BATCH_077"), 2)


def test_ls(batch: Path) -> None:
    result = run(batch, "ls")
    assert result.returncode == 0 and B1 in result.stdout and "v2" in result.stdout
    code, out, _ = call(batch, "ls", "ep_001", "--candidates", "--json")
    assert code == 0
    assert json.loads(out)[0]["awaiting_review"] == [2]
    code, out, _ = call(batch, "ls", "--pending", "--json")
    assert code == 0
    assert json.loads(out) == []
    assert_one_line_error(run(batch, "ls", "ep_1000"), 2)
    assert_one_line_error(run(batch, "ls", "--pending", "--candidates"), 2)


def test_gate_exit_codes(batch: Path) -> None:
    result = run(batch, "gate", B1)
    assert (result.returncode, result.stdout) == (0, f"{B1}: fresh (v1 active, boards rebuilt)\n")
    call(batch, "conform", B1, "2")
    result = run(batch, "gate", B1)
    assert result.returncode == 1
    assert result.stdout == f"{B1}: blocked (v2 active, boards not rebuilt)\n"
    code, out, _ = call(batch, "gate", B1, "--json")
    assert code == 1 and json.loads(out)["fresh"] is False
    assert_one_line_error(run(batch, "gate", "nope"), 2)


def test_missing_project_and_usage_errors(tmp_path: Path) -> None:
    env = child_env()
    env.pop("SCENELOG_PROJECT", None)
    result = subprocess.run(
        [sys.executable, "-m", "projections", "--root", str(tmp_path), "ls"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert_one_line_error(result, 2)
    assert "--project" in result.stderr
    assert_one_line_error(run(tmp_path, "frobnicate"), 2)
    assert_one_line_error(run(tmp_path), 2)


def test_global_options_after_the_subcommand(batch: Path, tmp_path: Path) -> None:
    code, out, _ = call(tmp_path / "elsewhere", "show", B1, "--root", str(batch), "--json")
    assert code == 0 and json.loads(out)["batch_id"] == B1
    code, _, _ = call(batch, "--actor", "sup.ana", "conform", B1, "2")
    code, out, _ = call(batch, "history", B1, "--json")
    assert json.loads(out.splitlines()[-1])["actor"] == "sup.ana"


def test_debug_shows_traceback(batch: Path) -> None:
    result = run(batch, "--debug", "conform", B1, "9")
    assert result.returncode == 3 and "Traceback" in result.stderr


# ── demo ─────────────────────────────────────────────────────────────────────


def test_demo_refuses_a_used_folder(tmp_path: Path) -> None:
    assert run(tmp_path, "demo", str(tmp_path)).returncode == 0
    result = run(tmp_path, "demo", str(tmp_path))
    assert result.returncode == 2 and "exists already" in result.stderr


def test_every_json_output_parses(tmp_path: Path) -> None:
    """On the demo's store, every read command's --json output is JSON (or JSON lines)."""
    root = tmp_path / "d"
    env = child_env(SCENELOG_ROOT=str(root), SCENELOG_PROJECT="demo")
    demo = subprocess.run(
        [sys.executable, "-m", "projections", "demo", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert demo.returncode == 0, demo.stderr
    watch = subprocess.run(
        [
            sys.executable,
            "-m",
            "projections",
            "watch",
            "--consumer",
            "j",
            "--start",
            "beginning",
            "--max-events",
            "3",
            "--poll",
            "--timeout",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert watch.returncode == 0 and len(watch.stdout.splitlines()) == 3
    commands = [
        ["show", "ep_001_BATCH_001", "--json"],
        ["show", "ep_001_BATCH_001", "--at-seq", "2", "--json"],
        ["ls", "--json"],
        ["ls", "--pending", "--json"],
        ["ls", "--candidates", "--json"],
        ["gate", "ep_001_BATCH_004", "--json"],
        ["diff", "ep_001_BATCH_001", "1", "3", "--json"],
        ["verify", "--json"],
        ["consumers", "--json"],
        ["import", "--json"],
    ]
    for args in commands:
        result = subprocess.run(
            [sys.executable, "-m", "projections", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert result.returncode in (0, 1), (args, result.stderr)
        json.loads(result.stdout or "null")
    for args in (["history", "ep_001_BATCH_001", "--json"], ["audit", "--json"]):
        result = subprocess.run(
            [sys.executable, "-m", "projections", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert result.returncode == 0 and [json.loads(line) for line in result.stdout.splitlines()]
    for line in watch.stdout.splitlines():
        assert json.loads(line)["project"] == "demo"


def test_consumers_with_a_corrupt_checkpoint_exits_4(tmp_path: Path) -> None:
    folder = tmp_path / "show" / ".scenelog" / "consumers"
    folder.mkdir(parents=True)
    (folder / "boards.json").write_text("{")
    result = run(tmp_path, "consumers")
    assert_one_line_error(result, 4)
    assert "boards.json" in result.stderr
