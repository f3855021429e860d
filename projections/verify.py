"""verify: prove a project's record is whole, or say exactly where it is not.

For every batch log: each line parses; seq runs 1, 2, 3…; the hash chain
holds; every event is valid against the state before it (the rules of
``eventstore.rules``); every registered body exists, belongs to the batch and
still has the fingerprint recorded when it was registered. Beside the logs:
orphan bodies (never committed), torn tails, missing/stale/corrupt views,
and reference manifests not imported yet.

Invariants: verify never writes a log. With ``repair_views`` it rewrites
views, and nothing else.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec

from eventstore import DamagedStore, Event, Layout, load_scene, structure_fingerprint
from eventstore.events import Appended, decode_event
from eventstore.layout import BatchPaths, normalize_episode, validate_batch_id
from eventstore.log import line_hash
from eventstore.manifest import Fold
from eventstore.rules import check_event
from eventstore.views import load_reference_manifest, read_view, repair_view

__all__ = ["Finding", "VerifyReport", "verify"]


class Finding(msgspec.Struct, frozen=True):
    """One thing wrong: where (file, line), what, and how to fix it."""

    batch_id: str
    check: str
    path: str
    line: int | None
    what: str
    fix: str
    severity: str = "error"
    repaired: bool = False

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = msgspec.to_builtins(self)
        return result

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        done = " [view repaired]" if self.repaired else ""
        return f"{where}: {self.severity}: {self.what}{done} — fix: {self.fix}"


class VerifyReport(msgspec.Struct):
    """Everything verify found, and how much it looked at."""

    findings: list[Finding]
    batches: int
    events: int

    @property
    def ok(self) -> bool:
        return not [f for f in self.findings if not f.repaired]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "batches": self.batches,
            "events": self.events,
            "findings": [f.to_dict() for f in self.findings],
        }


_RESTORE = "restore the log from backup; nothing else may edit a log"


class _BatchCheck:
    """The checks of one batch; findings accumulate in ``found``."""

    def __init__(self, paths: BatchPaths) -> None:
        self.paths = paths
        self.found: list[Finding] = []
        self.events: list[Event] = []

    def add(
        self, check: str, path: Path, line: int | None, what: str, fix: str, severity: str = "error"
    ) -> None:
        self.found.append(Finding(self.paths.batch_id, check, str(path), line, what, fix, severity))

    def lines(self) -> bool:
        """Parse, seq and chain, line by line; True when the log's structure is whole."""
        log = self.paths.log
        data = log.read_bytes()
        complete_end = data.rfind(b"\n") + 1
        lines = data[:complete_end].split(b"\n")[:-1]
        if complete_end < len(data):
            self.add(
                "torn_tail",
                log,
                len(lines) + 1,
                f"last line is incomplete ({len(data) - complete_end} bytes, an interrupted "
                "write that was never acknowledged)",
                "nothing to do: the next command on this batch moves it aside",
                "warning",
            )
        whole = True
        expected_seq, prev = 1, None
        for number, line in enumerate(lines, start=1):
            try:
                event = decode_event(line)
            except (msgspec.DecodeError, msgspec.ValidationError) as e:
                self.add(
                    "unreadable", log, number, f"line does not parse as an event ({e})", _RESTORE
                )
                whole, prev = False, line_hash(line)
                expected_seq += 1
                continue
            self.events.append(event)
            if event.seq != expected_seq:
                what = (
                    f"seq {event.seq} where {expected_seq} was due: a line before it was "
                    "removed, or lines were reordered"
                    if event.seq > expected_seq
                    else f"seq {event.seq} where {expected_seq} was due: lines were reordered or "
                    "duplicated"
                )
                self.add("seq", log, number, what, _RESTORE)
                whole = False
            elif event.prev != prev and whole:
                self.add(
                    "hash_chain",
                    log,
                    number - 1 if number > 1 else number,
                    f"line {number}'s prev does not match the bytes of line {number - 1}: "
                    f"line {number - 1} (or the prev of line {number}) was edited",
                    _RESTORE,
                )
                whole = False
            expected_seq = event.seq + 1
            prev = line_hash(line)
        return whole

    def rules(self) -> Fold:
        """Every event against the state before it; the fold of the valid prefix."""
        fold = Fold(self.paths.batch_id, path=str(self.paths.log))
        for number, event in enumerate(self.events, start=1):
            problem = None
            if event.batch_id != self.paths.batch_id:
                problem = f"event of batch {event.batch_id!r} in this log"
            else:
                problem = check_event(fold, event, flat_name=self.paths.flat.name)
            if problem:
                self.add(
                    "rule",
                    self.paths.log,
                    number,
                    f"{event.type} breaks a rule: {problem}",
                    "the event was not written by scenelog; " + _RESTORE,
                )
                if fold.entry(event.version) is None and not isinstance(event, Appended):
                    break
            try:
                fold.apply(event)
            except DamagedStore:
                break
        return fold

    def bodies(self) -> None:
        referenced = {self.paths.flat.name}
        for number, event in enumerate(self.events, start=1):
            if not isinstance(event, Appended):
                continue
            referenced.add(event.artifact)
            path = self.paths.scenes_dir / os.path.basename(event.artifact)
            try:
                scene = load_scene(path)
            except FileNotFoundError:
                self.add(
                    "body_missing",
                    path,
                    None,
                    f"v{event.version}'s body (registered on line {number}) is missing",
                    "restore the body from backup",
                )
                continue
            except DamagedStore as e:
                self.add(
                    "body_unreadable",
                    path,
                    None,
                    f"v{event.version}'s body: {e}",
                    "restore the body from backup",
                )
                continue
            if scene.scene_id != self.paths.batch_id:
                self.add(
                    "body_identity",
                    path,
                    None,
                    f"v{event.version}'s body has scene_id {scene.scene_id!r}",
                    "restore the body from backup",
                )
            elif structure_fingerprint(scene) != event.structure_fingerprint:
                self.add(
                    "body_edited",
                    path,
                    None,
                    f"v{event.version}'s body was changed after it was registered (line "
                    f"{number}): its fingerprint is not the recorded one",
                    "restore the body from backup; bodies are immutable",
                )
        for name in sorted(os.listdir(self.paths.scenes_dir)):
            if name in referenced or not name.startswith(self.paths.batch_id + ".v"):
                continue
            if name.endswith(".json") and name[len(self.paths.batch_id) + 2 : -5].isdigit():
                self.add(
                    "orphan_body",
                    self.paths.scenes_dir / name,
                    None,
                    "body on disk that no event registers (a write that crashed before its event)",
                    "harmless: numbering skips it; delete it or keep it",
                    "warning",
                )

    def view(self, fold: Fold, repair: bool) -> None:
        path = self.paths.view
        manifest = fold.manifest()
        current = read_view(path)
        problem = None
        if not path.exists():
            problem = ("view_missing", "view is missing", "warning")
        elif current is None:
            problem = ("view_corrupt", "view does not parse as a manifest", "warning")
        elif current.seq != manifest.seq:
            problem = (
                "view_stale",
                f"view is at seq {current.seq}, the log at {manifest.seq}",
                "warning",
            )
        elif current != manifest:
            problem = (
                "view_differs",
                f"view at seq {current.seq} differs from the fold of the "
                "log: it was edited by hand",
                "error",
            )
        if problem is None:
            return
        check, what, severity = problem
        repaired = repair and repair_view(path, manifest)
        self.found.append(
            Finding(
                self.paths.batch_id,
                check,
                str(path),
                None,
                what,
                "scenelog verify --repair-views (readers fold the log meanwhile)",
                severity,
                repaired,
            )
        )


def _logless_orphans(layout: Layout, episode: str, only: str | None) -> list[Finding]:
    """Version bodies of batches that have no log at all (a first write that crashed)."""
    folder = layout.scenes_dir(episode)
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        batch_id, dot, rest = name.partition(".v")
        if not dot or not rest.endswith(".json") or not rest[:-5].isdigit():
            continue
        if (only and batch_id != only) or not batch_id.startswith(episode + "_BATCH_"):
            continue
        if not layout.batch(batch_id).log.exists():
            found.append(
                Finding(
                    batch_id,
                    "orphan_body",
                    str(folder / name),
                    None,
                    "body on disk of a batch with no log (a write that crashed before its event)",
                    "harmless: numbering skips it; delete it or keep it",
                    "warning",
                )
            )
    return found


def _targets(layout: Layout, target: str | None) -> tuple[list[str], list[str]]:
    """(batch ids with logs, episodes to scan) for a batch id, an episode or everything."""
    if target is None:
        episodes = layout.episodes()
    elif "_BATCH_" in target:
        batch_id = validate_batch_id(target)
        return [batch_id], [batch_id[:6]]
    else:
        episodes = [normalize_episode(target)]
    return [b for ep in episodes for b in layout.batch_ids(ep)], episodes


def verify(
    project: str,
    root: str | os.PathLike[str] | None = None,
    *,
    target: str | None = None,
    repair_views: bool = False,
) -> VerifyReport:
    """Check every log (of ``target``: a batch id, an episode, or the whole project)."""
    layout = Layout.of(project, root)
    batch_ids, episodes = _targets(layout, target)
    findings: list[Finding] = []
    events = 0
    for batch_id in batch_ids:
        check = _BatchCheck(layout.batch(batch_id))
        if not check.paths.log.exists():
            continue
        whole = check.lines()
        events += len(check.events)
        if whole and check.events:  # a log with no complete line yet has no view to check
            fold = check.rules()
            check.view(fold, repair_views)
        check.bodies()
        findings.extend(check.found)
    single = target is not None and "_BATCH_" in target
    for episode in episodes:
        findings.extend(_logless_orphans(layout, episode, target if single else None))
        for batch_id in layout.batch_ids(episode, suffix=".versions.json"):
            paths = layout.batch(batch_id)
            if (single and batch_id != target) or paths.log.exists():
                continue
            data = load_reference_manifest(paths.view)
            fmt = "reference-format manifest" if data and "seq" not in data else "view"
            findings.append(
                Finding(
                    batch_id,
                    "unimported" if fmt.startswith("reference") else "log_missing",
                    str(paths.view),
                    None,
                    f"{fmt} without a log",
                    f"scenelog import {episode}"
                    if fmt.startswith("reference")
                    else "restore the log from backup",
                )
            )
    return VerifyReport(findings, len(batch_ids), events)
