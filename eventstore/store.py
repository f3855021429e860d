"""SceneVersionStore: the four commands of a batch, each one append to its log.

Every command validates its arguments before touching the disk (R2), takes
the reference's ``<batch>.versions.lock`` when it exists and then the batch
lock (R29), checks itself against the state folded from the log under those
locks (R14), appends all its events with one write (R20), then rewrites the
view (R17). Nothing here moves the pointer but ``conform`` and ``revert``;
nothing edits a body once written.

Invariants:
- R25: every input is checked before the first byte is written — ids,
  choices, versions (ints, never bools or floats), text that encodes as
  UTF-8 (argv and the environment hold undecodable bytes as surrogates), the
  scene's JSON form (encoded once, and those bytes are what is written), and,
  under the lock but before any body, that a ``parent_version`` is registered
  (the flat body a Case B command registers counts as v1). A refused command
  leaves no body, no flat file and no event.
- Under the locks and before anything is written: a batch without events is
  checked for a reference manifest or a lost log (R21), a batch with events
  for a ``versions.json`` changed by another tool (R29, ForeignView).
- R8 is exact at the moment of the command, in every process: the highest
  ``.vNNN.json`` on disk comes from a listing of the scenes folder, reused
  only while the folder's mtime is unchanged and older than the clock's
  granularity at the time of the listing (see ``_list_folder``). Caches are
  keyed on file identity (device, inode), never on a path's spelling (R23).

Crash at each step of ``write_scene_candidate``: before the body, nothing;
after the body, an orphan body that the next numbering skips (R8, R9) — for
a first write, a flat body that the next write registers as legacy v1;
during the event line, a torn tail the next writer removes (R18); after the
line's fsync, committed — a missing or stale view is refolded by readers.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from eventstore.errors import (
    BodyMissing,
    IdentityMismatch,
    InvalidInput,
    NoLog,
    NotActiveVersion,
    SeqMismatch,
    UnregisteredVersion,
)
from eventstore.events import (
    Appended,
    Conformed,
    Derived,
    Event,
    Reverted,
    default_actor,
    new_event_id,
    utc_now,
)
from eventstore.filelog import FileLog
from eventstore.fsio import write_once
from eventstore.layout import (
    BatchPaths,
    Layout,
    normalize_episode,
    validate_batch_id,
    validate_version,
)
from eventstore.lock import DEFAULT_LOCK_TIMEOUT
from eventstore.log import EventLog, LogSession
from eventstore.manifest import Fold, Manifest, VersionEntry
from eventstore.rules import KINDS, STATES
from eventstore.scene import Scene, load_scene, structure_fingerprint
from eventstore.views import check_unimported, check_view, reference_lock, write_view

__all__ = ["KINDS", "STATES", "CandidateResult", "SceneVersionStore"]


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CandidateResult:
    """What a candidate write did: the version, whether dedup answered, the log's seq."""

    batch_id: str
    version: int
    deduplicated: bool
    seq: int


@dataclass
class _Listing:
    """One listing of a scenes folder: its names, and the folder's mtime when listed.

    ``trusted`` says the mtime was older than the clock's granularity before
    the listing began, so any later change of the folder's entries gets a
    different mtime; an untrusted listing serves only the command that made it.
    """

    mtime_ns: int
    trusted: bool
    names: str
    highest: dict[str, int] = field(default_factory=dict)

    def highest_of(self, batch_id: str) -> int:
        known = self.highest.get(batch_id)
        if known is None:
            # v1000 and up first (few), else the largest three-digit name, compared as
            # text: no per-name Python work in a folder of thousands of bodies. Each
            # name sits between newlines; a literal start lets the regex skip ahead.
            prefix = "\n" + re.escape(batch_id) + r"\.v"
            long = re.findall(prefix + r"([1-9][0-9]{3,})\.json(?=\n)", self.names)
            if long:
                known = max(map(int, long))
            else:
                short = re.findall(prefix + r"([0-9]{3})\.json(?=\n)", self.names)
                known = int(max(short, default="000"))
            self.highest[batch_id] = known
        return known


_MAX_CACHED = 4096
# Listings of scenes folders, keyed on the folder's identity (st_dev, st_ino),
# never its spelling (R23).
_disk_seen: dict[tuple[int, int], _Listing] = {}
# The scene_id of bodies already read, keyed on the body file's identity, with
# (size, mtime, ctime): a pointer move re-reads a body only if it changed on disk.
_bodies_seen: dict[tuple[int, int], tuple[tuple[int, int, int], str]] = {}


def _forget_all() -> None:
    _disk_seen.clear()
    _bodies_seen.clear()


os.register_at_fork(after_in_child=_forget_all)

_COARSE_CLOCK = getattr(time, "CLOCK_REALTIME_COARSE", 5 if sys.platform == "linux" else None)


def _clock_ns() -> tuple[int, int]:
    """(now as file timestamps see it, that clock's granularity), both in ns."""
    if _COARSE_CLOCK is not None:
        try:
            res = int(time.clock_getres(_COARSE_CLOCK) * 1e9)
            return time.clock_gettime_ns(_COARSE_CLOCK), max(res, 1_000_000)
        except OSError:
            pass
    return time.time_ns(), 10_000_000


def _list_folder(folder: Path) -> _Listing:
    """List ``folder`` now; trust the listing later only while its mtime stays put.

    The clock is read before the folder's mtime and the mtime before its
    names: a change after the listing began is stamped no earlier than that
    clock, so it moves the mtime away from the one recorded, provided that
    mtime is older than the clock by the timestamp granularity. A filesystem
    whose stamps look coarse (whole milliseconds) gets a 2 s margin.
    """
    now, granularity = _clock_ns()
    try:
        st = os.stat(folder)
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return _Listing(0, False, "")
    mtime = st.st_mtime_ns
    if mtime % 1_000_000 == 0:
        granularity = 2_000_000_000
    listing = _Listing(mtime, mtime + granularity <= now, "\n" + "\n".join(names) + "\n")
    if len(_disk_seen) >= _MAX_CACHED:
        _disk_seen.clear()
    _disk_seen[(st.st_dev, st.st_ino)] = listing
    return listing


def _highest_on_disk(paths: BatchPaths) -> int:
    """The highest ``.vNNN.json`` of the batch in its folder, at this moment (R8)."""
    try:
        st = os.stat(paths.scenes_dir)
    except (FileNotFoundError, NotADirectoryError):
        return 0
    listing = _disk_seen.get((st.st_dev, st.st_ino))
    if listing is None or not listing.trusted or listing.mtime_ns != st.st_mtime_ns:
        listing = _list_folder(paths.scenes_dir)
    return listing.highest_of(paths.batch_id)


class _DiskHigh:
    """R8's numbering: N = max(highest version logged, highest body on disk) + 1.

    Exact at the moment of the command, in every process: the folder is
    listed unless a listing of it is known to be current (its mtime unchanged
    and old enough to be trusted, see ``_list_folder``), so a body placed by
    anyone while a process runs is seen by that process's next command. The
    next number is then probed upwards as a last guard.
    """

    __slots__ = ()

    def next_version(self, paths: BatchPaths, highest_logged: int) -> int:
        version = max(highest_logged, _highest_on_disk(paths)) + 1
        while paths.body(version).exists():
            version += 1
        return version


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise InvalidInput(
            f"invalid {name} {value!r}: must be one of {', '.join(allowed)}", value=value
        )
    return value


def _check_text(name: str, value: object, *, optional: bool) -> str | None:
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


def _check_expected_seq(expected_seq: object) -> int | None:
    if expected_seq is None:
        return None
    if isinstance(expected_seq, bool) or not isinstance(expected_seq, int) or expected_seq < 0:
        raise InvalidInput(
            f"invalid expected_seq {expected_seq!r}: a whole number >= 0", value=expected_seq
        )
    return expected_seq


class SceneVersionStore:
    """The owner of every mutation of one episode's batches.

    ``root`` defaults to ``$SCENELOG_ROOT``, else the current directory;
    ``lock_timeout`` is how long a command waits for its batch lock.
    """

    def __init__(
        self,
        project: str,
        episode: int | str,
        root: str | os.PathLike[str] | None = None,
        *,
        log: EventLog | None = None,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        self.layout = Layout.of(project, root)
        self.project = self.layout.project
        self.episode = normalize_episode(episode)
        self.log = log if log is not None else FileLog(self.layout)
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return (
            f"SceneVersionStore({self.project!r}, {self.episode!r}, root={str(self.layout.root)!r})"
        )

    # ── commands ────────────────────────────────────────────────────────────

    def write_scene_candidate(
        self,
        requested_batch_id: str,
        scene: Scene,
        *,
        parent_version: int | None = None,
        source: str = "rederive",
        state: str = "candidate",
        kind: str = "reshoot",
        dedup_against_versions: bool = False,
        actor: str | None = None,
        reason: str | None = None,
    ) -> int:
        """Register ``scene`` as a new immutable version; return its number.

        Case A (no log, no flat body): the flat body becomes v1, approved and
        derived, active. Case B (flat body, no log): the flat body is
        registered in place as v1 and the candidate follows, in one append.
        Case C (log): the candidate is appended. The pointer never moves
        (R3-R6). With ``dedup_against_versions`` a registered version of the
        same structure fingerprint is returned instead (R7).

        Invariants: arguments and identity are checked before any disk access
        (R1, R2), and every input before anything durable, the parent's
        registration included (R25, InvalidInput); the body is durable before
        its event (R9); N skips orphan bodies (R8); the body is never
        overwritten (VersionBodyExists).
        """
        return self.write_candidate(
            requested_batch_id,
            scene,
            parent_version=parent_version,
            source=source,
            state=state,
            kind=kind,
            dedup_against_versions=dedup_against_versions,
            actor=actor,
            reason=reason,
        ).version

    def write_candidate(
        self,
        requested_batch_id: str,
        scene: Scene,
        *,
        parent_version: int | None = None,
        source: str = "rederive",
        state: str = "candidate",
        kind: str = "reshoot",
        dedup_against_versions: bool = False,
        actor: str | None = None,
        reason: str | None = None,
    ) -> CandidateResult:
        """``write_scene_candidate`` that also says whether dedup answered and the seq."""
        paths = self._paths(requested_batch_id)
        if not isinstance(scene, Scene):
            raise InvalidInput(f"scene must be a Scene, not {type(scene).__name__}")
        if scene.scene_id != requested_batch_id:
            raise IdentityMismatch(
                f"refusing to write batch {requested_batch_id}: the scene's scene_id is "
                f"{scene.scene_id!r} (a renumbered scene is a new batch, never a version); "
                "fix the scene_id or write it to its own batch",
                batch_id=requested_batch_id,
                expected=requested_batch_id,
                actual=scene.scene_id,
            )
        _check_choice("kind", kind, KINDS)
        _check_choice("state", state, STATES)
        _check_text("source", source, optional=False)
        parent = (
            None
            if parent_version is None
            else validate_version(parent_version, batch_id=requested_batch_id)
        )
        actor, reason = self._who(actor, reason)
        fingerprint, body = self._encode(paths, scene)
        dedup = bool(dedup_against_versions)

        batch_id = paths.batch_id
        if parent is not None and not self.log.exists(batch_id):
            # Refused without a lock file when nothing can be registered yet.
            self._check_parent(Fold(batch_id), paths, parent, legacy_v1=paths.flat.exists())

        def result(version: int, deduplicated: bool, session: LogSession) -> CandidateResult:
            return CandidateResult(batch_id, version, deduplicated, session.fold.seq)

        def command(session: LogSession, disk: _DiskHigh) -> CandidateResult:
            fold = session.fold
            events: list[Event] = []
            if fold.seq == 0:
                legacy = paths.flat.exists()
                self._check_parent(fold, paths, parent, legacy_v1=legacy)
                if not legacy:
                    # Case A: the first write of a batch.
                    write_once(paths.flat, body, batch_id=paths.batch_id)
                    events.append(
                        self._appended(
                            paths,
                            1,
                            paths.flat.name,
                            scene,
                            fingerprint,
                            state="approved",
                            downstream="derived",
                            kind=kind,
                            source="initial",
                            parent=None,
                            actor=actor,
                            reason=reason,
                        )
                    )
                    self._commit(session, paths, events)
                    return result(1, False, session)
                # Case B: register the legacy flat body in place as v1.
                flat = self._load_body(paths, paths.flat)
                flat_fp = structure_fingerprint(flat)
                events.append(
                    self._appended(
                        paths,
                        1,
                        paths.flat.name,
                        flat,
                        flat_fp,
                        state="approved",
                        downstream="derived",
                        kind="reshoot",
                        source="legacy_flat",
                        parent=None,
                        actor=actor,
                        reason=reason,
                    )
                )
                if dedup and flat_fp == fingerprint:
                    self._commit(session, paths, events)
                    return result(1, True, session)
                highest = 1
            else:
                self._check_parent(fold, paths, parent, legacy_v1=False)
                if dedup:
                    for entry in fold.entries:
                        if entry.structure_fingerprint == fingerprint:
                            return result(entry.version, True, session)
                highest = fold.max_version
            version = disk.next_version(paths, highest)
            write_once(paths.body(version), body, batch_id=paths.batch_id)
            events.append(
                self._appended(
                    paths,
                    version,
                    paths.body_name(version),
                    scene,
                    fingerprint,
                    state=state,
                    downstream="not_derived",
                    kind=kind,
                    source=source,
                    parent=parent,
                    actor=actor,
                    reason=reason,
                )
            )
            self._commit(session, paths, events)
            return result(version, False, session)

        return self._run(paths, command, expected_seq=None, needs_log=False)

    def conform(
        self,
        batch_id: str,
        version: int,
        *,
        expected_seq: int | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> Manifest:
        """Point the batch at ``version`` and approve it (R10).

        Never touches ``downstream``, never maps boards, never edits a body.
        A conform of the active approved version appends nothing (R13).
        """
        return self._move_pointer(Conformed, batch_id, version, expected_seq, actor, reason)

    def revert(
        self,
        batch_id: str,
        version: int,
        *,
        expected_seq: int | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> Manifest:
        """Point the batch back at ``version``; nothing else changes (R11).

        A version that was ``derived`` is dispatch-ready at once. A revert to
        the active version appends nothing (R13).
        """
        return self._move_pointer(Reverted, batch_id, version, expected_seq, actor, reason)

    def mark_derived(
        self,
        batch_id: str,
        version: int,
        *,
        expected_seq: int | None = None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> Manifest | None:
        """Record that the boards of the active ``version`` were rebuilt (R12).

        No log: returns None and writes nothing. Under the lock the version
        must be the active one (NotActiveVersion otherwise: a late board build
        never marks a non-active version fresh). Already derived: no event.
        """
        paths = self._paths(batch_id)
        validate_version(version, batch_id=batch_id)
        expected = _check_expected_seq(expected_seq)
        actor, reason = self._who(actor, reason)
        if not self.log.exists(paths.batch_id):
            check_unimported(paths)
            return None

        def command(session: LogSession, disk: _DiskHigh) -> Manifest | None:
            fold = session.fold
            if fold.seq == 0:
                return None
            entry = self._registered(fold, paths, version)
            if version != fold.active_version:
                raise NotActiveVersion(
                    f"refusing to mark v{version} of batch {batch_id} derived: the active "
                    f"version is v{fold.active_version}; a board build must not mark a "
                    f"non-active version fresh — rebuild the boards of v{fold.active_version}",
                    batch_id=batch_id,
                    version=version,
                    active_version=fold.active_version,
                )
            if entry.downstream != "derived":
                self._commit(session, paths, [self._event(Derived, paths, version, actor, reason)])
            return fold.manifest()

        return self._run(paths, command, expected_seq=expected, needs_log=False)

    # ── internals ───────────────────────────────────────────────────────────

    def _paths(self, batch_id: object) -> BatchPaths:
        batch_id = validate_batch_id(batch_id)
        if not batch_id.startswith(self.episode + "_"):
            raise InvalidInput(
                f"batch {batch_id} is not of episode {self.episode}: open a store for "
                f"{batch_id[:6]}",
                batch_id=batch_id,
            )
        return self.layout.batch(batch_id)

    @staticmethod
    def _who(actor: object, reason: object) -> tuple[str, str | None]:
        given = _check_text("actor", actor, optional=True)
        # $SCENELOG_ACTOR holds undecodable bytes as surrogates too: check what is used.
        who = _check_text("actor", default_actor(given), optional=False)
        assert who is not None
        return who, _check_text("reason", reason, optional=True)

    @staticmethod
    def _encode(paths: BatchPaths, scene: Scene) -> tuple[str, bytes]:
        """R25: the scene's fingerprint and body bytes, before anything is written."""
        try:
            return structure_fingerprint(scene), scene.to_json()
        except (TypeError, ValueError) as e:
            raise InvalidInput(
                f"the scene for batch {paths.batch_id} has no JSON form ({e}): give text as "
                "UTF-8 and numbers as finite ints or floats",
                batch_id=paths.batch_id,
            ) from e

    @staticmethod
    def _check_parent(
        fold: Fold, paths: BatchPaths, parent: int | None, *, legacy_v1: bool
    ) -> None:
        """R25: a parent is a version registered before this command (or the flat v1 it
        registers); so a version is never its own parent nor a later one's child."""
        if parent is None or fold.entry(parent) is not None or (legacy_v1 and parent == 1):
            return
        if fold.entries:
            known = "registered: " + ", ".join(f"v{e.version}" for e in fold.entries[-5:])
        else:
            known = "it has no versions yet"
        raise InvalidInput(
            f"invalid parent v{parent} for batch {paths.batch_id}: not a registered version "
            f"({known}); a version derives from a registered one, never from itself or a "
            f"later one — see `scenelog show {paths.batch_id}`",
            batch_id=paths.batch_id,
            value=parent,
        )

    def _run(
        self,
        paths: BatchPaths,
        command: Callable[[LogSession, _DiskHigh], T],
        *,
        expected_seq: int | None,
        needs_log: bool,
    ) -> T:
        """Run ``command`` under the reference's lock (if any) and the batch lock.

        Under both locks and before the command writes anything: a batch with
        no events is checked for a reference manifest or a lost log (R21), a
        batch with events for a view changed by another tool (R29), then
        ``expected_seq`` (R15).
        """
        if not self.log.exists(paths.batch_id):
            # Refusals that need no lock are given without creating a lock file;
            # the same checks run again under the lock.
            check_unimported(paths)
            if needs_log:
                raise NoLog(
                    f"batch {paths.batch_id} has no log: nothing to move the pointer to — "
                    "write a candidate first (`scenelog add`)",
                    batch_id=paths.batch_id,
                )
        deadline = time.monotonic() + self.lock_timeout
        with reference_lock(paths, timeout=self.lock_timeout):
            remaining = max(deadline - time.monotonic(), 0.0)
            with self._session(paths, remaining) as session:
                fold = session.fold
                if fold.seq == 0:
                    check_unimported(paths)
                else:
                    check_view(paths, fold, lambda: self.log.read(paths.batch_id))
                if expected_seq is not None and fold.seq != expected_seq:
                    raise SeqMismatch(
                        f"batch {paths.batch_id} changed: expected seq {expected_seq}, the log "
                        f"is at seq {fold.seq}; re-read the batch and decide again",
                        batch_id=paths.batch_id,
                        expected=expected_seq,
                        actual=fold.seq,
                    )
                return command(session, _DiskHigh())

    @contextmanager
    def _session(self, paths: BatchPaths, timeout: float) -> Iterator[LogSession]:
        with self.log.session(paths.batch_id, timeout=timeout) as session:
            yield session

    def _move_pointer(
        self,
        event_type: type[Conformed] | type[Reverted],
        batch_id: str,
        version: int,
        expected_seq: int | None,
        actor: str | None,
        reason: str | None,
    ) -> Manifest:
        paths = self._paths(batch_id)
        validate_version(version, batch_id=batch_id)
        expected = _check_expected_seq(expected_seq)
        actor, reason = self._who(actor, reason)
        approving = event_type is Conformed

        def command(session: LogSession, disk: _DiskHigh) -> Manifest:
            fold = session.fold
            if fold.seq == 0:
                raise NoLog(
                    f"batch {batch_id} has an empty log: nothing to move the pointer to",
                    batch_id=batch_id,
                )
            entry = self._registered(fold, paths, version)
            self._check_pointer_target(paths, entry)
            unchanged = fold.active_version == version and (
                not approving or entry.state == "approved"
            )
            if not unchanged:
                event = event_type(
                    seq=0,
                    batch_id=paths.batch_id,
                    version=version,
                    at=utc_now(),
                    actor=actor,
                    reason=reason,
                    event_id=new_event_id(),
                    prev=None,
                    previous_active=fold.active_version,
                )
                self._commit(session, paths, [event])
            return fold.manifest()

        return self._run(paths, command, expected_seq=expected, needs_log=True)

    @staticmethod
    def _registered(fold: Fold, paths: BatchPaths, version: int) -> VersionEntry:
        entry = fold.entry(version)
        if entry is None:
            known = ", ".join(f"v{e.version}" for e in fold.entries[-5:])
            raise UnregisteredVersion(
                f"version {version} is not registered for batch {paths.batch_id} "
                f"(latest: {known}); run `scenelog show {paths.batch_id}`",
                batch_id=paths.batch_id,
                version=version,
            )
        return entry

    def _check_pointer_target(self, paths: BatchPaths, entry: VersionEntry) -> None:
        scene_id = self._body_scene_id(paths, paths.artifact(entry.artifact))
        if scene_id != paths.batch_id:
            raise IdentityMismatch(
                f"cannot move the pointer of batch {paths.batch_id} to v{entry.version}: its "
                f"body {entry.artifact} has scene_id {scene_id!r}; run `scenelog verify`",
                batch_id=paths.batch_id,
                expected=paths.batch_id,
                actual=scene_id,
            )

    @staticmethod
    def _body_scene_id(paths: BatchPaths, path: Path) -> str:
        """The body's scene_id; a body already read is only stat'ed (bodies are immutable).

        Known bodies are keyed on the file's identity, not its spelling (R23).
        """
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        if st is not None:
            key = (st.st_dev, st.st_ino)
            stamp = (st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            known = _bodies_seen.get(key)
            if known is not None and known[0] == stamp:
                return known[1]
        scene_id = SceneVersionStore._load_body(paths, path).scene_id
        if st is not None:
            if len(_bodies_seen) >= _MAX_CACHED:
                _bodies_seen.clear()
            _bodies_seen[key] = (stamp, scene_id)
        return scene_id

    @staticmethod
    def _load_body(paths: BatchPaths, path: Path) -> Scene:
        try:
            return load_scene(path)
        except FileNotFoundError as e:
            raise BodyMissing(
                f"scene body {path} of batch {paths.batch_id} is missing; restore it from "
                "backup (`scenelog verify` lists what else is missing)",
                path=str(path),
                batch_id=paths.batch_id,
            ) from e

    @staticmethod
    def _event(
        event_type: type[Derived], paths: BatchPaths, version: int, actor: str, reason: str | None
    ) -> Derived:
        return event_type(
            seq=0,
            batch_id=paths.batch_id,
            version=version,
            at=utc_now(),
            actor=actor,
            reason=reason,
            event_id=new_event_id(),
            prev=None,
        )

    @staticmethod
    def _appended(
        paths: BatchPaths,
        version: int,
        artifact: str,
        scene: Scene,
        fingerprint: str,
        *,
        state: str,
        downstream: str,
        kind: str,
        source: str,
        parent: int | None,
        actor: str,
        reason: str | None,
    ) -> Appended:
        return Appended(
            seq=0,
            batch_id=paths.batch_id,
            version=version,
            at=utc_now(),
            actor=actor,
            reason=reason,
            event_id=new_event_id(),
            prev=None,
            artifact=artifact,
            state=state,
            downstream=downstream,
            kind=kind,
            source=source,
            parent_version=parent,
            structure_fingerprint=fingerprint,
            shot_count=len(scene.beats),
        )

    @staticmethod
    def _commit(session: LogSession, paths: BatchPaths, events: list[Event]) -> None:
        session.append(events)
        write_view(paths.view, session.fold.view_chunks())
