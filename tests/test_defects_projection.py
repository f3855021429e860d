"""Issue 10, read side and CLI: the defects of items 5 (CLI), 6, 9 (read side) and 22.

Each test runs ``scenelog`` as a user does (a real process, exit code, one
line on stderr) or calls the Projection the way a pipeline tool does; those
not about files run on every backend a real process shares (file, PostgreSQL).
"""

from __future__ import annotations

import io
import itertools
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventstore import InvalidInput, SceneVersionStore, UnknownBatch
from eventstore import store as store_module
from projections import Projection, parse_time
from projections.cli import cli
from tests.conftest import on_files_only, on_shared_backends, stored
from tests.helpers import child_env, scene, scenelog

B1 = "ep_001_BATCH_001"


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The single ``scenelog: error:`` line of a failed run (asserting the exit code)."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scenelog: error: "), result.stderr
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr
    return lines[0]


def scenelog_in(
    monkeypatch: pytest.MonkeyPatch, root: str | Path, *args: str, stdin: str = "", **env: str
) -> tuple[int, str]:
    """``scenelog ARGS`` in this process (for the many variants); (exit code, stderr).

    Asserts what a user sees on failure: one ``scenelog: error:`` line, no traceback.
    """
    monkeypatch.setenv("SCENELOG_ROOT", str(root))
    monkeypatch.setenv("SCENELOG_PROJECT", "show")
    monkeypatch.setenv("SCENELOG_ACTOR", "cli@test")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
    out, err = io.StringIO(), io.StringIO()
    code = cli(*args, out=out, err=err)
    if code not in (0, 1):
        lines = err.getvalue().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("scenelog: error: "), err.getvalue()
        assert "unexpected" not in lines[0], lines[0]
    return code, err.getvalue()


@pytest.fixture
def three(backend_root: str) -> str:
    """B1 with v1 (active, derived), v2 and v3 (candidates): seq 3."""
    store = SceneVersionStore("show", 1, root=backend_root)
    for shots in (2, 3, 4):
        store.write_scene_candidate(B1, scene(B1, shots=shots))
    return backend_root


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The store's clock reads the given stamps in order, one per event."""
    stamps: list[str] = []
    ticks = itertools.count()
    monkeypatch.setattr(store_module, "utc_now", lambda: stamps[next(ticks)])
    yield stamps


# ── item 6: R16, an unknown batch is never fresh ─────────────────────────────


@on_shared_backends
def test_r16_gate_of_an_unknown_batch_project_or_root_exits_2(
    three: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert scenelog(three, "gate", B1).returncode == 0  # known and fresh: exit 0
    line = one_line_error(scenelog(three, "gate", "ep_001_BATCH_077"), 2)
    assert "ep_001_BATCH_077" in line
    unmounted = tmp_path / "mnt" / "store"
    assert "not mounted" in one_line_error(scenelog(unmounted, "gate", B1), 2)
    assert not unmounted.exists()
    for args in (
        ["gate", B1, "--project", "shwo"],
        ["gate", "ep_002_BATCH_001"],
        ["gate", "ep_001_BATCH_077", "--json"],
    ):
        assert scenelog_in(monkeypatch, three, *args)[0] == 2, args


@on_files_only  # a legacy flat body is a file
def test_r16_unknown_batch_raises_and_a_legacy_flat_batch_stays_fresh(three: str) -> None:
    view = Projection("show", root=three)
    for reader in (view.is_fresh, view.manifest):
        with pytest.raises(UnknownBatch) as info:
            reader("ep_001_BATCH_077")
        assert isinstance(info.value, ValueError)
        assert info.value.facts["batch_id"] == "ep_001_BATCH_077"
    for wrong in (Projection("shwo", root=three), Projection("show", root=Path(three) / "nope")):
        with pytest.raises(UnknownBatch):
            wrong.is_fresh(B1)
    flat = Path(three) / "show" / "ep_001" / "scenes" / "ep_001_BATCH_005.json"
    flat.write_bytes(scene("ep_001_BATCH_005").to_json())
    assert view.manifest("ep_001_BATCH_005") is None  # DESIGN §5: None for "no log"
    assert view.is_fresh("ep_001_BATCH_005")  # legacy flat batch: fresh (reference)
    result = scenelog(three, "gate", "ep_001_BATCH_005")
    assert result.returncode == 0 and "flat batch" in result.stdout


@on_files_only  # an empty project is a folder
def test_r16_ls_on_a_missing_project_or_root_exits_2(
    three: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "shwo" in one_line_error(scenelog(three, "ls", "--project", "shwo"), 2)
    assert "mounted" in one_line_error(scenelog(tmp_path / "absent", "ls"), 2)
    assert scenelog_in(monkeypatch, three, "ls", "--pending", "--project", "shwo")[0] == 2
    assert scenelog_in(monkeypatch, three, "audit", "--project", "shwo")[0] == 2
    assert scenelog_in(monkeypatch, three, "ls")[0] == 0
    (Path(three) / "empty").mkdir()
    assert scenelog_in(monkeypatch, three, "ls", "--project", "empty")[0] == 0
    assert scenelog_in(monkeypatch, three, "ls", "ep_009")[0] == 0  # no batches there yet
    with pytest.raises(InvalidInput):
        Projection("shwo", root=three).summaries()
    assert Projection("empty", root=three).summaries() == []


# ── item 9 (read side): time travel over seq order, times as times ───────────


@on_shared_backends
def test_item9_as_of_after_a_clock_behind_is_a_prefix_not_damaged(
    backend_root: str, clock: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = backend_root
    clock += ["2026-11-20T10:00:00.000000Z", "2026-11-20T11:00:00.000000Z"]
    clock += ["2026-11-20T10:30:00.000000Z"]  # the third writer's clock is an hour behind
    store = SceneVersionStore("show", 1, root=root)
    store.write_scene_candidate(B1, scene(B1, shots=2))
    store.write_scene_candidate(B1, scene(B1, shots=3))
    store.conform(B1, 2)
    view = Projection("show", root=root)
    # The longest prefix whose events are all at or before T.
    assert view.as_of(B1, at="2026-11-20T10:45:00Z").seq == 1
    assert view.as_of(B1, at="2026-11-20T10:30:00Z").seq == 1
    assert view.as_of(B1, at="2026-11-20T10:59:59.999999Z").seq == 1
    assert view.as_of(B1, at="2026-11-20T11:00:00Z") == view.require(B1)
    assert view.as_of(B1, at="2026-11-20T09:00:00Z").seq == 0
    result = scenelog(root, "show", B1, "--at", "2026-11-20T10:45:00Z", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["seq"] == 1
    assert scenelog_in(monkeypatch, root, "verify")[0] == 0


@on_shared_backends
def test_item9_years_before_1000_compare_as_times(three: str) -> None:
    view = Projection("show", root=three)
    assert view.as_of(B1, at="0999-12-31T23:59:59Z").seq == 0
    assert view.as_of(B1, at="0001-01-01T00:00:00Z").seq == 0
    assert parse_time("0999-12-31T23:59:59Z") == "0999-12-31T23:59:59.000000Z"
    assert view.audit(types=("appended",), until="0999-12-31T00:00:00Z") == []
    assert len(view.audit(types=("appended",), since="0999-12-31T00:00:00Z")) == 3
    result = scenelog(three, "audit", "--type", "appended", "--until", "0999-12-31T00:00:00Z")
    assert result.returncode == 0 and B1 not in result.stdout


@on_shared_backends
def test_item9_a_time_before_year_1_in_utc_is_before_everything_not_a_traceback(
    three: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    early, late = "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"
    view = Projection("show", root=three)
    assert view.as_of(B1, at=early).seq == 0
    assert view.as_of(B1, at=late).seq == 3
    assert len(view.audit(types=("appended",), since=early)) == 3
    assert view.audit(types=("appended",), until=early) == []
    assert len(view.audit(types=("appended",), until=late)) == 3
    with pytest.raises(InvalidInput):
        parse_time(early)  # it has no UTC form: a clear error, not OverflowError
    result = scenelog(three, "show", B1, "--at", early, "--json")
    # Before the batch's first event: said so, exit 1 (issue 13 item 10), never a traceback.
    assert result.returncode == 1 and "did not exist yet" in result.stderr, result.stderr
    for args in (
        ["show", B1, "--at", late],
        ["audit", "--since", early],
        ["audit", "--until", early],
        ["audit", "--since", late, "--csv"],
        ["audit", "--until", late, "--json"],
    ):
        assert scenelog_in(monkeypatch, three, *args)[0] == 0, args


# ── item 22: one line, never a traceback ─────────────────────────────────────


@on_shared_backends
def test_item22_lock_timeout_not_finite_positive_is_one_line_exit_2(
    three: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = stored(three)
    one_line_error(scenelog(three, "--lock-timeout", "inf", "conform", B1, "2"), 2)
    one_line_error(scenelog(three, "conform", B1, "2", SCENELOG_LOCK_TIMEOUT="1e400"), 2)
    for timeout in ("inf", "-inf", "nan", "1e400", "1e300", "-1", "0", "soon"):
        code, _ = scenelog_in(monkeypatch, three, "--lock-timeout", timeout, "conform", B1, "2")
        assert code == 2, timeout
        code, _ = scenelog_in(monkeypatch, three, "conform", B1, "2", SCENELOG_LOCK_TIMEOUT=timeout)
        assert code == 2, timeout
    assert stored(three) == before
    assert scenelog_in(monkeypatch, three, "--lock-timeout", "2.5", "conform", B1, "2")[0] == 0


COMMANDS = [
    ["ls"],
    ["show", B1],
    ["gate", B1],
    ["history", B1],
    ["add", B1, "-"],
    ["conform", B1, "1"],
    ["revert", B1, "1"],
    ["derived", B1, "1"],
    ["diff", B1, "1", "2"],
    ["audit"],
    ["verify"],
    ["import"],
    ["consumers"],
]


def test_item22_root_naming_a_file_is_one_line_exit_2_for_every_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a_file = tmp_path / "store.txt"
    a_file.write_text("not a store\n")
    body = scene(B1).to_json().decode()
    assert str(a_file) in one_line_error(scenelog(a_file, "gate", B1), 2)
    assert str(a_file) in one_line_error(scenelog(a_file, "add", B1, "-", stdin=body), 2)
    for args in COMMANDS:
        code, err = scenelog_in(monkeypatch, a_file, *args, stdin=body)
        assert code == 2 and str(a_file) in err, (args, err)
        code, err = scenelog_in(monkeypatch, tmp_path, "--root", str(a_file), *args, stdin=body)
        assert code == 2 and str(a_file) in err, (args, err)
    assert a_file.read_text() == "not a store\n"


def test_item22_project_naming_a_file_is_one_line_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "show").write_text("a file where the project should be\n")
    one_line_error(scenelog(tmp_path, "show", B1), 2)
    for args in (["ls"], ["gate", B1], ["history", B1], ["audit"], ["diff", B1, "1", "2"]):
        assert scenelog_in(monkeypatch, tmp_path, *args)[0] == 2, args


def test_item22_demo_into_a_file_is_one_line_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a_file = tmp_path / "demo.txt"
    a_file.write_text("x")
    one_line_error(scenelog(tmp_path, "demo", str(a_file)), 2)
    assert scenelog_in(monkeypatch, tmp_path, "demo", str(a_file / "sub"))[0] == 2
    assert a_file.read_text() == "x"


# ── item 5 (CLI): ASCII digits only; recorded text is UTF-8 ──────────────────

NOT_ASCII_THREE = ["٣", "３", "३", "³", " 3", "+3", "3_0", "v٣", "0"]


@on_shared_backends
def test_item5_versions_and_counts_take_ascii_digits_only(
    three: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = scene(B1, shots=7).to_json().decode()
    before = stored(three)
    assert "ASCII" in one_line_error(scenelog(three, "conform", B1, "٣"), 2)
    assert "ASCII" in one_line_error(
        scenelog(three, "add", B1, "-", "--parent", "٣", stdin=body), 2
    )
    for digit in NOT_ASCII_THREE:
        for args in (
            ["conform", B1, digit],
            ["revert", B1, digit],
            ["derived", B1, digit],
            ["add", B1, "-", "--parent", digit],
            ["diff", B1, "1", digit],
        ):
            code, err = scenelog_in(monkeypatch, three, *args, stdin=body)
            assert code == 2 and "ASCII" in err, (args, err)
        if digit != "0":  # seq 0 is a valid seq
            for args in (
                ["conform", B1, "3", "--expect-seq", digit],
                ["show", B1, "--at-seq", digit],
            ):
                code, err = scenelog_in(monkeypatch, three, *args)
                assert code == 2 and "ASCII" in err, (args, err)
    assert stored(three) == before
    assert scenelog_in(monkeypatch, three, "conform", B1, "v3", "--expect-seq", "3")[0] == 0


@on_shared_backends
def test_r25_text_that_is_not_utf8_on_the_command_line_writes_nothing(
    three: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = "ep_001_BATCH_002"
    body = scene(fresh).to_json().decode()
    before = stored(three)
    result = scenelog(three, "add", fresh, "-", b"--reason", b"caf\xe9", stdin=body)
    assert "UTF-8" in one_line_error(result, 2)
    assert "UTF-8" in one_line_error(scenelog(three, "conform", B1, "2", "--actor", b"\xff"), 2)
    for flag in ("--reason", "--actor", "--source", "--kind", "--state"):
        for args in (["add", fresh, "-"], ["add", B1, "-"], ["conform", B1, "2"]):
            if flag in ("--source", "--kind", "--state") and args[0] != "add":
                continue
            code, err = scenelog_in(monkeypatch, three, *args, flag, "caf\udce9", stdin=body)
            assert code == 2 and "UTF-8" in err, (args, flag, err)
    assert stored(three) == before  # no flat body, no log, no event


@on_shared_backends
def test_r25_actor_from_the_environment_that_is_not_utf8_writes_nothing(
    three: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = "ep_001_BATCH_002"
    env = child_env(SCENELOG_PROJECT="show", SCENELOG_ROOT=str(three))
    env_bytes = {k.encode(): v.encode() for k, v in env.items()}
    env_bytes[b"SCENELOG_ACTOR"] = b"ren\xe9@farm"
    before = stored(three)
    result = subprocess.run(
        [sys.executable, "-m", "projections", "add", fresh, "-"],
        input=scene(fresh).to_json().decode(),
        capture_output=True,
        text=True,
        timeout=60,
        env=env_bytes,
    )
    assert "UTF-8" in one_line_error(result, 2)
    bad_actor = {"SCENELOG_ACTOR": "ren\udce9@farm"}
    code, err = scenelog_in(monkeypatch, three, "conform", B1, "2", **bad_actor)
    assert code == 2 and "UTF-8" in err
    assert stored(three) == before
    # A read records no actor: it still answers.
    assert scenelog_in(monkeypatch, three, "gate", B1, **bad_actor)[0] == 0
