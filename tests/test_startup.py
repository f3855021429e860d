"""Issue 15 item 1: each subcommand imports only what it uses (not timed).

A ``scenelog gate`` (and the other reads) runs in a fresh interpreter and
reports ``sys.modules``: no watchfiles, no fasteners (a read takes no lock),
no importer and no diff module. A write loads the lock, and ``diff`` loads the
diff module, so the check can tell the difference.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from eventstore import SceneVersionStore
from tests.helpers import BATCH, DEADLINE, child_env, run_child, scene

MODULES = """
import io, json, sys
from projections.cli import cli
out, err = io.StringIO(), io.StringIO()
code = cli(*sys.argv[1:], out=out, err=err)
print(json.dumps({"code": code, "err": err.getvalue(), "modules": sorted(sys.modules)}))
"""

HEAVY = ("watchfiles", "fasteners", "eventstore.importer", "eventstore.adopt", "projections.diff")


def _loaded(root: Path, *argv: str) -> tuple[int, set[str]]:
    done = run_child(MODULES, "--root", str(root), "--project", "show", *argv)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    return result["code"], set(result["modules"])


@pytest.fixture
def two_versions(root: Path) -> Path:
    store = SceneVersionStore("show", 1, root=root)
    store.write_scene_candidate(BATCH, scene(tag="a"))
    store.write_scene_candidate(BATCH, scene(tag="b"))
    return root


def test_item1_gate_imports_no_watchfiles_fasteners_importer_or_diff(two_versions: Path) -> None:
    code, modules = _loaded(two_versions, "gate", BATCH)
    assert code in (0, 1)
    assert "projections.projection" in modules  # the check sees a real run
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))


@pytest.mark.parametrize("argv", [("show", BATCH), ("ls",), ("history", BATCH)])
def test_item1_reads_take_no_lock_module(two_versions: Path, argv: tuple[str, ...]) -> None:
    code, modules = _loaded(two_versions, *argv)
    assert code == 0
    assert not modules & {"fasteners", "watchfiles", "eventstore.importer"}


def test_item1_a_write_and_a_diff_load_what_they_use(two_versions: Path) -> None:
    code, modules = _loaded(two_versions, "conform", BATCH, "2")
    assert code == 0 and "fasteners" in modules and "projections.diff" not in modules
    code, modules = _loaded(two_versions, "diff", BATCH, "1", "2")
    assert code == 0 and "projections.diff" in modules and "fasteners" not in modules


# ── the end of a command: no interpreter teardown, nothing lost ─────────────

ENTRY = """
import atexit, sys
atexit.register(lambda: print("exit handler ran", flush=True))
from projections.cli import main
main(sys.argv[1:])
"""


def test_item1_a_command_process_runs_exit_handlers_and_keeps_its_exit_code(
    two_versions: Path,
) -> None:
    # main() ends the process without the interpreter's teardown (~9 ms, row
    # 12); what an ordinary exit gives must still happen: exit handlers, the
    # exit code, every byte of output.
    base = ("--root", str(two_versions), "--project", "show")
    SceneVersionStore("show", 1, root=two_versions).conform(BATCH, 2)
    stale = run_child(ENTRY, *base, "gate", BATCH)
    assert stale.returncode == 1, stale.stderr  # v2 active, its boards not rebuilt
    assert stale.stdout.endswith("exit handler ran\n") and "blocked" in stale.stdout
    missing = run_child(ENTRY, *base, "gate", "ep_009_BATCH_009")
    assert missing.returncode == 2 and missing.stderr.startswith("scenelog: error:")


def test_item1_output_larger_than_a_pipe_arrives_whole(root: Path) -> None:
    store = SceneVersionStore("show", 1, root=root)
    store.write_scene_candidate(BATCH, scene(tag="a"))
    store.write_scene_candidate(BATCH, scene(tag="b"))
    for i in range(400):
        store.conform(BATCH, 2 - i % 2)
    done = run_child(ENTRY, "--root", str(root), "--project", "show", "history", BATCH, "--json")
    assert done.returncode == 0, done.stderr
    body, handler = done.stdout.rsplit("\n", 2)[0], done.stdout.rsplit("\n", 2)[1]
    assert len(body) > 65536 and handler == "exit handler ran"
    assert [e["seq"] for e in json.loads(body)] == list(range(1, 403))


def test_item1_a_command_with_other_threads_alive_exits_the_ordinary_way(
    two_versions: Path,
) -> None:
    # A thread the command left running (a connection pool's, a server's)
    # gets the ordinary exit, which waits for non-daemon threads to finish.
    code = """
    import sys, threading, time
    from projections.cli import main
    def late() -> None:
        time.sleep(0.2)
        print("thread finished", flush=True)
    threading.Thread(target=late).start()
    main(sys.argv[1:])
    """
    done = run_child(code, "--root", str(two_versions), "--project", "show", "show", BATCH)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("thread finished\n")


def test_item1_the_default_actor_is_what_getpass_and_socket_say() -> None:
    # The writer names its actor without importing getpass and socket (~2 ms);
    # the answer must stay the same, with and without the user variables.
    code = """
    import getpass, os, socket, sys
    from eventstore.events import default_actor
    print(default_actor(None) == f"{getpass.getuser()}@{socket.gethostname()}")
    """
    assert run_child(code, SCENELOG_ACTOR="").stdout == "True\n"
    no_user = run_child(code, SCENELOG_ACTOR="", LOGNAME="", USER="", LNAME="", USERNAME="")
    assert no_user.stdout == "True\n"


def test_item1_a_closed_stderr_or_a_full_stdout_keeps_the_exit_code_meaningful(
    two_versions: Path,
) -> None:
    # `cmd 2>&-` in a farm wrapper: the command's answer is still its exit code.
    env = child_env()
    base = [sys.executable, "-c", ENTRY, "--root", str(two_versions), "--project", "show"]
    closed = subprocess.run(
        ["bash", "-c", 'exec 2>&- && exec "$@"', "bash", *base, "ls", "ep_001"],
        capture_output=False,
        stdout=subprocess.DEVNULL,
        env=env,
        timeout=DEADLINE,
    )
    assert closed.returncode == 0
    # Its error lines go nowhere then, never into the data on stdout.
    refused = subprocess.run(
        ["bash", "-c", 'exec 2>&- && exec "$@"', "bash", *base, "show", "nosuch", "--json"],
        capture_output=False,
        stdout=subprocess.PIPE,
        env=env,
        timeout=DEADLINE,
    )
    assert refused.returncode == 2 and refused.stdout == b"exit handler ran\n"  # ENTRY's own
    # A closed stdout is refused before anything runs: the output would be lost.
    no_stdout = subprocess.run(
        ["bash", "-c", 'exec >&- && exec "$@"', "bash", *base, "ls"],
        capture_output=False,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        timeout=DEADLINE,
    )
    assert no_stdout.returncode == 2
    assert no_stdout.stderr.startswith("scenelog: error: standard output is closed")
    # A redirected stdout on a full disk (buffered, as outside this test run):
    # one line saying so and exit 4, not a traceback or Python's exit code 120.
    env.pop("PYTHONUNBUFFERED", None)
    with open("/dev/full", "wb") as full:
        done = subprocess.run(
            [*base, "history", BATCH],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=DEADLINE,
        )
    assert done.returncode == 4, done.stderr
    lines = [line for line in done.stderr.splitlines() if line != "exit handler ran"]
    assert lines == ["scenelog: error: writing the output failed: No space left on device"]
    # --help too (argparse ends it with SystemExit, which goes the same way).
    with open("/dev/full", "wb") as full:
        helped = subprocess.run(
            [*base, "--help"], stdout=full, stderr=subprocess.PIPE, text=True, env=env,
            timeout=DEADLINE,
        )  # fmt: skip
    assert helped.returncode == 4, helped.stderr
    assert "Exception ignored" not in helped.stderr
