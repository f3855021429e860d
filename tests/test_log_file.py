"""FileLog: the contract, plus what only a file can do (torn tails, damage, chain)."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest

from eventstore import DamagedLog, EventLog, FileLog, Layout
from eventstore.filelog.core import tail_seq
from eventstore.log import line_hash
from tests.log_contract import BATCH, EventLogContract, appended, derived


class TestFileLogContract(EventLogContract):
    processes = True

    def make_log(self, tmp_path: Path) -> EventLog:
        return FileLog(Layout.of("show", tmp_path))

    def root(self, tmp_path: Path) -> str:
        return str(tmp_path)

    def forget(self, tmp_path: Path) -> EventLog:
        shutil.rmtree(tmp_path / "show", ignore_errors=True)
        return self.make_log(tmp_path)

    def tear(self, tmp_path: Path, batch_id: str, data: bytes) -> None:
        """Append raw bytes to the batch's log file (docs/FORMAT.md: its name and place)."""
        path = tmp_path / "show" / batch_id[:6] / "scenes" / f"{batch_id}.events.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab") as f:
            f.write(data)


def _log(tmp_path: Path) -> tuple[FileLog, Path]:
    log = FileLog(Layout.of("show", tmp_path))
    return log, log.path(BATCH)


def _write_three(log: FileLog) -> None:
    with log.session(BATCH) as session:
        session.append([appended(1), appended(2), derived(1)])


def test_r19_prev_is_sha256_of_previous_line(tmp_path: Path) -> None:
    log, path = _log(tmp_path)
    _write_three(log)
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    assert json.loads(lines[0])["prev"] is None
    for before, line in itertools.pairwise(lines[:3]):
        assert json.loads(line)["prev"] == line_hash(before)


def test_r18_torn_tail_ignored_by_readers_and_cut_by_next_writer(tmp_path: Path) -> None:
    log, path = _log(tmp_path)
    _write_three(log)
    good = path.read_bytes()
    with open(path, "ab") as f:
        f.write(b'{"type":"derived","seq":4,"batch_')
    fresh = FileLog(Layout.of("show", tmp_path))
    assert [e.seq for e in fresh.read(BATCH)] == [1, 2, 3]
    assert tail_seq(path, BATCH) == 3
    with fresh.session(BATCH) as session:
        assert session.fold.seq == 3
        session.append([derived(1)])
    data = path.read_bytes()
    assert data.startswith(good) and data.count(b"\n") == 4
    assert [e.seq for e in fresh.read(BATCH)] == [1, 2, 3, 4]
    aside = list(path.parent.glob(path.name + ".torn.*"))
    assert len(aside) == 1 and aside[0].read_bytes() == b'{"type":"derived","seq":4,"batch_'


@pytest.mark.parametrize("damage", ["garbage", "unknown_type", "future_seq"])
def test_r18_damaged_line_mid_file_stops_reads_and_writes(tmp_path: Path, damage: str) -> None:
    log, path = _log(tmp_path)
    _write_three(log)
    lines = path.read_bytes().split(b"\n")
    if damage == "garbage":
        lines[1] = b"{not json"
    elif damage == "unknown_type":
        lines[1] = lines[1].replace(b'"appended"', b'"renamed"')
    else:
        lines[1] = lines[1].replace(b'"seq":2', b'"seq":7')
    path.write_bytes(b"\n".join(lines))
    fresh = FileLog(Layout.of("show", tmp_path))
    with pytest.raises(DamagedLog) as info:
        if damage == "future_seq":
            from eventstore import fold

            fold(BATCH, fresh.read(BATCH), path=str(path))
        else:
            fresh.read(BATCH)
    assert info.value.line == 2 and str(path) in str(info.value)
    with pytest.raises(DamagedLog) as info, fresh.session(BATCH):
        pass
    assert info.value.line == 2


def test_r19_edited_line_breaks_chain_for_writers(tmp_path: Path) -> None:
    log, path = _log(tmp_path)
    _write_three(log)
    path.write_bytes(path.read_bytes().replace(b'"reason":null', b'"reason":"forged"', 1))
    fresh = FileLog(Layout.of("show", tmp_path))
    with pytest.raises(DamagedLog) as info, fresh.session(BATCH):
        pass
    assert info.value.line == 2
    assert "hash chain" in str(info.value)


def test_writer_cache_catches_up_with_other_writers(tmp_path: Path) -> None:
    first, _path = _log(tmp_path)
    second = FileLog(Layout.of("show", tmp_path))
    with first.session(BATCH) as session:
        session.append([appended(1)])
    # Another process's append, simulated by a second FileLog (its own memory).
    with second.session(BATCH) as session:
        session.append([appended(2)])
    with first.session(BATCH) as session:
        assert session.fold.seq == 2
        session.append([appended(3)])
    assert [e.seq for e in first.read(BATCH)] == [1, 2, 3]


def test_tail_seq_reads_long_lines(tmp_path: Path) -> None:
    log, path = _log(tmp_path)
    with log.session(BATCH) as session:
        session.append([appended(1)])
    big = derived(1)
    import msgspec

    with log.session(BATCH) as session:
        session.append([msgspec.structs.replace(big, reason="x" * 20000)])
    assert tail_seq(path, BATCH) == 2


def test_tail_position_is_the_end_of_the_last_complete_line(tmp_path: Path) -> None:
    from eventstore.filelog.core import tail_position

    log, path = _log(tmp_path)
    assert tail_position(path, BATCH) is None
    _write_three(log)
    complete = path.stat().st_size
    assert tail_position(path, BATCH) == (complete, 3)
    with open(path, "ab") as f:
        f.write(b'{"type":"derived","seq":4,' + b"x" * 9000)  # a long torn tail
    assert tail_position(path, BATCH) == (complete, 3)
