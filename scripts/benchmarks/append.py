"""Rows 1, 2a, 2b: the single-writer pointer append and the candidate append.

Invariants: row 1 times ``conform`` against ``Primitive.append``, 200 operations
a round, interleaved; rows 2a/2b time 40 candidate appends a round on a batch of
10 and of 1,000 versions and 40 appends of ``ReferenceStore`` (the reference
design: read, append and atomically rewrite ``versions.json``), one after the
other in every round. Row 1's dict carries ``ours_s`` for the peer row.
"""

from __future__ import annotations

import fcntl
import json
import os
import statistics
from collections.abc import Callable
from pathlib import Path

from eventstore import Scene, SceneVersionStore, structure_fingerprint
from eventstore.events import utc_now

from .fixtures import PROJECT, Primitive, no_fsync, scene
from .report import Row
from .timing import paired, per_op, us

SINGLE_OPS = 200
CANDIDATE_OPS = 40


def row_single_append(root: Path, rounds: int) -> Row:
    """Row 1: ``conform`` back and forth between two versions vs the primitive."""
    store = SceneVersionStore(PROJECT, 1, root=root)
    batch = "ep_001_BATCH_001"
    store.write_scene_candidate(batch, scene(batch, 12))
    store.write_scene_candidate(batch, scene(batch, 13))
    prim = Primitive(root / "prim1")
    turn = [0]

    def ours(n: int) -> None:
        for _ in range(n):
            turn[0] ^= 1
            store.conform(batch, 1 + turn[0], reason="approved in dailies")

    # The first row of a run: two untimed rounds first, so the disk's pending work
    # (discards of what the last run deleted, journal commits) is not in its figure.
    paired(lambda: per_op(ours, SINGLE_OPS), lambda: per_op(prim.append, SINGLE_OPS), 2)
    a, b = paired(lambda: per_op(ours, SINGLE_OPS), lambda: per_op(prim.append, SINGLE_OPS), rounds)
    return {
        "row": "1. single-writer pointer append",
        "ours": us(a),
        "base": us(b),
        "base_what": "encode+flock+write+fsync",
        "ratio": a / b,
        "target": "≤ 1.5×",
        "ok": a / b <= 1.5,
        "ours_s": a,
    }


def single_append_seconds(rows: list[Row], root: Path, rounds: int) -> float:
    """Row 1's per-command time (measured now if row 1 did not run)."""
    for row in rows:
        if "ours_s" in row:
            return float(row["ours_s"])
    return float(row_single_append(root, rounds)["ours_s"])


class ReferenceStore:
    """How the reference mutates: read the whole manifest, append, rewrite it atomically.

    Each rewrite: write ``.tmp``, fsync it, rename over the target, fsync the
    folder; a crash at any step leaves the old file or the new one.
    """

    def __init__(self, folder: Path, batch_id: str) -> None:
        self.folder, self.batch_id = folder, batch_id
        folder.mkdir(parents=True, exist_ok=True)
        self.manifest = folder / f"{batch_id}.versions.json"
        self.lock = folder / f"{batch_id}.versions.lock"

    def _atomic(self, path: Path, data: bytes) -> None:
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dfd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def append(self, body: Scene) -> int:
        """Append ``body`` as the next version under the batch's lock; its number."""
        fd = os.open(self.lock, os.O_CREAT | os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            manifest = json.loads(self.manifest.read_bytes())
            n = int(max(v["version"] for v in manifest["versions"])) + 1
            target = self.folder / f"{self.batch_id}.v{n:03d}.json"
            self._atomic(target, body.to_json())
            manifest["versions"].append(
                {
                    "version": n,
                    "artifact": target.name,
                    "state": "candidate",
                    "downstream": "not_derived",
                    "kind": "reshoot",
                    "source": "rederive",
                    "parent_version": None,
                    "structure_fingerprint": structure_fingerprint(body),
                    "shot_count": len(body.beats),
                    "created_at": utc_now(),
                }
            )
            self._atomic(self.manifest, json.dumps(manifest, indent=2).encode())
            return n
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def seed(self, versions: int, body: Scene) -> None:
        """A manifest of ``versions`` entries (set-up: no fsync, no bodies)."""
        entries = [
            {
                "version": v,
                "artifact": f"{self.batch_id}.v{v:03d}.json",
                "state": "candidate",
                "downstream": "not_derived",
                "kind": "reshoot",
                "source": "rederive",
                "parent_version": None,
                "structure_fingerprint": "0" * 64,
                "shot_count": 12,
                "created_at": utc_now(),
            }
            for v in range(1, versions + 1)
        ]
        self.manifest.write_text(
            json.dumps(
                {
                    "schema_version": 2,
                    "batch_id": self.batch_id,
                    "active_version": 1,
                    "versions": entries,
                },
                indent=2,
            )
        )


def row_candidates(root: Path, rounds: int) -> list[Row]:
    """Rows 2a (1,000 vs 10 versions) and 2b (1,000 versions vs the reference design)."""
    store = SceneVersionStore(PROJECT, 2, root=root)
    small, large = "ep_002_BATCH_010", "ep_002_BATCH_999"
    with no_fsync():
        for batch, count in ((small, 10), (large, 1000)):
            for v in range(count):
                store.write_scene_candidate(batch, scene(batch, 12, f"seed {v}"))
    ref = ReferenceStore(root / "reference", large)
    ref.seed(1000, scene(large, 12))
    counter = [0]

    def ours(batch: str) -> Callable[[int], None]:
        def run(n: int) -> None:
            for _ in range(n):
                counter[0] += 1
                store.write_scene_candidate(batch, scene(batch, 12, str(counter[0])))

        return run

    def reference(n: int) -> None:
        for _ in range(n):
            counter[0] += 1
            ref.append(scene(large, 12, str(counter[0])))

    small_s: list[float] = []
    large_s: list[float] = []
    ref_s: list[float] = []
    for _ in range(rounds):
        small_s.append(per_op(ours(small), CANDIDATE_OPS))
        large_s.append(per_op(ours(large), CANDIDATE_OPS))
        ref_s.append(per_op(reference, CANDIDATE_OPS))
    a10, a1000, r1000 = (statistics.median(x) for x in (small_s, large_s, ref_s))
    return [
        {
            "row": "2a. candidate append, 1,000 vs 10 versions",
            "ours": us(a1000),
            "base": us(a10),
            "base_what": "scenelog at 10 versions",
            "ratio": a1000 / a10,
            "target": "≤ 1.3× (flat)",
            "ok": a1000 / a10 <= 1.3,
        },
        {
            "row": "2b. candidate append at 1,000 versions vs reference design",
            "ours": us(a1000),
            "base": us(r1000),
            "base_what": "read+append+atomic rewrite+fsync of versions.json",
            "ratio": a1000 / r1000,
            "target": "< 1× (ahead)",
            "ok": a1000 < r1000,
        },
    ]
