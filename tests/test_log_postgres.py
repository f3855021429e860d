"""PgLog: the contract on a real PostgreSQL server, plus what only the database does.

The server is a throwaway cluster started by ``tests/pgserver.py`` (or
``$SCENELOG_TEST_PG``); each test gets a fresh database with the schema.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("psycopg")

import psycopg

from eventstore import (
    ConsumerBusy,
    EventLog,
    FileLog,
    Layout,
    LockTimeout,
    RuleViolation,
    StoreIOError,
)
from eventstore.events import Event
from eventstore.log import line_hash
from eventstore.pglog import (
    DatabaseUnavailable,
    OutcomeUnknown,
    PgLog,
    SchemaMissing,
    init_schema,
    open_pg,
)
from eventstore.pglog.core import Connections, redact
from eventstore.pglog.schema import SCHEMA_VERSION
from tests.helpers import DEADLINE, run_child
from tests.log_contract import BATCH, OTHER, EventLogContract, appended, derived
from tests.pgserver import PgServer

PROJECT = "show"


class _Logs:
    """New PgLog objects (each its own cache and pool) over one database; closed at the end."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.made: list[Connections] = []

    def new(self, project: str = PROJECT) -> PgLog:
        connections = Connections(self.url, redact(self.url))
        self.made.append(connections)
        return PgLog(connections, project)

    def close(self) -> None:
        for connections in self.made:
            connections.close()


@pytest.fixture
def logs(pg_url: str) -> Iterator[_Logs]:
    made = _Logs(pg_url)
    yield made
    made.close()


class TestPgLogContract(EventLogContract):
    orphan_bodies = False  # a session's bodies commit with its events or not at all
    processes = True

    @pytest.fixture(autouse=True)
    def _database(self, logs: _Logs, pg_server: PgServer) -> None:
        self._logs = logs
        self._server = pg_server

    def make_log(self, tmp_path: Path) -> EventLog:
        return self._logs.new()

    def forget(self, tmp_path: Path) -> EventLog:
        """The store restored from an empty backup: its tables dropped and made again."""
        self._server.reset_store(self._logs.url)
        return self._logs.new()

    def root(self, tmp_path: Path) -> str:
        return self._logs.url


# ── schema ──────────────────────────────────────────────────────────────────


def test_db_init_is_idempotent_and_versioned(pg_empty_url: str) -> None:
    assert init_schema(pg_empty_url) == (0, SCHEMA_VERSION)
    assert init_schema(pg_empty_url) == (SCHEMA_VERSION, SCHEMA_VERSION)
    with psycopg.connect(pg_empty_url) as conn:
        rows = conn.execute("SELECT version FROM scenelog_schema").fetchall()
    assert rows == [(SCHEMA_VERSION,)]


def test_missing_schema_says_to_run_db_init(pg_empty_url: str) -> None:
    log = PgLog(Connections(pg_empty_url, redact(pg_empty_url)), PROJECT)
    with pytest.raises(SchemaMissing) as info:
        log.read(BATCH)
    assert "scenelog db init" in str(info.value)
    assert info.value.exit_code == 2 and info.value.found == 0
    assert "\n" not in str(info.value)


def test_append_only_trigger_refuses_update_and_delete_even_for_the_owner(logs: _Logs) -> None:
    log = logs.new()
    with log.session(BATCH) as session:
        session.write_body(f"{BATCH}.v001.json", b"{}")
        session.append([appended(1)])
    statements = [
        "UPDATE scenelog_events SET line = line || ' '",
        "DELETE FROM scenelog_events",
        "TRUNCATE scenelog_events",
        "UPDATE scenelog_bodies SET data = 'x'",
        "DELETE FROM scenelog_bodies",
        "TRUNCATE scenelog_bodies",
    ]
    with psycopg.connect(logs.url, autocommit=True) as conn:  # the superuser that owns them
        for sql in statements:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute(sql)
    assert [e.seq for e in log.read(BATCH)] == [1]
    assert log.read_body(BATCH, f"{BATCH}.v001.json") == b"{}"


def test_writer_and_reader_roles_of_the_docs_get_only_their_privileges(logs: _Logs) -> None:
    log = logs.new()
    with log.session(BATCH) as session:
        session.append([appended(1)])
    with psycopg.connect(logs.url, autocommit=True) as conn:
        row = conn.execute("SELECT current_schema()").fetchone()
        assert row is not None
        schema = row[0]
        writer, reader = f"{schema}_writer", f"{schema}_reader"
        grants = [  # as docs/POSTGRES.md gives them
            f"CREATE ROLE {writer} LOGIN",
            f"CREATE ROLE {reader} LOGIN",
            f"GRANT USAGE ON SCHEMA {schema} TO {writer}, {reader}",
            f"GRANT SELECT, INSERT ON scenelog_events, scenelog_bodies TO {writer}",
            f"GRANT SELECT, INSERT, UPDATE ON scenelog_heads TO {writer}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON scenelog_checkpoints TO {writer}",
            f"GRANT SELECT ON scenelog_schema TO {writer}",
            f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {reader}",
        ]
        for sql in grants:
            conn.execute(sql.encode())
        conn.execute(f"SET ROLE {writer}".encode())
        for sql in ("UPDATE scenelog_events SET seq = seq", "DELETE FROM scenelog_events"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
                conn.execute(sql)
        conn.execute("SELECT count(*) FROM scenelog_events")
        conn.execute("RESET ROLE")
        conn.execute(f"SET ROLE {reader}".encode())
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            conn.execute(
                "INSERT INTO scenelog_events (project, batch_id, seq, event_id, line) "
                "VALUES ('show', 'ep_001_BATCH_009', 1, 'x', '{}')"
            )
        row = conn.execute("SELECT count(*) FROM scenelog_events").fetchone()
        assert row == (1,)
    # Through the store's code: the writer appends; the reader reads and is refused.
    as_writer = _Logs(logs.url.replace("postgres@", f"{writer}@", 1))
    as_reader = _Logs(logs.url.replace("postgres@", f"{reader}@", 1))
    try:
        with as_writer.new().session(BATCH) as session:
            session.write_body(f"{BATCH}.v002.json", b"{}")
            session.append([appended(2)])
        assert [e.seq for e in as_reader.new().read(BATCH)] == [1, 2]
        reading = as_reader.new()
        with pytest.raises(StoreIOError, match="permission denied"), reading.session(BATCH) as s:
            s.append([derived(2)])
    finally:
        as_writer.close()
        as_reader.close()


# ── the line format ─────────────────────────────────────────────────────────


def test_lines_are_the_file_backends_bytes_and_chain(logs: _Logs, tmp_path: Path) -> None:
    file_log = FileLog(Layout.of(PROJECT, tmp_path))
    pg_log = logs.new()
    commands: list[list[Event]] = [[appended(1), appended(2), derived(1)], [derived(2)]]
    for command in commands:
        for log in (file_log, pg_log):
            with log.session(BATCH) as session:
                session.append(command)
    file_raw, pg_raw = file_log.raw(BATCH), pg_log.raw(BATCH)
    assert pg_raw.lines == file_raw.lines and len(pg_raw.lines) == 4
    assert b'"more":2}' in pg_raw.lines[0]  # R24: the command mark, as in a file
    assert (pg_raw.pending, pg_raw.torn) == ([], 0)
    assert pg_log.head(BATCH) == file_log.head(BATCH) == (4, line_hash(pg_raw.lines[-1]))
    assert pg_log.recorded_head(BATCH) == pg_log.head(BATCH)  # R27, same transaction
    assert pg_log.read(BATCH, after=2) == file_log.read(BATCH, after=2)


def test_item3_refused_append_writes_nothing(logs: _Logs) -> None:
    log = logs.new()
    with log.session(BATCH) as session:
        session.write_body(f"{BATCH}.v001.json", b"{}")
        with pytest.raises(RuleViolation):
            session.append([appended(1), derived(7)])
    assert log.read(BATCH) == [] and not log.exists(BATCH)
    assert log.body_names(BATCH) == []  # the body went with the refused command
    with log.session(BATCH) as session:
        assert session.fold.seq == 0 and session.highest_body_version() == 0
        with pytest.raises(RuleViolation):
            session.append([appended(1, OTHER)])


def test_r8_body_written_once_and_counted(logs: _Logs) -> None:
    from eventstore import VersionBodyExists

    log = logs.new()
    name = f"{BATCH}.v002.json"
    with log.session(BATCH) as session:
        session.write_body(name, b'{"a":1}')
        assert session.body_exists(name) and session.highest_body_version() == 2
        session.append([appended(2)])
    with log.session(BATCH) as session, pytest.raises(VersionBodyExists):
        session.write_body(name, b"other")
    assert log.read_body(BATCH, name) == b'{"a":1}'
    assert log.body_names(BATCH) == [name]


def test_r19_a_row_changed_behind_the_trigger_stops_writers(logs: _Logs) -> None:
    from eventstore import DamagedLog

    log = logs.new()
    with log.session(BATCH) as session:
        session.append([appended(1), appended(2)])
    with psycopg.connect(logs.url, autocommit=True) as conn:
        conn.execute("ALTER TABLE scenelog_events DISABLE TRIGGER scenelog_events_append_only")
        conn.execute(
            'UPDATE scenelog_events SET line = replace(line, \'"actor":"t"\', '
            '\'"actor":"x"\') WHERE seq = 1'
        )
    with pytest.raises(DamagedLog, match="hash chain") as info, logs.new().session(BATCH):
        pass
    assert info.value.line == 2
    assert "password" not in str(info.value)


# ── locks ───────────────────────────────────────────────────────────────────


def test_r14_lock_timeout_names_the_holder(logs: _Logs) -> None:
    log = logs.new()
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with log.session(BATCH):
            held.set()
            release.wait(DEADLINE)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert held.wait(DEADLINE)
        assert log.busy(BATCH)
        with pytest.raises(LockTimeout) as info, logs.new().session(BATCH, timeout=0.1):
            pass
        holder = getattr(info.value, "holder", None)
        assert holder is not None
        import os

        assert holder["pid"] == os.getpid()
        assert f"pid {os.getpid()}" in str(info.value)
    finally:
        release.set()
        t.join(DEADLINE)
    assert not log.busy(BATCH)


_TCP_WRITER = """
import sys
from eventstore.pglog import open_pg
from tests.log_contract import appended
url, batch, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
log = open_pg(url, "show")
for _ in range(count):
    with log.session(batch) as session:
        session.append([appended(session.fold.max_version + 1, batch)])
print("ok")
"""


def test_r14_writer_processes_over_tcp_serialize(pg_server: PgServer, logs: _Logs) -> None:
    tcp = pg_server.over_tcp(logs.url)
    assert "127.0.0.1" in tcp
    import subprocess
    import sys

    from tests.helpers import REPO, child_env

    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _TCP_WRITER, tcp, batch, "15"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
            cwd=str(REPO),
        )
        for batch in (BATCH, BATCH, BATCH, OTHER)
    ]
    try:
        for p in procs:
            out, err = p.communicate(timeout=DEADLINE)
            assert p.returncode == 0, err
            assert out.strip() == "ok"
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    log = logs.new()
    events = log.read(BATCH)
    assert [e.seq for e in events] == list(range(1, 46))
    assert [e.version for e in events] == list(range(1, 46))
    lines = log.raw(BATCH).lines
    assert all(e.prev == (line_hash(lines[i - 1]) if i else None) for i, e in enumerate(events))
    assert log.last_seq(OTHER) == 15


# ── the commit's outcome ────────────────────────────────────────────────────


def test_connection_lost_during_commit_is_outcome_unknown_never_success(logs: _Logs) -> None:
    log = logs.new()
    with log.session(BATCH) as session:
        session.append([appended(1)])
    event = appended(2)
    with log.session(BATCH) as session:
        conn: Any = session._conn  # type: ignore[attr-defined]
        real = conn.execute

        def cut(query: Any, *args: Any, **kwargs: Any) -> Any:
            if query == "COMMIT":
                with psycopg.connect(logs.url, autocommit=True) as other:
                    other.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
            return real(query, *args, **kwargs)

        conn.execute = cut
        with pytest.raises(OutcomeUnknown) as info:
            session.append([event])
    assert info.value.event_ids == [event.event_id]
    assert event.event_id in str(info.value) and "outcome is unknown" in str(info.value)
    assert info.value.exit_code == 4
    # The store is usable afterwards: the next session reads the table again.
    with log.session(BATCH) as session:
        assert session.fold.seq in (1, 2)
        session.append([derived(1)])


def test_passwords_never_appear_in_messages() -> None:
    url = "postgresql://scenelog:s3cr3t-pw@127.0.0.1:1/nowhere?connect_timeout=2"
    log = open_pg(url, PROJECT)
    assert "s3cr3t" not in log.label and "***" in log.label
    with pytest.raises(DatabaseUnavailable) as info:
        log.read(BATCH)
    assert "s3cr3t" not in str(info.value) and "\n" not in str(info.value)
    assert info.value.exit_code == 4
    assert "s3cr3t" not in repr(log)
    assert redact("postgresql:///db?host=/tmp&password=s3cr3t") == (
        "postgresql:///db?host=/tmp&password=***"
    )


# ── the change feed ─────────────────────────────────────────────────────────


def test_feed_delivers_in_order_and_resumes_from_its_position(logs: _Logs) -> None:
    log = logs.new()
    with log.session(BATCH) as session:
        session.append([appended(1), appended(2)])
    feed = log.feed(None, start="now")
    assert feed.read() == []
    with log.session(OTHER) as session:
        session.append([appended(1, OTHER)])
    with log.session(BATCH) as session:
        session.append([derived(2)])
    items = feed.read()
    assert [(i.batch_id, i.event.seq) for i in items] == [(OTHER, 1), (BATCH, 3)]
    assert feed.position == items[-1].position and feed.lag() == 0
    feed.close()
    again = logs.new().feed(items[0].position, warn=pytest.fail)
    assert [(i.batch_id, i.event.seq) for i in again.read()] == [(BATCH, 3)]
    again.close()
    everything = log.feed(None, start="beginning")
    assert everything.lag() == 4
    assert [(i.batch_id, i.event.seq) for i in everything.read()] == [
        (BATCH, 1),
        (BATCH, 2),
        (OTHER, 1),
        (BATCH, 3),
    ]
    everything.close()


def test_feed_holds_back_events_below_an_open_transaction(logs: _Logs) -> None:
    log = logs.new()
    feed = log.feed(None, start="beginning")
    with log.session(BATCH) as early:
        early.write_body(f"{BATCH}.v001.json", b"{}")  # the early command holds an xid now
        with log.session(OTHER) as late:
            late.append([appended(1, OTHER)])
        assert feed.read() == []  # OTHER committed first but has a later xid: not yet
        early.append([appended(1)])
    assert [i.batch_id for i in feed.read()] == [BATCH, OTHER]
    feed.close()


def test_feed_is_woken_by_notify(logs: _Logs) -> None:
    import time

    log = logs.new()
    feed = log.feed(None, start="now")
    writer = threading.Timer(0.2, lambda: _append_one(logs.new()))
    writer.start()
    try:
        began = time.monotonic()
        feed.wait(DEADLINE)
        assert time.monotonic() - began < DEADLINE / 2
        deadline = time.monotonic() + DEADLINE
        items: list[Any] = []
        while not items and time.monotonic() < deadline:
            items = feed.read()
            if not items:
                feed.wait(1.0)
        assert [i.event.seq for i in items] == [1]
    finally:
        writer.join(DEADLINE)
        feed.close()


def _append_one(log: PgLog) -> None:
    with log.session(BATCH) as session:
        session.append([appended(1)])


def test_r28_position_the_database_never_reached_is_delivered_again(logs: _Logs) -> None:
    log = logs.new()
    _append_one(log)
    warnings: list[str] = []
    feed = log.feed("pg:999999999999:1", warn=warnings.append)
    assert [i.event.seq for i in feed.read()] == [1]
    assert len(warnings) == 1 and "again from the beginning" in warnings[0]
    feed.close()


# ── consumers ───────────────────────────────────────────────────────────────


def test_checkpoints_are_rows_and_the_claim_is_exclusive(logs: _Logs) -> None:
    log, other = logs.new(), logs.new()
    assert log.load_checkpoint("boards") is None and log.consumers() == []
    log.save_checkpoint("boards", b"one")
    other.save_checkpoint("boards", b"two", durable=False)
    assert log.load_checkpoint("boards") == b"two" and log.consumers() == ["boards"]
    with log.claim("boards"):
        with pytest.raises(ConsumerBusy) as info, other.claim("boards"):
            pass
        import os

        assert info.value.holder is not None and info.value.holder["pid"] == os.getpid()
        with other.claim("renders"):
            pass
    with other.claim("boards"):
        pass
    assert log.delete_checkpoint("boards") and not log.delete_checkpoint("boards")


_CLAIMER = """
import sys, time
from eventstore.pglog import open_pg
with open_pg(sys.argv[1], "show").claim("boards"):
    print("held", flush=True)
    sys.stdin.readline()
"""


def test_claim_dies_with_the_process(logs: _Logs) -> None:
    import subprocess
    import sys

    from tests.helpers import REPO, child_env

    child = subprocess.Popen(
        [sys.executable, "-c", _CLAIMER, logs.url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=str(REPO),
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        log = logs.new()
        with pytest.raises(ConsumerBusy) as info, log.claim("boards"):
            pass
        assert info.value.holder is not None and info.value.holder["pid"] == child.pid
        child.kill()
        child.wait(DEADLINE)
        import time

        deadline = time.monotonic() + DEADLINE
        while True:  # the server notices the closed socket at once; allow for its reaping
            try:
                with log.claim("boards"):
                    break
            except ConsumerBusy:
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_discovery_lists_projects_episodes_and_batches(logs: _Logs) -> None:
    log = logs.new()
    assert not log.project_exists() and log.episodes() == []
    _append_one(log)
    with log.session("ep_002_BATCH_001") as session:
        session.append([appended(1, "ep_002_BATCH_001")])
    assert log.project_exists() and log.episodes() == ["ep_001", "ep_002"]
    assert log.batches("ep_001") == [BATCH]
    assert not logs.new("other_show").project_exists()


def test_run_child_sees_the_same_database(logs: _Logs) -> None:
    _append_one(logs.new())
    done = run_child(
        """
        import sys
        from eventstore.pglog import open_pg
        print(open_pg(sys.argv[1], "show").last_seq("ep_001_BATCH_003"))
        """,
        logs.url,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"


def test_feed_opened_now_during_a_command_delivers_it_and_nothing_older(logs: _Logs) -> None:
    log = logs.new()
    _append_one(log)
    with log.session(OTHER) as in_flight:
        in_flight.write_body(f"{OTHER}.v001.json", b"{}")  # holds an xid from here on
        with log.session(BATCH) as session:
            session.append([appended(2)])  # committed before the feed opens
        feed = logs.new().feed(None, start="now")
        assert ":s" in feed.position  # the snapshot travels in the position
        in_flight.append([appended(1, OTHER)])
    try:
        assert [(i.batch_id, i.event.seq) for i in feed.read()] == [(OTHER, 1)]
        with log.session(BATCH) as session:
            session.append([derived(2)])
        assert [(i.batch_id, i.event.seq) for i in feed.read()] == [(BATCH, 3)]
        assert ":s" not in feed.position  # every transaction in flight has ended
        assert feed.lag() == 0
    finally:
        feed.close()


_FEED_WRITER = """
import sys
from eventstore.pglog import open_pg
from tests.log_contract import appended
url, batch, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
log = open_pg(url, "show")
for i in range(count):
    with log.session(batch) as session:
        top = session.fold.max_version
        if i % 5 == 4:  # a command of two events now and then: delivered whole
            session.append([appended(top + 1, batch), appended(top + 2, batch)])
        else:
            session.append([appended(top + 1, batch)])
print("ok")
"""


def test_gap_four_writer_processes_over_tcp_while_a_feed_follows_miss_nothing(
    pg_server: PgServer,
    logs: _Logs,
) -> None:
    import subprocess
    import sys
    import time

    from tests.helpers import REPO, child_env

    tcp = pg_server.over_tcp(logs.url)
    batches = [f"ep_001_BATCH_{n:03d}" for n in range(1, 5)]
    commands = 60
    per_batch_events = commands + commands // 5
    feed = logs.new().feed(None, start="now")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _FEED_WRITER, tcp, batch, str(commands)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
            cwd=str(REPO),
        )
        for batch in batches
    ]
    seen: dict[str, list[int]] = {b: [] for b in batches}
    try:
        deadline = time.monotonic() + DEADLINE
        total = per_batch_events * len(batches)
        count = 0
        while count < total and time.monotonic() < deadline:
            for item in feed.read():
                seen[item.batch_id].append(item.event.seq)
                count += 1
            if count < total:
                feed.wait(1.0)
        for p in procs:
            _out, err = p.communicate(timeout=DEADLINE)
            assert p.returncode == 0, err
        for item in feed.read():  # nothing more may come
            seen[item.batch_id].append(item.event.seq)
    finally:
        feed.close()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for batch in batches:
        assert seen[batch] == list(range(1, per_batch_events + 1)), batch  # in order, no gap


# ── through the store and the CLI ───────────────────────────────────────────


def test_store_projection_and_cli_on_a_postgresql_root(pg_url: str, tmp_path: Path) -> None:
    from eventstore import SceneVersionStore
    from projections import Projection
    from tests.helpers import scene, scenelog

    store = SceneVersionStore("show", 1, root=pg_url)
    assert store.write_scene_candidate(BATCH, scene()) == 1
    assert store.write_scene_candidate(BATCH, scene(tag="b")) == 2
    assert store.conform(BATCH, 2).active_version == 2  # the fold the command holds moved on
    assert store.mark_derived(BATCH, 2) is not None
    assert store.revert(BATCH, 1).active_version == 1
    view = Projection("show", root=pg_url)
    assert view.require(BATCH).seq == 5 and view.is_fresh(BATCH)
    assert [e.type for e in store.log.read(BATCH)] == [
        "appended",
        "appended",
        "conformed",
        "derived",
        "reverted",
    ]
    shown = scenelog(pg_url, "show", BATCH)
    assert shown.returncode == 0 and "active v1" in shown.stdout, shown.stderr
    checked = scenelog(pg_url, "verify")
    assert checked.returncode == 0 and "clean" in checked.stderr + checked.stdout


def test_cli_says_to_run_db_init_and_never_shows_a_password(
    pg_server: PgServer,
    pg_empty_url: str,
) -> None:
    from tests.helpers import scenelog

    empty = scenelog(pg_empty_url, "show", BATCH)
    assert empty.returncode == 2
    assert empty.stderr.count("\n") == 1 and "scenelog db init" in empty.stderr
    wrong = pg_server.over_tcp(pg_empty_url).replace("postgres@", "postgres:s3cr3t-pw@", 1)
    wrong = wrong.replace("/scenelog_tests?", "/no_such_db?", 1)
    unreachable = scenelog(wrong, "show", BATCH)
    assert unreachable.returncode == 4, unreachable.stderr
    assert unreachable.stderr.count("\n") == 1 and "cannot reach the database" in unreachable.stderr
    assert "s3cr3t" not in unreachable.stderr + unreachable.stdout


def test_a_forked_child_makes_its_own_pool_and_leaves_the_parents_alone(logs: _Logs) -> None:
    import gc
    import os

    log = logs.new()
    _append_one(log)
    assert log.last_seq(BATCH) == 1  # the parent's pool is open and used
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        code = 1
        try:
            with log.session(BATCH) as session:
                session.append([derived(1)])
            gc.collect()  # an inherited pool, if dropped, would end the parent's connections
            os.write(write_end, str(log.last_seq(BATCH)).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    assert os.read(read_end, 100) == b"2" and status == 0
    os.close(read_end)
    assert log.last_seq(BATCH) == 2  # the parent's pooled connections still work
    with log.session(BATCH) as session:
        assert session.fold.seq == 2


_ACKING_WRITER = """
import sys
from eventstore.pglog import open_pg
from tests.log_contract import appended
url, batch = sys.argv[1], sys.argv[2]
log = open_pg(url, "show")
while True:
    with log.session(batch) as session:
        top = session.fold.max_version
        done = session.append([appended(top + 1, batch), appended(top + 2, batch)])
    print(done[0].event_id, done[1].event_id, flush=True)  # acknowledged
"""


def _acks(line: str) -> list[str]:
    """The two event ids of a whole acknowledgement line; none from a line cut by the kill."""
    ids = line.split()
    whole = line.endswith("\n") and len(ids) == 2 and all(len(i) == 32 for i in ids)
    return ids if whole else []


def test_killed_writers_lose_no_acknowledged_command_and_the_chain_verifies(
    pg_server: PgServer,
    logs: _Logs,
) -> None:
    import signal
    import subprocess
    import sys

    from tests.helpers import REPO, child_env

    tcp = pg_server.over_tcp(logs.url)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _ACKING_WRITER, tcp, batch],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=child_env(),
            cwd=str(REPO),
        )
        for batch in (BATCH, BATCH, BATCH, OTHER)
    ]
    acknowledged: list[str] = []
    try:
        for round_ in range(3):
            for p in procs:  # let each write a few commands, then kill one mid-stream
                assert p.stdout is not None
                for _ in range(5):
                    acknowledged.extend(_acks(p.stdout.readline()))
            procs[round_].send_signal(signal.SIGKILL)
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            out, _err = p.communicate(timeout=DEADLINE)
            for line in out.splitlines(keepends=True):
                acknowledged.extend(_acks(line))  # printed before the kill: acknowledged too
    assert len(acknowledged) >= 2 * 5 * 4
    log = logs.new()
    stored: set[str] = set()
    for batch in (BATCH, OTHER):
        events = log.read(batch)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert len(events) % 2 == 0  # commands of two events: whole or not at all (R24)
        stored.update(e.event_id for e in events)
        with log.session(batch) as session:  # a writer's catch-up checks the whole chain
            assert session.fold.seq == len(events)
    assert set(acknowledged) <= stored
