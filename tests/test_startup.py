"""Issue 15 item 1: each subcommand imports only what it uses (not timed).

A ``scenelog gate`` (and the other reads) runs in a fresh interpreter and
reports ``sys.modules``: no watchfiles, no fasteners (a read takes no lock),
no importer and no diff module. A write loads the lock, and ``diff`` loads the
diff module, so the check can tell the difference.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eventstore import SceneVersionStore
from tests.helpers import BATCH, run_child, scene

MODULES = """
import io, json, sys
from projections.cli import cli
out, err = io.StringIO(), io.StringIO()
code = cli(*sys.argv[1:], out=out, err=err)
print(json.dumps({"code": code, "err": err.getvalue(), "modules": sorted(sys.modules)}))
"""

HEAVY = ("watchfiles", "fasteners", "eventstore.importer", "eventstore.adopt", "projections.diff")


def _loaded(root: Path, *argv: str) -> tuple[int, set[str]]:
    done = run_child(MODULES, "--root", str(root), "--project", "show", *argv)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    return result["code"], set(result["modules"])


@pytest.fixture
def two_versions(root: Path) -> Path:
    store = SceneVersionStore("show", 1, root=root)
    store.write_scene_candidate(BATCH, scene(tag="a"))
    store.write_scene_candidate(BATCH, scene(tag="b"))
    return root


def test_item1_gate_imports_no_watchfiles_fasteners_importer_or_diff(two_versions: Path) -> None:
    code, modules = _loaded(two_versions, "gate", BATCH)
    assert code in (0, 1)
    assert "projections.projection" in modules  # the check sees a real run
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))


@pytest.mark.parametrize("argv", [("show", BATCH), ("ls",), ("history", BATCH)])
def test_item1_reads_take_no_lock_module(two_versions: Path, argv: tuple[str, ...]) -> None:
    code, modules = _loaded(two_versions, *argv)
    assert code == 0
    assert not modules & {"fasteners", "watchfiles", "eventstore.importer"}


def test_item1_a_write_and_a_diff_load_what_they_use(two_versions: Path) -> None:
    code, modules = _loaded(two_versions, "conform", BATCH, "2")
    assert code == 0 and "fasteners" in modules and "projections.diff" not in modules
    code, modules = _loaded(two_versions, "diff", BATCH, "1", "2")
    assert code == 0 and "projections.diff" in modules and "fasteners" not in modules
