from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventstore import SceneVersionStore
from eventstore.memlog import MemoryLog
from projections import Projection
from tests.helpers import snapshot

# The throwaway PostgreSQL server's fixtures, for every test module: one server
# per session (a module importing them again would start a second one).
from tests.pgserver import pg_empty_url, pg_server, pg_url  # noqa: F401

BACKENDS = ["file", "memory", "postgres"]
SHARED_BACKENDS = ["file", "postgres"]
"""The backends several processes share (a ``memory://`` store lives in one process)."""
on_shared_backends = pytest.mark.parametrize("backend_root", SHARED_BACKENDS, indirect=True)
"""Narrows ``backend_root`` for a test whose processes share the store."""
on_files_only = pytest.mark.parametrize("backend_root", ["file"], indirect=True)
"""Narrows ``backend_root`` for a test of the file layout (it reads or writes the store's files)."""


def stored(root: str | Path, project: str = "show") -> object:
    """All a store holds, to compare before and after a command that must write nothing.

    Every file of the project's folder under a folder root (``tests.helpers.snapshot``);
    on a URL root, each batch's stored lines (with any incomplete command) and bodies,
    and the checkpoints. ``{}`` when the project holds nothing.
    """
    if "://" not in str(root):
        return snapshot(Path(root) / project)
    from eventstore.log import open_log

    log = open_log(project, str(root))
    if not log.project_exists():
        return {}
    state: dict[str, object] = {}
    for episode in log.episodes():
        for batch_id in log.batches(episode):
            raw = log.raw(batch_id)
            bodies = {name: log.read_body(batch_id, name) for name in log.body_names(batch_id)}
            state[batch_id] = (raw.lines, raw.pending, raw.torn, bodies)
    state[".consumers"] = {c: log.load_checkpoint(c) for c in log.consumers()}
    return state


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("SCENELOG_ROOT", raising=False)
    monkeypatch.setenv("SCENELOG_ACTOR", "tester@farm")
    return tmp_path / "store"


@pytest.fixture
def store(root: Path) -> SceneVersionStore:
    return SceneVersionStore("show", 1, root=root)


@pytest.fixture
def view(root: Path) -> Projection:
    return Projection("show", root=root)


@pytest.fixture
def scenes_dir(root: Path) -> Path:
    return root / "show" / "ep_001" / "scenes"


@pytest.fixture(params=BACKENDS)
def backend_root(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A root on each backend: a new folder, a ``memory://`` name of this test alone,
    or a ``postgresql://`` store (a schema of its own on the session's server).

    Behaviour suites take it instead of ``root`` to run on every backend; the
    memory store is forgotten when the test ends; the postgres case skips with
    the reason when no server can be started (no binaries, no psycopg). Narrow
    it with ``@pytest.mark.parametrize("backend_root", [...], indirect=True)``.
    """
    monkeypatch.delenv("SCENELOG_ROOT", raising=False)
    monkeypatch.setenv("SCENELOG_ACTOR", "tester@farm")
    if request.param == "file":
        yield str(tmp_path / "store")
        return
    if request.param == "postgres":
        yield request.getfixturevalue("pg_url")
        return
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name) + "-" + uuid.uuid4().hex[:8]
    yield f"memory://{name}"
    MemoryLog.reset(name)


@pytest.fixture
def any_store(backend_root: str) -> SceneVersionStore:
    """``store`` on each backend (episode 1 of ``show``)."""
    return SceneVersionStore("show", 1, root=backend_root)


@pytest.fixture
def any_view(backend_root: str) -> Projection:
    """``view`` on each backend, reading what ``any_store`` writes."""
    return Projection("show", root=backend_root)
