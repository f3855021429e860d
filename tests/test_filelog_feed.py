"""The file backend's change feed and consumer checkpoints (issue 11 items 1, 2): what the
contract suite cannot see — the position's spelling, bounded reads, the form of the
checkpoints written before issue 11, and where a corrupt checkpoint is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eventstore import DamagedStore, FileLog, InvalidInput, Layout
from eventstore.filelog import checkpoints
from eventstore.filelog.feed import READ_LIMIT, decode_position
from tests.log_contract import BATCH, OTHER, appended, commit, derived

PROJECT = "show"


def _log(tmp_path: Path) -> FileLog:
    return FileLog(Layout.of(PROJECT, tmp_path))


def test_item1_an_items_position_is_the_feeds_position_after_it(tmp_path: Path) -> None:
    log = _log(tmp_path)
    commit(log, appended(1), derived(1))
    commit(log, appended(1, OTHER))
    feed = log.feed(None, start="beginning")
    items = feed.read()
    assert len(items) == 3
    assert items[-1].position == feed.position  # same bytes: a caller can compare
    for n, item in enumerate(items):
        again = log.feed(item.position)
        assert [(i.batch_id, i.event.seq) for i in again.read()] == [
            (i.batch_id, i.event.seq) for i in items[n + 1 :]
        ]


def test_item1_a_read_is_bounded_and_wait_returns_at_once_while_more_is_due(
    tmp_path: Path,
) -> None:
    log = _log(tmp_path)
    commit(log, appended(1), *[derived(1) for _ in range(READ_LIMIT + 10)])
    feed = log.feed(None, start="beginning", poll=60.0)
    first = feed.read()
    assert len(first) == READ_LIMIT
    assert first[-1].position == feed.position
    feed.wait(30.0)  # returns at once: the rest is due (a hang here fails on the deadline)
    rest = feed.read()
    assert [i.event.seq for i in first + rest] == list(range(1, READ_LIMIT + 12))
    assert log.feed(first[-1].position).lag() == 11


def test_item2_a_position_of_the_checkpoints_before_issue_11_is_read(tmp_path: Path) -> None:
    log = _log(tmp_path)
    commit(log, appended(1), derived(1))
    lines = log.path(BATCH).read_bytes().split(b"\n")
    old = {BATCH: {"seq": 1, "offset": len(lines[0]) + 1}}  # no event id: older still
    feed = log.feed(json.dumps(old))
    assert [i.event.seq for i in feed.read()] == [2]
    assert decode_position(feed.position)[BATCH][0] == 2


@pytest.mark.parametrize(
    "position",
    ['{"ep_001_BATCH_001": [1, 0, null]}', '{"notes": [0, 0, null]}', "[1]", "{", '{"x": true}'],
)
def test_item1_a_position_the_feed_never_wrote_is_invalid_input(
    tmp_path: Path, position: str
) -> None:
    with pytest.raises(InvalidInput):
        _log(tmp_path).feed(position)


def test_item2_a_checkpoint_that_is_not_json_names_its_file(tmp_path: Path) -> None:
    log = _log(tmp_path)
    log.save_checkpoint("boards", b'{"consumer": "boards"}')
    path = checkpoints.consumer_dir(log.layout) / "boards.json"
    assert log.load_checkpoint("boards") == b'{"consumer": "boards"}'
    path.write_bytes(b'{"consumer": "bo')
    with pytest.raises(DamagedStore) as info:
        log.load_checkpoint("boards")
    assert info.value.path == str(path) and "boards.json" in str(info.value)
    assert path.read_bytes() == b'{"consumer": "bo'  # never reset


def test_item2_checkpoints_leave_no_temporary_files_and_ignore_other_names(
    tmp_path: Path,
) -> None:
    log = _log(tmp_path)
    for n in range(3):
        log.save_checkpoint("boards", b'{"n": %d}' % n)
    with log.claim("boards"):
        pass
    folder = checkpoints.consumer_dir(log.layout)
    (folder / "notes.txt").write_text("x")
    assert sorted(p.name for p in folder.iterdir()) == ["boards.json", "boards.lock", "notes.txt"]
    assert log.consumers() == ["boards"]
    assert log.delete_checkpoint("boards") and not log.delete_checkpoint("boards")
    assert log.consumers() == []
