"""Projection: manifest/view agreement, history, time travel, episode queries.

Every test but the one deleting view files runs on each backend (``backend_root``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from eventstore import InvalidInput, SceneVersionStore, UnknownBatch, fold
from projections import Projection
from tests.helpers import BATCH, scene


def test_fold_and_view_agree_deleting_views_loses_nothing(
    store: SceneVersionStore, view: Projection, scenes_dir: Path
) -> None:
    for n in range(3, 7):
        batch_id = f"ep_001_BATCH_{n:03d}"
        store.write_scene_candidate(batch_id, scene(batch_id))
        store.write_scene_candidate(batch_id, scene(batch_id, shots=n))
        store.conform(batch_id, 2)
    from_views = {b: view.manifest(b) for b in view.batches(1)}
    folded = {b: fold(b, view.history(b)) for b in view.batches(1)}
    assert from_views == folded
    for path in scenes_dir.glob("*.versions.json"):
        path.unlink()
    assert {b: view.manifest(b) for b in view.batches(1)} == folded


def test_history_in_seq_order_with_types(
    any_store: SceneVersionStore, any_view: Projection
) -> None:
    store, view = any_store, any_view
    store.write_scene_candidate(BATCH, scene())
    store.write_scene_candidate(BATCH, scene(shots=4))
    store.conform(BATCH, 2, reason="ok", actor="sup@studio")
    store.mark_derived(BATCH, 2)
    history = view.history(BATCH)
    assert [(e.seq, e.type, e.version) for e in history] == [
        (1, "appended", 1),
        (2, "appended", 2),
        (3, "conformed", 2),
        (4, "derived", 2),
    ]
    assert history[2].actor == "sup@studio" and history[2].reason == "ok"
    assert view.history("ep_001_BATCH_099") == []


def test_as_of_every_seq_equals_prefix_fold(
    any_store: SceneVersionStore, any_view: Projection
) -> None:
    store, view = any_store, any_view
    store.write_scene_candidate(BATCH, scene())
    store.write_scene_candidate(BATCH, scene(shots=4))
    store.conform(BATCH, 2)
    store.mark_derived(BATCH, 2)
    store.revert(BATCH, 1)
    events = view.history(BATCH)
    for seq in range(len(events) + 1):
        assert view.as_of(BATCH, seq=seq) == fold(BATCH, events[:seq])
    with pytest.raises(InvalidInput):
        view.as_of(BATCH, seq=99)
    assert view.as_of(BATCH, at=events[2].at) == fold(BATCH, events[:3])
    assert view.as_of(BATCH, at="2000-01-01T00:00:00Z").seq == 0


def test_require_unknown_batch(any_view: Projection) -> None:
    view = any_view
    with pytest.raises(UnknownBatch):
        view.require(BATCH)
    with pytest.raises(UnknownBatch):  # R16 amended: unknown, never "no log"
        view.manifest(BATCH)


def test_pending_and_candidates(any_store: SceneVersionStore, any_view: Projection) -> None:
    store, view = any_store, any_view
    a, b, c = "ep_001_BATCH_001", "ep_001_BATCH_002", "ep_001_BATCH_003"
    for batch_id in (a, b, c):
        store.write_scene_candidate(batch_id, scene(batch_id))
    store.write_scene_candidate(b, scene(b, shots=5))
    store.write_scene_candidate(c, scene(c, shots=5))
    store.conform(c, 2)
    assert [s.batch_id for s in view.pending(1)] == [c]
    assert [s.batch_id for s in view.candidates(1)] == [b]
    assert view.batches() == [a, b, c]


def test_incremental_view_bytes_equal_a_full_encoding(any_store: SceneVersionStore) -> None:
    from eventstore.manifest import encode_manifest

    store = any_store
    for shots in range(1, 5):
        store.write_scene_candidate(BATCH, scene(shots=shots))
    store.conform(BATCH, 3)
    store.mark_derived(BATCH, 3)
    store.revert(BATCH, 2)
    with store.log.session(BATCH) as session:  # the fold kept incrementally by the log
        assert session.fold.seq == 7
        assert session.fold.view_bytes() == encode_manifest(session.fold.manifest())
