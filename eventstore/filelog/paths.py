"""Where the file backend keeps a project: the path of every file of a batch (DESIGN §2).

Invariants:
- Paths are built only from validated ids (eventstore.layout), so no id can
  name a file outside ``<root>/<project>``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import NamedTuple

from eventstore.errors import InvalidInput
from eventstore.layout import (
    _BATCH_RE,
    _EPISODE_RE,
    _shown,
    batch_episode,
    normalize_episode,
    resolve_root,
    validate_batch_id,
    validate_project,
)
from eventstore.rules import body_version

__all__ = ["BatchPaths", "Layout"]


class BatchPaths:
    """Every file of one batch (DESIGN §2), computed once."""

    __slots__ = ("_artifacts", "batch_id", "flat", "lock", "log", "scenes_dir", "view")

    def __init__(self, batch_id: str, scenes_dir: Path) -> None:
        self.batch_id = batch_id
        self.scenes_dir = scenes_dir
        self.flat = scenes_dir / f"{batch_id}.json"
        self.log = scenes_dir / f"{batch_id}.events.jsonl"
        self.view = scenes_dir / f"{batch_id}.versions.json"
        self.lock = scenes_dir / f"{batch_id}.lock"
        self._artifacts: dict[str, Path] = {}  # names checked and joined (bounded below)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BatchPaths) and (other.batch_id, other.scenes_dir) == (
            self.batch_id,
            self.scenes_dir,
        )

    def __hash__(self) -> int:
        return hash((self.batch_id, self.scenes_dir))

    def __repr__(self) -> str:
        return f"BatchPaths({self.batch_id!r}, {str(self.scenes_dir)!r})"

    def identity(self) -> tuple[int, int, str]:
        """(device, inode) of the scenes folder and the batch id: one key per batch (R23).

        Every spelling of a root (relative, ``..``, a symlink, a bind mount)
        gives the same key, so locks and caches keyed on it are shared.
        Raises FileNotFoundError when the folder does not exist.
        """
        st = os.stat(self.scenes_dir)
        return st.st_dev, st.st_ino, self.batch_id

    def body_name(self, version: int) -> str:
        """``ep_NNN_BATCH_NNN.vNNN.json`` (three digits at least)."""
        return f"{self.batch_id}.v{version:03d}.json"

    def body(self, version: int) -> Path:
        return self.scenes_dir / self.body_name(version)

    def artifact(self, name: str) -> Path:
        """The path of an artifact named in the log; only this batch's names pass."""
        known = self._artifacts.get(name)
        if known is not None:
            return known  # every command checks its pointer's body (R1): once per name
        if name != self.flat.name and body_version(self.batch_id, name) is None:
            raise InvalidInput(
                f"artifact {_shown(name)} does not belong to batch {self.batch_id}",
                value=name,
                batch_id=self.batch_id,
            )
        if len(self._artifacts) >= 1024:
            self._artifacts.clear()
        path = self._artifacts[name] = self.scenes_dir / name
        return path

    def is_body_name(self, name: str) -> bool:
        """Whether ``name`` is a ``vNNN`` body name of this batch."""
        return body_version(self.batch_id, name) is not None

    def highestbody_version(self) -> int:
        """The highest ``vNNN`` body of this batch on disk (0 if none)."""
        best = 0
        try:
            with os.scandir(self.scenes_dir) as entries:
                for entry in entries:
                    version = body_version(self.batch_id, entry.name)
                    if version is not None and version > best:
                        best = version
        except FileNotFoundError:
            return 0
        return best


@functools.lru_cache(maxsize=4096)
def _batch_paths(layout: Layout, batch_id: str) -> BatchPaths:
    return BatchPaths(batch_id, layout.scenes_dir(batch_episode(batch_id)))


class Layout(NamedTuple):
    """Where a project lives: ``<root>/<project>/<episode>/scenes/``.

    A NamedTuple (immutable, hashable, a key of the path cache), not a
    dataclass: a read does not load ``dataclasses`` (start-up, issue 15).
    """

    root: Path
    project: str

    @classmethod
    def of(cls, project: object, root: str | os.PathLike[str] | None = None) -> Layout:
        return cls(resolve_root(root), validate_project(project))

    @property
    def project_dir(self) -> Path:
        return self.root / self.project

    @property
    def meta_dir(self) -> Path:
        """The project's own bookkeeping (consumer checkpoints and the like)."""
        return self.project_dir / ".scenelog"

    def head_record(self, batch_id: str) -> Path:
        """Where the store records the head of a batch's log (R27): outside the scenes folder."""
        return self.meta_dir / "heads" / validate_batch_id(batch_id)

    def scenes_dir(self, episode: str) -> Path:
        return self.project_dir / normalize_episode(episode) / "scenes"

    def batch(self, batch_id: str) -> BatchPaths:
        return _batch_paths(self, batch_id)

    def episodes(self) -> list[str]:
        """Episodes present on disk, sorted."""
        try:
            names = os.listdir(self.project_dir)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if _EPISODE_RE.fullmatch(n) and n != "ep_000")

    def batch_ids(self, episode: str, *, suffix: str = ".events.jsonl") -> list[str]:
        """Batch ids of ``episode`` that have a file ending in ``suffix``, sorted."""
        episode = normalize_episode(episode)
        try:
            names = os.listdir(self.scenes_dir(episode))
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            if name.endswith(suffix):
                batch_id = name[: -len(suffix)]
                if _BATCH_RE.fullmatch(batch_id) and batch_id.startswith(episode + "_"):
                    found.append(batch_id)
        return sorted(found)
