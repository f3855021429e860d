"""The public surface: exactly what __all__ says, and the one-way dependency."""

from __future__ import annotations

import ast
from pathlib import Path

import eventstore
import projections

REPO = Path(__file__).resolve().parent.parent


def test_design_names_are_exported() -> None:
    for name in ("SceneVersionStore", "Scene", "load_scene", "structure_fingerprint", "Manifest"):
        assert name in eventstore.__all__
    assert "Projection" in projections.__all__
    for module in (eventstore, projections):
        for name in module.__all__:
            assert hasattr(module, name), name
        public = {n for n in vars(module) if not n.startswith("_")}
        submodules = {n for n in public if type(getattr(module, n)).__name__ == "module"}
        assert public - submodules - {"annotations"} == set(module.__all__)


def _imports(package: str) -> set[tuple[str, str]]:
    """(file name, top-level module) for every import in ``package``."""
    found: set[tuple[str, str]] = set()
    for path in (REPO / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {(path.name, a.name.split(".")[0]) for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add((path.name, node.module.split(".")[0]))
    return found


def test_eventstore_never_imports_projections() -> None:
    assert not [f for f, m in _imports("eventstore") if m == "projections"]


def test_only_the_lock_module_imports_fasteners() -> None:
    users = {f for f, m in _imports("eventstore") | _imports("projections") if m == "fasteners"}
    assert users == {"lock.py"}


def test_errors_pickle_with_their_facts() -> None:
    import pickle

    error = eventstore.SeqMismatch("changed", batch_id="ep_001_BATCH_003", expected=2, actual=3)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is eventstore.SeqMismatch
    assert (copy.expected, copy.actual, str(copy)) == (2, 3, "changed")


def test_item7_errors_declare_their_facts() -> None:
    """Every fact an error carries is a typed class attribute (None when not known)."""
    import pickle
    import typing

    from eventstore import errors

    declared = {
        errors.ScenelogError: {"batch_id", "path", "message", "facts"},
        errors.DamagedLog: {"line", "seq"},
        errors.SeqMismatch: {"expected", "actual"},
        errors.IdentityMismatch: {"expected", "actual"},
        errors.NotActiveVersion: {"version", "active_version"},
        errors.LockTimeout: {"timeout"},
        errors.ConsumerBusy: {"consumer", "holder"},
        errors.StoreIOError: {"errno_code"},
        errors.InvalidInput: {"value"},
    }
    for cls, names in declared.items():
        hints = typing.get_type_hints(cls)
        assert names <= set(hints), (cls.__name__, names - set(hints))
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert {"batch_id", "path"} <= set(typing.get_type_hints(cls)), name
        bare = cls("message only")
        assert (bare.batch_id, bare.path) == (None, None), name
    error = errors.DamagedLog("bad line", path="/x.log", line=3, batch_id="ep_001_BATCH_003")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.line, copy.seq, copy.batch_id) == ("/x.log", 3, None, error.batch_id)
