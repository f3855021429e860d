"""The ``versions.json`` view: the folded manifest cached beside the log.

Invariants:
- A view is rewritten atomically (temp file + rename) by the writer holding
  the batch lock, right after each commit; it is never fsync'd, because a lost
  or torn view is rebuilt from the log (R17).
- A view is trusted only when its ``seq`` equals the log's last seq.
- A ``versions.json`` without ``seq`` and without a log was written by the
  reference system: it is never overwritten or ignored (R21).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import msgspec

from eventstore.errors import DamagedLog, UnimportedManifest
from eventstore.fsio import replace_atomic, replace_unless_newer
from eventstore.layout import BatchPaths
from eventstore.manifest import Manifest, decode_manifest, encode_manifest

__all__ = [
    "check_unimported",
    "load_reference_manifest",
    "read_view",
    "repair_view",
    "write_view",
]

logger = logging.getLogger("scenelog")


def write_view(path: Path, manifest: Manifest | bytes | list[bytes]) -> bool:
    """Rewrite the view; a failure is logged, not raised (the log is the truth)."""
    data = encode_manifest(manifest) if isinstance(manifest, Manifest) else manifest
    try:
        replace_atomic(path, data)
    except OSError as e:
        logger.warning("could not rewrite view %s (%s); readers fold the log instead", path, e)
        return False
    return True


def repair_view(path: Path, manifest: Manifest) -> bool:
    """Rewrite a stale view from a reader, taking no lock (R22).

    A writer's view written meanwhile has a higher ``seq`` and is put back; a
    failure (read-only store, full disk) is ignored: readers fold the log.
    """

    def newer(old: bytes) -> bool:
        try:
            return decode_manifest(old).seq > manifest.seq
        except (msgspec.DecodeError, msgspec.ValidationError):
            return False

    try:
        return replace_unless_newer(path, encode_manifest(manifest), newer)
    except OSError:
        return False


def read_view(path: Path) -> Manifest | None:
    """The view's manifest, or None when it is missing or unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    finally:
        os.close(fd)
    try:
        return decode_manifest(b"".join(chunks))
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def load_reference_manifest(path: Path) -> dict[str, Any] | None:
    """A ``versions.json`` parsed as plain JSON, or None when missing or not an object."""
    try:
        data = msgspec.json.decode(path.read_bytes())
    except (FileNotFoundError, msgspec.DecodeError):
        return None
    return data if isinstance(data, dict) else None


def check_unimported(paths: BatchPaths) -> None:
    """R21: refuse when a ``versions.json`` stands without a log."""
    if paths.log.exists() or not paths.view.exists():
        return
    data = load_reference_manifest(paths.view)
    if data is not None and "seq" in data:
        raise DamagedLog(
            f"{paths.log}: missing, but its view {paths.view.name} says the batch had "
            f"{data['seq']} events; restore the log of batch {paths.batch_id} from backup",
            path=str(paths.log),
            line=0,
            batch_id=paths.batch_id,
        )
    raise UnimportedManifest(
        f"batch {paths.batch_id} has a reference-format {paths.view.name} and no log: "
        f"import it first with `scenelog import {paths.batch_id[:6]}`",
        path=str(paths.view),
        batch_id=paths.batch_id,
    )
