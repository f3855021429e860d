from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventstore import SceneVersionStore
from eventstore.memlog import MemoryLog
from projections import Projection

# The throwaway PostgreSQL server's fixtures, for every test module: one server
# per session (a module importing them again would start a second one).
from tests.pgserver import pg_empty_url, pg_server, pg_url  # noqa: F401

BACKENDS = ["file", "memory", "postgres"]
SHARED_BACKENDS = ["file", "postgres"]
"""The backends several processes share (a ``memory://`` store lives in one process)."""


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
