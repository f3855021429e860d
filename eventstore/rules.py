"""The rules an event must keep given the state before it (DESIGN §6, as checks).

The store builds only events that pass; ``verify`` runs the same checks over
a log to find a hand-added or edited event that breaks a rule. Imported
events (carried over from a reference manifest) record states as they were,
so the rules about how states are born do not apply to them.
"""

from __future__ import annotations

from eventstore.events import Appended, Conformed, Derived, Event, Reverted
from eventstore.manifest import Fold

__all__ = ["DOWNSTREAMS", "KINDS", "STATES", "body_name", "check_event", "flat_name"]

KINDS = ("pickup", "reshoot")
STATES = ("candidate", "approved")
DOWNSTREAMS = ("not_derived", "derived")


def flat_name(batch_id: str) -> str:
    """The artifact name of a batch's legacy flat body, v1 of Case A and B (``BATCH.json``)."""
    return f"{batch_id}.json"


def body_name(batch_id: str, version: int) -> str:
    """The artifact name of the body of ``version``: ``BATCH.vNNN.json`` (3+ digits)."""
    return f"{batch_id}.v{version:03d}.json"


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
