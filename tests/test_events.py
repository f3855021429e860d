"""The event codec: tags, envelope, unknown fields and unknown types."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from eventstore import Appended, Conformed, Derived, Event, Reverted
from eventstore.events import decode_event, decode_lines, default_actor, encode_event, utc_now

ENVELOPE = ["type", "seq", "batch_id", "version", "at", "actor", "reason", "event_id", "prev"]


def test_every_event_has_the_envelope_in_order() -> None:
    common: dict[str, Any] = dict(
        seq=1,
        batch_id="ep_001_BATCH_003",
        version=2,
        at=utc_now(),
        actor="a",
        reason=None,
        event_id="e",
        prev=None,
    )
    events: list[Event] = [
        Appended(
            **common,
            artifact="x",
            state="candidate",
            downstream="not_derived",
            kind="pickup",
            source="rederive",
            parent_version=None,
            structure_fingerprint="f",
            shot_count=1,
        ),
        Conformed(**common, previous_active=1),
        Reverted(**common, previous_active=3),
        Derived(**common),
    ]
    for event in events:
        line = encode_event(event)
        assert list(json.loads(line))[: len(ENVELOPE)] == ENVELOPE
        assert decode_event(line) == event
        assert event.type == json.loads(line)["type"]
    assert decode_lines(b"\n".join(encode_event(e) for e in events) + b"\n") == events


def test_unknown_fields_skipped_unknown_type_refused() -> None:
    line = encode_event(
        Derived(
            seq=1,
            batch_id="ep_001_BATCH_003",
            version=1,
            at=utc_now(),
            actor="a",
            reason="r",
            event_id="e",
            prev=None,
        )
    )
    extended = json.loads(line)
    extended["future_field"] = {"x": 1}
    assert decode_event(json.dumps(extended)).reason == "r"
    extended["type"] = "renamed"
    with pytest.raises(msgspec.ValidationError):
        decode_event(json.dumps(extended))


def test_at_is_utc_with_microseconds_and_z() -> None:
    import re

    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", utc_now())


def test_actor_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCENELOG_ACTOR", "env@host")
    assert default_actor("given") == "given"
    assert default_actor(None) == "env@host"
    monkeypatch.delenv("SCENELOG_ACTOR")
    assert "@" in default_actor(None)
