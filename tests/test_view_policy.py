"""Issue 15 item 2: the legacy view's policy per project (sync, lazy, off).

What is proved: switching policies while four writer processes append loses
nothing and leaves verify clean; a lazy view trails the log by less than the
bound and readers fold it with the log's tail without reading the whole log;
``off`` keeps no view and reads a snapshot from the bookkeeping; a lazy view
edited by hand is still a finding; ``scenelog view-policy`` shows and sets the
policy as a user runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eventstore import FileLog, SceneVersionStore, open_log
from eventstore.filelog.viewpolicy import BOUND
from projections import Projection, verify
from tests.helpers import BATCH, DEADLINE, child_env, scene, scenelog
from tests.integrity import check_batch

WRITERS, PER_WRITER = 4, 40

WRITER = """
import sys
from eventstore import SceneVersionStore
from tests.helpers import scene
root, who, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = SceneVersionStore("show", 1, root=root)
for i in range(count):
    body = scene(shots=2, tag=f"{who}-{i}")
    store.write_scene_candidate("ep_001_BATCH_003", body, reason=f"{who}-{i}")
print("done")
"""


def _log(root: Path) -> FileLog:
    log = open_log("show", root)
    assert isinstance(log, FileLog)
    return log


def _two_versions(root: Path) -> SceneVersionStore:
    store = SceneVersionStore("show", 1, root=root)
    store.write_scene_candidate(BATCH, scene(tag="a"))
    store.write_scene_candidate(BATCH, scene(tag="b"))
    return store


def _no_full_reads(log: FileLog, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read of the whole log fails the test: readers must stay O(1) in its length."""

    def refuse(batch_id: str, *, after: int = 0) -> list[object]:
        raise AssertionError("the whole log was read")

    monkeypatch.setattr(log, "read", refuse)


def test_item2_switching_policies_under_4_writers_loses_nothing_and_verify_is_clean(
    root: Path,
) -> None:
    _two_versions(root)
    log = _log(root)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(root), f"w{n}", str(PER_WRITER)],
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(WRITERS)
    ]
    switches = 0
    deadline = time.monotonic() + DEADLINE
    try:
        policies = ["lazy", "off", "sync", "off", "lazy", "sync"]
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            log.set_view_policy(policies[switches % len(policies)])
            switches += 1
            # Readers during the switches see a state the log reached.
            manifest = Projection("show", root=root).manifest(BATCH)
            assert manifest is not None and manifest.active_version == 1
        for p in procs:
            out, err = p.communicate(timeout=DEADLINE)
            assert p.returncode == 0 and out.strip() == "done", err
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert switches >= 3
    log.set_view_policy("sync")
    Projection("show", root=root).manifest(BATCH)  # mends a view `off` removed
    events = check_batch(root / "show" / "ep_001" / "scenes", BATCH)
    assert len(events) == 2 + WRITERS * PER_WRITER
    reasons = [e["reason"] for e in events[2:]]
    assert sorted(reasons) == sorted(f"w{n}-{i}" for n in range(WRITERS) for i in range(PER_WRITER))
    for policy in ("sync", "lazy", "off"):
        log.set_view_policy(policy)
        report = verify("show", root)
        assert report.ok and not report.findings, (policy, report.findings)
        fresh = Projection("show", root=root).manifest(BATCH)
        assert fresh is not None and fresh.seq == len(events)


def test_item2_lazy_view_trails_by_less_than_the_bound_and_reads_fold_only_the_tail(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _two_versions(root)
    log = _log(root)
    log.set_view_policy("lazy")
    for i in range(3 * BOUND + 5):
        store.conform(BATCH, 1 + i % 2)
    head = log.last_seq(BATCH)
    view_path = log.layout.batch(BATCH).view
    on_disk = json.loads(view_path.read_bytes())
    assert 0 < head - on_disk["seq"] < BOUND  # behind the log, by less than the bound
    before = os.stat(view_path)
    full = Projection("show", root=root).manifest(BATCH)
    _no_full_reads(log, monkeypatch)
    reader = Projection("show", root=root)
    manifest = reader.manifest(BATCH)
    assert manifest == full and manifest is not None and manifest.seq == head
    after = os.stat(view_path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # no mend
    assert manifest.active_version == 1  # the last of the tail's conforms


def test_item2_off_keeps_no_view_and_reads_the_bookkeeping_snapshot(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _two_versions(root)
    log = _log(root)
    view_path = log.layout.batch(BATCH).view
    assert view_path.exists()
    log.set_view_policy("off")
    for i in range(BOUND + 3):
        store.conform(BATCH, 1 + i % 2)
    assert not view_path.exists()
    assert (root / "show" / ".scenelog" / "snapshots" / BATCH).exists()
    report = verify("show", root)
    assert report.ok and not report.findings, report.findings
    head = log.last_seq(BATCH)
    _no_full_reads(log, monkeypatch)
    manifest = Projection("show", root=root).manifest(BATCH)
    assert manifest is not None and manifest.seq == head
    assert not view_path.exists()  # a reader never brings the view back under off


def test_item2_lazy_view_edited_by_hand_is_still_a_finding(root: Path) -> None:
    store = _two_versions(root)
    log = _log(root)
    log.set_view_policy("lazy")
    for i in range(BOUND + 4):
        store.conform(BATCH, 1 + i % 2)
    view_path = log.layout.batch(BATCH).view
    on_disk = json.loads(view_path.read_bytes())
    assert on_disk["seq"] < log.last_seq(BATCH)
    edited = view_path.read_bytes().replace(b'"state":"candidate"', b'"state":"approved"', 1)
    edited = edited.replace(b'"shot_count":3', b'"shot_count":9', 1)
    assert edited != view_path.read_bytes()
    view_path.write_bytes(edited)
    report = verify("show", root)
    assert not report.ok
    assert any(f.check == "view_differs" for f in report.findings), report.findings


def test_item2_view_policy_command_shows_and_sets_the_policy(root: Path) -> None:
    _two_versions(root)
    shown = scenelog(root, "view-policy")
    assert (shown.returncode, shown.stdout) == (0, "sync\n"), shown.stderr
    changed = scenelog(root, "view-policy", "lazy")
    assert changed.returncode == 0 and changed.stdout == "lazy\n", changed.stderr
    assert "was sync" in changed.stderr
    assert (root / "show" / ".scenelog" / "view-policy").read_text() == "lazy\n"
    listed = scenelog(root, "ls")
    assert listed.returncode == 0 and "view policy: lazy" in listed.stderr
    checked = scenelog(root, "verify")
    assert checked.returncode == 0 and "view policy: lazy" in checked.stderr
    bad = scenelog(root, "view-policy", "sometimes")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert (root / "show" / ".scenelog" / "view-policy").read_text() == "lazy\n"
    elsewhere = scenelog(root, "--project", "nosuch", "view-policy", "off")
    assert elsewhere.returncode == 2 and "no project nosuch" in elsewhere.stderr


def test_item2_lazy_read_folds_a_tail_longer_than_the_first_window(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tail lines of 2 KiB each: the reader widens its window from the log's end."""
    store = _two_versions(root)
    log = _log(root)
    log.set_view_policy("off")
    for i in range(BOUND + BOUND - 1):
        store.conform(BATCH, 1 + i % 2, reason=f"{i:04d}" + "r" * 2048)
    head = log.last_seq(BATCH)
    snapshot = root / "show" / ".scenelog" / "snapshots" / BATCH
    behind = head - json.loads(snapshot.read_bytes())["seq"]
    assert behind * 2048 > 4096 and behind < BOUND
    full = Projection("show", root=root).manifest(BATCH)
    _no_full_reads(log, monkeypatch)
    assert Projection("show", root=root).manifest(BATCH) == full
    assert full is not None and full.seq == head


def test_item2_off_then_lazy_brings_the_view_back_at_the_next_command(root: Path) -> None:
    store = _two_versions(root)
    log = _log(root)
    view_path = log.layout.batch(BATCH).view
    log.set_view_policy("off")
    store.conform(BATCH, 2)
    assert not view_path.exists()
    log.set_view_policy("lazy")
    report = verify("show", root)  # before any command: the snapshot stands in
    assert report.ok and not report.findings, report.findings
    store.conform(BATCH, 1)
    assert json.loads(view_path.read_bytes())["seq"] == log.last_seq(BATCH)
    report = verify("show", root)
    assert report.ok and not report.findings, report.findings
