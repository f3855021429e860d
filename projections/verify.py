"""verify: prove a project's record is whole, or say exactly where it is not.

For every batch log: each line parses; seq runs 1, 2, 3…; the hash chain
holds; every event is valid against the state before it (the rules of
``eventstore.rules``); every registered body exists, is a regular file,
belongs to the batch and still has the fingerprint recorded when it was
registered; the line at the head the store recorded (R27) still has the hash
recorded for it, and so does the line at each head of an export (``heads``).
Beside the logs: orphan bodies (never committed), torn tails, missing, stale,
ahead or corrupt views, and reference manifests not imported yet.

Invariants:
- verify never writes a log, a body or a head record. With
  ``repair_views`` it rewrites views, and nothing else.
- Exact on a live store (R26): a finding about something a command in
  flight also produces (the newest body above the log's last version, a view
  that is behind, ahead or missing, a torn tail, a recorded head past the
  log's end) is reported only when two looks at the batch, the second taken
  while no writer held the batch's lock, both show it. The lock is observed,
  never taken (R22): through ``/proc/locks`` where the system has it, else by
  letting ``SETTLE`` seconds pass between the looks. A batch whose end is
  still moving, or whose lock is still held, after 10 s gets one ``busy``
  warning instead of those findings.
- No advice ever says to delete a file: an orphan body may be kept or
  archived; a body that an unimported manifest names is not an orphan.
- Bodies are read only when they are regular files of at most
  ``MAX_BODY_BYTES``; anything else (a FIFO, a device, undecodable bytes) is
  a finding, never a hang, an exhausted memory or a traceback.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import msgspec

from eventstore import DamagedStore, Event, Layout, Scene, structure_fingerprint
from eventstore.events import Appended, decode_event
from eventstore.filelog import FileLog
from eventstore.fsio import replace_unless_newer
from eventstore.layout import BatchPaths, normalize_episode, validate_batch_id
from eventstore.log import line_hash
from eventstore.manifest import Fold, Manifest, decode_manifest, encode_manifest
from eventstore.rules import check_event
from eventstore.views import load_reference_manifest, repair_view

__all__ = [
    "MAX_BODY_BYTES",
    "SETTLE",
    "Finding",
    "Head",
    "VerifyReport",
    "heads",
    "load_heads",
    "verify",
]

MAX_BODY_BYTES = 256 * 1024 * 1024
"""Largest body verify reads; a bigger one is a finding (never read into memory)."""

SETTLE = 2.0
"""Seconds between two looks when the system cannot tell whether a lock is held."""

_GIVE_UP = 10.0
"""Seconds a batch's lock may stay held before verify stops waiting for it."""

_POLL = 0.002


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
_ORPHAN_FIX = (
    "nothing to do: numbering skips it and no reader uses it; it is not part of the "
    "record, keep it or archive it"
)
_REPAIR = "scenelog verify --repair-views (readers fold the log meanwhile)"
# Findings that a command in flight also produces; other findings are damage.
_MAYBE_IN_FLIGHT = frozenset(
    {
        "torn_tail",
        "incomplete_command",
        "view_missing",
        "view_corrupt",
        "view_stale",
        "view_ahead",
        "head_lost",
        "head_edited",  # the record is rewritten in place: a read may meet a write
    }
)
_VIEW_CHECKS = frozenset({"view_missing", "view_corrupt", "view_stale", "view_ahead"})


class _BodyProblem(Exception):
    def __init__(self, check: str, what: str) -> None:
        super().__init__(what)
        self.check = check
        self.what = what


def _read_body(path: Path) -> Scene:
    """The scene at ``path``, read only if it is a regular file of sane size.

    Raises FileNotFoundError, or _BodyProblem saying what is wrong.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise _BodyProblem("body_unreadable", f"cannot be read ({e.strerror or e})") from e
    if not stat.S_ISREG(st.st_mode):
        raise _BodyProblem("body_not_file", "is not a regular file (a FIFO, device or folder)")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise _BodyProblem("body_unreadable", f"cannot be read ({e.strerror or e})") from e
    try:
        st = os.fstat(fd)  # what was opened, not what the name pointed at before
        if not stat.S_ISREG(st.st_mode):
            raise _BodyProblem("body_not_file", "is not a regular file (a FIFO, device or folder)")
        if st.st_size > MAX_BODY_BYTES:
            raise _BodyProblem(
                "body_too_large",
                f"is {st.st_size} bytes, over the {MAX_BODY_BYTES} bytes verify reads",
            )
        chunks = []
        size = 0
        while chunk := os.read(fd, 1 << 20):
            size += len(chunk)
            if size > MAX_BODY_BYTES:  # grew while read
                raise _BodyProblem(
                    "body_too_large", f"is over the {MAX_BODY_BYTES} bytes verify reads"
                )
            chunks.append(chunk)
    except OSError as e:
        raise _BodyProblem("body_unreadable", f"cannot be read ({e.strerror or e})") from e
    finally:
        os.close(fd)
    raw = b"".join(chunks)
    try:
        return Scene.from_json(raw, max_bytes=max(len(raw), 1))
    except (ValueError, RecursionError) as e:  # SceneFormatError, UnicodeDecodeError
        raise _BodyProblem("body_unreadable", f"is not a scene ({e})") from e


def _regular_or_absent(path: Path) -> bool:
    """False when ``path`` exists and is not a regular file (never opens it)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        return True
    except OSError:
        return False


def _body_version(batch_id: str, name: str) -> int | None:
    prefix = batch_id + ".v"
    if not (name.startswith(prefix) and name.endswith(".json")):
        return None
    digits = name[len(prefix) : -len(".json")]
    return int(digits) if digits.isascii() and digits.isdigit() else None


class _BatchCheck:
    """The checks of one batch from one look at it; findings accumulate in ``found``."""

    def __init__(self, paths: BatchPaths) -> None:
        self.paths = paths
        self.found: list[Finding] = []
        self.events: list[Event] = []
        self.fold: Fold | None = None
        self.view_bytes: bytes | None = None
        # Taken before the log is read, so a body whose event is in the log is listed.
        self.listing = _listing(paths.scenes_dir)
        self.top_orphan: str | None = None

    def add(
        self, check: str, path: Path, line: int | None, what: str, fix: str, severity: str = "error"
    ) -> None:
        self.found.append(Finding(self.paths.batch_id, check, str(path), line, what, fix, severity))

    def lines(self) -> bool:
        """Parse, seq and chain, line by line; True when the log's structure is whole."""
        log = self.paths.log
        data = log.read_bytes()
        from eventstore.log import command_more, split_committed  # R24: whole commands only

        committed, _rest = split_committed(data)
        complete_end = data.rfind(b"\n") + 1
        lines = committed.split(b"\n")[:-1]
        cut = data.count(b"\n", len(committed), complete_end)
        if cut:
            self.add(
                "incomplete_command",
                log,
                len(lines) + 1,
                f"incomplete command, never acknowledged (its last {cut} complete lines; the "
                "write of the command was cut)",
                "nothing to do: the next command on this batch moves it aside",
                "warning",
            )
        if complete_end < len(data):
            self.add(
                "torn_tail",
                log,
                len(lines) + cut + 1,
                f"last line is incomplete ({len(data) - complete_end} bytes, an interrupted "
                "write that was never acknowledged)",
                "nothing to do: the next command on this batch moves it aside",
                "warning",
            )
        whole = True
        expected_seq, prev, due = 1, None, 0
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
            more = command_more(line)
            if due and more != due - 1 and whole:
                self.add("command", log, number, f"`more` {more} where {due - 1} was due", _RESTORE)
                whole = False
            due = more
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

    def bodies(self, named_elsewhere: Iterable[str] = ()) -> None:
        """Registered bodies are whole; unregistered ones are orphans (warnings)."""
        referenced = {self.paths.flat.name, *named_elsewhere}
        highest_logged = 0
        for number, event in enumerate(self.events, start=1):
            if not isinstance(event, Appended):
                continue
            referenced.add(event.artifact)
            highest_logged = max(highest_logged, event.version)
            path = self.paths.scenes_dir / os.path.basename(event.artifact)
            what = f"v{event.version}'s body (registered on line {number})"
            try:
                scene = _read_body(path)
            except FileNotFoundError:
                self.add(
                    "body_missing", path, None, f"{what} is missing", "restore the body from backup"
                )
                continue
            except _BodyProblem as e:
                self.add(e.check, path, None, f"{what} {e.what}", "restore the body from backup")
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
        orphans = [
            (version, name)
            for name in self.listing
            if name not in referenced
            and (version := _body_version(self.paths.batch_id, name)) is not None
        ]
        # Only the newest body above the log's last version can belong to a command in
        # flight: the writer numbers it under the lock, and the next one numbers above it.
        top = max(orphans, default=None)
        if top is not None and top[0] > highest_logged:
            self.top_orphan = str(self.paths.scenes_dir / top[1])
        where = "a batch with no log" if not self.events else "no event of the log"
        for _version, name in sorted(orphans):
            self.add(
                "orphan_body",
                self.paths.scenes_dir / name,
                None,
                f"body on disk that {where} registers (a write that stopped before its event)",
                _ORPHAN_FIX,
                "warning",
            )

    def view(self, fold: Fold) -> None:
        path = self.paths.view
        manifest = fold.manifest()
        if not _regular_or_absent(path):
            self.add(
                "view_not_file",
                path,
                None,
                "view is not a regular file",
                "move the odd entry aside (the view is only a cache), then " + _REPAIR,
            )
            return
        self.view_bytes = _read_small(path)
        current = _decode_view(self.view_bytes)
        problem = None
        if self.view_bytes is None:
            problem = ("view_missing", "view is missing", "warning")
        elif current is None:
            problem = ("view_corrupt", "view does not parse as a manifest", "warning")
        elif current.seq > manifest.seq:
            problem = (
                "view_ahead",
                f"view is at seq {current.seq}, above the log's {manifest.seq} (the log was "
                "restored from an older backup, or lines were removed from its end)",
                "warning",
            )
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
        if problem is not None:
            check, what, severity = problem
            self.add(check, path, None, what, _REPAIR, severity)

    def recorded_head(self, log: FileLog) -> None:
        """R27: the line at the head the store recorded still has the recorded hash."""
        recorded = log.recorded_head(self.paths.batch_id)
        if recorded is None:
            return
        seq, expected = recorded
        hashes = _line_hashes(self.paths.log)  # read after the record: writers record after
        if seq > len(hashes):
            self.add(
                "head_lost",
                self.paths.log,
                None,
                f"the log has {len(hashes)} complete lines but its head was recorded at seq "
                f"{seq}: lines were removed from its end (or it was restored from an older "
                "backup)",
                _RESTORE,
            )
        elif hashes[seq - 1] != expected:
            self.add(
                "head_edited",
                self.paths.log,
                seq,
                f"line {seq} is not the line recorded as the log's head at seq {seq} (its "
                "hash differs): it was edited",
                _RESTORE,
            )

    def in_flight_candidates(self) -> list[Finding]:
        return [f for f in self.found if _maybe_in_flight(f, self)]

    def damage(self) -> list[Finding]:
        return [f for f in self.found if not _maybe_in_flight(f, self)]


def _maybe_in_flight(finding: Finding, check: _BatchCheck) -> bool:
    if finding.check == "orphan_body":
        return finding.path == check.top_orphan
    # A warning about the log itself is about its end: a write that may still be going on.
    return finding.check in _MAYBE_IN_FLIGHT or (
        finding.severity == "warning" and finding.path == str(check.paths.log)
    )


def _key(finding: Finding) -> tuple[str, str, int | None, str]:
    return finding.check, finding.path, finding.line, finding.what


def _listing(folder: Path) -> list[str]:
    try:
        return sorted(os.listdir(folder))
    except FileNotFoundError:
        return []


def _read_small(path: Path, limit: int = MAX_BODY_BYTES) -> bytes | None:
    """The bytes of a regular file (None when missing or not a regular file)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def _decode_view(data: bytes | None) -> Manifest | None:
    if data is None:
        return None
    try:
        return decode_manifest(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def _line_hashes(path: Path) -> list[str]:
    """The hash of each complete line of the log at ``path`` (line n at index n - 1)."""
    data = _read_small(path, limit=1 << 62) or b""
    complete = data[: data.rfind(b"\n") + 1]
    return [line_hash(line) for line in complete.split(b"\n")[:-1]]


def _names_without_log(paths: BatchPaths) -> set[str] | None:
    """Bodies of a log-less batch that are not orphans; None: none of them is.

    A reference-format manifest (unimported) names its bodies; a view with a
    ``seq`` means the log is missing, and then no body is called an orphan.
    """
    if not paths.view.exists():
        return set()
    data = load_reference_manifest(paths.view)
    if data is None or "seq" in data:
        return None
    names: set[str] = set()
    versions = data.get("versions")
    for entry in versions if isinstance(versions, list) else []:
        if not isinstance(entry, dict):
            continue
        artifact = entry.get("artifact")
        if isinstance(artifact, str):
            names.add(os.path.basename(artifact))
        version = entry.get("version")
        if isinstance(version, int) and not isinstance(version, bool) and version >= 1:
            names.add(paths.body_name(version))
    return names


def _look(paths: BatchPaths, log: FileLog) -> _BatchCheck:
    """One complete look at one batch."""
    check = _BatchCheck(paths)
    if not _regular_or_absent(paths.log):
        check.add("log_not_file", paths.log, None, "log is not a regular file", _RESTORE)
        return check
    if not paths.log.exists():
        named = _names_without_log(paths)
        if named is not None:
            check.bodies(named)
        return check
    whole = check.lines()
    if whole and check.events:  # a log with no complete line yet has no view to check
        check.fold = check.rules()
        check.view(check.fold)
        check.recorded_head(log)
    check.bodies()
    return check


def _lock_free(lock: Path) -> bool | None:
    """Whether no process holds the POSIX lock on ``lock`` now; None: cannot tell.

    Reads ``/proc/locks`` (Linux); never opens the lock file, whose every close
    would drop this process's own lock on it.
    """
    try:
        inode = os.stat(lock).st_ino
    except FileNotFoundError:
        return True
    except OSError:
        return None
    try:
        with open("/proc/locks", "rb") as f:
            table = f.read()
    except OSError:
        return None
    suffix = f":{inode}".encode()
    for row in table.splitlines():
        fields = row.split()
        if len(fields) > 5 and fields[1] != b"->" and fields[5].endswith(suffix):
            return False
    return True


def _settled(paths: BatchPaths, log: FileLog) -> tuple[_BatchCheck, list[Finding]]:
    """Look at the batch until every finding a command in flight could explain is confirmed.

    A candidate is confirmed when two consecutive looks show it and the batch's
    lock was free between them (every command that was in flight at the first
    look had ended). Returns the last look and the findings to report.
    """
    start = time.monotonic()
    previous = _look(paths, log)
    while previous.in_flight_candidates():
        waited = time.monotonic() - start
        if waited >= _GIVE_UP:
            busy = Finding(
                paths.batch_id,
                "busy",
                str(paths.lock),
                None,
                f"the batch was written to (or its lock held) throughout {waited:.0f}s of "
                "looking: its end could not be checked",
                "run verify again; if it persists, find the process holding the batch's lock",
                "warning",
            )
            return previous, [*previous.damage(), busy]
        free = _lock_free(paths.lock)
        if free is None:
            free = waited >= SETTLE
        if not free:
            time.sleep(_POLL)  # a writer holds the lock: give it the processor
            continue
        current = _look(paths, log)
        before = {_key(f) for f in previous.in_flight_candidates()}
        if all(_key(f) in before for f in current.in_flight_candidates()):
            return current, current.found
        previous = current
    return previous, previous.found


def _repair(check: _BatchCheck, finding: Finding) -> Finding:
    """Rewrite the view of a confirmed view finding; the finding marked repaired if done."""
    if check.fold is None:
        return finding
    manifest = check.fold.manifest()
    if finding.check == "view_ahead":
        repaired = _replace_view_ahead(check.paths.view, manifest, check.view_bytes)
    else:
        repaired = repair_view(check.paths.view, manifest)
    return msgspec.structs.replace(finding, repaired=repaired)


def _replace_view_ahead(path: Path, manifest: Manifest, bad: bytes | None) -> bool:
    """Replace a view whose seq is above the log's; keep anything a writer put there since."""

    def newer(old: bytes) -> bool:
        if old == bad:
            return False
        try:
            return decode_manifest(old).seq > manifest.seq
        except (msgspec.DecodeError, msgspec.ValidationError):
            return False

    try:
        return replace_unless_newer(path, encode_manifest(manifest), newer)
    except OSError:
        return False


def _check_batch(paths: BatchPaths, log: FileLog, repair_views: bool) -> tuple[list[Finding], int]:
    check, findings = _settled(paths, log)
    if repair_views:
        findings = [_repair(check, f) if f.check in _VIEW_CHECKS else f for f in findings]
    return findings, len(check.events)


def _compare_heads(
    layout: Layout, heads: Mapping[str, tuple[int, str]], episodes: list[str], single: str | None
) -> list[Finding]:
    """Each exported head against the log: the line at its seq must still have its hash."""
    found = []
    for batch_id, (seq, expected) in sorted(heads.items()):
        if (single is not None and batch_id != single) or batch_id[:6] not in episodes:
            continue
        path = layout.batch(batch_id).log
        hashes = _line_hashes(path) if path.exists() else []
        if not path.exists():
            what, line = f"the export has a head at seq {seq} but the log is missing", None
        elif seq > len(hashes):
            what, line = (
                f"the log has {len(hashes)} complete lines, the export's head is at seq {seq}: "
                "lines were removed from its end",
                None,
            )
        elif hashes[seq - 1] != expected:
            what, line = (
                f"line {seq} differs from the exported head at seq {seq}: the log was rewritten "
                "since the export",
                seq,
            )
        else:
            continue
        found.append(Finding(batch_id, "heads_mismatch", str(path), line, what, _RESTORE))
    return found


class _HeadRow(msgspec.Struct):
    batch_id: str
    seq: int
    hash: str


_head_row = msgspec.json.Decoder(_HeadRow)


def load_heads(path: str | os.PathLike[str]) -> dict[str, tuple[int, str]]:
    """Read an export of ``scenelog heads`` (its JSON lines or its table).

    Raises ValueError naming the file and line when a line is neither.
    """
    heads: dict[str, tuple[int, str]] = {}
    text = Path(path).read_bytes()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            if line.startswith(b"{"):
                row = _head_row.decode(line)
                batch_id, seq, digest = row.batch_id, row.seq, row.hash
            else:
                fields = line.decode("utf-8").split()
                if fields and fields[0] in ("BATCH", "BATCH_ID"):
                    continue  # the table's header
                batch_id, seq_text, digest = fields
                seq = int(seq_text)
            validate_batch_id(batch_id)
            if seq < 1 or len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
                raise ValueError("seq must be >= 1 and hash 64 lowercase hex digits")
        except (ValueError, msgspec.DecodeError, msgspec.ValidationError) as e:
            raise ValueError(
                f"{path}:{number}: not a head of `scenelog heads` ({e}); pass a file written by "
                "`scenelog heads --json`"
            ) from e
        heads[batch_id] = (seq, digest)
    return heads


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


def _logless_batches(layout: Layout, episode: str, only: str | None) -> list[str]:
    """Batches of ``episode`` with version bodies on disk and no log."""
    found = set()
    for name in _listing(layout.scenes_dir(episode)):
        batch_id, dot, rest = name.partition(".v")
        if not dot or not rest.endswith(".json") or not rest[:-5].isdigit():
            continue
        if (only and batch_id != only) or not batch_id.startswith(episode + "_BATCH_"):
            continue
        try:
            validate_batch_id(batch_id)
        except ValueError:
            continue
        if not layout.batch(batch_id).log.exists():
            found.add(batch_id)
    return sorted(found)


class Head(msgspec.Struct, frozen=True):
    """A batch's head: the seq of its last committed line and that line's sha256 hex."""

    batch_id: str
    seq: int
    hash: str

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = msgspec.to_builtins(self)
        return result


def heads(
    project: str, root: str | os.PathLike[str] | None = None, *, target: str | None = None
) -> list[Head]:
    """Every batch's head (of ``target``: a batch id, an episode, or the whole project), R27.

    Kept elsewhere, the export lets ``verify(heads=...)`` prove that no line up
    to each head was rewritten since, even by someone who rewrote a log and its
    head record consistently. Batches with no committed line have no head.
    """
    layout = Layout.of(project, root)
    log = FileLog(layout)
    batch_ids, _episodes = _targets(layout, target)
    found = []
    for batch_id in batch_ids:
        seq, digest = log.head(batch_id)
        if seq and digest is not None:
            found.append(Head(batch_id, seq, digest))
    return found


def verify(
    project: str,
    root: str | os.PathLike[str] | None = None,
    *,
    target: str | None = None,
    repair_views: bool = False,
    heads: Mapping[str, tuple[int, str]] | None = None,
) -> VerifyReport:
    """Check every log (of ``target``: a batch id, an episode, or the whole project).

    ``heads`` (from :func:`load_heads`) are exported heads the logs must still hold.
    """
    layout = Layout.of(project, root)
    log = FileLog(layout)
    batch_ids, episodes = _targets(layout, target)
    single = target if target is not None and "_BATCH_" in target else None
    findings: list[Finding] = []
    events = 0
    for batch_id in batch_ids:
        paths = layout.batch(batch_id)
        if not paths.log.exists():
            continue
        found, count = _check_batch(paths, log, repair_views)
        findings.extend(found)
        events += count
    for episode in episodes:
        for batch_id in _logless_batches(layout, episode, single):
            found, _count = _check_batch(layout.batch(batch_id), log, repair_views)
            findings.extend(found)
        for batch_id in layout.batch_ids(episode, suffix=".versions.json"):
            paths = layout.batch(batch_id)
            if (single and batch_id != single) or paths.log.exists():
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
    if heads:
        findings.extend(_compare_heads(layout, heads, episodes, single))
    return VerifyReport(findings, len(batch_ids), events)
