"""A short walk through the Python API on a temporary store (the pre-CLI demo)."""

from __future__ import annotations

import sys
import tempfile

from eventstore import Scene, SceneVersionStore
from projections import Projection


def main() -> int:
    root = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="scenelog-")
    store = SceneVersionStore("demo_show", 1, root=root)
    view = Projection("demo_show", root=root)
    batch = "ep_001_BATCH_003"

    def scene(shots: int) -> Scene:
        return Scene({"scene_id": batch, "beats": [{"shot_id": f"sh{i:03d}"} for i in range(shots)]})

    print("store:", root)
    print("v%d written (first derivation)" % store.write_scene_candidate(batch, scene(3)))
    print("v%d written (re-derivation)" % store.write_scene_candidate(batch, scene(4)))
    store.conform(batch, 2, reason="director approved v2")
    print("conformed v2; gate fresh:", view.is_fresh(batch))
    store.mark_derived(batch, 2)
    print("boards rebuilt; gate fresh:", view.is_fresh(batch))
    for event in view.history(batch):
        print(f"  {event.seq} {event.type:<9} v{event.version} {event.reason or ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
