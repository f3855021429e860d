"""The rules an event must keep given the state before it (DESIGN §6, as checks).

The store drafts events and runs :func:`check_event` on each before it
appends them (item 6); every backend refuses an ``at`` that
:func:`at_problem` finds wrong; ``verify`` runs the same checks over
a log to find a hand-added or edited event that breaks a rule. Imported
events (carried over from a reference manifest) record states as they were,
so the rules about how states are born do not apply to them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

import msgspec

from eventstore.errors import InvalidInput, RuleViolation
from eventstore.events import Appended, Conformed, Derived, Event, Reverted, encode_event
from eventstore.log import line_hash, mark_line
from eventstore.manifest import Fold

__all__ = [
    "DOWNSTREAMS",
    "KINDS",
    "STATES",
    "append_problem",
    "at_problem",
    "body_name",
    "body_version",
    "check_choice",
    "check_event",
    "check_expected_seq",
    "check_parent",
    "check_text",
    "flat_name",
    "seal_command",
]

KINDS = ("pickup", "reshoot")
STATES = ("candidate", "approved")
DOWNSTREAMS = ("not_derived", "derived")


def flat_name(batch_id: str) -> str:
    """The artifact name of a batch's legacy flat body, v1 of Case A and B (``BATCH.json``)."""
    return f"{batch_id}.json"


def body_name(batch_id: str, version: int) -> str:
    """The artifact name of the body of ``version``: ``BATCH.vNNN.json`` (3+ digits)."""
    return f"{batch_id}.v{version:03d}.json"


def body_version(batch_id: str, name: str) -> int | None:
    """The version of a body named as :func:`body_name` names it; None for any other name."""
    prefix = batch_id + ".v"
    if not (name.startswith(prefix) and name.endswith(".json")):
        return None
    digits = name[len(prefix) : -len(".json")]
    if len(digits) < 3 or not digits.isascii() or not digits.isdigit():
        return None
    version = int(digits)
    # v1000 follows v999; "v0001" is not a name this store writes.
    return version if f"{version:03d}" == digits and version >= 1 else None


def _check_appended(fold: Fold, event: Appended, flat_name: str) -> str | None:
    version = event.version
    if fold.entry(version) is not None:
        return f"v{version} is registered twice"
    if event.state not in STATES or event.downstream not in DOWNSTREAMS or event.kind not in KINDS:
        return (
            f"v{version} has state {event.state!r}, downstream {event.downstream!r}, "
            f"kind {event.kind!r}: not values the store writes"
        )
    expected = {flat_name} if version == 1 else set()
    expected.add(body_name(event.batch_id, version))
    if event.artifact not in expected:
        return f"v{version} names artifact {event.artifact!r}, expected one of {sorted(expected)}"
    if event.imported:
        return None
    if version <= fold.max_version:
        return f"v{version} registered after v{fold.max_version}: numbering went backwards (R8)"
    if fold.seq == 0 and version != 1:
        return f"the first version of a log must be v1, not v{version} (R3, R4)"
    if fold.entries == [] and (event.state, event.downstream) != ("approved", "derived"):
        return "v1 must be registered approved and derived (R3, R4)"
    if fold.entries and event.downstream != "not_derived":
        return f"candidate v{version} registered as {event.downstream!r}: born not_derived (R5)"
    return None


def check_event(fold: Fold, event: Event, *, flat_name: str) -> str | None:
    """What is wrong with ``event`` after the events folded into ``fold`` (None: nothing)."""
    if isinstance(event, Appended):
        return _check_appended(fold, event, flat_name)
    entry = fold.entry(event.version)
    if entry is None:
        return f"{event.type} names unregistered v{event.version} (R10, R11)"
    active = fold.active_version
    if isinstance(event, Conformed | Reverted):
        if event.previous_active != active:
            return (
                f"{event.type} records previous_active v{event.previous_active}, "
                f"but v{active} was active"
            )
        if event.imported:
            return None
        if isinstance(event, Reverted) and event.version == active:
            return f"revert to the active v{active} changes nothing (R13)"
        if isinstance(event, Conformed) and event.version == active and entry.state == "approved":
            return f"conform of the active, approved v{active} changes nothing (R13)"
        return None
    assert isinstance(event, Derived)
    if event.version != active:
        return f"derived v{event.version} while v{active} was active: the pointer-race guard (R12)"
    if entry.downstream == "derived" and not event.imported:
        return f"v{event.version} was derived already (R13)"
    return None


# ── R25: the checks of a command's arguments, before anything is written ──────


def check_choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    """R25: ``value`` is one of ``allowed``."""
    if not isinstance(value, str) or value not in allowed:
        raise InvalidInput(
            f"invalid {name} {value!r}: must be one of {', '.join(allowed)}", value=value
        )
    return value


def check_text(name: str, value: object, *, optional: bool) -> str | None:
    """R25: a string (non-empty unless optional) that is valid UTF-8 text."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or (not optional and not value):
        raise InvalidInput(f"invalid {name} {value!r}: give a string", value=value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        # What argv or the environment hold for bytes that are not UTF-8.
        raise InvalidInput(
            f"invalid {name} {value!r}: not valid UTF-8 text (position {e.start}); "
            "give it as UTF-8",
            value=value,
        ) from e
    return value


def check_expected_seq(expected_seq: object) -> int | None:
    """R15, R25: None or a whole number >= 0 (never a bool)."""
    if expected_seq is None:
        return None
    if isinstance(expected_seq, bool) or not isinstance(expected_seq, int) or expected_seq < 0:
        raise InvalidInput(
            f"invalid expected_seq {expected_seq!r}: a whole number >= 0", value=expected_seq
        )
    return expected_seq


def check_parent(fold: Fold, batch_id: str, parent: int | None, *, legacy_v1: bool) -> None:
    """R25: a parent is a version registered before this command (or the flat v1 it
    registers); so a version is never its own parent nor a later one's child."""
    if parent is None or fold.entry(parent) is not None or (legacy_v1 and parent == 1):
        return
    if fold.entries:
        known = "registered: " + ", ".join(f"v{e.version}" for e in fold.entries[-5:])
    else:
        known = "it has no versions yet"
    raise InvalidInput(
        f"invalid parent v{parent} for batch {batch_id}: not a registered version "
        f"({known}); a version derives from a registered one, never from itself or a "
        f"later one — see `scenelog show {batch_id}`",
        batch_id=batch_id,
        value=parent,
    )


_AT_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")


def at_problem(event: Event) -> str | None:
    """Why ``event.at`` is not a timestamp this log may hold (None: it is)."""
    at = event.at
    if _AT_RE.fullmatch(at):
        try:
            datetime.fromisoformat(at[:-1])
            return None
        except ValueError:
            pass
    elif event.imported and isinstance(at, str):
        # Carried over from a reference manifest: any ISO 8601 time with a zone.
        text = at[:-1] + "+00:00" if at.endswith("Z") else at
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            moment = None
        if moment is not None and moment.utcoffset() is not None and len(text.split("-")[0]) == 4:
            return None
    return f"`at` {at!r} is not a UTC time of the form YYYY-MM-DDTHH:MM:SS.ffffffZ"


def append_problem(fold: Fold, event: Event, batch_id: str) -> str | None:
    """What a log session refuses about ``event`` after ``fold`` (None: nothing).

    Item 3: every backend's session runs this on each event of a command
    before storing any of them, so a refused command stores nothing.
    """
    if event.batch_id != batch_id:
        return f"it names batch {event.batch_id!r}"
    if isinstance(event, Appended):
        if fold.entry(event.version) is not None:
            return f"v{event.version} is registered already"
    elif fold.entry(event.version) is None:
        return f"v{event.version} is not registered"
    return at_problem(event)


def seal_command(
    fold: Fold, drafts: Sequence[Event], batch_id: str, prev: str | None
) -> tuple[list[Event], list[bytes], str | None]:
    """One command's events as a log stores them, each checked (item 3, R19, R24).

    Each draft gets its seq (after ``fold.seq``) and ``prev`` (the hash of the
    line before it; ``prev`` for the first), is checked by
    :func:`append_problem` and folded into ``fold`` (give a copy: a refused
    command must leave the caller's state alone). Returns the events, their
    lines (``more`` marks included) and the hash of the last line.
    RuleViolation for the first event refused: the caller writes nothing.
    """
    committed: list[Event] = []
    lines: list[bytes] = []
    seq = fold.seq
    remaining = len(drafts)
    for draft in drafts:
        seq += 1
        remaining -= 1
        event = msgspec.structs.replace(draft, seq=seq, prev=prev)
        problem = append_problem(fold, event, batch_id)
        if problem is not None:
            raise RuleViolation(
                f"batch {batch_id}: refusing to append {event.type} v{event.version} as "
                f"seq {event.seq}: {problem}; nothing was written",
                batch_id=batch_id,
                seq=event.seq,
            )
        fold.apply(event)
        line = encode_event(event)
        if remaining:
            line = mark_line(line, remaining)
        prev = line_hash(line)
        committed.append(event)
        lines.append(line)
    return committed, lines, prev
