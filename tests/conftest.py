from __future__ import annotations

from pathlib import Path

import pytest

from eventstore import SceneVersionStore
from projections import Projection

BATCH = "ep_001_BATCH_003"


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
