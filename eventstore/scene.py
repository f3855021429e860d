"""Scene bodies: parse, validate, fingerprint, and write once.

A scene body is a JSON object with ``scene_id`` (a string) and ``beats`` (a
list of objects, each with a string ``shot_id``). Every other key, at any
level, is kept as loaded and written back unchanged.

Invariants:
- ``Scene.from_json`` refuses anything that is not a scene (SceneFormatError)
  and bodies larger than ``max_bytes`` before parsing them.
- A UTF-8 byte order mark at the start of a body is accepted and ignored (a
  body written by a tool that adds one, RFC 8259 §8.1); a body is always
  written without one.
- ``NaN``, ``Infinity`` and ``-Infinity`` (which Python's ``json.dump`` and the
  reference write for floats that are not numbers) are not JSON: refused with
  an error that names the token and says to replace it, never "restore from
  backup".
- ``structure_fingerprint`` is the sha256 of the canonical JSON of ``beats``
  (sorted keys, no whitespace, UTF-8): every key of every beat, ``raw`` too.
- ``save_scene_once`` never overwrites a body (R8 write-once guard).
"""

from __future__ import annotations

import codecs
import copy
import os
from pathlib import Path
from typing import Any

import msgspec

from eventstore.errors import DamagedBody, SceneFormatError
from eventstore.filelog.fsio import write_once

__all__ = [
    "DEFAULT_MAX_SCENE_BYTES",
    "Scene",
    "load_scene",
    "save_scene_once",
    "structure_fingerprint",
]

DEFAULT_MAX_SCENE_BYTES = 64 * 1024 * 1024
"""Largest scene body accepted, unless ``$SCENELOG_MAX_SCENE_BYTES`` says otherwise."""

_MAX_DEPTH = 200


def _max_scene_bytes() -> int:
    value = os.environ.get("SCENELOG_MAX_SCENE_BYTES")
    return int(value) if value and value.isdigit() else DEFAULT_MAX_SCENE_BYTES


def _depth_ok(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return True


class Scene:
    """One scene body. ``scene_id`` and ``beats`` are views into ``data``."""

    __slots__ = ("data",)

    def __init__(self, data: dict[str, Any]) -> None:
        _check_shape(data)
        self.data = data

    @property
    def scene_id(self) -> str:
        value: str = self.data["scene_id"]
        return value

    @property
    def beats(self) -> list[dict[str, Any]]:
        value: list[dict[str, Any]] = self.data["beats"]
        return value

    @classmethod
    def from_json(cls, data: bytes | str, *, max_bytes: int | None = None) -> Scene:
        """Parse a scene body; SceneFormatError says what is wrong with it."""
        limit = _max_scene_bytes() if max_bytes is None else max_bytes
        raw = _utf8(data) if isinstance(data, str) else data
        if raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]  # accepted and dropped (RFC 8259 §8.1)
        if len(raw) > limit:
            raise SceneFormatError(
                f"scene JSON is {len(raw)} bytes, over the limit of {limit}: split the "
                "scene or raise $SCENELOG_MAX_SCENE_BYTES",
                size=len(raw),
                limit=limit,
            )
        try:
            parsed = msgspec.json.decode(raw)
        except msgspec.DecodeError as e:
            token = _nonstandard_number(raw)
            if token is not None:
                raise SceneFormatError(
                    f"scene is not valid JSON: it contains {token}, which JSON does not allow "
                    "(Python's json.dump writes it for a float that is not a number); replace "
                    f"each {token} with null or a number",
                    token=token,
                ) from e
            raise SceneFormatError(f"scene is not valid JSON: {e}") from e
        except RecursionError as e:
            raise SceneFormatError(f"scene JSON is nested deeper than {_MAX_DEPTH} levels") from e
        if not _depth_ok(parsed, _MAX_DEPTH):
            raise SceneFormatError(f"scene JSON is nested deeper than {_MAX_DEPTH} levels")
        return cls(parsed)

    def to_json(self) -> bytes:
        """The body as written to disk: indented JSON, keys in their loaded order."""
        return msgspec.json.format(msgspec.json.encode(self.data), indent=2) + b"\n"

    def copy(self) -> Scene:
        return Scene(copy.deepcopy(self.data))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Scene) and other.data == self.data

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Scene(scene_id={self.data.get('scene_id')!r}, beats={len(self.beats)})"


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise SceneFormatError(
            f"scene text is not valid UTF-8 (position {e.start}): save the scene as UTF-8"
        ) from e


def _nonstandard_number(raw: bytes) -> str | None:
    """``NaN``, ``Infinity`` or ``-Infinity`` when they are what keeps ``raw`` from being JSON."""
    found: list[str] = []

    def record(token: str) -> None:
        found.append(token)

    import json  # only on this error path and in structure_fingerprint (start-up)

    try:
        json.loads(raw, parse_constant=record)
    except (ValueError, RecursionError):
        return None
    return found[0] if found else None


def _check_shape(data: object) -> None:
    if not isinstance(data, dict):
        raise SceneFormatError("a scene body must be a JSON object with scene_id and beats")
    scene_id = data.get("scene_id")
    if not isinstance(scene_id, str):
        raise SceneFormatError(
            "scene body has no string 'scene_id': add the batch id it belongs to"
        )
    beats = data.get("beats")
    if not isinstance(beats, list):
        raise SceneFormatError(f"scene {scene_id!r} has no 'beats' list")
    for index, beat in enumerate(beats):
        if not isinstance(beat, dict) or not isinstance(beat.get("shot_id"), str):
            raise SceneFormatError(
                f"scene {scene_id!r}: beat {index} has no string 'shot_id'", beat=index
            )


def load_scene(path: str | os.PathLike[str]) -> Scene:
    """Read and validate the scene body at ``path``.

    A missing file raises FileNotFoundError; a file that is not a scene raises
    DamagedBody (a ValueError) naming it.
    """
    path = Path(path)
    raw = path.read_bytes()
    try:
        return Scene.from_json(raw, max_bytes=max(len(raw), _max_scene_bytes()))
    except SceneFormatError as e:
        token = getattr(e, "token", None)
        if token is not None:
            raise DamagedBody(
                f"scene body {path} is not valid JSON: it contains {token}, which JSON does "
                "not allow (the reference's json.dump writes it for a float that is not a "
                f"number); edit the file to replace each {token} with null or a number, then "
                "run the command again",
                path=str(path),
                token=token,
            ) from e
        raise DamagedBody(
            f"scene body {path} is unreadable: {e}; restore it from backup or run "
            "`scenelog verify`",
            path=str(path),
        ) from e


def structure_fingerprint(scene: Scene | list[Any]) -> str:
    """sha256 hex of the canonical JSON (sorted keys, compact, UTF-8) of the beats.

    ValueError for beats that have no JSON form (NaN, text that is not UTF-8).
    """
    import hashlib  # here, not at the top: a read never fingerprints (start-up, issue 15)
    import json

    beats = scene.beats if isinstance(scene, Scene) else scene
    canonical = json.dumps(
        beats, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def save_scene_once(scene: Scene, path: Path, *, batch_id: str | None = None) -> None:
    """Write ``scene`` to ``path`` durably, refusing to replace an existing file."""
    write_once(path, scene.to_json(), batch_id=batch_id)
