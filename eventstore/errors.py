"""The exception tree of scenelog.

Every error the store raises on purpose derives from :class:`ScenelogError` and
from the builtin the design contract names, so callers written against the
reference store (``except ValueError``) keep working::

    ScenelogError                      exit_code  meaning
    ├── InvalidInput(ValueError)           2      bad id, version, kind, state, scene JSON
    │   └── SceneFormatError                      a scene body that is not a scene
    ├── UnknownBatch(ValueError)           2      a read of a batch that has no log
    ├── RuleViolation(ValueError)          3      refused by a rule of DESIGN §6
    │   ├── IdentityMismatch                      R1: scene_id != requested batch
    │   ├── NoLog                                 R10/R11: nothing to conform/revert
    │   ├── UnregisteredVersion                   R10/R11: version not in the log
    │   ├── NotActiveVersion                      R12: the pointer-race guard
    │   ├── SeqMismatch                           R15: expected_seq differs
    │   ├── UnimportedManifest                    R21: reference versions.json, no log
    │   └── ForeignView                           R29: versions.json changed by another tool
    ├── VersionBodyExists(FileExistsError) 3      R8: write-once guard
    ├── LockTimeout(TimeoutError)          3      the batch lock was not had in time
    ├── ConsumerBusy                       3      another watcher holds the consumer name
    ├── BodyMissing(FileNotFoundError)     4      a registered body is gone
    ├── DamagedStore(ValueError)           4      a file of the store cannot be trusted
    │   ├── DamagedLog                            corrupt line, broken seq or hash chain
    │   └── DamagedBody                           unreadable version body
    └── StoreIOError(OSError)              4      the disk refused a write (ENOSPC, EROFS)

Errors carry their facts as attributes (``batch_id``, ``path``, ``line``,
``expected``, ``actual``) and every message says what to do next. Each class
declares the facts it carries with their types (a fact the raiser did not
know is None); they are set from the keyword arguments of the constructor,
``LockTimeout(message, batch_id=…, path=…, timeout=…)``. All of them pickle,
so they cross process boundaries intact.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BodyMissing",
    "ConsumerBusy",
    "DamagedBody",
    "DamagedLog",
    "DamagedStore",
    "ForeignView",
    "IdentityMismatch",
    "InvalidInput",
    "LockTimeout",
    "NoLog",
    "NotActiveVersion",
    "RuleViolation",
    "SceneFormatError",
    "ScenelogError",
    "SeqMismatch",
    "StoreIOError",
    "UnimportedManifest",
    "UnknownBatch",
    "UnregisteredVersion",
    "VersionBodyExists",
]


class ScenelogError(Exception):
    """Base of every error scenelog raises on purpose."""

    exit_code: ClassVar[int] = 1
    """The ``scenelog`` command's exit code for this error (DESIGN §7)."""

    message: str
    facts: dict[str, Any]
    """Every fact given to the constructor, by name (also set as attributes)."""
    batch_id: str | None = None
    """The batch the error is about, when there is one."""
    path: str | None = None
    """The file (or storage place) the error is about, when there is one."""

    def __init__(self, message: str, **facts: Any) -> None:
        super().__init__(message)
        self.message = message
        self.facts = facts
        for key, value in facts.items():
            setattr(self, key, value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.facts))

    def __str__(self) -> str:
        return self.message


def _rebuild(cls: type[ScenelogError], message: str, facts: dict[str, Any]) -> ScenelogError:
    return cls(message, **facts)


class InvalidInput(ScenelogError, ValueError):
    """An argument or input document is malformed; nothing was touched."""

    exit_code: ClassVar[int] = 2
    value: object = None
    """The value refused."""
    project: str | None = None
    root: str | None = None


class SceneFormatError(InvalidInput):
    """A scene body is not valid JSON or lacks ``scene_id``/``beats``/``shot_id``."""

    beat: int | None = None
    """The index of the beat at fault."""
    size: int | None = None
    """The body's size in bytes, when it is over ``limit``."""
    limit: int | None = None
    token: str | None = None
    """A JSON constant JSON does not have (``NaN``, ``Infinity``)."""


class UnknownBatch(ScenelogError, ValueError):
    """A read names a batch that has no log (and no flat body)."""

    exit_code: ClassVar[int] = 2


class RuleViolation(ScenelogError, ValueError):
    """A command was refused by a rule of the design contract; nothing was written."""

    exit_code: ClassVar[int] = 3
    seq: int | None = None
    """The seq of the event at fault, when an event is."""


class IdentityMismatch(RuleViolation):
    """R1: the scene's ``scene_id`` is not the batch it is written to."""

    expected: str | None = None
    """The requested batch id."""
    actual: str | None = None
    """The scene's ``scene_id``."""


class NoLog(RuleViolation):
    """R10/R11: a pointer move on a batch that has no log."""


class UnregisteredVersion(RuleViolation):
    """R10/R11: the version is not registered in the batch's log."""

    version: int | None = None


class NotActiveVersion(RuleViolation):
    """R12: ``mark_derived`` of a version that is not the active one."""

    version: int | None = None
    """The version the caller named."""
    active_version: int | None = None
    """The batch's active version."""


class SeqMismatch(RuleViolation):
    """R15: the log's last seq is not the ``expected_seq`` the caller gave."""

    expected: int | None = None
    """The ``expected_seq`` given."""
    actual: int | None = None
    """The log's last seq."""


class UnimportedManifest(RuleViolation):
    """R21: a reference-format ``versions.json`` exists without a log."""


class ForeignView(RuleViolation):
    """R29: a ``versions.json`` was changed by a tool other than scenelog.

    Its content differs from the fold of the log at the seq it claims; it is
    never trusted or overwritten silently (``scenelog import --adopt``).
    """

    problems: list[str] | None = None
    """What differs, one line each."""


class VersionBodyExists(ScenelogError, FileExistsError):
    """R8: the target version body exists already; it is never overwritten."""

    exit_code: ClassVar[int] = 3


class LockTimeout(ScenelogError, TimeoutError):
    """The batch lock could not be acquired within ``timeout`` seconds."""

    exit_code: ClassVar[int] = 3
    timeout: float | None = None
    """The seconds waited."""


class ConsumerBusy(ScenelogError):
    """A watcher consumer name is held by another running watcher (``holder``)."""

    exit_code: ClassVar[int] = 3
    consumer: str | None = None
    holder: dict[str, Any] | None = None
    """Who holds the name (its lock file's ``pid``, ``host``…; empty when unreadable)."""


class BodyMissing(ScenelogError, FileNotFoundError):
    """A body the log registers is missing from disk."""

    exit_code: ClassVar[int] = 4


class DamagedStore(ScenelogError, ValueError):
    """A file of the store cannot be trusted; reads and writes of the batch stop."""

    exit_code: ClassVar[int] = 4


class DamagedLog(DamagedStore):
    """A log line is corrupt, out of sequence, or breaks the hash chain."""

    line: int | None = None
    """The 1-based line number at fault (0: the file as a whole)."""
    seq: int | None = None
    """The seq of the event at fault, when it could be read."""
    value: object = None


class DamagedBody(DamagedStore):
    """A version body is unreadable or is not a scene."""

    token: str | None = None


class StoreIOError(ScenelogError, OSError):
    """The operating system refused a write (disk full, read-only, permissions)."""

    exit_code: ClassVar[int] = 4
    errno_code: int | None = None
    """The ``errno`` the operating system gave (``errno.ENOSPC``…)."""
