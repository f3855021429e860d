"""Rows 4, 5, 6: what readers pay — a full fold, a manifest read, ``pending``.

Invariants: readers never lock; the fold row deletes the view before each timed
read (outside the timed region) so the read folds the whole log; the manifest row
reads a 100k-event batch and a 10-event batch of 10 versions each, 2,000 reads a
round; the ``pending`` row reads 2,000 batches of two episodes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from eventstore import FileLog, SceneVersionStore
from eventstore.events import decode_lines
from eventstore.filelog.paths import Layout
from projections import Projection

from .fixtures import PROJECT, big_log, no_fsync, scene
from .report import Row
from .timing import paired, per_op, seconds, us

FOLD_EVENTS = 100_000
MANIFEST_READS = 2000


def fold_timer(root: Path, batch: str) -> Callable[[], float]:
    """Seconds for a reader's manifest of ``batch`` with its view deleted (a full fold)."""
    reader = Projection(PROJECT, root=root)
    view = _layout(reader).batch(batch).view

    def timed() -> float:
        view.unlink(missing_ok=True)
        return seconds(lambda: reader.manifest(batch))

    return timed


def row_fold(root: Path, rounds: int) -> Row:
    """Row 4: fold of a 100k-event log vs ``decode_lines`` of its bytes."""
    batch = "ep_004_BATCH_001"
    path = big_log(root, batch, FOLD_EVENTS, 100)
    data = path.read_bytes()

    def base() -> float:
        return seconds(lambda: decode_lines(data))

    a, b = paired(fold_timer(root, batch), base, rounds)
    return {
        "row": "4. fold of a 100k-event log (view deleted)",
        "ours": us(a),
        "base": us(b),
        "base_what": "msgspec decode_lines of the same bytes",
        "ratio": a / b,
        "target": "≤ 2×",
        "ok": a / b <= 2,
        "note": f"{FOLD_EVENTS / a:,.0f} events/s",
    }


def row_manifest(root: Path, rounds: int) -> Row:
    """Row 5: manifest read at 100k events vs at 10 events (10 versions each)."""
    big, small = "ep_005_BATCH_001", "ep_005_BATCH_002"
    big_log(root, big, FOLD_EVENTS, 10)
    big_log(root, small, 11, 10)
    reader = Projection(PROJECT, root=root)

    def read(batch: str) -> Callable[[int], None]:
        def run(n: int) -> None:
            for _ in range(n):
                reader.manifest(batch)

        return run

    a, b = paired(
        lambda: per_op(read(big), MANIFEST_READS),
        lambda: per_op(read(small), MANIFEST_READS),
        rounds,
    )
    return {
        "row": "5. manifest read, 100k events vs 10 (10 versions each)",
        "ours": us(a),
        "base": us(b),
        "base_what": "scenelog on the 10-event batch",
        "ratio": a / b,
        "target": "≤ 1.5×",
        "ok": a / b <= 1.5,
    }


def row_episode(root: Path, rounds: int) -> Row:
    """Row 6: ``pending`` over 2,000 batches vs reading the 2,000 views' bytes."""
    store = SceneVersionStore(PROJECT, 6, root=root)
    with no_fsync():
        for n in range(1000):
            batch = f"ep_006_BATCH_{n:03d}"
            store.write_scene_candidate(batch, scene(batch, 8))
            if n % 3 == 0:
                store.write_scene_candidate(batch, scene(batch, 9))
                store.conform(batch, 2)
    store7 = SceneVersionStore(PROJECT, 7, root=root)
    with no_fsync():
        for n in range(1000):
            batch = f"ep_007_BATCH_{n:03d}"
            store7.write_scene_candidate(batch, scene(batch, 8))
    reader = Projection(PROJECT, root=root)
    views = [
        _layout(reader).batch(b).view
        for ep in ("ep_006", "ep_007")
        for b in _layout(reader).batch_ids(ep)
    ]
    assert len(views) == 2000

    def pending_both() -> None:
        pending = reader.pending("ep_006") + reader.pending("ep_007")
        assert len(pending) == 334

    def read_views() -> None:
        for view in views:
            with open(view, "rb") as f:
                f.read()

    a, b = paired(lambda: seconds(pending_both), lambda: seconds(read_views), rounds)
    return {
        "row": "6. `pending` over 2,000 batches",
        "ours": us(a),
        "base": us(b),
        "base_what": "reading the 2,000 views' bytes",
        "ratio": a / b,
        "target": "≤ 3×",
        "ok": a / b <= 3,
    }


def _layout(reader: Projection) -> Layout:
    """The file backend's folders of a reader (these rows measure the file backend)."""
    log = reader.log
    assert isinstance(log, FileLog)
    return log.layout
