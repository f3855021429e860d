"""The `scenelog` command as a user runs it: real processes, exit codes, stdout/stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import call, child_env, scene, scenelog

B1 = "ep_001_BATCH_001"


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
    result = scenelog(root, "add", B1, "-", "--reason", "first", stdin=body)
    assert (result.returncode, result.stdout, result.stderr) == (0, "1\n", "")
    result = scenelog(root, "add", B1, "-", "--dedup", "--json", stdin=body)
    assert result.returncode == 0
    assert json.loads(result.stdout) == {
        "batch_id": B1,
        "version": 1,
        "deduplicated": True,
        "seq": 1,
    }


def test_add_errors(tmp_path: Path, batch: Path) -> None:
    assert_one_line_error(scenelog(batch, "add", B1, "-", stdin="{not json"), 2)
    assert_one_line_error(scenelog(batch, "add", B1, str(tmp_path / "missing.json")), 2)
    assert_one_line_error(scenelog(batch, "add", "ep_1_BATCH_1", "-", stdin="{}"), 2)
    other = scene("ep_001_BATCH_002").to_json().decode()
    assert_one_line_error(scenelog(batch, "add", B1, "-", stdin=other), 3)  # identity halt
    own = scene(B1).to_json().decode()
    assert_one_line_error(scenelog(batch, "add", B1, "-", "--kind", "retake", stdin=own), 2)


# ── conform / revert / derived ───────────────────────────────────────────────


def test_pointer_commands_print_summary(batch: Path) -> None:
    result = scenelog(batch, "conform", B1, "v2", "--reason", "approved")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{B1}: active v2 (approved, not_derived)")
    code, out, _ = call(batch, "derived", B1, "2", "--json")
    assert code == 0 and json.loads(out)["versions"][1]["downstream"] == "derived"
    code, out, _ = call(batch, "revert", B1, "1", "--expect-seq", "4")
    assert code == 0 and "active v1" in out
    code, out, err = call(batch, "derived", "ep_001_BATCH_050", "1", "--json")
    assert (code, out) == (0, "null\n") and err.startswith("nothing to do: ")


def test_pointer_command_errors(batch: Path) -> None:
    assert_one_line_error(scenelog(batch, "conform", B1, "9"), 3)  # unregistered
    assert_one_line_error(scenelog(batch, "conform", B1, "2", "--expect-seq", "7"), 3)
    assert_one_line_error(scenelog(batch, "revert", "ep_001_BATCH_050", "1"), 3)  # no log
    assert_one_line_error(scenelog(batch, "derived", B1, "2"), 3)  # not active: race guard
    assert_one_line_error(scenelog(batch, "conform", B1, "zero"), 2)
    assert_one_line_error(scenelog(batch, "revert", B1, "0"), 2)


def test_damaged_log_exits_4(batch: Path) -> None:
    log = batch / "show" / "ep_001" / "scenes" / f"{B1}.events.jsonl"
    lines = log.read_bytes().split(b"\n")
    log.write_bytes(b"garbage\n" + b"\n".join(lines[1:]))
    assert_one_line_error(scenelog(batch, "conform", B1, "2"), 4)
    assert_one_line_error(scenelog(batch, "history", B1), 4)


def test_unimported_manifest_exits_3(tmp_path: Path) -> None:
    scenes = tmp_path / "show" / "ep_001" / "scenes"
    scenes.mkdir(parents=True)
    (scenes / f"{B1}.versions.json").write_text('{"schema_version": 1, "versions": []}')
    result = scenelog(tmp_path, "add", B1, "-", stdin=scene(B1).to_json().decode())
    assert_one_line_error(result, 3)
    assert "scenelog import" in result.stderr


# ── reads ────────────────────────────────────────────────────────────────────


def test_show(batch: Path) -> None:
    result = scenelog(batch, "show", B1)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{B1}: active v1")
    assert "FINGERPRINT" in lines[1] and lines[2].startswith("*") and len(lines) == 4
    assert all(len(line) <= 100 for line in lines)
    code, out, _ = call(batch, "show", B1, "--json")
    data = json.loads(out)
    assert list(data) == [
        *("schema_version", "batch_id", "active_version", "seq", "versions"),
        *("fresh", "blocked_reason"),
    ]
    code, out, _ = call(batch, "show", B1, "--at-seq", "1", "--json")
    assert code == 0 and len(json.loads(out)["versions"]) == 1
    assert_one_line_error(scenelog(batch, "show", "ep_001_BATCH_077"), 2)
    assert_one_line_error(scenelog(batch, "show", B1, "--at", "yesterday"), 2)


def test_history(batch: Path) -> None:
    call(batch, "conform", B1, "2", "--reason", "multi\nline reason")
    result = scenelog(batch, "history", B1)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["SEQ", "TIME", "(UTC)", "ACTOR", "TYPE", "VER", "POINTER", "REASON"]
    assert "v1 → v2" in lines[3] and "multi line reason" in lines[3] and len(lines) == 4
    result = scenelog(batch, "history", B1, "--jsonl")
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert json.loads(scenelog(batch, "history", B1, "--json").stdout) == events
    assert [e["seq"] for e in events] == [1, 2, 3] and events[2]["reason"] == "multi\nline reason"
    assert_one_line_error(scenelog(batch, "history", "ep_001_BATCH_077"), 2)


def test_ls(batch: Path) -> None:
    result = scenelog(batch, "ls")
    assert result.returncode == 0 and B1 in result.stdout and "v2" in result.stdout
    code, out, _ = call(batch, "ls", "ep_001", "--candidates", "--json")
    assert code == 0
    assert json.loads(out)[0]["awaiting_review"] == [2]
    code, out, _ = call(batch, "ls", "--pending", "--json")
    assert code == 0
    assert json.loads(out) == []
    assert_one_line_error(scenelog(batch, "ls", "ep_1000"), 2)
    assert_one_line_error(scenelog(batch, "ls", "--pending", "--candidates"), 2)


def test_gate_exit_codes(batch: Path) -> None:
    result = scenelog(batch, "gate", B1)
    assert (result.returncode, result.stdout) == (0, f"{B1}: fresh (v1 active, boards rebuilt)\n")
    call(batch, "conform", B1, "2")
    result = scenelog(batch, "gate", B1)
    assert result.returncode == 1
    assert result.stdout == f"{B1}: blocked (v2 active, boards not rebuilt)\n"
    code, out, _ = call(batch, "gate", B1, "--json")
    assert code == 1 and json.loads(out)["fresh"] is False
    assert_one_line_error(scenelog(batch, "gate", "nope"), 2)


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
    assert_one_line_error(scenelog(tmp_path, "frobnicate"), 2)
    assert_one_line_error(scenelog(tmp_path), 2)


def test_global_options_after_the_subcommand(batch: Path, tmp_path: Path) -> None:
    code, out, _ = call(tmp_path / "elsewhere", "show", B1, "--root", str(batch), "--json")
    assert code == 0 and json.loads(out)["batch_id"] == B1
    code, _, _ = call(batch, "--actor", "sup.ana", "conform", B1, "2")
    code, out, _ = call(batch, "history", B1, "--json")
    assert json.loads(out)[-1]["actor"] == "sup.ana"


def test_debug_shows_traceback(batch: Path) -> None:
    result = scenelog(batch, "--debug", "conform", B1, "9")
    assert result.returncode == 3 and "Traceback" in result.stderr


# ── demo ─────────────────────────────────────────────────────────────────────


def test_demo_refuses_a_used_folder(tmp_path: Path) -> None:
    assert scenelog(tmp_path, "demo", str(tmp_path)).returncode == 0
    result = scenelog(tmp_path, "demo", str(tmp_path))
    assert result.returncode == 2 and "exists already" in result.stderr


def test_every_json_output_parses(tmp_path: Path) -> None:
    """On the demo's store, every read command's --json output is one JSON document.

    Empty output fails: a command that prints nothing has printed no JSON.
    """
    root = tmp_path / "d"
    demo = scenelog(root, "demo", str(root), SCENELOG_PROJECT="demo")
    assert demo.returncode == 0, demo.stderr
    watch = scenelog(
        root,
        *("watch", "--consumer", "j", "--start", "beginning", "--max-events", "3"),
        *("--poll", "--timeout", "20"),
        SCENELOG_PROJECT="demo",
    )
    assert watch.returncode == 0 and len(watch.stdout.splitlines()) == 3
    one_document = [
        ["show", "ep_001_BATCH_001", "--json"],
        ["show", "ep_001_BATCH_001", "--at-seq", "2", "--json"],
        ["ls", "--json"],
        ["ls", "--pending", "--json"],
        ["ls", "--candidates", "--json"],
        ["gate", "ep_001_BATCH_004", "--json"],
        ["diff", "ep_001_BATCH_001", "1", "3", "--json"],
        ["verify", "--json"],
        ["consumers", "--json"],
        ["history", "ep_001_BATCH_001", "--json"],
        ["audit", "--json"],
        ["heads", "--json"],
    ]
    for args in one_document:
        result = scenelog(root, *args, SCENELOG_PROJECT="demo")
        assert result.returncode in (0, 1), (args, result.stderr)
        assert len(result.stdout.splitlines()) == 1, (args, result.stdout)
        json.loads(result.stdout)
    for args in (
        ["history", "ep_001_BATCH_001", "--jsonl"],
        ["audit", "--jsonl"],
        ["heads", "--jsonl"],
    ):
        result = scenelog(root, *args, SCENELOG_PROJECT="demo")
        lines = result.stdout.splitlines()
        assert result.returncode == 0 and lines, (args, result.stderr)
        assert all(isinstance(json.loads(line), dict) for line in lines), args
    # Nothing to import on the demo's store: an empty array, and stderr says why.
    result = scenelog(root, "import", "--json", SCENELOG_PROJECT="demo")
    assert (result.returncode, result.stdout) == (0, "[]\n")
    assert "nothing to import" in result.stderr
    for line in watch.stdout.splitlines():
        assert json.loads(line)["project"] == "demo"


def test_consumers_with_a_corrupt_checkpoint_exits_4(tmp_path: Path) -> None:
    folder = tmp_path / "show" / ".scenelog" / "consumers"
    folder.mkdir(parents=True)
    (folder / "boards.json").write_text("{")
    result = scenelog(tmp_path, "consumers")
    assert_one_line_error(result, 4)
    assert "boards.json" in result.stderr


# ── the CLI as a table (issue 11 item 7) ─────────────────────────────────────


def test_item7_the_table_is_the_parser() -> None:
    """Each subcommand is one row of projections.cli.table, in help order; nothing else adds one."""
    from projections.cli import build_parser
    from projections.cli.table import SUBCOMMANDS

    names = [row.name for row in SUBCOMMANDS]
    assert len(names) == len(set(names)) >= 19 and {"path", "cat"} <= set(names)
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert list(sub.choices) == names  # type: ignore[arg-type]
    for row in SUBCOMMANDS:
        parser = sub.choices[row.name]  # type: ignore[index]
        assert parser.get_default("run_command") is row.handler
        assert parser.epilog == f"Example:\n  {row.example}"


def test_item7_one_function_maps_exceptions_to_exit_codes() -> None:
    from eventstore import DamagedLog, LockTimeout, SeqMismatch, UnknownBatch
    from projections.cli.errors import UsageError, outcome

    cases: list[tuple[BaseException, int]] = [
        (UsageError("bad\nflag"), 2),
        (UnknownBatch("no such batch"), 2),
        (NotADirectoryError(20, "Not a directory", "/x/file"), 2),
        (SeqMismatch("moved", expected=1, actual=2), 3),
        (LockTimeout("busy", timeout=1.0), 3),
        (DamagedLog("bad line", line=2), 4),
        (RuntimeError("surprise"), 4),
        (KeyboardInterrupt(), 130),
        (BrokenPipeError(), 0),
    ]
    for error, code in cases:
        result = outcome(error)
        assert result.code == code, error
        if code:
            assert result.line is not None and "\n" not in result.line, error
            assert result.line.startswith("scenelog: "), error
    assert outcome(BrokenPipeError()).line is None
    assert "rerun with --debug" in (outcome(RuntimeError("surprise")).line or "")
    assert outcome(UsageError("x")).line == "scenelog: error: x"
