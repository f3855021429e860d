"""pglog: the connections one process keeps open are bounded, whatever the number of roots.

Every ``postgresql://`` root has its own pool (a different database, user or
``search_path``), and each pool keeps at least one connection. A process that
reads many roots (a test session, ``scenelog copy`` between databases, a
service) must not hold one connection per root it ever opened: the server's
``max_connections`` would refuse everyone else ("too many clients").
"""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("psycopg")

import psycopg

from eventstore import SceneVersionStore
from eventstore.pglog import core as pg_core
from projections import Projection
from tests.helpers import BATCH, scene
from tests.pgserver import PgServer

ROOTS = 24
BOUND = 2 * pg_core._OPEN_POOLS  # a command uses up to two connections of its root's pool


def _connections_of_this_process(server: PgServer) -> int:
    """The server's backends whose application name is this process's pools'."""
    name = pg_core._application_name()
    with psycopg.connect(server.url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_issue11_item5_many_roots_keep_a_bounded_number_of_connections(pg_server: PgServer) -> None:
    roots = [pg_server.new_store() for _ in range(ROOTS)]
    for root in roots:
        SceneVersionStore("show", 1, root=root).write_scene_candidate(BATCH, scene())
    held = _connections_of_this_process(pg_server)
    assert held <= BOUND < ROOTS, f"{held} connections held open for {ROOTS} roots"
    # Every root still answers, the first ones (whose pools went) included.
    for root in roots:
        assert Projection("show", root=root).require(BATCH).seq == 1
        SceneVersionStore("show", 1, root=root).conform(BATCH, 1)  # a no-op command
    assert _connections_of_this_process(pg_server) <= BOUND


def test_issue11_item5_pools_closed_while_threads_use_them_lose_no_command(
    pg_server: PgServer,
) -> None:
    """Pools closed to stay in bounds while other threads use them: no command fails."""
    roots = [pg_server.new_store() for _ in range(ROOTS)]
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(3):
                root = roots[(n * 5 + i * 7) % ROOTS]
                store = SceneVersionStore("show", 1, root=root)
                store.write_scene_candidate(BATCH, scene(shots=2, tag=f"{n}-{i}"))
                assert Projection("show", root=root).require(BATCH).seq >= 1
        except BaseException as e:  # pragma: no cover - asserted below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    total = sum(len(Projection("show", root=r).history(BATCH)) for r in roots)
    assert total == 8 * 3
