"""``scenelog materialize DIR``: versions.json and body files for file tools (issue 12 item 6).

The output equals the file backend's own views and bodies byte for byte, it
never writes a view older than the one there, and it resumes from its
consumer's checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eventstore import SceneVersionStore
from eventstore.copy import copy_project
from eventstore.log import open_log
from tests.helpers import DEADLINE, REPO, call, child_env, scenelog
from tests.pgserver import pg_server, pg_url  # noqa: F401
from tests.test_copy import B1, build

ALL = ["file", "memory", "postgres"]


def scenes_files(root: Path) -> dict[str, bytes]:
    """Every file the file backend keeps in its scenes folders: views and bodies."""
    project = root / "show"
    return {
        str(p.relative_to(project)): p.read_bytes()
        for p in sorted(project.glob("ep_*/scenes/*"))
        if p.is_file() and p.name.endswith(".json")
    }


@pytest.mark.parametrize("backend_root", ALL, indirect=True)
def test_item6_materialize_output_equals_the_file_backends_views(
    tmp_path: Path, backend_root: str
) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    build(src)
    if backend_root.startswith(("memory://", "postgresql://")):
        copy_project(open_log("show", str(src)), open_log("show", backend_root))
        root = backend_root
    else:
        root = str(src)
    code, stdout, stderr = call(root, "materialize", str(out), "--once", "--json")
    assert code == 0, stderr
    report = json.loads(stdout)
    assert report["views"] == 3 and report["events"] == 8
    expected = scenes_files(src)
    assert any(n.endswith(".versions.json") for n in expected)
    assert scenes_files(out) == expected


def test_item6_materialize_resumes_and_never_writes_an_older_view(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
) -> None:
    out = tmp_path / "out"
    build(pg_url)
    first = scenelog(pg_url, "materialize", str(out), "--once", "--json")
    assert first.returncode == 0, first.stderr
    view = out / "show" / "ep_001" / "scenes" / f"{B1}.versions.json"
    SceneVersionStore("show", 1, root=pg_url).conform(B1, 3, reason="later")
    second = scenelog(pg_url, "materialize", str(out), "--once", "--json")
    assert json.loads(second.stdout) == {"events": 1, "views": 1, "bodies": 0}
    assert json.loads(view.read_bytes())["seq"] == 6
    # A newer view than the log's (another materializer ahead of this one) stays.
    ahead = json.loads(view.read_bytes())
    ahead["seq"] = 99
    newer = json.dumps(ahead, separators=(",", ":")).encode() + b"\n"
    view.write_bytes(newer)
    again = scenelog(pg_url, "materialize", str(out), "--once", "--consumer", "fresh")
    assert again.returncode == 0, again.stderr
    assert view.read_bytes() == newer


def test_item6_materialize_follows_live_until_interrupted(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
) -> None:
    out = tmp_path / "out"
    build(pg_url)
    env = child_env(SCENELOG_ROOT=pg_url, SCENELOG_PROJECT="show", SCENELOG_ACTOR="cli@test")
    child = subprocess.Popen(
        [sys.executable, "-m", "projections", "materialize", str(out)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(REPO),
    )
    try:
        assert child.stderr is not None
        assert "materializing into" in child.stderr.readline()
        SceneVersionStore("show", 1, root=pg_url).conform(B1, 3, reason="live")
        view = out / "show" / "ep_001" / "scenes" / f"{B1}.versions.json"
        deadline = time.monotonic() + DEADLINE
        while not (view.exists() and json.loads(view.read_bytes())["seq"] == 6):
            assert time.monotonic() < deadline, "the live view never reached seq 6"
            time.sleep(0.02)  # waiting for the other process's write, not for a race
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=DEADLINE) == 130
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()


def test_item6_materialize_into_the_root_itself_is_refused(tmp_path: Path) -> None:
    build(tmp_path)
    before = scenes_files(tmp_path)
    done = scenelog(tmp_path, "materialize", str(tmp_path), "--once")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "is the root itself" in done.stderr
    assert scenes_files(tmp_path) == before
