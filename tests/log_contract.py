"""The contract every EventLog backend keeps, written once and run per backend.

A backend's test module subclasses :class:`EventLogContract` (eventsourcing
style: the subclass is a few lines) and provides

- ``make_log(tmp_path)``: a log object over the storage of this test; called
  again it returns another client of the same storage (or the same object,
  for a backend with one instance per storage);
- optionally ``forget(tmp_path)``: wipe the storage (a store restored from an
  empty backup, a recreated batch) and return a new client;
- ``orphan_bodies = False`` for a backend that drops the bodies of a session
  that appended nothing (a transaction) instead of keeping them as orphans;
- optionally ``tear(tmp_path, batch_id, data)``: append raw bytes to a log, for
  backends that can hold a torn line or an incomplete command (the file);
- optionally ``processes = True`` and ``root(tmp_path)``: the root a child
  process passes to ``open_log``, for backends shared between processes.

Covered: discovery, writes and reads, ``read(after=)``, the head's values,
raw lines and their chain, the recorded head, busy, bodies, session checks
(R25), serialized writers (threads; processes where the backend is shared),
whole commands only (R24), torn and incomplete commands where they can
exist (R18, R24), the change feed (order, no gaps, resumption, lag, episode
filter, waking, R28), checkpoints and the consumer claim, snapshots, session
timeouts.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import msgspec
import pytest

from eventstore import (
    Appended,
    BodyMissing,
    ConsumerBusy,
    DamagedBody,
    Derived,
    EventLog,
    LockTimeout,
    RuleViolation,
    VersionBodyExists,
)
from eventstore.events import Event, decode_event, encode_event, new_event_id, utc_now
from eventstore.log import Feed, FeedItem, Head, command_more, line_hash, mark_line
from eventstore.manifest import fold
from tests.helpers import BATCH as BATCH
from tests.helpers import DEADLINE, REPO, child_env, scene

__all__ = [
    "BATCH",
    "LATER",
    "OTHER",
    "EventLogContract",
    "appended",
    "commit",
    "derived",
    "keys",
    "per_batch",
    "read_until",
]

OTHER = "ep_001_BATCH_004"
LATER = "ep_002_BATCH_001"


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


def commit(log: EventLog, *events: Event) -> list[Event]:
    """One command of ``events`` (all of one batch)."""
    with log.session(events[0].batch_id) as session:
        return session.append(list(events))


def keys(items: Sequence[FeedItem]) -> list[tuple[str, int]]:
    return [(item.batch_id, item.event.seq) for item in items]


def per_batch(items: Sequence[FeedItem]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for item in items:
        assert item.batch_id == item.event.batch_id
        found.setdefault(item.batch_id, []).append(item.event.seq)
    return found


def read_until(feed: Feed, want: int, deadline: float = 10.0) -> list[FeedItem]:
    """``feed.read()`` until ``want`` items came or the deadline, as a watcher loops.

    Between reads it calls ``wait``: a feed may learn of a commit only there.
    """
    items: list[FeedItem] = []
    end = time.monotonic() + deadline
    while len(items) < want and time.monotonic() < end:
        items.extend(feed.read())
        if len(items) < want:
            feed.wait(0.2)
    return items


class EventLogContract:
    processes = False
    """Whether writers in several processes share the storage (then tested)."""

    def make_log(self, tmp_path: Path) -> EventLog:
        raise NotImplementedError

    orphan_bodies = True
    """Whether a body written by a session that then appends nothing stays (R8, R9:
    an orphan file); a transactional backend drops it with the session."""

    def forget(self, tmp_path: Path) -> EventLog:
        pytest.skip("this backend's test storage cannot be wiped (R28 replaced logs)")

    def tear(self, tmp_path: Path, batch_id: str, data: bytes) -> None:
        pytest.skip("this backend stores a command whole or not at all: nothing can tear")

    def root(self, tmp_path: Path) -> str:
        pytest.skip("no root for child processes")

    # ── discovery ──────────────────────────────────────────────────────────

    def test_item1_discovery_lists_episodes_and_batches_with_events(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        assert not log.project_exists()
        assert log.episodes() == []
        assert log.batches("ep_001") == []
        commit(log, appended(1, LATER))
        commit(log, appended(1, BATCH))
        commit(log, appended(1, "ep_001_BATCH_001"))
        other = self.make_log(tmp_path)
        assert other.project_exists()
        assert other.episodes() == ["ep_001", "ep_002"]
        assert other.batches("ep_001") == ["ep_001_BATCH_001", BATCH]
        assert other.batches("ep_002") == [LATER]
        assert other.batches("ep_003") == []

    def test_item1_a_clean_store_has_no_reference_manifests(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        commit(log, appended(1))
        assert log.unimported("ep_001") == []
        log.check_unimported(BATCH)  # raises when the batch has a reference manifest

    # ── writes and reads ───────────────────────────────────────────────────

    def test_empty_batch_has_no_events(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        assert not log.exists(BATCH)
        assert log.read(BATCH) == []
        assert log.last_seq(BATCH) == 0
        assert log.head(BATCH) == Head(0, None)
        assert log.recorded_head(BATCH) is None
        raw = log.raw(BATCH)
        assert (raw.lines, raw.pending, raw.torn) == ([], [], 0)

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

    def test_item1_two_appends_in_one_session_continue_the_log(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        with log.session(BATCH) as session:
            held = session.fold  # a command may hold the fold across its append
            (first,) = session.append([appended(1)])
            assert session.fold.seq == held.seq == 1 and held.max_version == 1
            (second,) = session.append([derived(1)])
            assert session.fold.seq == held.seq == 2
            assert held.manifest() == fold(BATCH, [first, second])
        assert [first.seq, second.seq] == [1, 2]
        assert second.prev == line_hash(log.raw(BATCH).lines[0])
        assert session.append([]) == []

    def test_item1_read_after_returns_the_events_after_a_seq(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        commit(log, appended(1), appended(2), appended(3))
        commit(log, derived(1))
        every = log.read(BATCH)
        assert [e.seq for e in every] == [1, 2, 3, 4]
        assert log.read(BATCH, after=0) == every
        assert log.read(BATCH, after=2) == every[2:]
        assert log.read(BATCH, after=4) == []
        assert log.read(BATCH, after=9) == []
        assert log.read(OTHER, after=1) == []

    def test_item1_head_is_the_last_seq_and_its_line_hash(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        commit(log, appended(1), appended(2))
        raw = log.raw(BATCH)
        assert log.head(BATCH) == Head(2, line_hash(raw.lines[-1]))
        commit(log, derived(2))
        reader = self.make_log(tmp_path)
        raw = reader.raw(BATCH)
        assert reader.head(BATCH) == Head(3, line_hash(raw.lines[-1]))
        assert reader.last_seq(BATCH) == 3
        assert reader.head(OTHER) == Head(0, None)

    def test_r19_raw_lines_are_the_line_format_with_its_chain(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        first = commit(log, appended(1), appended(2), derived(1))
        second = commit(log, appended(3))
        raw = self.make_log(tmp_path).raw(BATCH)
        assert raw.pending == [] and raw.torn == 0
        assert BATCH in raw.where
        assert [command_more(line) for line in raw.lines] == [2, 1, 0, 0]
        events = [*first, *second]
        for line, event, more in zip(raw.lines, events, [2, 1, 0, 0], strict=True):
            assert line == mark_line(encode_event(event), more)
            assert decode_event(line) == event
        assert decode_event(raw.lines[0]).prev is None
        for before, after in itertools.pairwise(raw.lines):
            assert decode_event(after).prev == line_hash(before)

    def test_r27_recorded_head_follows_the_commits(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        assert log.recorded_head(BATCH) is None
        commit(log, appended(1))
        assert self.make_log(tmp_path).recorded_head(BATCH) == log.head(BATCH)
        commit(log, appended(2), derived(2))
        assert self.make_log(tmp_path).recorded_head(BATCH) == log.head(BATCH) != Head(0, None)

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
        assert not log.exists(BATCH)

    # ── R25: a session checks before it writes ─────────────────────────────

    @pytest.mark.parametrize("problem", ["other_batch", "registered_twice", "unregistered", "at"])
    def test_r25_a_refused_command_writes_nothing(self, tmp_path: Path, problem: str) -> None:
        log = self.make_log(tmp_path)
        commit(log, appended(1))
        before = log.raw(BATCH)
        bad: Event
        if problem == "other_batch":
            bad = appended(2, OTHER)
        elif problem == "registered_twice":
            bad = appended(1)
        elif problem == "unregistered":
            bad = derived(7)
        else:
            bad = msgspec.structs.replace(derived(1), at="yesterday")
        with pytest.raises(RuleViolation) as info, log.session(BATCH) as session:
            session.append([appended(2), bad])  # the good first event is refused with it
        assert isinstance(info.value, ValueError)
        assert BATCH in str(info.value) and "nothing was written" in str(info.value)
        reader = self.make_log(tmp_path)
        assert reader.raw(BATCH).lines == before.lines
        assert reader.head(BATCH).seq == 1
        assert not reader.exists(OTHER)
        # The log is as it was: the next command continues it.
        with log.session(BATCH) as session:
            assert session.fold.seq == 1 and session.fold.max_version == 1
            (event,) = session.append([appended(2)])
        assert event.seq == 2 and event.prev == line_hash(before.lines[-1])

    def test_r25_an_imported_event_may_carry_its_original_time(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        old = msgspec.structs.replace(appended(1), at="2024-01-02T03:04:05+00:00", imported=True)
        (event,) = commit(log, old)
        assert log.read(BATCH) == [event]
        with pytest.raises(RuleViolation), log.session(BATCH) as session:
            session.append([msgspec.structs.replace(appended(2), at="2024-01-02T03:04:05+00:00")])

    # ── bodies ─────────────────────────────────────────────────────────────

    def test_r9_bodies_are_written_once_and_read_back(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        flat, v2, v10 = f"{BATCH}.json", f"{BATCH}.v002.json", f"{BATCH}.v010.json"
        with log.session(BATCH) as session:
            assert not session.body_exists(v2)
            session.write_body(v2, b'{"two": 2}\n')
            session.write_body(flat, b'{"flat": 1}\n')
            assert session.body_exists(v2)
            assert session.read_body(v2) == b'{"two": 2}\n'
            session.append([appended(1)])
        with log.session(BATCH) as session:
            session.write_body(v10, b"ten")
            session.append([appended(2)])
        with pytest.raises(VersionBodyExists) as info, log.session(BATCH) as session:
            session.write_body(v2, b"other bytes")
        assert isinstance(info.value, FileExistsError) and v2 in str(info.value)
        reader = self.make_log(tmp_path)
        assert reader.body_exists(BATCH, v2) and reader.body_exists(BATCH, flat)
        assert not reader.body_exists(BATCH, f"{BATCH}.v003.json")
        assert reader.read_body(BATCH, v2) == b'{"two": 2}\n'
        assert reader.read_body(BATCH, flat) == b'{"flat": 1}\n'
        assert reader.body_names(BATCH) == [flat, v2, v10]
        assert reader.body_names(OTHER) == []
        path = reader.body_path(BATCH, v2)
        if path is not None:  # a backend with files: the path holds the bytes
            assert Path(path).read_bytes() == b'{"two": 2}\n'

    def test_r9_a_missing_body_is_body_missing(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        commit(log, appended(1))
        name = f"{BATCH}.v001.json"
        with pytest.raises(BodyMissing) as info:
            log.read_body(BATCH, name)
        assert isinstance(info.value, FileNotFoundError)
        assert BATCH in str(info.value)
        with log.session(BATCH) as session, pytest.raises(BodyMissing):
            session.read_body(name)

    def test_r8_highest_body_version_counts_orphan_bodies(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        with log.session(BATCH) as session:
            assert session.highest_body_version() == 0
            session.write_body(f"{BATCH}.json", b"flat")
            assert session.highest_body_version() == 0
            session.write_body(f"{BATCH}.v002.json", b"two")
            assert session.highest_body_version() == 2
            session.append([appended(1)])
        with log.session(BATCH) as session:
            # a command that stopped after its body: no event names v5
            session.write_body(f"{BATCH}.v005.json", b"orphan")
        with log.session(BATCH) as session:
            # R8: an orphan the backend keeps is skipped, never reused
            assert session.highest_body_version() == (5 if self.orphan_bodies else 2)
            assert session.body_exists(f"{BATCH}.v005.json") is self.orphan_bodies
            assert session.fold.max_version == 1

    def test_r8_version_bodies_of_a_batch_without_events_are_strays(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        with log.session(BATCH) as session:  # a first write that died after its body
            session.write_body(f"{BATCH}.v002.json", b"orphan")
        with log.session(OTHER) as session:  # a legacy batch: a flat body, no log
            session.write_body(f"{OTHER}.json", b"flat")
        with log.session("ep_001_BATCH_005") as session:
            session.write_body("ep_001_BATCH_005.v002.json", b"registered")
            session.append([appended(1, "ep_001_BATCH_005")])
        found = [(s.batch_id, s.kind, s.names) for s in self.make_log(tmp_path).strays("ep_001")]
        if self.orphan_bodies:
            assert found == [(BATCH, "bodies", (f"{BATCH}.v002.json",))]
        else:
            assert found == [] and log.body_names(BATCH) == []
        assert log.strays("ep_002") == []

    def test_r9_a_body_of_another_batch_is_refused(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        with log.session(BATCH) as session, pytest.raises(ValueError):
            session.write_body(f"{OTHER}.v002.json", b"not mine")
        assert log.body_names(BATCH) == [] and log.body_names(OTHER) == []

    def test_r10_a_session_reads_a_body_as_a_scene(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        flat, v2 = f"{BATCH}.json", f"{BATCH}.v002.json"
        with log.session(BATCH) as session:
            session.write_body(flat, scene(BATCH).to_json())
            session.write_body(v2, b"{not a scene")
            session.append([appended(1)])
        with log.session(BATCH) as session:
            assert session.read_scene(flat) == scene(BATCH)
            assert session.body_scene_id(flat) == BATCH
            with pytest.raises(DamagedBody):
                session.read_scene(v2)

    def test_r26_an_auditor_looks_at_a_body_without_reading_too_much(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        small, big = f"{BATCH}.v001.json", f"{BATCH}.v002.json"
        with log.session(BATCH) as session:
            session.write_body(small, b"{}")
            session.write_body(big, b"x" * 100)
            session.append([appended(1), appended(2)])
        reader = self.make_log(tmp_path)
        assert reader.look_body(BATCH, small, max_bytes=50)[:2] == (b"{}", None)
        look = reader.look_body(BATCH, big, max_bytes=50)
        assert (look.data, look.problem) == (None, "too_large")
        look = reader.look_body(BATCH, f"{BATCH}.v003.json", max_bytes=50)
        assert (look.data, look.problem) == (None, "missing")
        assert f"{BATCH}.v003.json" in look.where

    def test_r16_a_missing_project_says_why_and_where_names_the_batch(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        absence = log.project_absence()
        assert absence is not None and "show" in absence
        commit(log, appended(1))
        other = self.make_log(tmp_path)
        assert other.project_absence() is None
        assert BATCH in other.where(BATCH)
        assert f"{BATCH}.v002.json" in other.where(BATCH, f"{BATCH}.v002.json")

    def test_r14_a_command_is_a_session_with_the_backends_guards(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        with log.command(BATCH) as session:
            assert session.fold.seq == 0
            session.append([appended(1)])
        assert log.head(BATCH).seq == 1
        with log.session(BATCH):
            done: list[BaseException] = []

            def other() -> None:
                try:
                    with self.make_log(tmp_path).command(BATCH, timeout=0.1):
                        pass
                except BaseException as e:
                    done.append(e)

            t = threading.Thread(target=other)
            t.start()
            t.join(DEADLINE)
        assert len(done) == 1 and isinstance(done[0], LockTimeout)

    # ── snapshots ──────────────────────────────────────────────────────────

    def test_r17_a_snapshot_at_the_head_is_the_fold(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        commit(log, appended(1), appended(2))
        commit(log, derived(1))
        manifest = fold(BATCH, log.read(BATCH))
        snap = log.snapshot(BATCH)
        assert snap is None or snap.seq < 3 or snap == manifest
        assert isinstance(log.mend_snapshot(manifest), bool)
        snap = log.snapshot(BATCH)
        assert snap is None or snap == manifest

    # ── serialized writers, whole commands ─────────────────────────────────

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

    def test_r14_processes_serialize(self, tmp_path: Path) -> None:
        if not self.processes:
            pytest.skip("this backend's storage lives in one process")
        code = textwrap.dedent(
            """
            import sys
            from eventstore.log import open_log
            from tests.log_contract import BATCH, appended
            log = open_log("show", sys.argv[1])
            for _ in range(int(sys.argv[2])):
                with log.session(BATCH) as session:
                    session.append([appended(session.fold.max_version + 1)])
            """
        )
        root = self.root(tmp_path)
        children = [
            subprocess.Popen(
                [sys.executable, "-c", code, root, "15"],
                env=child_env(),
                cwd=str(REPO),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(3)
        ]
        try:
            for child in children:
                _out, err = child.communicate(timeout=DEADLINE)
                assert child.returncode == 0, err.decode()
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.wait()
        log = self.make_log(tmp_path)
        events = log.read(BATCH)
        assert [e.seq for e in events] == list(range(1, 46))
        assert sorted(e.version for e in events) == list(range(1, 46))
        lines = log.raw(BATCH).lines
        for before, after in itertools.pairwise(lines):
            assert decode_event(after).prev == line_hash(before)

    def test_r24_readers_see_whole_commands_only(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        reader = self.make_log(tmp_path)
        done = threading.Event()
        seen: list[tuple[int, int, int]] = []

        def write() -> None:
            try:
                for n in range(0, 60, 3):
                    commit(log, appended(n + 1), appended(n + 2), appended(n + 3))
            finally:
                done.set()

        writer = threading.Thread(target=write)
        writer.start()
        try:
            while not done.is_set():
                head = reader.head(BATCH).seq
                read = len(reader.read(BATCH))
                lines = len(reader.raw(BATCH).lines)
                seen.append((head, read, lines))
        finally:
            writer.join(DEADLINE)
        assert reader.head(BATCH).seq == 60
        assert all(n % 3 == 0 for triple in seen for n in triple), [
            t for t in seen if any(n % 3 for n in t)
        ]

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
            began = time.monotonic()
            with pytest.raises(LockTimeout) as info, log.session(BATCH, timeout=0.2):
                pass
            assert time.monotonic() - began >= 0.15
            assert isinstance(info.value, TimeoutError)
            assert BATCH in str(info.value)
        finally:
            release.set()
            t.join(30)
        with log.session(BATCH, timeout=5) as session:  # free again
            session.append([appended(1)])

    def test_r26_busy_while_a_session_holds_the_batch(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        commit(log, appended(1))
        assert not log.busy(BATCH)
        held, release = threading.Event(), threading.Event()

        def hold() -> None:
            with log.session(BATCH):
                held.set()
                release.wait(30)

        t = threading.Thread(target=hold)
        t.start()
        try:
            assert held.wait(30)
            assert self.make_log(tmp_path).busy(BATCH)
            assert not log.busy(OTHER)
        finally:
            release.set()
            t.join(30)
        assert not log.busy(BATCH)

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
            assert reader.head(BATCH).seq == 1
            assert len(reader.raw(BATCH).lines) == 1

    # ── torn lines and incomplete commands (backends that can have them) ──

    def test_r18_a_torn_tail_is_no_event_and_the_next_writer_cuts_it(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        commit(log, appended(1), appended(2))
        torn = b'{"type":"derived","seq":3,"batch_'
        self.tear(tmp_path, BATCH, torn)
        reader = self.make_log(tmp_path)
        raw = reader.raw(BATCH)
        assert len(raw.lines) == 2 and raw.pending == [] and raw.torn == len(torn)
        assert [e.seq for e in reader.read(BATCH)] == [1, 2]
        assert reader.head(BATCH) == Head(2, line_hash(raw.lines[-1]))
        with reader.session(BATCH) as session:
            assert session.fold.seq == 2
            (event,) = session.append([derived(1)])
        assert event.seq == 3 and event.prev == line_hash(raw.lines[-1])
        after = self.make_log(tmp_path).raw(BATCH)
        assert after.torn == 0 and after.lines[:2] == raw.lines and len(after.lines) == 3

    def test_r24_an_incomplete_command_is_not_delivered(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        (first,) = commit(log, appended(1))
        head = log.head(BATCH)
        cut = msgspec.structs.replace(appended(2), seq=2, prev=head.hash)
        line = mark_line(encode_event(cut), 1)  # the first line of a command of two
        self.tear(tmp_path, BATCH, line + b"\n")
        reader = self.make_log(tmp_path)
        assert reader.read(BATCH) == [first]
        assert reader.head(BATCH) == head
        raw = reader.raw(BATCH)
        assert raw.pending == [line] and raw.torn == 0 and len(raw.lines) == 1
        with reader.session(BATCH) as session:
            assert session.fold.seq == 1 and session.fold.max_version == 1
            (event,) = session.append([appended(2)])
        assert event.seq == 2 and event.event_id != cut.event_id
        assert self.make_log(tmp_path).raw(BATCH).pending == []
        assert [e.event_id for e in reader.read(BATCH)] == [first.event_id, event.event_id]

    def test_r24_a_log_with_only_an_incomplete_command_has_no_events(self, tmp_path: Path) -> None:
        cut = msgspec.structs.replace(appended(1), seq=1, prev=None)
        self.tear(tmp_path, BATCH, mark_line(encode_event(cut), 1) + b"\n")
        reader = self.make_log(tmp_path)
        assert not reader.exists(BATCH)
        assert reader.read(BATCH) == []
        assert reader.head(BATCH) == Head(0, None)
        with reader.session(BATCH) as session:
            assert session.fold.seq == 0
            (event,) = session.append([appended(1)])
        assert event.seq == 1 and event.prev is None and reader.exists(BATCH)

    # ── the change feed ────────────────────────────────────────────────────

    def _three_batches(self, log: EventLog) -> None:
        commit(log, appended(1), appended(2))
        commit(log, appended(1, OTHER))
        commit(log, derived(2))
        commit(log, appended(1, LATER), derived(1, LATER))
        commit(log, appended(2, OTHER))

    def test_item1_feed_from_the_beginning_delivers_each_batch_in_seq_order(
        self, tmp_path: Path
    ) -> None:
        log = self.make_log(tmp_path)
        self._three_batches(log)
        feed = self.make_log(tmp_path).feed(None, start="beginning")
        try:
            items = feed.read()
            assert per_batch(items) == {BATCH: [1, 2, 3], OTHER: [1, 2], LATER: [1, 2]}
            assert all(isinstance(item.position, str) for item in items)
            by_key = {(e.batch_id, e.seq): e for b in (BATCH, OTHER, LATER) for e in log.read(b)}
            assert all(item.event == by_key[(item.batch_id, item.event.seq)] for item in items)
            assert feed.read() == []
            # ``position`` stands after every event read returned: so does the last item's
            for position in (feed.position, items[-1].position):
                after = self.make_log(tmp_path).feed(position)
                assert after.read() == [] and after.lag() == 0
                after.close()
        finally:
            feed.close()

    def test_item1_feed_resumes_exactly_after_a_position(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        self._three_batches(log)
        feed = log.feed(None, start="beginning")
        items = feed.read()
        feed.close()
        assert len(items) == 7
        for k in (0, 2, 4, 6):
            resumed = self.make_log(tmp_path).feed(items[k].position)
            try:
                again = resumed.read()
                assert sorted(keys(again)) == sorted(keys(items[k + 1 :])), k
                for _batch_id, seqs in per_batch(again).items():
                    assert seqs == sorted(seqs)  # in seq order, no gaps after the position
                    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
            finally:
                resumed.close()

    def test_item1_feed_now_delivers_only_later_commits_and_new_batches(
        self, tmp_path: Path
    ) -> None:
        log = self.make_log(tmp_path)
        commit(log, appended(1), appended(2))
        feed = self.make_log(tmp_path).feed(None, start="now")
        try:
            assert feed.read() == []
            assert feed.lag() == 0
            commit(log, derived(2))
            commit(log, appended(1, LATER))
            items = read_until(feed, 2)
            assert sorted(keys(items)) == [(BATCH, 3), (LATER, 1)]
            resumed = log.feed(feed.position)
            assert resumed.read() == []
            resumed.close()
        finally:
            feed.close()

    def test_item1_feed_lag_counts_committed_events_after_its_position(
        self, tmp_path: Path
    ) -> None:
        log = self.make_log(tmp_path)
        self._three_batches(log)
        feed = log.feed(None, start="beginning")
        try:
            assert feed.lag() == 7
            items = feed.read()
            assert feed.lag() == 0
            commit(log, appended(3, OTHER), appended(4, OTHER))
            assert feed.lag() == 2
            assert self.make_log(tmp_path).feed(items[3].position).lag() == 5
        finally:
            feed.close()

    def test_item1_feed_of_one_episode(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        self._three_batches(log)
        feed = log.feed(None, start="beginning", episode="ep_002")
        try:
            assert per_batch(feed.read()) == {LATER: [1, 2]}
            commit(log, appended(3))
            commit(log, appended(2, LATER))
            assert keys(read_until(feed, 1)) == [(LATER, 3)]
            assert feed.lag() == 0
        finally:
            feed.close()

    def test_item1_feed_wait_returns_when_a_command_commits(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        commit(log, appended(1))
        feed = log.feed(None, start="now")
        try:
            assert feed.read() == []
            began = time.monotonic()
            feed.wait(0.05)  # nothing happens: it returns by itself
            assert time.monotonic() - began < 5
            writer = threading.Timer(0.2, lambda: commit(self.make_log(tmp_path), derived(1)))
            writer.start()
            try:
                began = time.monotonic()
                items = read_until(feed, 1, deadline=20)
                assert time.monotonic() - began < 5
            finally:
                writer.join(DEADLINE)
            assert keys(items) == [(BATCH, 2)]
        finally:
            feed.close()

    def test_r24_the_feed_delivers_whole_commands_only(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        feed = log.feed(None, start="beginning")
        done = threading.Event()

        def write() -> None:
            try:
                for n in range(0, 30, 3):
                    commit(log, appended(n + 1), appended(n + 2), appended(n + 3))
            finally:
                done.set()

        writer = threading.Thread(target=write)
        writer.start()
        counts: list[int] = []
        delivered = 0
        end = time.monotonic() + DEADLINE
        try:
            while not (done.is_set() and delivered == 30) and time.monotonic() < end:
                delivered += len(feed.read())
                counts.append(delivered)
                feed.wait(0.01)
        finally:
            writer.join(DEADLINE)
            feed.close()
        assert delivered == 30
        assert all(n % 3 == 0 for n in counts), counts

    def test_r24_the_feed_never_delivers_an_incomplete_command(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        (first,) = commit(log, appended(1))
        cut = msgspec.structs.replace(appended(2), seq=2, prev=log.head(BATCH).hash)
        self.tear(tmp_path, BATCH, mark_line(encode_event(cut), 1) + b"\n")
        feed = self.make_log(tmp_path).feed(None, start="beginning")
        try:
            assert [item.event for item in feed.read()] == [first]
            assert feed.lag() == 0
        finally:
            feed.close()

    def test_r28_a_feed_whose_log_was_replaced_warns_and_starts_it_over(
        self, tmp_path: Path
    ) -> None:
        log = self.make_log(tmp_path)
        commit(log, appended(1), appended(2))
        commit(log, appended(1, OTHER))
        feed = log.feed(None, start="beginning")
        feed.read()
        position = feed.position
        feed.close()
        fresh = self.forget(tmp_path)  # restored from an older (here: empty) backup
        new = commit(fresh, appended(1), derived(1))
        warnings: list[str] = []
        resumed = fresh.feed(position, warn=warnings.append)
        try:
            items = resumed.read()
            assert [item.event for item in items] == new  # from seq 1 again
            assert len(warnings) == 1 and BATCH in warnings[0], warnings
            assert resumed.read() == [] and len(warnings) == 1
        finally:
            resumed.close()

    # ── checkpoints and the consumer claim ─────────────────────────────────

    def test_item1_checkpoints_load_save_delete_and_list(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        commit(log, appended(1))
        assert log.load_checkpoint("boards") is None
        assert log.consumers() == []
        data = json.dumps({"consumer": "boards", "position": "p1"}).encode()
        log.save_checkpoint("boards", data)
        log.save_checkpoint("audit", b'{"consumer":"audit"}')
        other = self.make_log(tmp_path)
        assert other.load_checkpoint("boards") == data
        assert other.consumers() == ["audit", "boards"]
        log.save_checkpoint("boards", b'{"consumer":"boards","position":"p2"}')
        assert other.load_checkpoint("boards") == b'{"consumer":"boards","position":"p2"}'
        assert other.delete_checkpoint("boards") is True
        assert other.delete_checkpoint("boards") is False
        assert log.load_checkpoint("boards") is None
        assert log.consumers() == ["audit"]

    def test_item1_a_consumer_name_is_claimed_exclusively(self, tmp_path: Path) -> None:
        log = self.make_log(tmp_path)
        commit(log, appended(1))
        other = self.make_log(tmp_path)
        with log.claim("boards"):
            with pytest.raises(ConsumerBusy) as info, other.claim("boards"):
                pass
            assert "boards" in str(info.value)
            holder = getattr(info.value, "holder", None)
            assert isinstance(holder, dict) and holder.get("pid") is not None
            with other.claim("audit"):  # another name is free
                pass
        with other.claim("boards"):  # released with the with-block
            pass

    def test_item1_a_released_claim_is_free_at_once_every_time(self, tmp_path: Path) -> None:
        # Two holders taking turns with no pause between them: the release
        # must be complete when the with-block ends, not some time after.
        log = self.make_log(tmp_path)
        commit(log, appended(1))
        other = self.make_log(tmp_path)
        for _ in range(60):
            with log.claim("boards"):
                pass
            with other.claim("boards"):
                pass

    def test_item1_a_claim_dies_with_its_process(self, tmp_path: Path) -> None:
        if not self.processes:
            pytest.skip("this backend's storage lives in one process")
        log = self.make_log(tmp_path)
        commit(log, appended(1))
        code = textwrap.dedent(
            """
            import sys
            from eventstore.log import open_log
            with open_log("show", sys.argv[1]).claim("boards"):
                print("held", flush=True)
                sys.stdin.read()
            """
        )
        child = subprocess.Popen(
            [sys.executable, "-c", code, self.root(tmp_path)],
            env=child_env(),
            cwd=str(REPO),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == b"held\n"
            with pytest.raises(ConsumerBusy), log.claim("boards"):
                pass
        finally:
            child.kill()
            child.wait(DEADLINE)
        with log.claim("boards"):  # free for the next claimant (a restarted service)
            pass
