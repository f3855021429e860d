"""scenelog benchmark: every row a ratio against what it stands on, measured side by side.

    .venv/bin/pip install -q -e '.[bench]' && .venv/bin/python scripts/bench.py

Each row runs scenelog and its baseline in the same process (or the same set of
processes), interleaved over several rounds, and reports the median of each
and their ratio — never an absolute time compared with a number from
elsewhere. Prints one Markdown table and writes it, with a description of the
machine and the command, to docs/PERFORMANCE.md (``--no-write`` to skip).

This file is the entry point only: the rows, the timer and the report live in
the ``benchmarks`` package next to it (see its docstring; ``benchmarks/steps.py``
is the list of rows). ``--only single,episode`` runs some steps, ``--rounds``,
``--dir`` and ``--no-write`` are as before.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the repository's eventstore/projections, installed or not

from benchmarks.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
