"""A writer's memory of a log catches up incrementally with lines other processes wrote.

tests/test_log_file.py::test_writer_cache_catches_up_with_other_writers has a
second FileLog append; here the other writer is a line written by hand (as any
process with the format in hand may), and the test checks that the writer
that remembered the log read the new bytes only, then chained its own line
to the one it had never seen before.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import msgspec
import pytest

from eventstore import FileLog, Layout
from eventstore.events import encode_event
from eventstore.filelog import core
from eventstore.log import line_hash
from tests.helpers import BATCH
from tests.log_contract import appended, derived


class _ReadSpy:
    """A file whose reads are recorded as (offset, length)."""

    def __init__(self, file: IO[bytes], reads: list[tuple[int, int]]) -> None:
        self._file = file
        self._reads = reads

    def __enter__(self) -> _ReadSpy:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def read(self, size: int = -1) -> bytes:
        start = self._file.tell()
        data = self._file.read(size)
        self._reads.append((start, len(data)))
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


def test_item8_writer_catches_up_incrementally_with_a_line_written_by_hand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = FileLog(Layout.of("show", tmp_path))
    with log.session(BATCH) as session:
        session.append([appended(1)])
    path = log.path(BATCH)
    first = path.read_bytes()
    assert first.count(b"\n") == 1
    # Another process appends a whole, chained line by hand.
    by_hand = msgspec.structs.replace(derived(1), seq=2, prev=line_hash(first[:-1]))
    line = encode_event(by_hand) + b"\n"
    with open(path, "ab") as f:
        f.write(line)

    reads: list[tuple[int, int]] = []

    def spy_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        opened = open(file, mode, *args, **kwargs)  # noqa: SIM115 (closed by the spy)
        return _ReadSpy(opened, reads) if Path(file) == path and "r" in mode else opened

    monkeypatch.setattr(core, "open", spy_open, raising=False)
    with log.session(BATCH) as session:
        assert session.fold.seq == 2
        assert session.fold.entry(1) is not None
        session.append([appended(2)])
    monkeypatch.undo()
    # Only the bytes written since this process last read the log were read.
    assert reads == [(len(first), len(line))]
    events = FileLog(Layout.of("show", tmp_path)).read(BATCH)
    assert [e.seq for e in events] == [1, 2, 3]
    raw = log.raw(BATCH)
    assert raw.lines[2].startswith(b"{")
    assert msgspec.json.decode(raw.lines[2])["prev"] == line_hash(line[:-1])
