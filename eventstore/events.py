"""The four events of a batch log and their one codec.

Each event is a msgspec tagged ``Struct``; the tag field is ``type`` and the
tags are permanent: never rename, retype or reorder a field, and add new ones
only with defaults (they are then left out of lines while at their default).

Envelope (every event): ``seq``, ``batch_id``, ``version``, ``at``, ``actor``,
``reason``, ``event_id``, ``prev``. ``seq`` and ``prev`` are given by the log
at append time; commands build events with ``seq=0, prev=None``.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any, ClassVar

import msgspec

__all__ = [
    "EVENT_TYPES",
    "Appended",
    "Conformed",
    "Derived",
    "Event",
    "EventBase",
    "Reverted",
    "decode_event",
    "decode_lines",
    "default_actor",
    "encode_event",
    "new_event_id",
    "utc_now",
]


class EventBase(msgspec.Struct, tag_field="type", omit_defaults=True):
    """The envelope every event carries (DESIGN §3)."""

    type: ClassVar[str]
    seq: int
    batch_id: str
    version: int
    at: str
    actor: str
    reason: str | None
    event_id: str
    prev: str | None

    def to_dict(self) -> dict[str, Any]:
        """The event as the JSON object of its log line."""
        result: dict[str, Any] = msgspec.to_builtins(self)
        return result


class Appended(EventBase, tag="appended"):
    """A version body was registered (``imported``: carried over from a reference manifest)."""

    type: ClassVar[str] = "appended"
    artifact: str
    state: str
    downstream: str
    kind: str
    source: str
    parent_version: int | None
    structure_fingerprint: str
    shot_count: int
    imported: bool = False


class Conformed(EventBase, tag="conformed"):
    """The pointer moved to ``version`` and it was approved."""

    type: ClassVar[str] = "conformed"
    previous_active: int | None
    imported: bool = False


class Reverted(EventBase, tag="reverted"):
    """The pointer moved back to ``version``; nothing else changed."""

    type: ClassVar[str] = "reverted"
    previous_active: int | None
    imported: bool = False


class Derived(EventBase, tag="derived"):
    """The boards of the active ``version`` were rebuilt."""

    type: ClassVar[str] = "derived"
    imported: bool = False


Event = Appended | Conformed | Reverted | Derived
EVENT_TYPES: tuple[str, ...] = ("appended", "conformed", "reverted", "derived")

_encoder = msgspec.json.Encoder()
_decoder: msgspec.json.Decoder[Event] = msgspec.json.Decoder(Event)


def encode_event(event: Event) -> bytes:
    """The event's log line, without the trailing newline."""
    return _encoder.encode(event)


def decode_event(line: bytes | str) -> Event:
    """One event from one line (raises msgspec.DecodeError / ValidationError)."""
    return _decoder.decode(line)


def decode_lines(data: bytes) -> list[Event]:
    """Every event of a chunk of complete, newline-terminated lines."""
    return _decoder.decode_lines(data)


_second: tuple[int, str] = (-1, "")
"""The last second :func:`utc_now` formatted, and its text (one tuple: swapped atomically)."""


def utc_now() -> str:
    """Now in UTC as ISO 8601 with microseconds and ``Z`` (``2026-11-27T12:18:29.485069Z``).

    What ``datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")`` gives, at a
    fifth of its price on a writer's path (issue 15): the seconds are formatted
    once per second.
    """
    global _second
    micros = time.time_ns() // 1000
    seconds, fraction = divmod(micros, 1_000_000)
    known = _second
    if known[0] != seconds:
        t = time.gmtime(seconds)
        text = (
            f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
        )
        known = _second = (seconds, text)
    return f"{known[1]}.{fraction:06d}Z"


def new_event_id() -> str:
    """A random (version 4) UUID as 32 hex digits, as ``uuid.uuid4().hex`` gives."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return raw.hex()


def default_actor(actor: str | None = None) -> str:
    """``actor`` if given, else ``$SCENELOG_ACTOR``, else ``user@host``."""
    if actor:
        return actor
    return os.environ.get("SCENELOG_ACTOR") or _user_at_host()


@functools.lru_cache(maxsize=1)
def _user_at_host() -> str:
    """What ``getpass.getuser()`` and ``socket.gethostname()`` answer, without
    importing them: their modules (termios, socket, selectors) cost a
    writer's start-up ~2 ms (issue 15)."""
    names = ("LOGNAME", "USER", "LNAME", "USERNAME")
    user = next((os.environ[n] for n in names if os.environ.get(n)), "")
    if not user:
        try:
            import pwd

            user = pwd.getpwuid(os.getuid()).pw_name
        except (ImportError, KeyError):
            user = "unknown"
    if hasattr(os, "uname"):
        host = os.uname().nodename
    else:  # pragma: no cover - not a POSIX system
        import socket

        host = socket.gethostname()
    return f"{user}@{host}"
