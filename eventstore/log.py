"""The storage interface: what the store and every reader need from a backend.

:class:`EventLog` is the one interface between the commands
(:mod:`eventstore.store`), every reader (projection, watcher, verify, import,
HTTP) and the place where events, bodies and consumer checkpoints live.
Nothing outside a backend's own module(s) knows file names, byte offsets,
SQL or locks. A backend serves one project of one root; :func:`open_log`
chooses it from the root (DESIGN §2, §9):

    a folder or ``file:///folder``   eventstore.filelog.FileLog (embedded)
    ``memory://NAME``                eventstore.memlog.MemoryLog (in-process)

Every backend passes the same contract suite (``tests/log_contract.py``).

The line format is shared by every backend that stores lines: each event is
one JSON line (its exact bytes are hashed into the next line's ``prev``,
R19), and the lines of a command of n events carry ``"more": n-1 … 1`` as
their last member, its last line none (R24, docs/FORMAT.md §8). The helpers
here read that mark without decoding the line.

Invariants every backend keeps:
- Reads never lock and never block writers (R22).
- A reader sees whole commands only (R24): never an event of a command that
  did not complete.
- ``head`` is O(1) in the log's length.
- A session holds the batch exclusively against every other session of any
  process or host that uses the same storage (R14), and validates before it
  writes (R25).
"""

from __future__ import annotations

import contextlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, NamedTuple

import msgspec

from eventstore.errors import InvalidInput
from eventstore.events import Event
from eventstore.manifest import Fold, Manifest

if TYPE_CHECKING:
    from eventstore.scene import Scene

__all__ = [
    "DEFAULT_LOCK_TIMEOUT",
    "FEED_STARTS",
    "BodyLook",
    "EventLog",
    "Feed",
    "FeedItem",
    "Head",
    "LogSession",
    "RawLog",
    "SnapshotLook",
    "Stray",
    "check_feed_start",
    "command_more",
    "line_hash",
    "line_seq",
    "mark_line",
    "open_log",
    "split_committed",
    "split_complete",
]

DEFAULT_LOCK_TIMEOUT = 30.0
"""Seconds a command waits for its batch before LockTimeout."""


# ── the line format ─────────────────────────────────────────────────────────


def line_hash(line: bytes) -> str:
    """The ``prev`` of the line after ``line`` (sha256 hex of its bytes, no ``\\n``)."""
    import hashlib  # here, not at the top: a read that checks no chain never loads it (~2 ms)

    return hashlib.sha256(line).hexdigest()


def split_complete(data: bytes) -> tuple[bytes, bytes]:
    """``data`` cut after its last ``\\n``: (complete lines, torn tail)."""
    end = data.rfind(b"\n") + 1
    return data[:end], data[end:]


_MORE = b',"more":'
_MORE_WINDOW = len(_MORE) + 21  # the mark, up to 20 digits and the closing brace


def _more(data: bytes, start: int, end: int) -> int:
    """The ``more`` mark of the line ``data[start:end]``: its command's lines after it."""
    if end <= start or data[end - 1] != 0x7D:  # "}"
        return 0
    at = data.rfind(_MORE, max(start, end - _MORE_WINDOW), end)
    if at < 0:
        return 0
    digits = data[at + len(_MORE) : end - 1]
    return int(digits) if digits.isdigit() else 0


class _SeqOnly(msgspec.Struct):
    seq: int


_seq_only = msgspec.json.Decoder(_SeqOnly)


def line_seq(line: bytes) -> int:
    """The ``seq`` of one log line, decoding nothing else.

    Raises ``msgspec.DecodeError`` (or ``ValidationError``) for a line that
    is not a log line.
    """
    return _seq_only.decode(line).seq


FEED_STARTS = ("now", "beginning")
"""Where a feed without a position starts: after the last committed event, or before the first."""


def check_feed_start(start: object) -> str:
    """``start`` if it is one of :data:`FEED_STARTS`, else InvalidInput (nothing opened)."""
    if start not in FEED_STARTS:
        raise InvalidInput(f"start must be 'now' or 'beginning', not {start!r}", value=start)
    return str(start)


def command_more(line: bytes) -> int:
    """How many further lines of the same command follow ``line`` (0: it ends one, R24)."""
    return _more(line, 0, len(line))


def mark_line(line: bytes, more: int) -> bytes:
    """``line`` with its ``more`` mark (the line itself when ``more`` is 0)."""
    return line if not more else b'%s,"more":%d}' % (line[:-1], more)


def split_committed(data: bytes) -> tuple[bytes, bytes]:
    """``data`` (starting at a line start) cut after its last line that ends a command.

    Returns (committed lines, rest): the rest is an incomplete command's
    complete lines, if any, then a torn tail, if any (R18, R24).
    """
    end = data.rfind(b"\n") + 1
    while end:
        start = data.rfind(b"\n", 0, end - 1) + 1
        if not _more(data, start, end - 1):
            break
        end = start
    return data[:end], data[end:]


# ── what backends hand out ──────────────────────────────────────────────────


class Head(NamedTuple):
    """The last committed line of a log: its seq and the sha256 hex of its bytes."""

    seq: int
    hash: str | None


class RawLog(NamedTuple):
    """A log as stored, for verify's line-by-line checks."""

    lines: list[bytes]
    """Every committed line, in order, without its ``\\n``."""
    pending: list[bytes]
    """Complete lines of an incomplete command after them (never acknowledged, R24)."""
    torn: int
    """Bytes of a torn last line after those (never acknowledged, R18)."""
    where: str
    """Where the log lives, for findings (a path, or ``table:batch``)."""


class BodyLook(NamedTuple):
    """A body as an auditor sees it: its bytes, or why the backend gives none (verify)."""

    data: bytes | None
    """The body's bytes; None when ``problem`` says why not."""
    problem: str | None
    """None, ``"missing"``, ``"not_file"`` (a FIFO, device or folder), ``"too_large"``
    or ``"unreadable"``."""
    detail: str
    """What is wrong, as the end of a sentence about the body (``"is missing"``)."""
    where: str
    """Where the body lives, for findings (a path, or ``batch:name``)."""


class SnapshotLook(NamedTuple):
    """A batch's stored snapshot as an auditor sees it (the file backend's view)."""

    data: bytes | None
    """The stored bytes, undecoded; None when there is none (or none readable)."""
    odd: bool
    """Something that is not a snapshot stands where it is kept (a folder, a FIFO)."""
    where: str


class Stray(NamedTuple):
    """Something a backend holds for a batch outside of any readable log (verify reports it).

    ``kind`` is one of:

    - ``"bodies"``: version bodies of a batch with no log (orphans of a first
      write that stopped before its event, unless a manifest names them);
    - ``"reference"``: a reference-format manifest and no log (R21); ``names``
      are the bodies it names, which are not orphans;
    - ``"snapshot"``: a snapshot that says the batch had events, and no log:
      the log was lost;
    - ``"not_a_log"``: where the batch's log is kept stands something that is
      not one (a folder, a FIFO); readers must not open it.
    """

    batch_id: str
    kind: str
    where: str
    names: tuple[str, ...] = ()


class FeedItem(NamedTuple):
    """One event of the change feed and the position right after it."""

    batch_id: str
    event: Event
    position: str
    """Opaque and durable: a feed opened at it resumes right after this event."""


class LogSession(ABC):
    """A batch under its lock: the folded state, its bodies, and one way to commit."""

    batch_id: str

    @property
    @abstractmethod
    def fold(self) -> Fold:
        """The state folded from every committed event (do not mutate)."""

    @abstractmethod
    def append(self, events: Sequence[Event]) -> list[Event]:
        """Commit ``events`` (built with ``seq=0, prev=None``) durably, all or nothing.

        Every event is checked against the fold first: one of another batch, a
        version registered twice, an event about an unregistered version, or an
        ``at`` that is not a timestamp raises RuleViolation and nothing is
        written. Bodies written with :meth:`write_body` in this session commit
        no later than the events (R9). Returns the committed events with their
        ``seq`` and ``prev``.
        """

    @abstractmethod
    def highest_body_version(self) -> int:
        """R8: the highest ``vNNN`` body the backend holds for the batch, 0 if none.

        Exact at the time of the call (orphan bodies of crashed commands count).
        """

    @abstractmethod
    def body_exists(self, name: str) -> bool:
        """Whether the batch has a body called ``name`` (flat or ``vNNN``)."""

    @abstractmethod
    def read_body(self, name: str) -> bytes:
        """The bytes of body ``name`` (BodyMissing when there is none)."""

    @abstractmethod
    def write_body(self, name: str, data: bytes) -> None:
        """Store body ``name`` once (VersionBodyExists if it exists), durable by commit."""

    def read_scene(self, name: str) -> Scene:
        """Body ``name`` as a scene (BodyMissing when absent, DamagedBody when not a scene)."""
        from eventstore.errors import DamagedBody, SceneFormatError
        from eventstore.scene import Scene

        data = self.read_body(name)
        try:
            return Scene.from_json(data, max_bytes=max(len(data), 1))
        except SceneFormatError as e:
            raise DamagedBody(
                f"scene body {name} of batch {self.batch_id} is unreadable: {e}; restore it "
                "from backup or run `scenelog verify`",
                path=name,
            ) from e

    def body_scene_id(self, name: str) -> str:
        """The ``scene_id`` of body ``name`` (backends may remember it: bodies never change)."""
        return self.read_scene(name).scene_id


class Feed(ABC):
    """The project's events after a position, for watchers; never skips one.

    Per batch, events come in seq order without gaps; across batches in an
    order the backend defines. A feed checks, when it starts and whenever a
    log changes, that the last event it delivered of each batch is still there
    (R28); if not it reports it through ``warn`` and delivers that batch again.
    """

    @abstractmethod
    def read(self) -> list[FeedItem]:
        """Events after the feed's position that the feed knows are committed (never waits).

        A feed may notice new commits only in :meth:`wait` (the file feed learns
        of changes from the kernel there): a watcher alternates the two.
        """

    @abstractmethod
    def wait(self, timeout: float) -> None:
        """Return when something may have changed, or after ``timeout`` seconds."""

    @property
    @abstractmethod
    def position(self) -> str:
        """Where the feed stands: after every event :meth:`read` has returned."""

    @abstractmethod
    def lag(self) -> int:
        """Committed events after :attr:`position` (for ``scenelog consumers``)."""

    def close(self) -> None:
        """Release what the feed holds (a socket, a notifier)."""
        return None


class EventLog(ABC):
    """One project's events, bodies and consumer checkpoints on one backend."""

    project: str
    label: str
    """The root as shown to people (never with a password)."""

    # ── discovery ──────────────────────────────────────────────────────────

    @abstractmethod
    def project_exists(self) -> bool:
        """Whether the project is there at all (a mistyped project or root is not)."""

    @abstractmethod
    def episodes(self) -> list[str]:
        """Episodes (``ep_NNN``) that hold anything, sorted."""

    @abstractmethod
    def batches(self, episode: str) -> list[str]:
        """Batch ids of ``episode`` that have a log, sorted."""

    # ── reads (never lock, R22) ──────────────────────────────────────────────

    @abstractmethod
    def exists(self, batch_id: str) -> bool:
        """Whether the batch has a committed event (R24).

        A log holding nothing but a torn line or an incomplete command (a first
        write, or an import, killed mid-write) has none: to every reader the
        batch has no log yet, and the next writer starts it again.
        """

    @abstractmethod
    def read(self, batch_id: str, *, after: int = 0) -> list[Event]:
        """Every committed event of the batch with seq > ``after``, in seq order."""

    @abstractmethod
    def head(self, batch_id: str) -> Head:
        """The last committed seq and its line hash; ``Head(0, None)`` for none. O(1)."""

    def last_seq(self, batch_id: str) -> int:
        """The last committed seq (0 for none), O(1)."""
        return self.head(batch_id).seq

    @abstractmethod
    def raw(self, batch_id: str) -> RawLog:
        """The log as stored, line by line, for verify (R19, R24)."""

    @abstractmethod
    def recorded_head(self, batch_id: str) -> Head | None:
        """The head the store recorded at its last commit (R27); None when there is none.

        The record is never ahead of the durable log: after a crash it may be
        older than :meth:`head`, and then the line at its seq still has its
        hash. Anything else means the log was changed.
        """

    @abstractmethod
    def busy(self, batch_id: str) -> bool:
        """Whether a command on the batch may be in flight now (verify looks twice, R26)."""

    # ── bodies ──────────────────────────────────────────────────────────────

    @abstractmethod
    def body_exists(self, batch_id: str, name: str) -> bool: ...

    @abstractmethod
    def read_body(self, batch_id: str, name: str) -> bytes:
        """The bytes of body ``name``: BodyMissing if absent, DamagedBody if unreadable."""

    @abstractmethod
    def body_names(self, batch_id: str) -> list[str]:
        """Every body the backend holds for the batch (flat and ``vNNN``), sorted."""

    def body_path(self, batch_id: str, name: str) -> str | None:
        """A filesystem path for tools that open files; None on backends without files."""
        return None

    # ── snapshots: a manifest kept at a seq (the file backend's view) ──────

    def snapshot(self, batch_id: str) -> Manifest | None:
        """A stored manifest of the batch, if the backend keeps one (trust it only at head)."""
        return None

    def mend_snapshot(self, manifest: Manifest) -> bool:
        """Store ``manifest`` as the batch's snapshot if none newer is there (no lock)."""
        return False

    # ── reference-era manifests (R21, R29) ─────────────────────────────────

    def unimported(self, episode: str) -> list[str]:
        """Batches of ``episode`` with a reference-format manifest and no log."""
        return []

    def check_unimported(self, batch_id: str) -> None:
        """R21: raise UnimportedManifest (or DamagedLog) when the batch has a
        reference-format manifest, or a view without its log."""
        return None

    # Import and adopt (R29) read the manifests a reference-era tool keeps and
    # write in their place; on backends without such manifests there are none.

    def legacy_name(self, batch_id: str) -> str:
        """The reference manifest's name, as import reasons and findings call it."""
        return f"{batch_id}.versions.json"

    def legacy_manifest(self, batch_id: str) -> bytes | None:
        """The batch's reference-format manifest as a reference-era tool left it, or None.

        On the file backend this is ``versions.json``, also the view: after an
        import it holds the view, unless a reference-era tool rewrote it.
        """
        return None

    def legacy_lock(self, batch_id: str, *, timeout: float) -> AbstractContextManager[None]:
        """Hold the reference system's lock of the batch, if it has one (R29).

        Taken before :meth:`session`, the order every command takes; LockTimeout
        after ``timeout`` seconds.
        """
        return contextlib.nullcontext()

    def keep_legacy_manifest(self, batch_id: str, data: bytes) -> None:
        """Keep ``data``, the manifest about to be imported, durably as its backup.

        Called under :meth:`legacy_lock` and the session, before the append;
        a backup of other bytes (an import that died before its append) is
        replaced.
        """
        return None

    def write_snapshot(self, fold: Fold) -> None:
        """Under the batch's session, after a commit: ``fold`` becomes the snapshot.

        Replaces whatever is there, a reference manifest or a foreign view
        included (import and adopt, R29); a failure is logged, not raised
        (the log is the truth, R17).
        """
        return None

    # ── what readers say when something is not there ───────────────────────

    def where(self, batch_id: str, name: str | None = None) -> str:
        """Where the batch's log (or its item ``name``) lives, for messages and findings."""
        return f"{self.label}:{batch_id if name is None else name}"

    def project_absence(self) -> str | None:
        """Why the project is not there, as a clause for an error; None when it is."""
        if self.project_exists():
            return None
        return f"there is no project {self.project} in {self.label}"

    # ── auditing: what verify asks beyond reads (defaults for backends that
    #    keep nothing outside their logs) ──────────────────────────────────

    def look_body(self, batch_id: str, name: str, *, max_bytes: int) -> BodyLook:
        """Body ``name`` for an auditor: never a hang, never more than ``max_bytes`` read.

        Backends that can hold hostile bodies (a file backend: a FIFO, a link
        to a device) check what a body is before reading it.
        """
        from eventstore.errors import BodyMissing, DamagedBody

        where = self.body_path(batch_id, name) or f"{batch_id}:{name}"
        try:
            data = self.read_body(batch_id, name)
        except BodyMissing:
            return BodyLook(None, "missing", "is missing", where)
        except DamagedBody as e:
            return BodyLook(None, "unreadable", f"cannot be read ({e})", where)
        if len(data) > max_bytes:
            detail = f"is {len(data)} bytes, over the {max_bytes} bytes verify reads"
            return BodyLook(None, "too_large", detail, where)
        return BodyLook(data, None, "", where)

    def look_snapshot(self, batch_id: str) -> SnapshotLook | None:
        """The stored snapshot's bytes as they are; None when the backend keeps none."""
        return None

    def replace_snapshot(self, manifest: Manifest, *, seen: bytes | None) -> bool:
        """Store ``manifest`` as the snapshot in place of ``seen``, even one ahead of it.

        For a snapshot above a log restored from an older backup; anything a
        writer put there since ``seen`` was read stays. True when ``manifest``
        stayed in place.
        """
        return False

    def strays(self, episode: str) -> list[Stray]:
        """What the backend holds for batches of ``episode`` outside any readable log."""
        return []

    # ── the change feed and consumers ───────────────────────────────────────

    @abstractmethod
    def feed(
        self,
        position: str | None,
        *,
        start: str = "now",
        episode: str | None = None,
        poll: float | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> Feed:
        """A feed after ``position`` (None: at ``start``, ``"now"`` or ``"beginning"``).

        ``poll`` asks for a feed that looks every ``poll`` seconds instead of
        being woken (network filesystems); ``warn`` is called with one line
        when a log no longer holds what the position says (R28).
        """

    @abstractmethod
    def load_checkpoint(self, consumer: str) -> bytes | None:
        """The consumer's saved checkpoint, or None when it has none."""

    @abstractmethod
    def save_checkpoint(self, consumer: str, data: bytes, *, durable: bool = True) -> None:
        """Store the consumer's checkpoint (atomic: old or new, never half).

        ``durable=False`` skips the flush to disk: the checkpoint is visible to
        the next process at once and survives its crash, but a power loss may
        bring back the last durable one (watchers group their durable saves).
        """

    def feed_position_at(self, position: str | None, batch_id: str, seq: int) -> str:
        """``position`` (None: the feed's ``now``) with ``batch_id`` just after its event ``seq``.

        ``seq`` 0 is before its first event. InvalidInput when the batch has no
        such event; NotImplementedError on backends whose positions are not per
        batch (``consumers reset --to BATCH:SEQ``).
        """
        raise NotImplementedError(f"{self.label}: positions are not kept per batch")

    @abstractmethod
    def delete_checkpoint(self, consumer: str) -> bool: ...

    @abstractmethod
    def consumers(self) -> list[str]:
        """Names of consumers with a checkpoint, sorted."""

    @abstractmethod
    def claim(self, consumer: str) -> AbstractContextManager[None]:
        """Hold the consumer name exclusively (ConsumerBusy naming the holder otherwise).

        The claim dies with the process that holds it.
        """

    # ── the commit ──────────────────────────────────────────────────────────

    def command(
        self, batch_id: str, *, timeout: float = DEFAULT_LOCK_TIMEOUT
    ) -> AbstractContextManager[LogSession]:
        """A :meth:`session` for one store command, with the backend's guards.

        A backend shared with other tools checks, under the batch's locks and
        before the command sees the fold, what those tools may have left
        (the file backend: the reference's lock, R21 and R29). The default is
        a plain session.
        """
        return self.session(batch_id, timeout=timeout)

    def import_lines(
        self,
        batch_id: str,
        lines: Sequence[bytes],
        bodies: Mapping[str, bytes],
        *,
        timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> int:
        """Append another log's committed ``lines`` (whole commands) as they are (``copy``).

        They must continue this batch (seq and ``prev``) and land byte-identical;
        ``bodies`` go with their ``appended`` events. CopyRefused, nothing
        written, otherwise. Returns the lines appended. The default runs one
        :meth:`command` session and one append per command
        (:func:`eventstore.copy.import_lines`); a backend may store lines raw.
        """
        from eventstore.copy import import_lines

        return import_lines(self, batch_id, lines, bodies, timeout=timeout)

    @abstractmethod
    def session(
        self, batch_id: str, *, timeout: float = DEFAULT_LOCK_TIMEOUT
    ) -> AbstractContextManager[LogSession]:
        """Hold the batch and present its folded state and bodies for one command.

        LockTimeout after ``timeout`` seconds.
        """


def open_log(project: str, root: str | os.PathLike[str] | None = None) -> EventLog:
    """The backend serving ``project`` at ``root`` (argument, ``$SCENELOG_ROOT``, cwd).

    One instance per storage and project in a process, so that every spelling
    of a root reaches one lock and one cache (R23).
    """
    from eventstore.backends import open_backend

    return open_backend(project, root)
