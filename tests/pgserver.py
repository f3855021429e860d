"""A throwaway PostgreSQL server for the tests of the PostgreSQL backend.

``pg_server`` (session-scoped) starts a cluster of the machine's PostgreSQL:
``initdb`` and ``pg_ctl`` of the newest ``/usr/lib/postgresql/*/bin`` run
through ``runuser -u postgres --`` (initdb refuses root) on a data folder in
a temp folder chowned to postgres. It listens on a unix socket in that folder
and on 127.0.0.1 with a free port (tests whose writers are separate processes
reach it over TCP), with ``fsync=off``; it is stopped with
``pg_ctl -m immediate stop`` and its folder removed at the end. When
``$SCENELOG_TEST_PG`` is set (a ``postgresql://`` URL of a role that may
create databases), that server is used instead and nothing is started.
Without server binaries, the tests that need one are skipped with the reason.

``pg_url`` (per test) is a fresh store: a schema of its own in one tests
database, named by the URL's ``search_path`` (``options=-csearch_path=…``),
so tests never see each other's events: the URL is a root
(``SceneVersionStore(..., root=pg_url)``); ``pg_server.over_tcp(url)`` is
the same store over TCP. ``pg_empty_url`` is a store without the scenelog
tables. ``pg_server.new_database()`` makes a whole database (from a template
with the schema) for tests that need one.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

__all__ = ["PgServer", "database_url", "pg_empty_url", "pg_server", "pg_url", "server_binaries"]

_TEMPLATE = "scenelog_template"
_TESTS_DB = "scenelog_tests"
_START_DEADLINE = 30.0
_counter = itertools.count(1)


def server_binaries() -> str | None:
    """The bin folder of the newest PostgreSQL installed, or None."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not found:
        return None
    found.sort(key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return os.path.dirname(found[-1])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def database_url(base: str, dbname: str) -> str:
    """``base`` (a postgresql:// URL) naming database ``dbname`` instead."""
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(dbname), parts.query, ""))


@dataclass
class PgServer:
    """A running server: URLs over the unix socket and over TCP, both as superuser."""

    url: str
    """postgresql:// URL of the maintenance database, over the unix socket when started here."""
    tcp_url: str
    """The same over TCP on 127.0.0.1 (equal to ``url`` for ``$SCENELOG_TEST_PG``)."""

    _tcp: dict[str, str] = field(default_factory=dict)

    def admin(self, sql: str, *, dbname: str | None = None) -> None:
        """Run one statement in the maintenance database (or ``dbname``), autocommit."""
        import psycopg

        url = self.url if dbname is None else self.url_of(dbname)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.encode())

    def new_database(self, *, schema: bool = True) -> str:
        """Create a fresh database (with the scenelog schema or without) and return its name."""
        name = f"t{os.getpid()}_{next(_counter)}"
        template = _TEMPLATE if schema else "template0"
        self.admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return name

    def url_of(self, dbname: str, *, tcp: bool = False) -> str:
        return database_url(self.tcp_url if tcp else self.url, dbname)

    def new_store(self, *, schema: bool = True) -> str:
        """A fresh store as a root URL: a schema of its own in the tests' database.

        The URL sets ``search_path`` (``options=-csearch_path=NAME``), so the
        store's tables live in that schema; with ``schema=False`` the schema
        is empty (no scenelog tables). Much faster than a database per test.
        """
        name = f"t{os.getpid()}_{next(_counter)}"
        self.admin(f'CREATE SCHEMA "{name}"', dbname=_TESTS_DB)
        url = _with_search_path(self.url_of(_TESTS_DB), name)
        self._tcp[url] = _with_search_path(self.url_of(_TESTS_DB, tcp=True), name)
        if schema:
            from eventstore.pglog.schema import init_schema

            init_schema(url)
        return url

    def over_tcp(self, url: str) -> str:
        """The root URL of a store made by :meth:`new_store`, over TCP on 127.0.0.1."""
        return self._tcp[url]

    def reset_store(self, url: str) -> None:
        """Drop the store's tables and make them again, empty (a restore of an empty backup)."""
        from eventstore.pglog.schema import init_schema

        self.drop_store(url)
        name = url.rsplit("%3D", 1)[1]
        self.admin(f'CREATE SCHEMA "{name}"', dbname=_TESTS_DB)
        init_schema(url)

    def drop_store(self, url: str) -> None:
        name = url.rsplit("%3D", 1)[1]
        self.admin(f'DROP SCHEMA IF EXISTS "{name}" CASCADE', dbname=_TESTS_DB)


def _with_search_path(url: str, schema: str) -> str:
    return url + ("&" if "?" in url else "?") + "options=-csearch_path%3D" + schema


def _run_as_postgres(*args: str, timeout: float = _START_DEADLINE) -> None:
    done = subprocess.run(
        ["runuser", "-u", "postgres", "--", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()}")


def _wait_ready(url: str) -> None:
    import psycopg

    deadline = time.monotonic() + _START_DEADLINE
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # the server is starting: nothing to be woken by


@contextlib.contextmanager
def _throwaway_cluster(bindir: str) -> Iterator[PgServer]:
    import pwd

    if os.geteuid() != 0:
        pytest.skip("starting a throwaway PostgreSQL needs root (runuser -u postgres)")
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres system user to run the throwaway server")
    folder = tempfile.mkdtemp(prefix="scenelog-pg-")
    os.chmod(folder, 0o755)
    data = os.path.join(folder, "data")
    os.mkdir(data, 0o700)
    for path in (folder, data):
        os.chown(path, pw.pw_uid, pw.pw_gid)
    port = _free_port()
    started = False
    try:
        _run_as_postgres(
            os.path.join(bindir, "initdb"),
            "--no-sync",
            "--auth=trust",
            "--username=postgres",
            "--encoding=UTF8",
            "--locale=C",
            "-D",
            data,
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={port} "
            f"-c unix_socket_directories={folder} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        _run_as_postgres(
            os.path.join(bindir, "pg_ctl"),
            "-D",
            data,
            "-l",
            os.path.join(folder, "server.log"),
            "-o",
            options,
            "-w",
            "start",
        )
        started = True
        url = f"postgresql://postgres@/postgres?host={quote(folder)}&port={port}"
        tcp_url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        _wait_ready(url)
        yield PgServer(url, tcp_url)
    finally:
        if started:
            with contextlib.suppress(Exception):
                _run_as_postgres(
                    os.path.join(bindir, "pg_ctl"), "-D", data, "-m", "immediate", "stop"
                )
        shutil.rmtree(folder, ignore_errors=True)


def _make_template(server: PgServer) -> None:
    from eventstore.pglog.schema import init_schema

    server.admin(f'DROP DATABASE IF EXISTS "{_TEMPLATE}"')
    server.admin(f'CREATE DATABASE "{_TEMPLATE}" TEMPLATE template0')
    init_schema(server.url_of(_TEMPLATE))
    server.admin(f'DROP DATABASE IF EXISTS "{_TESTS_DB}" WITH (FORCE)')
    server.admin(f'CREATE DATABASE "{_TESTS_DB}" TEMPLATE template0')


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The PostgreSQL server of this test session (started here, or ``$SCENELOG_TEST_PG``)."""
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[postgres]')")
    given = os.environ.get("SCENELOG_TEST_PG")
    if given:
        server = PgServer(given, given)
        _make_template(server)
        yield server
        return
    bindir = server_binaries()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb)")
    with _throwaway_cluster(bindir) as server:
        _make_template(server)
        yield server


def _fresh(server: PgServer, *, schema: bool) -> Iterator[str]:
    url = server.new_store(schema=schema)
    yield url
    if os.environ.get("SCENELOG_TEST_PG"):  # a throwaway cluster goes away whole
        with contextlib.suppress(Exception):
            server.drop_store(url)


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh store with the scenelog schema, as a root URL (unix socket)."""
    yield from _fresh(pg_server, schema=True)


@pytest.fixture
def pg_empty_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh store without the scenelog schema."""
    yield from _fresh(pg_server, schema=False)
