"""The one table of benchmark steps, in run order; ``--only`` selects from it.

A step is a name and a function from the run's context to its rows. Adding a
row is a function in a row module and one line in ``STEPS`` — nothing registers
itself on import, so this table is the whole list. Invariants: ``--only``
matches a step by the first word of its name (``single`` for ``single append``)
and unknown words select nothing; steps run in table order and see the rows of
the steps before them (the peer step reuses row 1's figure, measuring it if row 1
did not run); the contended step runs ``max(3, rounds // 2)`` rounds, the watch
step 200 appends whatever ``--rounds`` says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .append import row_candidates, row_single_append, single_append_seconds
from .consumer import row_consumer
from .contention import row_contended
from .http import row_http
from .peers import row_peer
from .policy import row_policy_append, row_policy_contended, row_policy_manifest
from .postgres import row_postgres
from .reads import row_episode, row_fold, row_manifest
from .report import Row
from .startup import row_startup
from .watch import WATCH_APPENDS, row_watch


@dataclass
class RunContext:
    """What every step gets: the folder to build stores in, the rounds, rows so far."""

    root: Path
    rounds: int
    rows: list[Row] = field(default_factory=list)


@dataclass(frozen=True)
class Step:
    """One step of the run: a name (its first word is its ``--only`` key) and its rows."""

    name: str
    run: Callable[[RunContext], list[Row]]

    @property
    def key(self) -> str:
        """The word ``--only`` selects this step by."""
        return self.name.split()[0]


def _peer(ctx: RunContext) -> list[Row]:
    ours_append = single_append_seconds(ctx.rows, ctx.root, ctx.rounds)
    return row_peer(ctx.root, ctx.rounds, ours_append)


STEPS: tuple[Step, ...] = (
    Step("single append", lambda ctx: [row_single_append(ctx.root, ctx.rounds)]),
    Step("candidates", lambda ctx: row_candidates(ctx.root, ctx.rounds)),
    Step("contended", lambda ctx: row_contended(ctx.root, max(5, ctx.rounds // 2))),
    Step("fold", lambda ctx: [row_fold(ctx.root, ctx.rounds)]),
    Step("manifest", lambda ctx: [row_manifest(ctx.root, ctx.rounds)]),
    Step("episode", lambda ctx: [row_episode(ctx.root, ctx.rounds)]),
    Step("watch", lambda ctx: row_watch(ctx.root, WATCH_APPENDS)),
    Step("consumer catch-up", lambda ctx: row_consumer(ctx.root, ctx.rounds)),
    Step("peer", _peer),
    Step("policy append", lambda ctx: row_policy_append(ctx.root, ctx.rounds)),
    Step("policy-contended", lambda ctx: row_policy_contended(ctx.root, max(5, ctx.rounds // 2))),
    Step("policy-manifest", lambda ctx: row_policy_manifest(ctx.root, ctx.rounds)),
    Step("startup", lambda ctx: row_startup(ctx.root, ctx.rounds)),
    Step("postgres", lambda ctx: row_postgres(ctx.root, max(1, ctx.rounds // 3))),
    Step("http", lambda ctx: row_http(ctx.root, ctx.rounds)),
)


def select(steps: tuple[Step, ...], only: str | None) -> tuple[Step, ...]:
    """The steps whose key is in the comma-separated ``only`` (all of them if it is empty)."""
    if not only:
        return steps
    wanted = set(only.split(","))
    return tuple(s for s in steps if s.key in wanted)
