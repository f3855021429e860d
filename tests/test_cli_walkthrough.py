"""A newcomer's walkthrough of the CLI (issue 13 items 7-11), run as a user runs it.

Every check starts ``scenelog`` as a real process (``tests.helpers.scenelog``)
and reads its exit code, stdout and stderr; the few in-process calls are for
the ``memory://`` backend, which lives in one process only.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta
from importlib.metadata import version as installed_version
from pathlib import Path

import pytest

from eventstore import SceneVersionStore
from tests.helpers import DEADLINE, REPO, call, child_env, scene, scenelog
from tests.test_import import reference_store

B1, B3, B4 = "ep_001_BATCH_001", "ep_001_BATCH_003", "ep_001_BATCH_004"
CLI_DOC = REPO / "docs" / "CLI.md"


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scenelog: error: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's store (project ``demo``), built once; tests that write copy it."""
    root = tmp_path_factory.mktemp("walkthrough") / "store"
    result = scenelog(root, "demo", str(root), SCENELOG_PROJECT="demo")
    assert result.returncode == 0, result.stderr
    return root


@pytest.fixture
def copy(demo: Path, tmp_path: Path) -> Path:
    root = tmp_path / "copy"
    shutil.copytree(demo, root)
    return root


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return scenelog(root, *args, SCENELOG_PROJECT="demo")


# ── item 7: one JSON convention, the table in docs/CLI.md ────────────────────


def _doc_table() -> dict[str, tuple[str, str, list[str]]]:
    """docs/CLI.md's table: command → (--json shape, --jsonl shape, keys)."""
    rows = re.findall(
        r"^\| `scenelog ([\w-]+)` \| (.+?) \| (.+?) \| (.+?) \|$",
        CLI_DOC.read_text(),
        flags=re.M,
    )
    assert rows, "docs/CLI.md has no command table"
    return {
        name: (shape, lines, [k.strip() for k in keys.split(",")])
        for name, shape, lines, keys in rows
    }


def _check(name: str, shape: str, out: str, keys: list[str]) -> None:
    """``out`` has the documented shape, and each object has every documented key."""
    if shape == "object":
        assert len(out.splitlines()) == 1, (name, out)
        items = [json.loads(out)]
    elif shape == "array":
        assert len(out.splitlines()) == 1, (name, out)
        items = json.loads(out)
        assert isinstance(items, list) and items, (name, out)  # the walk gives each a row
    else:
        assert shape.startswith("lines"), (name, shape)
        items = [json.loads(line) for line in out.splitlines()]
        assert items, (name, out)
    for item in items:
        assert isinstance(item, dict), (name, item)
        assert set(keys) <= set(item), (name, sorted(set(keys) - set(item)))


def test_item7_every_command_prints_the_json_docs_cli_md_documents(
    copy: Path, tmp_path: Path
) -> None:
    table = _doc_table()
    from projections.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    with_json = {
        name
        for name, parser in sub.choices.items()  # type: ignore[union-attr]
        if any(o in ("--json", "--jsonl") for a in parser._actions for o in a.option_strings)
    }
    assert with_json <= set(table), sorted(with_json - set(table))  # every --json is documented
    body = tmp_path / "s.json"
    body.write_bytes(scene(B3, shots=5).to_json())
    reference_store(copy / "demo" / "ep_002" / "scenes", "ep_002_BATCH_001")
    runs: list[tuple[str, list[str]]] = [
        ("import", ["import"]),
        ("add", ["add", B3, str(body)]),
        ("conform", ["conform", B3, "2"]),
        ("revert", ["revert", B3, "1"]),
        ("derived", ["derived", B3, "1"]),
        ("show", ["show", B1]),
        ("history", ["history", B1]),
        ("ls", ["ls"]),
        ("gate", ["gate", B1]),
        ("path", ["path", B1]),
        ("diff", ["diff", B1, "1", "2"]),
        ("audit", ["audit"]),
        ("verify", ["verify"]),
        ("heads", ["heads"]),
        ("view-policy", ["view-policy"]),
        ("copy", ["copy", str(copy), str(tmp_path / "copied")]),
        ("materialize", ["materialize", str(tmp_path / "files"), "--once"]),
    ]
    checked = set()
    for name, args in runs:
        shape, lines, keys = table[name]
        if shape != "-":
            result = run(copy, *args, "--json")
            assert result.returncode == 0, (args, result.stderr)
            _check(name, shape, result.stdout, keys)
        if lines != "-":
            result = run(copy, *args, "--jsonl")
            assert result.returncode == 0, (args, result.stderr)
            _check(name, lines, result.stdout, keys)
        checked.add(name)
    watch = run(
        copy,
        *("watch", "--consumer", "w", "--start", "beginning", "--max-events", "3"),
        *("--poll", "--timeout", "20"),
    )
    assert watch.returncode == 0, watch.stderr
    _check("watch", table["watch"][1], watch.stdout, table["watch"][2])
    consumers = run(copy, "consumers", "--json")
    assert consumers.returncode == 0, consumers.stderr
    _check("consumers", table["consumers"][0], consumers.stdout, table["consumers"][2])
    assert checked | {"watch", "consumers"} == set(table)


def test_item7_show_json_has_fresh_the_gate_reason_and_each_body_path(
    copy: Path,
) -> None:
    assert run(copy, "conform", B3, "1").returncode == 0  # already approved: stays fresh
    blocked = json.loads(run(copy, "show", B4, "--json").stdout)
    assert blocked["fresh"] is False
    gate = json.loads(run(copy, "gate", B4, "--json").stdout)
    assert f"blocked ({blocked['blocked_reason']})" == gate["why"]
    fresh = json.loads(run(copy, "show", B1, "--json").stdout)
    assert fresh["fresh"] is True and fresh["blocked_reason"] is None
    for entry in fresh["versions"]:
        version = str(entry["version"])
        stored = run(copy, "cat", B1, version)
        assert stored.returncode == 0, stored.stderr
        assert Path(entry["body_path"]).read_text() == stored.stdout


@pytest.mark.parametrize("backend_root", ["memory"], indirect=True)
def test_item7_show_json_body_path_is_null_on_a_backend_without_files(
    backend_root: str,
) -> None:
    """memory:// lives in this process, so the command runs here (``call``)."""
    SceneVersionStore("show", 1, root=backend_root).write_scene_candidate(B1, scene(B1))
    code, out, err = call(backend_root, "show", B1, "--json")
    assert code == 0, err
    assert [e["body_path"] for e in json.loads(out)["versions"]] == [None]


# ── item 8: path and cat ─────────────────────────────────────────────────────


def test_item8_path_prints_the_body_file_of_the_active_or_given_version(demo: Path) -> None:
    active = run(demo, "path", B1)
    assert active.returncode == 0 and active.stderr == "", active.stderr
    (line,) = active.stdout.splitlines()
    assert Path(line).is_file() and line.endswith(f"{B1}.v002.json")  # the demo reverts to v2
    given = run(demo, "path", B1, "v3").stdout.strip()
    assert Path(given).name == f"{B1}.v003.json" and Path(given).is_file()
    assert Path(given).read_bytes() != Path(line).read_bytes()
    one_line_error(run(demo, "path", B1, "9"), 3)  # never registered
    one_line_error(run(demo, "path", "ep_001_BATCH_077"), 2)


def test_item8_path_on_a_backend_without_files_says_so_and_names_cat() -> None:
    line = one_line_error(scenelog("memory://walkthrough", "path", B1), 2)
    assert "without files" in line and f"scenelog cat {B1}" in line


@pytest.mark.parametrize("backend_root", ["file", "memory"], indirect=True)
def test_item8_cat_prints_the_body_on_every_backend(backend_root: str) -> None:
    store = SceneVersionStore("show", 1, root=backend_root)
    store.write_scene_candidate(B1, scene(B1, shots=2))
    store.write_scene_candidate(B1, scene(B1, shots=4))
    code, out, err = call(backend_root, "cat", B1)
    assert code == 0, err
    assert len(json.loads(out)["beats"]) == 2  # v1 is still the active one
    code, out, err = call(backend_root, "cat", B1, "2")
    assert code == 0 and len(json.loads(out)["beats"]) == 4, err
    if "://" not in backend_root:
        result = scenelog(backend_root, "cat", B1, "2")
        assert result.returncode == 0 and json.loads(result.stdout) == json.loads(out)


# ── item 9: audit ────────────────────────────────────────────────────────────


def test_item9_audit_has_an_imported_column_and_no_imported_leaves_it_out(
    tmp_path: Path,
) -> None:
    root = tmp_path / "store"
    reference_store(root / "show" / "ep_001" / "scenes", B3)
    assert scenelog(root, "import").returncode == 0
    body = tmp_path / "s.json"
    body.write_bytes(scene(B1).to_json())
    assert scenelog(root, "add", B1, str(body)).returncode == 0
    body.write_bytes(scene(B1, shots=5).to_json())
    assert scenelog(root, "add", B1, str(body)).returncode == 0
    assert scenelog(root, "conform", B1, "2", "--reason", "today").returncode == 0
    types = ("--type", "appended,conformed,reverted,derived")
    rows = json.loads(scenelog(root, "audit", *types, "--json").stdout)
    imported = {r["batch_id"] for r in rows if r["imported"]}
    live = {r["batch_id"] for r in rows if not r["imported"]}
    assert (imported, live) == ({B3}, {B1})
    table = list(csv.DictReader(io.StringIO(scenelog(root, "audit", *types, "--csv").stdout)))
    assert {r["imported"] for r in table if r["batch_id"] == B3} == {"True"}
    assert {r["imported"] for r in table if r["batch_id"] == B1} == {"False"}
    only_live = json.loads(scenelog(root, "audit", *types, "--no-imported", "--json").stdout)
    assert only_live and {r["batch_id"] for r in only_live} == {B1}
    text = scenelog(root, "audit", "--no-imported")
    assert B3 not in text.stdout and "today" in text.stdout


def test_item9_a_damaged_batch_is_reported_and_the_audit_goes_on_exit_4(
    tmp_path: Path,
) -> None:
    root = tmp_path / "store"
    body = tmp_path / "s.json"
    for batch in (B1, B3, B4):
        for shots in (2, 3):
            body.write_bytes(scene(batch, shots=shots).to_json())
            assert scenelog(root, "add", batch, str(body)).returncode == 0
        assert scenelog(root, "conform", batch, "2", "--reason", f"ok {batch}").returncode == 0
    log = root / "show" / "ep_001" / "scenes" / f"{B3}.events.jsonl"
    lines = log.read_bytes().split(b"\n")
    log.write_bytes(b"\n".join([lines[0], b"garbage", *lines[2:]]))
    for args in (["--json"], ["--csv"], []):
        result = scenelog(root, "audit", *args)
        assert result.returncode == 4, (args, result.stderr)
        assert f"ok {B1}" in result.stdout and f"ok {B4}" in result.stdout, args
        assert f"ok {B3}" not in result.stdout
        named = [ln for ln in result.stderr.splitlines() if B3 in ln]
        assert named and all(ln.startswith("scenelog: error: ") for ln in named), result.stderr
        assert "Traceback" not in result.stderr
    assert len(json.loads(scenelog(root, "audit", "--json").stdout)) == 2


# ── item 10: times ───────────────────────────────────────────────────────────


def test_item10_a_date_means_00_00_utc_everywhere_a_time_is_taken(demo: Path) -> None:
    first = json.loads(run(demo, "history", B1, "--json").stdout)[0]["at"]
    day = first[:10]
    tomorrow = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    since_day = json.loads(run(demo, "audit", "--since", day, "--json").stdout)
    assert len(since_day) == 4  # the demo's three conforms and one revert, all that day
    assert json.loads(run(demo, "audit", "--since", tomorrow, "--json").stdout) == []
    assert json.loads(run(demo, "audit", "--until", day, "--json").stdout) == []
    now = run(demo, "show", B1, "--json").stdout
    then = run(demo, "show", B1, "--at", tomorrow, "--json")
    assert then.returncode == 0 and json.loads(then.stdout)["seq"] == json.loads(now)["seq"]
    gate = run(demo, "gate", B1, "--at", tomorrow)
    assert (gate.returncode, gate.stdout) == (0, run(demo, "gate", B1).stdout)
    listed = run(demo, "ls", "--at", tomorrow, "--json")
    assert listed.returncode == 0
    assert json.loads(listed.stdout) == json.loads(run(demo, "ls", "--json").stdout)
    assert json.loads(run(demo, "ls", "--pending", "--at", tomorrow, "--json").stdout)


@pytest.mark.parametrize(
    "args",
    [
        ["audit", "--since", "yesterday"],
        ["audit", "--until", "2026-11-26T12:00"],  # no zone
        ["show", B1, "--at", "27/11/2026"],
        ["gate", B1, "--at", "noon"],
        ["ls", "--at", "2026-13-40"],
    ],
)
def test_item10_a_bad_time_is_one_line_with_an_accepted_example(
    demo: Path, args: list[str]
) -> None:
    line = one_line_error(run(demo, *args), 2)
    assert "2026-11-26T12:00:00Z" in line and "2026-11-26 (a date: 00:00 UTC)" in line


def test_item10_show_and_gate_before_the_batch_existed_say_so_not_blocked(demo: Path) -> None:
    for args in (["show", B1, "--at", "2001-01-01"], ["show", B1, "--at-seq", "0"]):
        result = run(demo, *args)
        assert result.returncode == 1 and result.stdout == "", (args, result.stdout)
        assert f"{B1} did not exist yet at " in result.stderr, result.stderr
        assert "blocked" not in result.stderr
    gate = run(demo, "gate", B1, "--at", "2001-01-01T00:00:00Z")
    assert gate.returncode == 1 and "blocked" not in gate.stdout
    assert gate.stdout.startswith(f"{B1}: did not exist yet at 2001-01-01T00:00:00Z")
    data = json.loads(run(demo, "gate", B1, "--at", "2001-01-01", "--json").stdout)
    assert data["fresh"] is False and data["why"].startswith("did not exist yet")
    empty = run(demo, "ls", "--at", "2001-01-01")
    assert (empty.returncode, empty.stdout) == (0, "") and "no batches" in empty.stderr


# ── item 11: small things that cost trust ────────────────────────────────────


def test_item11_a_no_op_pointer_command_says_nothing_to_do_and_the_reason_was_not_recorded(
    copy: Path,
) -> None:
    log = copy / "demo" / "ep_001" / "scenes" / f"{B1}.events.jsonl"
    before = log.read_bytes()
    for args in (
        ["conform", B1, "2", "--reason", "again"],  # v2 is active and approved
        ["revert", B1, "2", "--reason", "again"],  # v2 is active
        ["derived", B1, "2", "--reason", "again"],  # v2's boards are built
    ):
        result = run(copy, *args)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"{B1}: active v2"), result.stdout
        (line,) = result.stderr.splitlines()
        assert line.startswith("nothing to do: ") and "--reason was not recorded" in line, line
    quiet = run(copy, "revert", B1, "2")
    assert quiet.stderr.startswith("nothing to do: ") and "--reason" not in quiet.stderr
    assert log.read_bytes() == before
    moved = run(copy, "revert", B1, "1", "--reason", "back")  # a real move says nothing extra
    assert moved.returncode == 0 and moved.stderr == ""
    assert log.read_bytes() != before


def _in_a_terminal(root: Path, *args: str) -> str:
    """stdout of ``scenelog ARGS`` when stdout is a terminal (a pseudo-terminal)."""
    primary, secondary = pty.openpty()
    env = child_env(SCENELOG_ROOT=str(root), SCENELOG_PROJECT="demo", COLUMNS="200")
    process = subprocess.Popen(
        [sys.executable, "-m", "projections", *args],
        stdout=secondary,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=REPO,
    )
    os.close(secondary)
    chunks = []
    deadline = time.monotonic() + DEADLINE
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], deadline - time.monotonic())
            if not ready:
                break
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=DEADLINE) == 0
    finally:
        process.kill() if process.poll() is None else None
        os.close(primary)
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_item11_the_reason_is_never_cut_off_a_terminal_and_wide_keeps_it_on_one(
    copy: Path,
) -> None:
    reason = "continuity: " + " ".join(f"shot{i:03d}" for i in range(20)) + " END"
    assert run(copy, "revert", B1, "1", "--reason", reason).returncode == 0
    for args in (["history", B1], ["audit"]):
        piped = run(copy, *args)
        assert piped.returncode == 0 and reason in piped.stdout, args
        shown = _in_a_terminal(copy, *args)
        assert reason not in shown and "…" in shown, args  # cut for a person at a terminal
        assert reason in _in_a_terminal(copy, *args, "--wide"), args


def test_item11_ls_candidates_with_no_results_says_no_candidates(copy: Path) -> None:
    result = run(copy, "ls", "--candidates")
    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr.startswith("no candidates"), result.stderr
    assert json.loads(run(copy, "ls", "--candidates", "--json").stdout) == []
    pending = run(copy, "ls", "--pending")
    assert pending.returncode == 0 and B4 in pending.stdout  # the demo leaves one blocked


def test_item11_verify_repair_views_exits_0_when_it_repaired_everything(copy: Path) -> None:
    scenes = copy / "demo" / "ep_001" / "scenes"
    (scenes / f"{B1}.versions.json").unlink()
    (scenes / f"{B3}.versions.json").write_text('{"not": "a manifest"}')
    assert run(copy, "verify").returncode == 1
    repaired = run(copy, "verify", "--repair-views")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "2 finding(s), all repaired" in repaired.stderr
    clean = run(copy, "verify")
    assert clean.returncode == 0 and "clean" in clean.stderr


def test_item11_version(tmp_path: Path) -> None:
    result = scenelog(tmp_path, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"scenelog {installed_version('scenelog')}\n"


def test_item11_the_episode_is_given_the_same_way_in_ls_audit_and_watch(demo: Path) -> None:
    for command in ("ls", "audit"):
        positional = run(demo, command, "ep_001", "--json")
        option = run(demo, command, "--episode", "ep_001", "--json")
        assert positional.returncode == option.returncode == 0, option.stderr
        assert json.loads(positional.stdout) and positional.stdout == option.stdout
        assert json.loads(run(demo, command, "--episode", "1", "--json").stdout) == json.loads(
            option.stdout
        )
        one_line_error(run(demo, command, "ep_001", "--episode", "ep_002"), 2)
    watch = run(
        demo,
        "watch",
        "--episode",
        "ep_001",
        "--start",
        "beginning",
        "--max-events",
        "1",
        *("--poll", "--timeout", "20"),
    )
    assert watch.returncode == 0 and json.loads(watch.stdout)["episode"] == "ep_001"


def test_item11_the_demos_export_lines_work_as_printed(tmp_path: Path) -> None:
    """Pasted into a shell whose PATH has no scenelog, the printed lines run."""
    bare = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    root = tmp_path / "the demo"  # a space: the lines must quote it
    demo = subprocess.run(
        [sys.executable, "-m", "projections", "demo", str(root)],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        env={**bare, "PYTHONPATH": str(REPO)},
        cwd=tmp_path,
    )
    assert demo.returncode == 0, demo.stderr
    printed = demo.stdout.split("Explore it", 1)[1].splitlines()[1:]
    lines = [line.strip() for line in printed if line.strip()]
    assert lines[0].startswith("export PATH=") and any("SCENELOG_ROOT=" in ln for ln in lines)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shell = subprocess.run(
        ["bash", "-e", "-c", "\n".join(lines)],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        env=bare,
        cwd=elsewhere,
    )
    assert shell.returncode == 0, (lines, shell.stderr)
    assert f"{B1}: active v2" in shell.stdout and str(root) in shell.stdout
    assert shutil.which("scenelog", path=bare["PATH"]) is None  # it was the export that did it
