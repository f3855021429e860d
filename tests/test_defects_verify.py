"""verify's defects of issue 10: exact on a live store (item 7, R26), views ahead of a
restored log repaired (item 10), the head covered and exportable (item 11, R27).
Verify next to busy writers runs on file and PostgreSQL; the rest edits files."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from eventstore import SceneVersionStore
from projections import verify
from tests.conftest import on_shared_backends
from tests.helpers import BATCH, DEADLINE, REPO, child_env, scene
from tests.test_import import reference_store


def scenelog(root: Path, *args: str, timeout: float = DEADLINE) -> subprocess.CompletedProcess[str]:
    """``scenelog ARGS`` as a user runs it, under a 2 GiB address-space limit."""

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    return subprocess.run(
        [sys.executable, "-m", "projections", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(SCENELOG_ROOT=str(root), SCENELOG_PROJECT="show"),
        cwd=str(REPO),
        preexec_fn=limit_memory,
    )


@pytest.fixture
def scenes(root: Path) -> Path:
    """v1..v3 of BATCH, v2 then v3 conformed (6 events), and a second batch."""
    store = SceneVersionStore("show", 1, root=root)
    for shots in (2, 3, 4):
        store.write_scene_candidate(BATCH, scene(shots=shots))
    store.conform(BATCH, 2)
    store.mark_derived(BATCH, 2)
    store.conform(BATCH, 3, actor="lead@farm")
    store.write_scene_candidate("ep_001_BATCH_004", scene("ep_001_BATCH_004"))
    return root / "show" / "ep_001" / "scenes"


def _log(scenes: Path, batch_id: str = BATCH) -> Path:
    return scenes / f"{batch_id}.events.jsonl"


def _findings(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    data = json.loads(result.stdout)
    findings: list[dict[str, Any]] = data["findings"]
    return findings


# --- item 7 / R26: exact next to busy writers ------------------------------------------

WRITER = """
    import random, sys, time
    from pathlib import Path
    from eventstore import Scene, SceneVersionStore
    from eventstore.errors import RuleViolation
    from projections import Projection

    root, stop, seed = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    store = SceneVersionStore("show", 1, root=root)
    busy = ["ep_001_BATCH_001", "ep_001_BATCH_002"]
    done, deadline = 0, time.monotonic() + 50
    while not stop.exists() and time.monotonic() < deadline:
        roll = rng.random()
        if roll < 0.08:  # a first write: Case A, or Case B on a legacy flat body
            batch = f"ep_001_BATCH_{rng.choice(range(100, 140)):03d}"
        else:
            batch = rng.choice(busy)
        try:
            if roll > 0.3 and store.log.exists(batch):
                manifest = Projection("show", root=root).manifest(batch)
                target = rng.randint(1, manifest.versions[-1].version)
                if rng.random() < 0.5:
                    store.conform(batch, target)
                    store.mark_derived(batch, target)
                else:
                    store.revert(batch, target)
            else:
                beats = [{"shot_id": f"sh{i}", "raw": {"n": rng.random()}} for i in range(2)]
                store.write_scene_candidate(batch, Scene({"scene_id": batch, "beats": beats}))
        except RuleViolation:
            pass  # another writer moved the pointer first
        done += 1
        if done == 1:
            Path(str(stop) + f".ready{seed}").touch()
    print(done)
"""


@on_shared_backends
def test_item7_r26_verify_is_exact_next_to_three_busy_writers(
    backend_root: str, tmp_path: Path
) -> None:
    root = backend_root
    store = SceneVersionStore("show", 1, root=root)
    for batch in ("ep_001_BATCH_001", "ep_001_BATCH_002"):
        store.write_scene_candidate(batch, scene(batch))
    if "://" not in root:  # legacy flat bodies: first writes register them (Case B)
        scenes = Path(root) / "show" / "ep_001" / "scenes"
        for number in range(120, 140):
            batch = f"ep_001_BATCH_{number}"
            (scenes / f"{batch}.json").write_bytes(scene(batch).to_json())
    stop = tmp_path / "stop"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(WRITER), str(root), str(stop), str(seed)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
            cwd=str(REPO),
        )
        for seed in range(3)
    ]
    deadline = time.monotonic() + DEADLINE
    false_findings: list[str] = []
    try:
        while not all(Path(f"{stop}.ready{seed}").exists() for seed in range(3)):
            assert time.monotonic() < deadline, "writers did not start"
            assert all(w.poll() is None for w in writers), [w.communicate() for w in writers]
        for _run in range(40):
            report = verify("show", root)
            false_findings += [str(f) for f in report.findings]
            assert time.monotonic() < deadline
        running = [w.poll() is None for w in writers]
    finally:
        stop.touch()
        outputs = [w.communicate(timeout=DEADLINE) for w in writers]
    assert all(running), "the writers stopped before verify's 40 runs ended"
    assert [w.returncode for w in writers] == [0, 0, 0], [err for _out, err in outputs]
    assert all(int(out) > 0 for out, _err in outputs)
    assert false_findings == []
    assert verify("show", root).findings == []


PAUSED_WRITER = """
    import sys
    from eventstore import SceneVersionStore
    from eventstore.filelog.core import _FileSession
    from tests.helpers import scene

    real_append = _FileSession.append

    def append(self, events):
        # The body is on disk (R9), the lock held, the event not yet written:
        # the command stays in flight until the test says go.
        print("body written", flush=True)
        sys.stdin.readline()
        return real_append(self, events)

    _FileSession.append = append
    SceneVersionStore("show", 1, root=sys.argv[1]).write_scene_candidate(
        "ep_001_BATCH_003", scene(shots=7)
    )
"""


@pytest.mark.parametrize("end", ["commits", "is_killed"])
def test_item7_r26_a_body_in_flight_is_reported_only_if_its_command_dies(
    scenes: Path, root: Path, monkeypatch: pytest.MonkeyPatch, end: str
) -> None:
    """verify looks while a command holds the lock between its body and its event."""
    writer = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(PAUSED_WRITER), str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=str(REPO),
    )
    try:
        assert writer.stdout is not None and writer.stdin is not None
        assert writer.stdout.readline().strip() == "body written"
        module = sys.modules["projections.verify.settle"]
        looked = threading.Event()
        real_look = module._look

        def look(*args: Any) -> Any:
            check = real_look(*args)
            looked.set()
            return check

        monkeypatch.setattr(module, "_look", look)
        reports: list[Any] = []
        looking = threading.Thread(target=lambda: reports.append(verify("show", root)))
        looking.start()
        assert looked.wait(DEADLINE)  # the first look saw v4 on disk and not in the log
        # A verify that does not wait for the command would end here and report v4;
        # the right one waits whatever this bound (it only gives the wrong one time to).
        looking.join(0.5)
        if end == "commits":
            writer.stdin.write("go\n")
            writer.stdin.flush()
        else:
            writer.kill()
        assert writer.wait(DEADLINE) == (0 if end == "commits" else -signal.SIGKILL)
        looking.join(DEADLINE)
        assert not looking.is_alive()
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait(DEADLINE)
    findings = reports[0].findings
    if end == "commits":
        assert findings == []
    else:  # the command died: its body is an orphan
        assert [(f.check, Path(f.path).name) for f in findings] == [
            ("orphan_body", f"{BATCH}.v004.json")
        ], findings


@pytest.mark.parametrize("kind", ["dev_zero", "fifo", "non_utf8"])
def test_item7_r26_hostile_bodies_are_findings_not_hangs(
    scenes: Path, root: Path, kind: str
) -> None:
    body = scenes / f"{BATCH}.v002.json"
    body.unlink()
    if kind == "dev_zero":
        body.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(body)
    else:
        text = scene(shots=3).to_json().replace(b"shot 0", b"shot \xff")
        body.write_bytes(text)
    result = scenelog(root, "verify", "--json", timeout=30)
    assert result.returncode == 1, result.stderr
    found = [f for f in _findings(result) if f["path"].endswith("v002.json")]
    assert [f["check"] for f in found] == [
        "body_unreadable" if kind == "non_utf8" else "body_not_file"
    ], found
    assert "restore" in found[0]["fix"]
    text_run = scenelog(root, "verify", timeout=30)
    assert text_run.returncode == 1 and len(text_run.stderr.splitlines()) == 1, text_run.stderr


def test_item7_r26_unimported_store_has_no_orphans_and_no_delete_advice(root: Path) -> None:
    scenes = root / "show" / "ep_001" / "scenes"
    for number in range(3, 8):
        reference_store(scenes, f"ep_001_BATCH_{number:03d}")
    result = scenelog(root, "verify", "--json")
    assert result.returncode == 1
    findings = _findings(result)
    assert {f["check"] for f in findings} == {"unimported"}, findings
    assert len(findings) == 5
    assert not [f for f in findings if "delete" in f["fix"].lower()]


def test_item7_r26_orphan_advice_never_says_delete(scenes: Path, root: Path) -> None:
    (scenes / f"{BATCH}.v004.json").write_bytes(scene(shots=9).to_json())  # crashed write
    SceneVersionStore("show", 1, root=root).write_scene_candidate(BATCH, scene(shots=5))  # v5
    (scenes / "ep_001_BATCH_009.v002.json").write_bytes(scene("ep_001_BATCH_009").to_json())
    findings = verify("show", root).findings
    orphans = sorted(f.path.rsplit("/", 1)[1] for f in findings if f.check == "orphan_body")
    assert orphans == ["ep_001_BATCH_003.v004.json", "ep_001_BATCH_009.v002.json"], findings
    assert all("delete" not in f.fix.lower() and "delete" not in f.what for f in findings)
    assert all("keep it or archive it" in f.fix for f in findings)


# --- item 10: a view above a restored log -----------------------------------------------


def test_item10_repair_views_repairs_a_view_ahead_of_a_restored_log(
    scenes: Path, root: Path, tmp_path: Path
) -> None:
    """A backup taken between the log's and the view's copy, then restored: view ahead."""
    backup = tmp_path / "backup"
    shutil.copytree(root / "show", backup)
    store = SceneVersionStore("show", 1, root=root)
    store.conform(BATCH, 1)
    store.revert(BATCH, 2)
    shutil.copy2(backup / "ep_001" / "scenes" / _log(scenes).name, _log(scenes))
    if (backup / ".scenelog").exists():  # the store's bookkeeping was in the same backup
        shutil.rmtree(root / "show" / ".scenelog")
        shutil.copytree(backup / ".scenelog", root / "show" / ".scenelog")
    view = json.loads((scenes / f"{BATCH}.versions.json").read_bytes())
    assert view["seq"] == 8  # the view is above the restored log's 6

    first = scenelog(root, "verify", "--repair-views", "--json")
    findings = _findings(first)
    assert [(f["check"], f["repaired"]) for f in findings] == [("view_ahead", True)], findings
    assert first.returncode == 0
    second = scenelog(root, "verify")
    assert second.returncode == 0 and "clean" in second.stderr, second.stderr
    assert json.loads((scenes / f"{BATCH}.versions.json").read_bytes())["seq"] == 6


# --- item 11 / R27: the head is covered -------------------------------------------------


def test_item11_r27_edited_last_line_is_found_by_file_and_line(scenes: Path, root: Path) -> None:
    log = _log(scenes)
    lines = log.read_bytes().split(b"\n")[:-1]
    assert b'"actor":"lead@farm"' in lines[-1]  # the latest approval
    lines[-1] = lines[-1].replace(b'"actor":"lead@farm"', b'"actor":"nobody@farm"')
    log.write_bytes(b"\n".join(lines) + b"\n")
    result = scenelog(root, "verify", "--json")
    assert result.returncode == 1
    found = [f for f in _findings(result) if f["path"].endswith(log.name)]
    assert found and found[0]["line"] == 6, found
    assert found[0]["batch_id"] == BATCH and found[0]["severity"] == "error"


def _rewrite_consistently(log: Path) -> None:
    """Change the actor of line 4 and recompute every later prev: the chain holds."""
    events = [json.loads(line) for line in log.read_bytes().split(b"\n")[:-1]]
    events[3]["actor"] = "nobody@farm"
    out: list[bytes] = []
    for event in events:
        event["prev"] = hashlib.sha256(out[-1]).hexdigest() if out else None
        out.append(json.dumps(event, separators=(",", ":")).encode())
    log.write_bytes(b"\n".join(out) + b"\n")


def test_item11_r27_heads_export_finds_a_consistently_rewritten_log(
    scenes: Path, root: Path, tmp_path: Path
) -> None:
    export = scenelog(root, "heads", "--json")
    assert export.returncode == 0, export.stderr
    rows = json.loads(export.stdout)  # one array (docs/CLI.md); verify --heads reads it
    last = _log(scenes).read_bytes().split(b"\n")[-2]
    assert rows == [
        {"batch_id": BATCH, "seq": 6, "hash": hashlib.sha256(last).hexdigest()},
        {
            "batch_id": "ep_001_BATCH_004",
            "seq": 1,
            "hash": hashlib.sha256(_log(scenes, "ep_001_BATCH_004").read_bytes()[:-1]).hexdigest(),
        },
    ]
    kept = tmp_path / "heads.jsonl"
    kept.write_text(export.stdout)
    assert scenelog(root, "verify", "--heads", str(kept)).returncode == 0

    _rewrite_consistently(_log(scenes))
    shutil.rmtree(root / "show" / ".scenelog" / "heads", ignore_errors=True)  # and its record
    result = scenelog(root, "verify", "--heads", str(kept), "--json")
    assert result.returncode == 1
    found = [f for f in _findings(result) if f["check"] == "heads_mismatch"]
    assert len(found) == 1 and found[0]["path"].endswith(_log(scenes).name), found
    assert found[0]["line"] == 6 and found[0]["batch_id"] == BATCH


def test_item11_r27_heads_table_and_a_bad_heads_file(
    scenes: Path, root: Path, tmp_path: Path
) -> None:
    table = scenelog(root, "heads", "ep_001")
    assert table.returncode == 0, table.stderr
    kept = tmp_path / "heads.txt"
    kept.write_text(table.stdout)  # the table is an export too
    assert table.stdout.split()[:3] == ["BATCH", "SEQ", "HASH"]
    lines = _log(scenes).read_bytes().split(b"\n")[:-1]
    _log(scenes).write_bytes(b"\n".join(lines[:4]) + b"\n")  # two lines cut from the end
    result = scenelog(root, "verify", "--heads", str(kept), "--json")
    assert result.returncode == 1
    assert [f["check"] for f in _findings(result) if f["check"] == "heads_mismatch"] == [
        "heads_mismatch"
    ]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not a head\n")
    refused = scenelog(root, "verify", "--heads", str(bad))
    assert refused.returncode == 2
    assert len(refused.stderr.splitlines()) == 1 and "bad.jsonl:1" in refused.stderr
