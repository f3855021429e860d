"""Shared test helpers: scenes, disk snapshots, child processes under a deadline, the CLI.

The one copy of each: ``BATCH`` (the batch most tests use), ``scene``,
``snapshot``, ``run_child`` (Python code in a fresh interpreter),
``scenelog`` (the command as a user runs it, in a real process) and ``call``
(the command in this process, for the many quick happy-path checks).
"""

from __future__ import annotations

import hashlib
import io
import os
import resource
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eventstore import Scene

REPO = Path(__file__).resolve().parent.parent
DEADLINE = 60.0
BATCH = "ep_001_BATCH_003"
"""The batch most tests use (episode 1)."""


def scene(batch_id: str = "ep_001_BATCH_003", shots: int = 3, tag: str = "", **extra: Any) -> Scene:
    beats = [
        {"shot_id": f"sh{i:03d}", "raw": {"description": f"shot {i}{tag}"}} for i in range(shots)
    ]
    return Scene({"scene_id": batch_id, "beats": beats, **extra})


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` with a digest of its bytes."""
    found: dict[str, str] = {}
    if not root.exists():
        return found
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            found[os.path.relpath(os.path.join(dirpath, name), root) + "/"] = "dir"
        for name in filenames:
            path = os.path.join(dirpath, name)
            found[os.path.relpath(path, root)] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return found


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def run_child(
    code: str, *args: str, timeout: float = DEADLINE, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter; ``sys.argv[1:]`` are ``args``."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(**env),
        cwd=str(REPO),
    )


def scenelog(
    root: Path | str,
    *args: str | bytes,
    stdin: str | None = None,
    env: Mapping[str, str | bytes] | None = None,
    timeout: float = DEADLINE,
    memory_limit: int | None = None,
    cwd: Path | str = REPO,
    **variables: str,
) -> subprocess.CompletedProcess[str]:
    """``scenelog ARGS`` as a user runs it: a real process, project ``show``, store in ``root``.

    ``SCENELOG_ACTOR`` is ``cli@test`` unless ``env`` or ``variables`` (more
    environment variables) say otherwise; bytes in ``args`` and ``env`` reach
    the process as they are (argv and environment bytes that are not UTF-8).
    ``memory_limit`` caps the process's address space, in bytes; ``cwd`` is
    where it runs (the repository unless given).
    """
    environment: dict[str, str | bytes] = {
        **child_env(SCENELOG_ROOT=os.fspath(root), SCENELOG_PROJECT="show"),
        "SCENELOG_ACTOR": "cli@test",
        **variables,
        **(env or {}),
    }

    def limit_memory() -> None:
        if memory_limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    return subprocess.run(
        [sys.executable, "-m", "projections", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
        cwd=cwd,
        preexec_fn=None if memory_limit is None else limit_memory,
    )


def call(root: Path | str, *args: str) -> tuple[int, str, str]:
    """``scenelog ARGS`` in this process (fast): exit code, stdout, stderr.

    The environment is that of :func:`scenelog`, restored afterwards.
    """
    from projections.cli import cli

    out, err = io.StringIO(), io.StringIO()
    old = dict(os.environ)
    os.environ.update(
        SCENELOG_ROOT=os.fspath(root), SCENELOG_PROJECT="show", SCENELOG_ACTOR="cli@test"
    )
    try:
        code = cli(*args, out=out, err=err)
    finally:
        os.environ.clear()
        os.environ.update(old)
    return code, out.getvalue(), err.getvalue()
