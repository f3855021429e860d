"""R9/R18/R20: a writer SIGKILLed between body and event, and in the middle of its line."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from eventstore import SceneVersionStore
from projections import Projection
from tests.helpers import BATCH, run_child, scene
from tests.integrity import check_batch

# Faults are injected in the child process by patching, never by switches in
# production code. The child dies by SIGKILL: no finally blocks, no flushing.
CRASH_AFTER_BODY = """
import os, signal, sys
from eventstore import SceneVersionStore
from eventstore.filelog import core as log
from tests.helpers import scene

def die(self, data, offset):
    os.kill(os.getpid(), signal.SIGKILL)

log._FileSession._write = die
SceneVersionStore("show", 1, root=sys.argv[1]).write_scene_candidate(
    "ep_001_BATCH_003", scene(shots=9, tag="crashed"))
"""

CRASH_MID_LINE = """
import os, signal, sys
from eventstore import SceneVersionStore
from eventstore.filelog import core as log
from tests.helpers import scene

def half(self, data, offset):
    fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
    os.write(fd, data[: len(data) // 2])
    os.kill(os.getpid(), signal.SIGKILL)

log._FileSession._write = half
store = SceneVersionStore("show", 1, root=sys.argv[1])
if len(sys.argv) > 3:
    getattr(store, sys.argv[2])("ep_001_BATCH_003", *[int(a) for a in sys.argv[3:]])
else:
    store.write_scene_candidate("ep_001_BATCH_003", scene(shots=9, tag="crashed"))
"""


def _acknowledged(store: SceneVersionStore) -> None:
    assert store.write_scene_candidate(BATCH, scene(shots=1)) == 1
    assert store.write_scene_candidate(BATCH, scene(shots=2)) == 2
    store.conform(BATCH, 2, reason="approved before the crash")


def test_r9_kill_after_body_before_event(root: Path) -> None:
    store = SceneVersionStore("show", 1, root=root)
    _acknowledged(store)
    scenes_dir = root / "show" / "ep_001" / "scenes"
    before = (scenes_dir / f"{BATCH}.events.jsonl").read_bytes()
    result = run_child(CRASH_AFTER_BODY, str(root))
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert (scenes_dir / f"{BATCH}.v003.json").exists()  # the orphan body
    assert (scenes_dir / f"{BATCH}.events.jsonl").read_bytes() == before
    # The next command, from a fresh process, succeeds and skips the orphan.
    result = run_child(
        "import sys\nfrom eventstore import SceneVersionStore\nfrom tests.helpers import scene\n"
        "print(SceneVersionStore('show', 1, root=sys.argv[1]).write_scene_candidate("
        "'ep_001_BATCH_003', scene(shots=4)))",
        str(root),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "4"
    events = check_batch(scenes_dir, BATCH)
    assert [(e["type"], e["version"]) for e in events] == [
        ("appended", 1),
        ("appended", 2),
        ("conformed", 2),
        ("appended", 4),
    ]
    assert Projection("show", root=root).require(BATCH).active_version == 2


@pytest.mark.parametrize("command", [[], ["conform", "1"]])
def test_r18_kill_in_the_middle_of_the_line(root: Path, command: list[str]) -> None:
    store = SceneVersionStore("show", 1, root=root)
    _acknowledged(store)
    scenes_dir = root / "show" / "ep_001" / "scenes"
    log_path = scenes_dir / f"{BATCH}.events.jsonl"
    before = log_path.read_bytes()
    result = run_child(CRASH_MID_LINE, str(root), *command)
    assert result.returncode == -signal.SIGKILL, result.stderr
    torn = log_path.read_bytes()
    assert torn.startswith(before) and len(torn) > len(before) and not torn.endswith(b"\n")
    view = Projection("show", root=root)
    assert view.require(BATCH).seq == 3  # the half line was never acknowledged
    assert view.require(BATCH).active_version == 2
    # Next command (another process): succeeds, cuts the torn tail, keeps it aside.
    result = run_child(
        "import sys\nfrom eventstore import SceneVersionStore\n"
        "print(SceneVersionStore('show', 1, root=sys.argv[1]).revert('ep_001_BATCH_003', 1).seq)",
        str(root),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "4"
    events = check_batch(scenes_dir, BATCH)
    assert log_path.read_bytes().startswith(before)
    assert [e["type"] for e in events] == ["appended", "appended", "conformed", "reverted"]
    assert len(list(scenes_dir.glob(f"{BATCH}.events.jsonl.torn.*"))) == 1
    if not command:  # the crashed append's body is an orphan; numbering skips it
        assert store.write_scene_candidate(BATCH, scene(shots=5)) == 4
