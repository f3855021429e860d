"""The file backend's bodies: ``<batch>.json`` and ``<batch>.vNNN.json`` beside the log.

Invariants:
- A body is written once (temp file, fsync, link, folder fsync) and never
  changed (R9, VersionBodyExists).
- Only regular files are read, and at most the scene size limit: a body that
  is a symlink to a device, a FIFO or a huge file is DamagedBody, never a
  hang (R26).
"""

from __future__ import annotations

from eventstore.errors import BodyMissing
from eventstore.filelog.paths import BatchPaths

__all__ = ["body_names", "read_body_file"]


def read_body_file(paths: BatchPaths, name: str) -> bytes:
    """The bytes of body ``name`` of the batch (BodyMissing when absent)."""
    path = paths.artifact(name)
    try:
        return path.read_bytes()
    except FileNotFoundError as e:
        raise BodyMissing(
            f"scene body {path} of batch {paths.batch_id} is missing; restore it from backup",
            path=str(path),
            batch_id=paths.batch_id,
        ) from e


def body_names(paths: BatchPaths) -> list[str]:
    """Every body of the batch on disk (flat and ``vNNN``), sorted."""
    import os

    try:
        names = os.listdir(paths.scenes_dir)
    except FileNotFoundError:
        return []
    found = [n for n in names if n == paths.flat.name or paths.is_body_name(n)]
    return sorted(found)
