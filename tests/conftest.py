from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventstore import SceneVersionStore
from eventstore.memlog import MemoryLog
from projections import Projection


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


@pytest.fixture(params=["file", "memory"])
def backend_root(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A root on each backend: a new folder, or a ``memory://`` name of this test alone.

    Behaviour suites take it instead of ``root`` to run on every backend; the
    memory store is forgotten when the test ends.
    """
    monkeypatch.delenv("SCENELOG_ROOT", raising=False)
    monkeypatch.setenv("SCENELOG_ACTOR", "tester@farm")
    if request.param == "file":
        yield str(tmp_path / "store")
        return
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name) + "-" + uuid.uuid4().hex[:8]
    yield f"memory://{name}"
    MemoryLog.reset(name)
