"""Shot-level differences between two version bodies of a batch.

Shots are matched by ``shot_id``. A shot is *moved* when it is in both
bodies but not in the longest run of shots that kept their relative order;
*changed* lists the keys whose values differ, nested keys dotted
(``raw.description``). The structure fingerprints decide dedup, and the diff
says why they are or are not equal.
"""

from __future__ import annotations

import difflib
from typing import Any

import msgspec

from eventstore import Scene, structure_fingerprint

__all__ = ["SceneDiff", "ShotChange", "diff_scenes"]


class ShotChange(msgspec.Struct, frozen=True):
    shot_id: str
    keys: list[str]


class SceneDiff(msgspec.Struct, frozen=True):
    """What changed from body ``a`` to body ``b``."""

    batch_id: str
    a: int
    b: int
    added: list[str]
    removed: list[str]
    moved: list[str]
    changed: list[ShotChange]
    other_keys: list[str]
    fingerprint_a: str
    fingerprint_b: str

    @property
    def same_structure(self) -> bool:
        return self.fingerprint_a == self.fingerprint_b

    @property
    def dedup(self) -> str:
        """Why a dedup would, or would not, answer with the other version."""
        if self.same_structure:
            extra = (
                f"; only keys outside beats differ ({', '.join(self.other_keys)})"
                if self.other_keys
                else ""
            )
            return (
                f"equal structure fingerprints: with dedup, a re-derivation of either returns "
                f"v{min(self.a, self.b)} instead of appending{extra}"
            )
        parts = []
        for label, shots in (
            ("added", self.added),
            ("removed", self.removed),
            ("moved", self.moved),
        ):
            if shots:
                parts.append(f"{len(shots)} shot{'s' * (len(shots) != 1)} {label}")
        for change in self.changed[:3]:
            parts.append(f"{change.shot_id} changed {', '.join(change.keys)}")
        if len(self.changed) > 3:
            parts.append(f"{len(self.changed) - 3} more shots changed")
        return "fingerprints differ (" + "; ".join(parts) + "): dedup appends a new version"

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = msgspec.to_builtins(self)
        result["same_structure"] = self.same_structure
        result["dedup"] = self.dedup
        return result


def _changed_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = []
        for key in list(a) + [k for k in b if k not in a]:
            if key not in a or key not in b:
                keys.append(prefix + key)
            else:
                keys.extend(_changed_keys(a[key], b[key], prefix + key + "."))
        return keys
    return [] if a == b else [prefix.rstrip(".")]


def _by_shot(scene: Scene) -> dict[str, dict[str, Any]]:
    shots: dict[str, dict[str, Any]] = {}
    for beat in scene.beats:
        shots.setdefault(beat["shot_id"], beat)
    return shots


def diff_scenes(batch_id: str, a: int, scene_a: Scene, b: int, scene_b: Scene) -> SceneDiff:
    """The differences from ``scene_a`` (version ``a``) to ``scene_b`` (version ``b``)."""
    shots_a, shots_b = _by_shot(scene_a), _by_shot(scene_b)
    order_a = [s for s in shots_a if s in shots_b]
    order_b = [s for s in shots_b if s in shots_a]
    matcher = difflib.SequenceMatcher(a=order_a, b=order_b, autojunk=False)
    kept = {
        s
        for block in matcher.get_matching_blocks()
        for s in order_a[block.a : block.a + block.size]
    }
    changed = []
    for shot_id in order_b:
        keys = _changed_keys(shots_a[shot_id], shots_b[shot_id])
        if keys:
            changed.append(ShotChange(shot_id, keys))
    other = [
        k
        for k in _changed_keys(
            {k: v for k, v in scene_a.data.items() if k != "beats"},
            {k: v for k, v in scene_b.data.items() if k != "beats"},
        )
        if k
    ]
    return SceneDiff(
        batch_id,
        a,
        b,
        added=[s for s in shots_b if s not in shots_a],
        removed=[s for s in shots_a if s not in shots_b],
        moved=[s for s in order_b if s not in kept],
        changed=changed,
        other_keys=other,
        fingerprint_a=structure_fingerprint(scene_a),
        fingerprint_b=structure_fingerprint(scene_b),
    )
