"""``scenelog db init`` as a user runs it (issue 12 item 2).

Idempotent, versioned, one transaction; concurrent runs serialize; any other
command on a database without the schema says to run it; a folder root is
bad input; an unreachable server is exit 4 with no password shown.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from eventstore.pglog.schema import SCHEMA_VERSION
from tests.helpers import BATCH, DEADLINE, REPO, child_env, scene, scenelog
from tests.pgserver import pg_empty_url, pg_server  # noqa: F401


def test_item2_db_init_creates_the_schema_then_has_nothing_to_do(
    tmp_path: Path,
    pg_empty_url: str,  # noqa: F811
) -> None:
    first = scenelog(pg_empty_url, "db", "init")
    assert first.returncode == 0, first.stderr
    assert first.stderr.count("\n") == 1
    assert f"created scenelog schema version {SCHEMA_VERSION}" in first.stderr
    second = scenelog("/nonexistent", "db", "init", pg_empty_url)
    assert second.returncode == 0, second.stderr
    assert second.stderr == (
        f"the database at {pg_empty_url} has scenelog schema version {SCHEMA_VERSION}: "
        "nothing to do\n"
    )
    with psycopg.connect(pg_empty_url) as conn:
        rows = conn.execute("SELECT version FROM scenelog_schema").fetchall()
    assert rows == [(SCHEMA_VERSION,)]
    body = tmp_path / "scene.json"
    body.write_bytes(scene().to_json())
    added = scenelog(pg_empty_url, "add", BATCH, str(body))
    assert (added.returncode, added.stdout) == (0, "1\n"), added.stderr


def test_item2_concurrent_db_inits_serialize(pg_empty_url: str) -> None:  # noqa: F811
    env = child_env(SCENELOG_ROOT=pg_empty_url, SCENELOG_PROJECT="show")
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "projections", "db", "init"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=str(REPO),
        )
        for _ in range(3)
    ]
    results = [run.communicate(timeout=DEADLINE) for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], results
    said = sorted("created" in err for _, err in results)
    assert said == [False, False, True], results


def test_item2_a_command_on_a_database_without_the_schema_says_to_run_db_init(
    pg_empty_url: str,  # noqa: F811
) -> None:
    done = scenelog(pg_empty_url, "show", "ep_001_BATCH_003")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "run `scenelog db init" in done.stderr


def test_item2_db_init_refuses_a_folder_root(tmp_path: Path) -> None:
    done = scenelog(tmp_path, "db", "init")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "needs a postgresql:// root" in done.stderr


@pytest.mark.parametrize("how", ["userinfo", "parameter"])
def test_item2_db_init_on_an_unreachable_server_is_exit_4_without_the_password(
    tmp_path: Path, how: str
) -> None:
    url = (
        "postgresql://scenelog:s3cr3t-pw@127.0.0.1:1/show"
        if how == "userinfo"
        else "postgresql://scenelog@127.0.0.1:1/show?password=s3cr3t-pw"
    )
    done = scenelog(tmp_path, "db", "init", url)
    assert done.returncode == 4, done.stderr
    assert done.stderr.count("\n") == 1 and "cannot reach the database" in done.stderr
    assert "s3cr3t-pw" not in done.stderr and "***" in done.stderr
