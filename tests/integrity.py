"""Checks a test runs on a batch after concurrent or crashing writers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from eventstore import fold
from eventstore.filelog.core import read_log_events


def check_batch(scenes_dir: Path, batch_id: str) -> list[dict[str, Any]]:
    """Assert seq contiguity, the hash chain, and view == fold; return the events."""
    log = scenes_dir / f"{batch_id}.events.jsonl"
    raw = log.read_bytes()
    assert raw.endswith(b"\n"), "the log ends in a torn line"
    lines = raw.split(b"\n")[:-1]
    events = [json.loads(line) for line in lines]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    prev = None
    for line, event in zip(lines, events, strict=True):
        assert event["prev"] == prev
        prev = hashlib.sha256(line).hexdigest()
    folded = fold(batch_id, read_log_events(log, batch_id))
    view = json.loads((scenes_dir / f"{batch_id}.versions.json").read_bytes())
    assert view == folded.to_dict()
    return events
