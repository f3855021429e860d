"""verify on the log interface (issue 11 item 2): it runs on every backend, reaches storage
only through EventLog, and the file backend answers its questions (inspect.py) safely."""

from __future__ import annotations

import ast
import json
import os
import threading
from pathlib import Path

import pytest

from eventstore import SceneVersionStore
from eventstore.log import open_log
from projections import verify
from projections.verify import heads
from tests.helpers import BATCH, run_child, scene

VERIFY = Path(__file__).resolve().parent.parent / "projections" / "verify"


@pytest.fixture
def written(backend_root: str) -> str:
    """BATCH: v1..v2, v2 conformed (3 events); ep_001_BATCH_004: v1 (1 event)."""
    store = SceneVersionStore("show", 1, root=backend_root)
    store.write_scene_candidate(BATCH, scene(shots=2))
    store.write_scene_candidate(BATCH, scene(shots=3))
    store.conform(BATCH, 2)
    store.write_scene_candidate("ep_001_BATCH_004", scene("ep_001_BATCH_004"))
    return backend_root


def test_item2_verify_and_heads_run_on_every_backend(written: str) -> None:
    report = verify("show", written)
    assert report.findings == [] and (report.batches, report.events) == (2, 4)
    assert verify("show", written, target=BATCH).events == 3
    exported = {h.batch_id: (h.seq, h.hash) for h in heads("show", written)}
    assert sorted(exported) == [BATCH, "ep_001_BATCH_004"] and exported[BATCH][0] == 3
    assert verify("show", written, heads=exported).ok
    wrong = {BATCH: (2, "0" * 64), "ep_001_BATCH_009": (1, "1" * 64)}
    found = verify("show", written, heads=wrong).findings
    assert [(f.batch_id, f.check, f.line) for f in found] == [
        (BATCH, "heads_mismatch", 2),
        ("ep_001_BATCH_009", "heads_mismatch", None),
    ], found
    assert "missing" in found[1].what
    log = open_log("show", written)
    assert found[0].path == log.raw(BATCH).where  # where the backend says the log is


def test_item2_verify_names_no_file_and_imports_no_backend() -> None:
    """verify reaches storage only through open_log and the EventLog interface."""
    for module in sorted(VERIFY.glob("*.py")):
        text = module.read_text()
        for word in (".events.jsonl", ".versions.json", "read_bytes", "os.open", "os.stat"):
            assert word not in text, (module.name, word)
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom | ast.Import):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                names += [alias.name for alias in node.names]
                assert not [
                    n
                    for n in names
                    if n.startswith(
                        ("eventstore.filelog", "eventstore.filelog.fsio", "eventstore.filelog.lock")
                    )
                    or n in ("eventstore.views", "Layout", "FileLog")
                ], (module.name, names)
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "open":
                assert module.name == "heads.py", module.name  # the user's export only
    assert sum(1 for _ in VERIFY.glob("*.py")) >= 4
    assert all(len(m.read_text().splitlines()) <= 400 for m in VERIFY.glob("*.py"))


def test_item2_file_strays_are_logless_bodies_manifests_lost_logs_and_odd_logs(
    written: str,
) -> None:
    if "://" in written:  # memory and postgresql have no stray files
        assert open_log("show", written).strays("ep_001") == []  # the default: none
        return
    scenes = Path(written) / "show" / "ep_001" / "scenes"
    (scenes / "ep_001_BATCH_007.v002.json").write_bytes(scene("ep_001_BATCH_007").to_json())
    reference = {"schema_version": 2, "batch_id": "ep_001_BATCH_008", "active_version": 1}
    reference["versions"] = [{"version": 1, "artifact": "old/ep_001_BATCH_008.json"}]
    (scenes / "ep_001_BATCH_008.versions.json").write_text(json.dumps(reference))
    (scenes / "ep_001_BATCH_009.versions.json").write_text('{"seq": 4, "versions": []}')
    (scenes / "ep_001_BATCH_010.events.jsonl").mkdir()
    found = open_log("show", written).strays("ep_001")
    assert [(s.batch_id, s.kind, Path(s.where).name, s.names) for s in found] == [
        ("ep_001_BATCH_010", "not_a_log", "ep_001_BATCH_010.events.jsonl", ()),
        ("ep_001_BATCH_007", "bodies", "scenes", ("ep_001_BATCH_007.v002.json",)),
        (
            "ep_001_BATCH_008",
            "reference",
            "ep_001_BATCH_008.versions.json",
            ("ep_001_BATCH_008.json", "ep_001_BATCH_008.v001.json"),
        ),
        ("ep_001_BATCH_009", "snapshot", "ep_001_BATCH_009.versions.json", ()),
    ]
    checks = sorted((f.batch_id[-3:], f.check) for f in verify("show", written).findings)
    assert checks == [
        ("007", "orphan_body"),
        ("008", "unimported"),
        ("009", "log_missing"),
        ("010", "log_not_file"),
    ]


def test_item2_r26_file_bodies_are_looked_at_safely(written: str) -> None:
    log = open_log("show", written)
    assert log.look_body(BATCH, f"{BATCH}.v002.json", max_bytes=1 << 20).problem is None
    small = log.look_body(BATCH, f"{BATCH}.v002.json", max_bytes=10)
    assert (small.data, small.problem) == (None, "too_large")
    missing = log.look_body(BATCH, f"{BATCH}.v009.json", max_bytes=1 << 20)
    assert (missing.problem, missing.detail) == ("missing", "is missing")
    if "://" in written:  # no body files to make odd on memory and postgresql
        return
    fifo = Path(written) / "show" / "ep_001" / "scenes" / f"{BATCH}.v005.json"
    os.mkfifo(fifo)  # opening it to read would block until a writer came
    look = log.look_body(BATCH, fifo.name, max_bytes=1 << 20)
    assert (look.problem, look.where) == ("not_file", str(fifo))
    assert log.look_snapshot(BATCH) is not None


def test_r26_busy_sees_a_held_lock_and_never_drops_one(root: Path) -> None:
    store = SceneVersionStore("show", 1, root=root)
    store.write_scene_candidate(BATCH, scene())
    log = open_log("show", root)
    assert not log.busy(BATCH)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with log.session(BATCH):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(30)
        # Twice: a look that opened and closed the lock file would have dropped this
        # process's lock on it, and the second look would see it free.
        assert log.busy(BATCH) and log.busy(BATCH)
        other = run_child(
            "import sys; from eventstore.log import open_log; "
            "print(open_log('show', sys.argv[1]).busy(sys.argv[2]))",
            str(root),
            BATCH,
        )
        assert other.stdout.strip() == "True", other.stderr
    finally:
        release.set()
        holder.join(30)
    assert not log.busy(BATCH)
