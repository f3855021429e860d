"""Shared test helpers: scenes, disk snapshots, child processes under a deadline."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from eventstore import Scene

REPO = Path(__file__).resolve().parent.parent
DEADLINE = 60.0


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
