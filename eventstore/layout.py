"""Names and places: id grammars and the path of every file of a batch.

Invariants:
- Every id is validated against its exact grammar (ASCII digits only) before
  any path is built, so no id can name a file outside ``<root>/<project>``.
- Validation touches no disk: it is pure string work (R2).
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from eventstore.errors import InvalidInput

__all__ = [
    "BatchPaths",
    "Layout",
    "batch_episode",
    "normalize_episode",
    "resolve_root",
    "validate_batch_id",
    "validate_project",
    "validate_version",
]

_PROJECT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_EPISODE_RE = re.compile(r"ep_([0-9]{3})")
_BATCH_RE = re.compile(r"(ep_[0-9]{3})_BATCH_[0-9]{3}")
_DIGITS_RE = re.compile(r"[0-9]{1,3}")
_MAX_SHOWN = 80


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def validate_project(project: object) -> str:
    """Return ``project`` if it is a valid project name, else raise InvalidInput."""
    if not isinstance(project, str) or not _PROJECT_RE.fullmatch(project):
        raise InvalidInput(
            f"invalid project name {_shown(project)}: use 1-64 characters of "
            "A-Z a-z 0-9 _ . -, starting with a letter or digit",
            value=project,
        )
    return project


def normalize_episode(episode: object) -> str:
    """Return the canonical ``ep_NNN`` for ``1``, ``"1"``, ``"001"`` or ``"ep_001"``."""
    number: int | None = None
    if isinstance(episode, int) and not isinstance(episode, bool):
        number = episode
    elif isinstance(episode, str):
        match = _EPISODE_RE.fullmatch(episode)
        digits = match.group(1) if match else episode
        if _DIGITS_RE.fullmatch(digits):
            number = int(digits)
    if number is None or not 1 <= number <= 999:
        raise InvalidInput(
            f"invalid episode {_shown(episode)}: use ep_NNN with NNN from 001 to 999 "
            "(or the number alone)",
            value=episode,
        )
    return f"ep_{number:03d}"


def validate_batch_id(batch_id: object) -> str:
    """Return ``batch_id`` if it matches ``ep_NNN_BATCH_NNN`` exactly, else raise."""
    if not isinstance(batch_id, str) or not _BATCH_RE.fullmatch(batch_id):
        raise InvalidInput(
            f"invalid batch id {_shown(batch_id)}: use ep_NNN_BATCH_NNN with ASCII digits, "
            "e.g. ep_001_BATCH_003",
            value=batch_id,
        )
    normalize_episode(batch_id[:6])
    return batch_id


def batch_episode(batch_id: str) -> str:
    """The ``ep_NNN`` a valid batch id belongs to."""
    return validate_batch_id(batch_id)[:6]


def validate_version(version: object, *, batch_id: str | None = None) -> int:
    """Return ``version`` if it is an ``int >= 1`` (``True`` is not), else raise."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        where = f" of batch {batch_id}" if batch_id else ""
        raise InvalidInput(
            f"invalid version {_shown(version)}{where}: a version is a whole number >= 1",
            value=version,
            batch_id=batch_id,
        )
    return version


def resolve_root(root: str | os.PathLike[str] | None) -> Path:
    """``root`` if given, else ``$SCENELOG_ROOT``, else the current directory."""
    if root is None:
        root = os.environ.get("SCENELOG_ROOT") or os.getcwd()
    return Path(root).absolute()


class BatchPaths:
    """Every file of one batch (DESIGN §2), computed once."""

    __slots__ = ("batch_id", "flat", "lock", "log", "scenes_dir", "view")

    def __init__(self, batch_id: str, scenes_dir: Path) -> None:
        self.batch_id = batch_id
        self.scenes_dir = scenes_dir
        self.flat = scenes_dir / f"{batch_id}.json"
        self.log = scenes_dir / f"{batch_id}.events.jsonl"
        self.view = scenes_dir / f"{batch_id}.versions.json"
        self.lock = scenes_dir / f"{batch_id}.lock"

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
        if name != self.flat.name and _body_version(self.batch_id, name) is None:
            raise InvalidInput(
                f"artifact {_shown(name)} does not belong to batch {self.batch_id}",
                value=name,
                batch_id=self.batch_id,
            )
        return self.scenes_dir / name

    def is_body_name(self, name: str) -> bool:
        """Whether ``name`` is a ``vNNN`` body name of this batch."""
        return _body_version(self.batch_id, name) is not None

    def highest_body_version(self) -> int:
        """The highest ``vNNN`` body of this batch on disk (0 if none)."""
        best = 0
        try:
            with os.scandir(self.scenes_dir) as entries:
                for entry in entries:
                    version = _body_version(self.batch_id, entry.name)
                    if version is not None and version > best:
                        best = version
        except FileNotFoundError:
            return 0
        return best


@functools.lru_cache(maxsize=4096)
def _batch_paths(layout: Layout, batch_id: str) -> BatchPaths:
    return BatchPaths(batch_id, layout.scenes_dir(batch_episode(batch_id)))


def _body_version(batch_id: str, name: str) -> int | None:
    prefix = batch_id + ".v"
    if not (name.startswith(prefix) and name.endswith(".json")):
        return None
    digits = name[len(prefix) : -len(".json")]
    if len(digits) < 3 or not digits.isascii() or not digits.isdigit():
        return None
    version = int(digits)
    # v1000 follows v999; "v0001" is not a name this store writes.
    return version if f"{version:03d}" == digits and version >= 1 else None


@dataclass(frozen=True, slots=True)
class Layout:
    """Where a project lives: ``<root>/<project>/<episode>/scenes/``."""

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
