"""The command line of ``scripts/bench.py``: flags, the run loop, the exit code.

Flags: ``--rounds N`` (default 9: the rows swing less than with the earlier 5),
``--dir PATH`` (build the stores there and keep them; default a temp folder that
is removed at the end), ``--no-write``, ``--only a,b`` (implies ``--no-write``),
and the hidden ``--worker SPEC`` that runs one contending process of rows 3.
Invariants: progress goes to stderr (``bench: NAME…`` / ``bench: NAME done in
Ns``), the table alone to stdout; docs/PERFORMANCE.md is written only by a run
of every step; the exit code is 0 when every row passes, 1 when one misses.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .contention import worker
from .fixtures import REPO
from .report import table, write_performance
from .steps import STEPS, RunContext, select

DESCRIPTION = (
    "scenelog benchmark: every row a ratio against what it stands on, measured side by side."
)


def parser() -> argparse.ArgumentParser:
    """The argument parser of ``scripts/bench.py``."""
    p = argparse.ArgumentParser(description=DESCRIPTION)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--rounds", type=int, default=9, help="rounds per row (default 9)")
    p.add_argument("--dir", help="folder to build the stores in (default: a temp folder)")
    p.add_argument("--no-write", action="store_true", help="do not write docs/PERFORMANCE.md")
    p.add_argument(
        "--only", help="comma-separated step names, e.g. single,episode (implies --no-write)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the selected steps, print the table, maybe write docs/PERFORMANCE.md."""
    args = parser().parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    # Byte-compile the packages first, as `pip install` leaves them: a stale or
    # missing .pyc (an editable install under PYTHONDONTWRITEBYTECODE) would
    # make every row that starts a process time the compiler.
    for package in ("eventstore", "projections"):
        compileall.compile_dir(str(REPO / package), quiet=1)
    # And start from a quiet disk: what earlier work left dirty (a previous run's
    # 100k-event logs being deleted) is written back now, not during row 1.
    os.sync()
    root = Path(args.dir or tempfile.mkdtemp(prefix="scenelog-bench-"))
    ctx = RunContext(root=root, rounds=args.rounds)
    started = time.time()
    steps = select(STEPS, args.only)
    if args.only:
        args.no_write = True
    for step in steps:
        os.sync()  # each step from a quiet disk: the last one's files are written back
        t = time.time()
        print(f"bench: {step.name}…", file=sys.stderr, flush=True)
        ctx.rows.extend(step.run(ctx))
        print(f"bench: {step.name} done in {time.time() - t:.0f}s", file=sys.stderr, flush=True)
    result = table(ctx.rows)
    print(result)
    if not args.no_write:
        write_performance(REPO / "docs" / "PERFORMANCE.md", result, started, root)
    if not args.dir:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if all(r["ok"] for r in ctx.rows) else 1
