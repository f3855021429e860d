"""SceneVersionStore: the four commands of a batch, each one append to its log.

The store reaches storage only through :class:`eventstore.log.EventLog`, the
backend :func:`eventstore.log.open_log` chooses from the root (or ``log=``):
it knows no file, path or view. Every command validates its arguments before
touching storage (R2), holds the batch through the backend's command session
(the file backend also takes the reference's lock and runs R21 and R29 there),
checks itself against the state folded from the log (R14), drafts its events
and runs :func:`eventstore.rules.check_event` on each — the rule check
``verify`` and the model test use — then appends them in one commit (R20);
the backend keeps its snapshot (the file backend's view) after the commit
(R17). Nothing here moves the pointer but ``conform`` and ``revert``; nothing
edits a body once written.

Invariants:
- R25: every input is checked before the first byte is written — ids,
  choices, versions (ints, never bools or floats), text that encodes as
  UTF-8 (argv and the environment hold undecodable bytes as surrogates), the
  scene's JSON form (encoded once, and those bytes are what is written), and,
  under the lock but before any body, that a ``parent_version`` is registered
  (the flat body a Case B command registers counts as v1). A refused command
  leaves no body, no flat file and no event.
- R8: N = max(highest version logged, highest body the backend holds) + 1,
  the backend's count exact at the moment of the command (orphan bodies of
  crashed commands count), then probed upwards as a last guard.
- Item 6: an event that breaks a rule given the fold before it is never
  appended (RuleViolation, nothing written).

Crash at each step of ``write_scene_candidate``: before the body, nothing;
after the body, an orphan body that the next numbering skips (R8, R9) — for
a first write, a flat body that the next write registers as legacy v1;
during the commit, an incomplete command no reader delivers and the next
writer removes (R18, R24); after the commit, committed — a missing or stale
snapshot is refolded by readers.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import msgspec

from eventstore.errors import (
    IdentityMismatch,
    InvalidInput,
    NoLog,
    NotActiveVersion,
    RuleViolation,
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
from eventstore.layout import (
    normalize_episode,
    validate_batch_id,
    validate_project,
    validate_version,
)
from eventstore.log import DEFAULT_LOCK_TIMEOUT, EventLog, LogSession, open_log
from eventstore.manifest import Fold, Manifest, VersionEntry
from eventstore.rules import (
    KINDS,
    STATES,
    body_name,
    check_choice,
    check_event,
    check_expected_seq,
    check_parent,
    check_text,
    flat_name,
)
from eventstore.scene import Scene, structure_fingerprint

if TYPE_CHECKING:
    from eventstore.filelog.paths import Layout

__all__ = ["KINDS", "STATES", "CandidateResult", "SceneVersionStore"]


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CandidateResult:
    """What a candidate write did: the version, whether dedup answered, the log's seq."""

    batch_id: str
    version: int
    deduplicated: bool
    seq: int


class SceneVersionStore:
    """The owner of every mutation of one episode's batches.

    ``root`` defaults to ``$SCENELOG_ROOT``, else the current directory, and
    chooses the backend (:func:`eventstore.log.open_log`) unless ``log`` is
    given; ``lock_timeout`` is how long a command waits for its batch.
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
        self.project = validate_project(project)
        self.episode = normalize_episode(episode)
        self.log = log if log is not None else open_log(self.project, root)
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"SceneVersionStore({self.project!r}, {self.episode!r}, root={self.log.label!r})"

    @property
    def layout(self) -> Layout:
        """The file backend's layout, for tools about files (AttributeError on others)."""
        layout: Layout = getattr(self.log, "layout")  # noqa: B009
        return layout

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

        Invariants: arguments and identity are checked before any storage
        access (R1, R2), and every input before anything durable, the parent's
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
        """``write_scene_candidate`` that also says whether dedup answered and the seq.

        Under the lock, one of three cases (see ``write_scene_candidate``):
        :meth:`_case_a`, :meth:`_case_b`, :meth:`_case_c`.
        """
        batch_id = self._batch(requested_batch_id)
        if not isinstance(scene, Scene):
            raise InvalidInput(f"scene must be a Scene, not {type(scene).__name__}")
        if scene.scene_id != batch_id:
            raise IdentityMismatch(
                f"refusing to write batch {batch_id}: the scene's scene_id is "
                f"{scene.scene_id!r} (a renumbered scene is a new batch, never a version); "
                "fix the scene_id or write it to its own batch",
                batch_id=batch_id,
                expected=batch_id,
                actual=scene.scene_id,
            )
        check_choice("kind", kind, KINDS)
        check_choice("state", state, STATES)
        check_text("source", source, optional=False)
        parent = (
            None if parent_version is None else validate_version(parent_version, batch_id=batch_id)
        )
        actor, reason = self._who(actor, reason)
        fingerprint, body = self._encode(batch_id, scene)
        draft = _Draft(
            batch_id,
            scene,
            fingerprint,
            body,
            parent,
            state,
            kind,
            source,
            actor,
            reason,
            dedup=bool(dedup_against_versions),
        )
        flat = flat_name(batch_id)
        if parent is not None and not self.log.exists(batch_id):
            # Refused without a lock file when nothing can be registered yet.
            legacy = self.log.body_exists(batch_id, flat)
            check_parent(Fold(batch_id), batch_id, parent, legacy_v1=legacy)

        def command(session: LogSession) -> CandidateResult:
            if session.fold.seq > 0:
                return self._case_c(session, draft)
            if session.body_exists(flat):
                return self._case_b(session, draft)
            return self._case_a(session, draft)

        return self._run(batch_id, command, expected_seq=None, needs_log=False)

    def _case_a(self, session: LogSession, d: _Draft) -> CandidateResult:
        """Case A, the first write of a batch: the flat body becomes v1, approved,
        derived and active (R3)."""
        check_parent(session.fold, d.batch_id, d.parent, legacy_v1=False)
        flat = flat_name(d.batch_id)
        session.write_body(flat, d.body)
        v1 = d.appended(1, flat, d.scene, d.fingerprint, v1="initial")
        self._commit(session, [v1])
        return CandidateResult(d.batch_id, 1, False, session.fold.seq)

    def _case_b(self, session: LogSession, d: _Draft) -> CandidateResult:
        """Case B, a legacy flat body and no log: the flat body is registered in place
        as v1 (R4), then the candidate follows in the same commit (dedup may answer v1)."""
        check_parent(session.fold, d.batch_id, d.parent, legacy_v1=True)
        flat = flat_name(d.batch_id)
        legacy = session.read_scene(flat)
        legacy_fp = structure_fingerprint(legacy)
        v1 = d.appended(1, flat, legacy, legacy_fp, v1="legacy_flat")
        if d.dedup and legacy_fp == d.fingerprint:
            self._commit(session, [v1])
            return CandidateResult(d.batch_id, 1, True, session.fold.seq)
        return self._add_candidate(session, d, highest_logged=1, before=[v1])

    def _case_c(self, session: LogSession, d: _Draft) -> CandidateResult:
        """Case C, a batch with a log: dedup (R7) or the next version as a candidate."""
        fold = session.fold
        check_parent(fold, d.batch_id, d.parent, legacy_v1=False)
        if d.dedup:
            for entry in fold.entries:
                if entry.structure_fingerprint == d.fingerprint:
                    return CandidateResult(d.batch_id, entry.version, True, fold.seq)
        return self._add_candidate(session, d, highest_logged=fold.max_version, before=[])

    def _add_candidate(
        self, session: LogSession, d: _Draft, *, highest_logged: int, before: list[Event]
    ) -> CandidateResult:
        """R8: N = max(logged, held by the backend) + 1, probed; the body, then the events."""
        version = max(highest_logged, session.highest_body_version()) + 1
        while session.body_exists(body_name(d.batch_id, version)):
            version += 1
        name = body_name(d.batch_id, version)
        session.write_body(name, d.body)
        candidate = d.appended(version, name, d.scene, d.fingerprint, v1=None)
        self._commit(session, [*before, candidate])
        return CandidateResult(d.batch_id, version, False, session.fold.seq)

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
        batch_id = self._batch(batch_id)
        validate_version(version, batch_id=batch_id)
        expected = check_expected_seq(expected_seq)
        actor, reason = self._who(actor, reason)
        if not self.log.exists(batch_id):
            self.log.check_unimported(batch_id)
            return None

        def command(session: LogSession) -> Manifest | None:
            fold = session.fold
            if fold.seq == 0:
                return None
            entry = _registered(fold, batch_id, version)
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
                self._commit(session, [_draft(Derived, batch_id, version, actor, reason)])
            return fold.manifest()

        return self._run(batch_id, command, expected_seq=expected, needs_log=False)

    # ── internals ───────────────────────────────────────────────────────────

    def _batch(self, batch_id: object) -> str:
        batch_id = validate_batch_id(batch_id)
        if not batch_id.startswith(self.episode + "_"):
            raise InvalidInput(
                f"batch {batch_id} is not of episode {self.episode}: open a store for "
                f"{batch_id[:6]}",
                batch_id=batch_id,
            )
        return batch_id

    @staticmethod
    def _who(actor: object, reason: object) -> tuple[str, str | None]:
        given = check_text("actor", actor, optional=True)
        # $SCENELOG_ACTOR holds undecodable bytes as surrogates too: check what is used.
        who = check_text("actor", default_actor(given), optional=False)
        assert who is not None
        return who, check_text("reason", reason, optional=True)

    @staticmethod
    def _encode(batch_id: str, scene: Scene) -> tuple[str, bytes]:
        """R25: the scene's fingerprint and body bytes, before anything is written."""
        try:
            return structure_fingerprint(scene), scene.to_json()
        except (TypeError, ValueError) as e:
            raise InvalidInput(
                f"the scene for batch {batch_id} has no JSON form ({e}): give text as "
                "UTF-8 and numbers as finite ints or floats",
                batch_id=batch_id,
            ) from e

    def _run(
        self,
        batch_id: str,
        command: Callable[[LogSession], T],
        *,
        expected_seq: int | None,
        needs_log: bool,
    ) -> T:
        """Run ``command`` in the backend's command session (its guards run there).

        Then, before the command writes anything, ``expected_seq`` (R15).
        """
        if not self.log.exists(batch_id):
            # Refusals that need no lock are given without taking one; the backend's
            # command session runs the same checks again under the lock.
            self.log.check_unimported(batch_id)
            if needs_log:
                raise NoLog(
                    f"batch {batch_id} has no log: nothing to move the pointer to — "
                    "write a candidate first (`scenelog add`)",
                    batch_id=batch_id,
                )
        with self.log.command(batch_id, timeout=self.lock_timeout) as session:
            fold = session.fold
            if expected_seq is not None and fold.seq != expected_seq:
                raise SeqMismatch(
                    f"batch {batch_id} changed: expected seq {expected_seq}, the log "
                    f"is at seq {fold.seq}; re-read the batch and decide again",
                    batch_id=batch_id,
                    expected=expected_seq,
                    actual=fold.seq,
                )
            return command(session)

    def _move_pointer(
        self,
        event_type: type[Conformed] | type[Reverted],
        batch_id: str,
        version: int,
        expected_seq: int | None,
        actor: str | None,
        reason: str | None,
    ) -> Manifest:
        batch_id = self._batch(batch_id)
        validate_version(version, batch_id=batch_id)
        expected = check_expected_seq(expected_seq)
        actor, reason = self._who(actor, reason)
        approving = event_type is Conformed

        def command(session: LogSession) -> Manifest:
            fold = session.fold
            if fold.seq == 0:
                raise NoLog(
                    f"batch {batch_id} has an empty log: nothing to move the pointer to",
                    batch_id=batch_id,
                )
            entry = _registered(fold, batch_id, version)
            _check_pointer_target(session, entry)
            unchanged = fold.active_version == version and (
                not approving or entry.state == "approved"
            )
            if not unchanged:
                event = _draft(
                    event_type,
                    batch_id,
                    version,
                    actor,
                    reason,
                    previous_active=fold.active_version,
                )
                self._commit(session, [event])
            return fold.manifest()

        return self._run(batch_id, command, expected_seq=expected, needs_log=True)

    @staticmethod
    def _commit(session: LogSession, events: list[Event]) -> None:
        """Item 6: each drafted event passes the rules given the fold before it, then
        all are appended at once (the backend keeps its snapshot after the commit)."""
        fold = session.fold
        flat = flat_name(session.batch_id)
        for i, event in enumerate(events):
            if i == 1:
                fold = fold.copy()  # a command of several events: check each after the last
            if i:
                fold.apply(msgspec.structs.replace(events[i - 1], seq=fold.seq + 1))
            problem = check_event(fold, event, flat_name=flat)
            if problem is not None:
                raise RuleViolation(
                    f"batch {session.batch_id}: refusing to append {event.type} "
                    f"v{event.version}: {problem}; nothing was written",
                    batch_id=session.batch_id,
                    seq=fold.seq + 1,
                )
        session.append(events)


class _Draft(NamedTuple):
    """A candidate write's checked inputs, for the three cases to draft events from."""

    batch_id: str
    scene: Scene
    fingerprint: str
    body: bytes
    parent: int | None
    state: str
    kind: str
    source: str
    actor: str
    reason: str | None
    dedup: bool

    def appended(
        self,
        version: int,
        artifact: str,
        scene: Scene,
        fingerprint: str,
        *,
        v1: str | None,
    ) -> Appended:
        """The Appended event of ``version``.

        ``v1`` is the source of a Case A or B v1 (``"initial"``: the caller's
        kind; ``"legacy_flat"``: a reshoot), registered approved, derived, with
        no parent (R3, R4); None drafts the candidate itself: its state, not
        derived (R5), its kind, source and parent.
        """
        if v1 is not None:
            state, downstream, source, parent = "approved", "derived", v1, None
            kind = self.kind if v1 == "initial" else "reshoot"
        else:
            state, downstream, source, parent = self.state, "not_derived", self.source, self.parent
            kind = self.kind
        return _draft(
            Appended,
            self.batch_id,
            version,
            self.actor,
            self.reason,
            artifact=artifact,
            state=state,
            downstream=downstream,
            kind=kind,
            source=source,
            parent_version=parent,
            structure_fingerprint=fingerprint,
            shot_count=len(scene.beats),
        )


E = TypeVar("E", bound=Event)


def _draft(
    event_type: type[E], batch_id: str, version: int, actor: str, reason: str | None, **fields: Any
) -> E:
    """An event drafted for ``append`` (``seq=0, prev=None``: the backend numbers and chains it)."""
    return event_type(
        seq=0,
        batch_id=batch_id,
        version=version,
        at=utc_now(),
        actor=actor,
        reason=reason,
        event_id=new_event_id(),
        prev=None,
        **fields,
    )


def _registered(fold: Fold, batch_id: str, version: int) -> VersionEntry:
    entry = fold.entry(version)
    if entry is None:
        known = ", ".join(f"v{e.version}" for e in fold.entries[-5:])
        raise UnregisteredVersion(
            f"version {version} is not registered for batch {batch_id} "
            f"(latest: {known}); run `scenelog show {batch_id}`",
            batch_id=batch_id,
            version=version,
        )
    return entry


def _check_pointer_target(session: LogSession, entry: VersionEntry) -> None:
    """R1: the pointer only ever names a body of this batch."""
    batch_id = session.batch_id
    scene_id = session.body_scene_id(entry.artifact)
    if scene_id != batch_id:
        raise IdentityMismatch(
            f"cannot move the pointer of batch {batch_id} to v{entry.version}: its "
            f"body {entry.artifact} has scene_id {scene_id!r}; run `scenelog verify`",
            batch_id=batch_id,
            expected=batch_id,
            actual=scene_id,
        )
