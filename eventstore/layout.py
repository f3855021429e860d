"""Names: the grammars of project names, episodes, batch ids and versions.

Invariants:
- Every id is validated against its exact grammar (ASCII digits only) before
  any backend sees it, so no id can name a file outside ``<root>/<project>``
  (the file backend's paths: eventstore.filelog.paths).
- Validation touches no disk: it is pure string work (R2).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from eventstore.errors import InvalidInput

__all__ = [
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


_valid_batch_ids: set[str] = set()
"""Batch ids already found valid (a writer checks the same few at every command)."""


def validate_batch_id(batch_id: object) -> str:
    """Return ``batch_id`` if it matches ``ep_NNN_BATCH_NNN`` exactly, else raise."""
    if type(batch_id) is str and batch_id in _valid_batch_ids:
        return batch_id
    if not isinstance(batch_id, str) or not _BATCH_RE.fullmatch(batch_id):
        raise InvalidInput(
            f"invalid batch id {_shown(batch_id)}: use ep_NNN_BATCH_NNN with ASCII digits, "
            "e.g. ep_001_BATCH_003",
            value=batch_id,
        )
    normalize_episode(batch_id[:6])
    if type(batch_id) is str:  # a str subclass could compare equal and differ
        if len(_valid_batch_ids) >= 4096:
            _valid_batch_ids.clear()
        _valid_batch_ids.add(batch_id)
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
