"""``scenelog copy SRC_ROOT DST_ROOT``: a project between any two backends (issue 12 item 7).

Every line lands byte-identical (the chain verifies on the other side), bodies
too; a rerun copies only what is new; a copy killed with SIGKILL resumes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eventstore import SceneVersionStore
from eventstore.copy import CopyRefused, copy_project
from eventstore.log import open_log
from eventstore.memlog import MemoryLog
from tests.helpers import call, run_child, scene, scenelog
from tests.pgserver import pg_server, pg_url  # noqa: F401

B1, B2, B3 = "ep_001_BATCH_001", "ep_001_BATCH_002", "ep_002_BATCH_001"
EVENTS = 8
"""Lines of :func:`build`: 5 one-event commands on B1, one two-event command on B2, one on B3."""


def build(root: Path | str) -> None:
    """Three batches in two episodes: every event type, a two-event command (R24) and a
    legacy flat body registered in place (R4)."""
    one = SceneVersionStore("show", 1, root=root)
    for tag in ("a", "b", "c"):
        one.write_scene_candidate(B1, scene(B1, tag=tag), reason=f"take {tag}")
    one.conform(B1, 2, reason="director approved")
    one.revert(B1, 1, reason="v2 broke continuity")
    one.mark_derived(B1, 1)  # v1 is derived already (R3): nothing appended
    if not str(root).startswith(("memory://", "postgresql://")):
        flat = Path(root) / "show" / "ep_001" / "scenes" / f"{B2}.json"
        flat.parent.mkdir(parents=True, exist_ok=True)
        flat.write_bytes(scene(B2, tag="legacy").to_json())
    one.write_scene_candidate(B2, scene(B2, tag="new"), reason="rederive")
    SceneVersionStore("show", 2, root=root).write_scene_candidate(B3, scene(B3, shots=5))


def files(root: Path) -> dict[str, bytes]:
    """Every log and body under the project (views and bookkeeping left out)."""
    project = root / "show"
    return {
        str(p.relative_to(project)): p.read_bytes()
        for p in sorted(project.glob("ep_*/**/*"))
        if p.is_file() and not p.name.endswith(".versions.json")
    }


def lines_of(root: str) -> dict[str, list[bytes]]:
    log = open_log("show", root)
    return {b: log.raw(b).lines for e in log.episodes() for b in log.batches(e)}


def test_item7_copy_file_to_postgres_to_file_is_byte_identical(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
) -> None:
    src, back = tmp_path / "src", tmp_path / "back"
    build(src)
    there = scenelog(src, "copy", str(src), pg_url, "--json")
    assert there.returncode == 0, there.stderr
    assert json.loads(there.stdout)["events"] == EVENTS
    home = scenelog(src, "copy", pg_url, str(back))
    assert home.returncode == 0, home.stderr
    assert (
        home.stderr.count("\n") == 1 and f"copied {EVENTS} events of 3 of 3 batches" in home.stderr
    )
    assert files(back) == files(src)
    assert any(n.endswith(".events.jsonl") for n in files(src))
    # The views the destination's own commits wrote are those of the source.
    for view in (src / "show").glob("ep_*/scenes/*.versions.json"):
        assert (back / view.relative_to(src)).read_bytes() == view.read_bytes()
    for root in (pg_url, str(back)):
        verified = scenelog(root, "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr


def test_item7_rerun_copies_nothing_then_only_what_is_new(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
) -> None:
    src = tmp_path / "src"
    build(src)
    assert scenelog(src, "copy", str(src), pg_url).returncode == 0
    again = scenelog(src, "copy", str(src), pg_url, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["events"] == 0
    quiet = scenelog(src, "copy", str(src), pg_url)
    assert quiet.returncode == 0 and "nothing to copy" in quiet.stderr
    SceneVersionStore("show", 1, root=src).conform(B1, 3, reason="later")
    more = scenelog(src, "copy", str(src), pg_url, "--json")
    report = json.loads(more.stdout)
    assert (report["events"], report["copied_batches"]) == (1, 1)
    assert lines_of(pg_url) == lines_of(str(src))


_KILLED_COPY = """
import os, signal, sys
from eventstore.copy import copy_project
from eventstore.log import open_log

src, dst, after = open_log("show", sys.argv[1]), open_log("show", sys.argv[2]), int(sys.argv[3])
appends = [0]

original = type(dst).import_lines

def import_lines(self, batch_id, lines, bodies, **kw):
    real = self.command

    def command(batch_id, **kw2):
        manager = real(batch_id, **kw2)
        session = manager.__enter__()
        append = session.append

        def dying(events):
            appends[0] += 1
            if appends[0] > after:
                os.kill(os.getpid(), signal.SIGKILL)  # bodies written, events not
            return append(events)

        session.append = dying
        class Held:
            def __enter__(self):
                return session
            def __exit__(self, *exc):
                return manager.__exit__(*exc)
        return Held()

    self.command = command
    try:
        return original(self, batch_id, lines, bodies, **kw)
    finally:
        del self.command

type(dst).import_lines = import_lines
copy_project(src, dst)
print("not killed")
"""


@pytest.mark.parametrize("destination", ["file", "postgres"])
def test_item7_copy_killed_mid_copy_resumes(
    tmp_path: Path, request: pytest.FixtureRequest, destination: str
) -> None:
    src = tmp_path / "src"
    build(src)
    dst = str(tmp_path / "dst") if destination == "file" else request.getfixturevalue("pg_url")
    killed = run_child(_KILLED_COPY, str(src), dst, "5")
    assert killed.returncode == -9, killed.stdout + killed.stderr
    partial = lines_of(dst)
    assert 0 < sum(map(len, partial.values())) < EVENTS  # some commands landed
    resumed = scenelog(src, "copy", str(src), dst, "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["events"] == EVENTS - sum(map(len, partial.values()))
    assert lines_of(dst) == lines_of(str(src))
    log = open_log("show", dst)
    for batch_id in lines_of(str(src)):
        names = open_log("show", str(src)).body_names(batch_id)
        assert [log.read_body(batch_id, n) for n in names] == [
            open_log("show", str(src)).read_body(batch_id, n) for n in names
        ]
    verified = scenelog(dst, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_item7_copy_through_memory_within_a_process(tmp_path: Path) -> None:
    src, back = tmp_path / "src", tmp_path / "back"
    build(src)
    name = f"copy-{tmp_path.name}"
    try:
        assert call(src, "copy", str(src), f"memory://{name}")[0] == 0
        assert call(src, "copy", f"memory://{name}", str(back))[0] == 0
    finally:
        MemoryLog.reset(name)
    assert files(back) == files(src)


def test_item7_diverged_destination_is_refused_and_left_alone(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
) -> None:
    src = tmp_path / "src"
    build(src)
    SceneVersionStore("show", 1, root=pg_url).write_scene_candidate(B1, scene(B1, tag="other"))
    before = lines_of(pg_url)
    refused = scenelog(src, "copy", str(src), pg_url)
    assert refused.returncode == 3, refused.stderr
    assert refused.stderr.count("\n") == 1 and "diverged" in refused.stderr
    assert lines_of(pg_url) == before
    with pytest.raises(CopyRefused):
        copy_project(open_log("show", str(src)), open_log("show", pg_url))
