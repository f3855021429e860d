"""The contract every EventLog backend keeps, written once and run per backend.

A backend's test module subclasses :class:`EventLogContract` and provides
``make_log(tmp_path)``, returning a new log object over the same storage each
time it is called (so two objects stand for two clients).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from eventstore import Appended, Derived, EventLog, LockTimeout
from eventstore.events import new_event_id, utc_now

BATCH = "ep_001_BATCH_003"
OTHER = "ep_001_BATCH_004"


def appended(version: int, batch_id: str = BATCH) -> Appended:
    return Appended(
        seq=0,
        batch_id=batch_id,
        version=version,
        at=utc_now(),
        actor="t",
        reason=None,
        event_id=new_event_id(),
        prev=None,
        artifact=f"{batch_id}.v{version:03d}.json",
        state="candidate",
        downstream="not_derived",
        kind="reshoot",
        source="rederive",
        parent_version=None,
        structure_fingerprint="0" * 64,
        shot_count=1,
    )


def derived(version: int, batch_id: str = BATCH) -> Derived:
    return Derived(
        seq=0,
        batch_id=batch_id,
        version=version,
        at=utc_now(),
        actor="t",
        reason="why",
        event_id=new_event_id(),
        prev=None,
    )


class EventLogContract:
    def make_log(self, tmp_path: Path) -> EventLog:
        raise NotImplementedError

    def test_empty_batch_has_no_events(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        assert not log.exists(BATCH)
        assert log.read(BATCH) == []
        assert log.last_seq(BATCH) == 0

    def test_append_assigns_contiguous_seq_and_chain(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        with log.session(BATCH) as session:
            assert session.fold.seq == 0
            committed = session.append([appended(1), appended(2)])
        assert [e.seq for e in committed] == [1, 2]
        assert committed[0].prev is None and committed[1].prev is not None
        with log.session(BATCH) as session:
            (third,) = session.append([derived(1)])
        assert third.seq == 3 and third.prev not in (None, committed[1].prev)
        assert log.read(BATCH) == [*committed, third]
        assert log.last_seq(BATCH) == 3
        assert log.exists(BATCH)

    def test_r14_session_sees_commits_of_another_client(self, tmp_path: Path) -> None:
        first, second = self.make_log(tmp_path), self.make_log(tmp_path)
        with first.session(BATCH) as session:
            session.append([appended(1)])
        with second.session(BATCH) as session:
            assert session.fold.seq == 1 and session.fold.max_version == 1
            session.append([appended(2)])
        with first.session(BATCH) as session:
            assert session.fold.seq == 2
            assert [e.version for e in session.fold.entries] == [1, 2]

    def test_session_without_append_writes_nothing(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        with pytest.raises(RuntimeError), log.session(BATCH):
            raise RuntimeError("command refused")
        assert log.read(BATCH) == []
        assert log.last_seq(BATCH) == 0

    def test_r14_threads_serialize(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(10):
                    with log.session(BATCH) as session:
                        session.append([appended(session.fold.max_version + 1)])
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors
        events = log.read(BATCH)
        assert [e.seq for e in events] == list(range(1, 41))
        assert [e.version for e in events] == list(range(1, 41))

    def test_lock_timeout_raises_timeout_error(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        held, release = threading.Event(), threading.Event()

        def hold() -> None:
            with log.session(BATCH):
                held.set()
                release.wait(30)

        t = threading.Thread(target=hold)
        t.start()
        try:
            assert held.wait(30)
            with pytest.raises(LockTimeout) as info, log.session(BATCH, timeout=0.05):
                pass
            assert isinstance(info.value, TimeoutError)
            assert BATCH in str(info.value)
        finally:
            release.set()
            t.join(30)

    def test_r14_other_batches_do_not_wait(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        held, release = threading.Event(), threading.Event()

        def hold() -> None:
            with log.session(BATCH):
                held.set()
                release.wait(30)

        t = threading.Thread(target=hold)
        t.start()
        try:
            assert held.wait(30)
            with log.session(OTHER, timeout=5) as session:
                session.append([appended(1, OTHER)])
            assert log.last_seq(OTHER) == 1
        finally:
            release.set()
            t.join(30)

    def test_r22_reads_do_not_wait_for_a_held_lock(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        with log.session(BATCH) as session:
            session.append([appended(1)])
        reader = self.make_log(tmp_path)
        with log.session(BATCH):
            # The lock is held here; reads from another client still answer.
            assert [e.seq for e in reader.read(BATCH)] == [1]
            assert reader.last_seq(BATCH) == 1
