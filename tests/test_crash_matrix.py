"""The crash matrix: a real writer SIGKILLed at each step of each command.

Faults are injected in the child process (by patching the step to die there),
never by switches in production code. After each crash: every acknowledged
command is in the log, seq is contiguous and the hash chain whole, readers get
the fold and mend the view, `verify` reports only what the crash left (an
orphan body or a torn tail), and the next command succeeds.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from eventstore import SceneVersionStore
from eventstore.log import split_committed
from projections import Projection, verify
from tests.helpers import run_child, scene
from tests.integrity import check_batch

B = "ep_001_BATCH_003"
FRESH = "ep_001_BATCH_004"
LEGACY = "ep_001_BATCH_005"

CHILD = """
import os, signal, sys
from eventstore import SceneVersionStore
from eventstore.filelog import fsio
from eventstore import store as store_module
from eventstore.filelog import core as log
from tests.helpers import scene

def die():
    os.kill(os.getpid(), signal.SIGKILL)

point, command = sys.argv[2], sys.argv[3]
if point == "after_body":          # body durable, event never written
    log._FileSession._write = lambda self, data, offset: die()
elif point == "mid_line":          # half the line reaches the file
    def half(self, data, offset):
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, data[: len(data) // 2])
        die()
    log._FileSession._write = half
elif point == "before_fsync":      # whole line written, lock released, no fsync
    log._FileSession.finish = lambda self: die()
elif point == "before_view":       # line durable, view not rewritten
    from eventstore.filelog import views
    views.write_view = lambda path, data, written=None: die()
elif point == "mid_view":          # half a temporary view file, then death
    real = fsio._write_all
    def half_view(fd, data):
        blob = b"".join(data) if isinstance(data, list) else bytes(data)
        if blob[:17] == b'{"schema_version"':
            real(fd, blob[: len(blob) // 2])
            die()
        real(fd, data)
    fsio._write_all = half_view

s = SceneVersionStore("show", 1, root=sys.argv[1])
if command == "add":
    s.write_scene_candidate("ep_001_BATCH_003", scene(shots=9, tag="crash"))
elif command == "add_first":
    s.write_scene_candidate("ep_001_BATCH_004", scene("ep_001_BATCH_004"))
elif command == "add_legacy":
    s.write_scene_candidate("ep_001_BATCH_005", scene("ep_001_BATCH_005", shots=6))
elif command == "conform":
    s.conform("ep_001_BATCH_003", 3)
elif command == "revert":
    s.revert("ep_001_BATCH_003", 1)
elif command == "derived":
    s.mark_derived("ep_001_BATCH_003", 2)
print("the command returned: the kill point was never reached")
"""

POINTS = ["after_body", "mid_line", "before_fsync", "before_view", "mid_view"]
COMMANDS = ["add", "add_first", "add_legacy", "conform", "revert", "derived"]


def _acknowledged(root: Path) -> SceneVersionStore:
    store = SceneVersionStore("show", 1, root=root)
    store.write_scene_candidate(B, scene(shots=1))
    store.write_scene_candidate(B, scene(shots=2))
    store.write_scene_candidate(B, scene(shots=3))
    store.conform(B, 2, reason="acknowledged")
    scenes = root / "show" / "ep_001" / "scenes"
    (scenes / f"{LEGACY}.json").write_bytes(scene(LEGACY, shots=2).to_json())
    return store


def _complete_lines(log: Path) -> int:
    """Lines of whole commands: an incomplete command's lines count for nothing (R24)."""
    return split_committed(log.read_bytes())[0].count(b"\n") if log.exists() else 0


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("command", COMMANDS)
def test_crash_at_every_step(root: Path, command: str, point: str) -> None:
    store = _acknowledged(root)
    scenes = root / "show" / "ep_001" / "scenes"
    batch = {"add_first": FRESH, "add_legacy": LEGACY}.get(command, B)
    log = scenes / f"{batch}.events.jsonl"
    before = log.read_bytes() if log.exists() else b""
    flat_before = (scenes / f"{LEGACY}.json").read_bytes()

    result = run_child(CHILD, str(root), point, command)
    assert result.returncode == -signal.SIGKILL, (result.stdout, result.stderr)

    after = log.read_bytes() if log.exists() else b""
    assert after.startswith(before)  # nothing acknowledged was touched
    torn = bool(after) and not after.endswith(b"\n")
    assert torn == (point == "mid_line")
    wrote_line = point in ("before_fsync", "before_view", "mid_view")
    assert _complete_lines(log) > before.count(b"\n") or not wrote_line

    # Readers: the fold of the complete lines; the view mended on read.
    reader = Projection("show", root=root)
    manifest = reader.manifest(batch)
    expected_seq = _complete_lines(log)
    if expected_seq:
        assert manifest is not None and manifest.seq == expected_seq
        view = json.loads((scenes / f"{batch}.versions.json").read_bytes())
        assert view == manifest.to_dict()
    else:
        assert manifest is None

    # verify: only what the crash left.
    kinds = {f.check for f in verify("show", root).findings}
    allowed = {"orphan_body", "torn_tail", "incomplete_command"}
    assert kinds <= allowed, kinds
    if point == "mid_line":
        assert "torn_tail" in kinds
    if point in ("after_body", "mid_line") and command in ("add", "add_legacy"):
        assert "orphan_body" in kinds

    # The next command on that batch succeeds (this process's cache catches up).
    assert (scenes / f"{LEGACY}.json").read_bytes() == flat_before
    next_version = store.write_scene_candidate(batch, scene(batch, shots=11, tag="next"))
    events = check_batch(scenes, batch)
    assert events[-1]["version"] == next_version
    logged = [e["version"] for e in events[:-1] if e["type"] == "appended"]
    on_disk = [
        int(p.name.split(".v")[1][:-5])
        for p in scenes.glob(f"{batch}.v[0-9]*.json")
        if p.name != f"{batch}.v{next_version:03d}.json"
    ]
    assert next_version == max(logged + on_disk + [0]) + 1  # R8: orphans skipped
    assert {f.check for f in verify("show", root).findings} <= {"orphan_body"}
    store.log.forget()  # type: ignore[attr-defined]
