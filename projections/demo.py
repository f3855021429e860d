"""``scenelog demo``: a small show and one realistic pipeline day on it.

The demo drives the public API exactly as a pipeline would and prints what
happens, step by step, then ``ls``, one ``history`` and the gate results. It
leaves the store in place so every other command can be pointed at it. It
reaches storage only through the backend of its root (``open_log``), like
every other command.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from eventstore import NotActiveVersion, Scene, SceneVersionStore
from eventstore.log import open_log
from projections import render
from projections.projection import Projection

__all__ = ["run_demo"]

BATCHES = ("ep_001_BATCH_001", "ep_001_BATCH_002", "ep_001_BATCH_003")
LEGACY = "ep_001_BATCH_004"


def _scene(batch_id: str, shots: int, script: str = "v1") -> Scene:
    beats = [
        {
            "shot_id": f"{batch_id[-3:]}_{i * 10:04d}",
            "camera": "A",
            "raw": {"description": f"shot {i} of {batch_id} (script {script})"},
        }
        for i in range(1, shots + 1)
    ]
    return Scene({"scene_id": batch_id, "beats": beats, "fps": 24})


def run_demo(directory: str | None, *, project: str = "demo", out: Any, err: Any) -> int:
    """Build the demo show under ``directory`` (a new temp folder if None)."""
    root = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="scenelog-demo-"))
    existing = next(p for p in (root.absolute(), *root.absolute().parents) if p.exists())
    if not existing.is_dir():
        print(f"scenelog: error: {existing} is not a folder: give the demo a folder", file=err)
        return 2
    if (root / project).exists():
        print(
            f"scenelog: error: {root / project} exists already: give the demo an empty folder",
            file=err,
        )
        return 2
    store = SceneVersionStore(project, 1, root=root)
    view = Projection(project, root=root)

    def say(text: str) -> None:
        print(text, file=out)

    say(f"scenelog demo: project {project!r} in {root}\n")
    say("1. First derivation of three scenes (each becomes v1, active, boards built):")
    for n, batch_id in enumerate(BATCHES):
        version = store.write_scene_candidate(
            batch_id, _scene(batch_id, 3 + n), actor="layout@farm-01", reason="first derivation"
        )
        say(f"   {batch_id} -> v{version}")
    # What a tool from before versioning leaves: a flat body and no event.
    with open_log(project, root).session(LEGACY) as legacy:
        legacy.write_body(f"{LEGACY}.json", _scene(LEGACY, 2).to_json())
    say(f"   {LEGACY} is a legacy flat scene from before versioning (no log yet)")

    say("\n2. The script changes; the farm re-derives:")
    batch = BATCHES[0]
    v2 = store.write_scene_candidate(
        batch,
        _scene(batch, 4, "v2"),
        parent_version=1,
        actor="layout@farm-02",
        reason="script v2: new shot 40",
    )
    say(f"   {batch} -> v{v2} (candidate, boards not built)")
    again = store.write_candidate(
        batch,
        _scene(batch, 4, "v2"),
        parent_version=1,
        dedup_against_versions=True,
        actor="layout@farm-03",
        reason="nightly re-derive",
    )
    say(
        f"   {batch} re-derived with the same structure -> v{again.version} "
        f"(dedup hit: {again.deduplicated}, nothing appended)"
    )
    v_legacy = store.write_scene_candidate(
        LEGACY, _scene(LEGACY, 3, "v2"), actor="layout@farm-02", reason="script v2"
    )
    say(f"   {LEGACY} -> v{v_legacy} (its flat body registered in place as v1)")

    say("\n3. Review: the supervisor conforms v2; the gate holds dispatch until boards exist:")
    store.conform(batch, v2, actor="sup.ana", reason="approved in dailies")
    say("   " + render.gate_line(batch, view.manifest(batch)))
    store.mark_derived(batch, v2, actor="boards@farm-07", reason="boards rebuilt")
    say("   boards rebuilt -> " + render.gate_line(batch, view.manifest(batch)))

    say("\n4. v3 goes in, then is pulled back:")
    v3 = store.write_scene_candidate(
        batch,
        _scene(batch, 5, "v3"),
        parent_version=v2,
        kind="pickup",
        actor="layout@farm-01",
        reason="pickup shot 50",
    )
    store.conform(batch, v3, actor="sup.ana", reason="pickup approved")
    say(f"   conformed v{v3}: " + render.gate_line(batch, view.manifest(batch)))
    store.revert(batch, v2, actor="sup.ana", reason="v3 breaks continuity with shot 30")
    say(f"   reverted to v{v2}: " + render.gate_line(batch, view.manifest(batch)))
    try:
        store.mark_derived(batch, v3, actor="boards@farm-07", reason="late board build")
        say("   a late board build for v3 was accepted (this should not happen)")
        return 1
    except NotActiveVersion as e:
        say(f"   a late board build for v{v3} is refused: {e}")

    store.conform(LEGACY, v_legacy, actor="sup.ana", reason="approved; boards scheduled")
    say(f"   {LEGACY}: conformed v{v_legacy}, boards still to build")

    say(f"\n$ scenelog ls\n{render.ls_table(view.summaries())}")
    say(f"\n$ scenelog history {batch}\n{render.history_table(view.history(batch))}")
    say("\n$ scenelog gate ...")
    for batch_id in view.batches():
        say("   " + render.gate_line(batch_id, view.manifest(batch_id)))
    say("\nExplore it (paste these lines into a shell):")
    for line in explore_lines(root, project, batch):
        say(f"   {line}")
    return 0


def _scripts_folder() -> str | None:
    """The folder holding this installation's ``scenelog`` (the venv's bin), if any."""
    for folder in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        if folder and os.access(os.path.join(folder, "scenelog"), os.X_OK):
            return folder
    return None


def explore_lines(root: Path, project: str, batch: str) -> list[str]:
    """Shell lines that work as printed: quoted paths, and ``scenelog`` on PATH.

    When the ``scenelog`` a shell would find is not this installation's (the
    venv was not activated), the first line puts the venv's bin on PATH.
    """
    lines = []
    folder = _scripts_folder()
    found = shutil.which("scenelog")
    if folder is not None and (
        found is None or os.path.realpath(os.path.dirname(found)) != os.path.realpath(folder)
    ):
        lines.append(f'export PATH={shlex.quote(folder)}:"$PATH"')
    where = shlex.quote(str(root.absolute()))
    lines.append(f"export SCENELOG_ROOT={where} SCENELOG_PROJECT={shlex.quote(project)}")
    lines += [
        f"scenelog show {batch}",
        f"scenelog history {batch} --json",
        f"scenelog path {batch}",
        "scenelog ls --pending",
    ]
    return lines
