"""Row 12: what a farm job pays for a whole ``scenelog`` process.

Invariants: every sample is a whole process (``scenelog`` as installed, else
``python -m projections``) started and waited for, against a whole
``python -c "import msgspec"`` (the interpreter and the one library every
command needs); the command and the baseline alternate in every round, the
order flipping each round; ``add`` registers a new body each time (from stdin),
so every sample appends. The packages are byte-compiled before any row runs
(``benchmarks.cli.main``), as ``pip install`` leaves them.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from eventstore import SceneVersionStore

from .fixtures import REPO, scene
from .report import Row
from .timing import us

PROJECT = "bench_start"
BATCH = "ep_001_BATCH_001"
SAMPLES = 8  # processes of each kind per round (whole processes swing: many samples)


def _scenelog() -> list[str]:
    script = Path(sys.executable).with_name("scenelog")
    return [str(script)] if script.exists() else [sys.executable, "-m", "projections"]


def _env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        SCENELOG_ROOT=str(root),
        SCENELOG_PROJECT=PROJECT,
        SCENELOG_ACTOR="bench@farm",
        PYTHONPATH=str(REPO),
    )
    return env


def _run(argv: list[str], env: dict[str, str], stdin: bytes | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, input=stdin, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{argv}: exit {done.returncode}: {done.stderr.decode()[-300:]}")
    return elapsed


def row_startup(root: Path, rounds: int) -> list[Row]:
    """Rows 12a-12c: ``gate``, ``show`` and ``add`` as whole processes vs importing msgspec."""
    store = SceneVersionStore(PROJECT, 1, root=root)
    store.write_scene_candidate(BATCH, scene(BATCH, 12))
    store.write_scene_candidate(BATCH, scene(BATCH, 13))
    env = _env(root)
    base_argv = [sys.executable, "-c", "import msgspec"]
    cmd = _scenelog()
    counter = [0]

    def add_body() -> bytes:
        counter[0] += 1
        return scene(BATCH, 12, f"start{counter[0]}").to_json()

    commands: dict[str, Callable[[], float]] = {
        "gate": lambda: _run([*cmd, "gate", BATCH], env),
        "show": lambda: _run([*cmd, "show", BATCH], env),
        "add": lambda: _run([*cmd, "add", BATCH, "-"], env, add_body()),
    }
    _run(base_argv, env)  # warm the page cache for both sides
    for run in commands.values():
        run()
    ours: dict[str, list[float]] = {name: [] for name in commands}
    base: list[float] = []
    for r in range(rounds * SAMPLES):
        for name, run in commands.items():
            if r % 2:
                base.append(_run(base_argv, env))
                ours[name].append(run())
            else:
                ours[name].append(run())
                base.append(_run(base_argv, env))
    b = statistics.median(base)
    rows: list[Row] = []
    for name, letter in zip(commands, "abc", strict=True):
        a = statistics.median(ours[name])
        rows.append(
            {
                "row": f"12{letter}. start-up: `scenelog {name}` as a whole process",
                "ours": us(a),
                "base": us(b),
                "base_what": 'python -c "import msgspec", interleaved',
                "ratio": a / b,
                "target": "≤ 1.5×",
                "ok": a / b <= 1.5,
            }
        )
    return rows
