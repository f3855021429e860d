"""The legacy view's policy per project, and the snapshot readers fold with the log's tail.

A project chooses what its commits do with ``<batch>.versions.json`` (the view
tools of the reference era read), in ``<root>/<project>/.scenelog/view-policy``
(one word and ``\\n``; no file means ``sync``):

    sync  the view is rewritten atomically at every commit (R17); the default
    lazy  the view is rewritten when the log has moved on by :data:`BOUND`
          events or more since the last rewrite; a snapshot with the same
          bytes is kept in ``.scenelog/snapshots/<batch>``
    off   no view (the next commit on a batch removes it); only the snapshot
          in ``.scenelog/snapshots/<batch>``, rewritten as in ``lazy``

Invariants:
- Writers read the policy under the batch lock when a session starts; each
  commit honours the policy its session read. The policy file is replaced
  atomically (temp file, fsync, rename, fsync of the folder), so a writer sees
  the old or the new policy, never a mix. Switching is safe while writers run
  because no reader trusts a view or a snapshot beyond its own ``seq``: each
  takes the stored manifest (any policy's) and folds the committed events
  after its ``seq`` read from the log's end (:func:`caught_up`); the log stays
  the only truth.
- Readers choose which stored manifest to read first by a policy at most
  :data:`READER_AGE` seconds old (no stat per read); a stale choice costs a
  fold, never a wrong answer. Mends and writers read it fresh.
- A reader's work is O(1) in the log's length: it reads at most
  :data:`TAIL_LIMIT` bytes from the log's end. A snapshot further behind (a
  policy switched, a writer killed between its commit and its rewrite) is
  not caught up: the reader folds the whole log once and mends the snapshot.
- Snapshots are scenelog's canonical view bytes, written by the writer that
  holds the batch lock (or by a reader's lock-free mend that never replaces
  a newer one) and never fsync'd: a lost or torn snapshot is rebuilt.

Crash at each step of a lazy or off commit: the log line is the commit; the
snapshot (then, in ``lazy``, the view) is rewritten after it, each atomically,
so a crash leaves an older snapshot or view that readers catch up.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from eventstore.errors import InvalidInput
from eventstore.events import Event, decode_lines
from eventstore.filelog.fsio import fsync_dir, os_errors, replace_atomic, replace_unless_newer
from eventstore.log import line_seq, split_committed
from eventstore.manifest import Fold, Manifest, decode_manifest, encode_manifest

__all__ = [
    "BOUND",
    "DEFAULT",
    "POLICIES",
    "TAIL_LIMIT",
    "PolicyMemory",
    "SeqMemory",
    "caught_up",
    "fold_from",
    "manifest_of",
    "mend",
    "policy_path",
    "read_manifest",
    "read_policy",
    "read_policy_file",
    "reader_policy",
    "remember_seq",
    "replace_seen",
    "snapshot_path",
    "snapshot_seq",
    "tail_events",
    "write_policy",
    "write_snapshot",
]

POLICIES = ("sync", "lazy", "off")
DEFAULT = "sync"

BOUND = 32
"""Events a lazy view (or a snapshot) may trail the log by before a commit rewrites it."""

TAIL_LIMIT = 256 * 1024
"""Bytes a reader reads from a log's end to catch a snapshot up; further behind, it folds."""

PolicyMemory = dict[str, tuple[tuple[int, int, int], str]]
"""A policy file's identity stamp (inode, size, mtime) and the policy it held, by path."""


def policy_path(project_dir: Path) -> Path:
    return project_dir / ".scenelog" / "view-policy"


def snapshot_path(project_dir: Path, batch_id: str) -> Path:
    return project_dir / ".scenelog" / "snapshots" / batch_id


def read_policy(project_dir: Path, memory: PolicyMemory | None = None) -> str:
    """The project's view policy; ``sync`` when none is set or the file is not one.

    With ``memory``, a file already read is only stat'ed (it is replaced by
    rename, so a new policy is a new inode).
    """
    return read_policy_file(policy_path(project_dir), memory)


def read_policy_file(path: Path, memory: PolicyMemory | None = None) -> str:
    """:func:`read_policy` given the policy file's path (writers keep it)."""
    try:
        st = os.stat(path)
    except OSError:
        return DEFAULT
    stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
    key = str(path)
    if memory is not None:
        known = memory.get(key)
        if known is not None and known[0] == stamp:
            return known[1]
    try:
        word = path.read_bytes().decode("ascii", "replace").strip()
    except OSError:
        return DEFAULT
    policy = word if word in POLICIES else DEFAULT
    if memory is not None:
        if len(memory) > 64:
            memory.clear()
        memory[key] = (stamp, policy)
    return policy


READER_AGE = 1.0
"""Seconds a reader reuses the policy it read without a stat (see :func:`reader_policy`)."""


def reader_policy(path: Path, memory: dict[str, tuple[float, str]]) -> str:
    """The policy for a reader's choice of which stored manifest to read first.

    Read at most every :data:`READER_AGE` seconds: a reader never trusts what it
    reads beyond its ``seq`` (it catches up from the log or folds it), so a
    policy a second old costs at worst one fold, never a wrong answer. Writers
    and mends read the policy fresh (:func:`read_policy_file`).
    """
    key = str(path)
    known = memory.get(key)
    now = time.monotonic()
    if known is not None and now - known[0] < READER_AGE:
        return known[1]
    policy = read_policy_file(path)
    if len(memory) > 64:
        memory.clear()
    memory[key] = (now, policy)
    return policy


def write_policy(project_dir: Path, policy: str) -> None:
    """Set the project's view policy durably (InvalidInput for an unknown word).

    Crash at each step: before the rename, the old policy (and perhaps a temp
    file); after it, the new one, made durable by the folder's fsync.
    """
    if policy not in POLICIES:
        raise InvalidInput(
            f"unknown view policy {policy!r}: use one of {', '.join(POLICIES)}", value=policy
        )
    path = policy_path(project_dir)
    with os_errors(path.parent, "create"):
        path.parent.mkdir(parents=True, exist_ok=True)
    replace_atomic(path, policy.encode() + b"\n", durable=True)
    fsync_dir(path.parent)


_SEQ = re.compile(
    rb'^\{"schema_version":[0-9]+,"batch_id":"[^"]*",'
    rb'"active_version":(?:null|[0-9]+),"seq":([0-9]+),'
)

SeqMemory = dict[tuple[int, int], tuple[tuple[int, int, int], int]]
"""Snapshots whose seq a FileLog knows, by identity: (size, mtime, ctime) and the seq."""


def snapshot_seq(path: Path, memory: SeqMemory) -> int:
    """The seq of the snapshot at ``path`` (0 when none): a stat when already known."""
    try:
        st = os.stat(path)
    except OSError:
        return 0
    key = (st.st_dev, st.st_ino)
    stamp = (st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    known = memory.get(key)
    if known is not None and known[0] == stamp:
        return known[1]
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError:
        return 0
    match = _SEQ.match(head)
    seq = int(match.group(1)) if match else 0
    remember_seq(memory, st, seq)
    return seq


def remember_seq(memory: SeqMemory, st: os.stat_result | None, seq: int) -> None:
    if st is None:
        return
    if len(memory) >= 4096:
        memory.clear()
    memory[(st.st_dev, st.st_ino)] = ((st.st_size, st.st_mtime_ns, st.st_ctime_ns), seq)


def write_snapshot(
    path: Path, chunks: bytes | list[bytes], memory: SeqMemory | None, seq: int
) -> bool:
    """Replace the snapshot (no fsync: a cache); False when the disk refused."""
    try:
        try:
            st = replace_atomic(path, chunks)
        except OSError:  # the snapshots folder is made by the first one
            path.parent.mkdir(parents=True, exist_ok=True)
            st = replace_atomic(path, chunks)
    except OSError:
        return False
    if memory is not None:
        remember_seq(memory, st, seq)
    return True


def read_manifest(path: Path) -> Manifest | None:
    """A view or snapshot file's manifest, when it holds exactly scenelog's bytes for one."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    return manifest_of(data)


def tail_events(log: Path, after: int) -> list[Event] | None:
    """Committed events with seq > ``after``, reading only the log's end.

    None when they start more than :data:`TAIL_LIMIT` bytes before the end,
    when the log is missing, or when what is read does not decode (the caller
    then folds the whole log, which names any damage).
    """
    try:
        fd = os.open(log, os.O_RDONLY)
    except OSError:
        return None
    try:
        size = os.fstat(fd).st_size
        window = 4096
        while True:
            start = max(size - window, 0)
            data = os.pread(fd, size - start, start)
            if start > 0:
                data = data[data.find(b"\n") + 1 :]  # the first line may be cut
            committed, _rest = split_committed(data)
            if committed:
                last = committed.rfind(b"\n", 0, len(committed) - 1) + 1
                try:
                    due = line_seq(committed[last:-1]) - after
                except (msgspec.DecodeError, msgspec.ValidationError):
                    return None
                if due <= 0:
                    return []  # nothing after ``after``: the common case
                # Seqs are contiguous: the line after ``after`` is the due-th from the end.
                cut, found = len(committed) - 1, 0
                while found < due and cut >= 0:
                    cut = committed.rfind(b"\n", 0, cut)
                    found += 1
                if found == due or start == 0:
                    try:
                        events = decode_lines(committed[cut + 1 :])
                    except (msgspec.DecodeError, msgspec.ValidationError):
                        return None
                    if not events or events[0].seq != after + 1:
                        return None  # not the log this snapshot came from: fold it all
                    return events
            elif start == 0:
                return []
            if window >= TAIL_LIMIT:
                return None
            window *= 4
    except OSError:
        return None
    finally:
        os.close(fd)


def fold_from(manifest: Manifest, path: str) -> Fold:
    """A fold standing where ``manifest`` stands, to apply the events after it."""
    fold = Fold(manifest.batch_id, path=path)
    fold.seq = manifest.seq
    fold.active_version = manifest.active_version
    fold.entries = list(manifest.versions)
    fold._index = {entry.version: i for i, entry in enumerate(manifest.versions)}
    fold._encoded = [None] * len(manifest.versions)
    return fold


def caught_up(manifest: Manifest, log: Path) -> Manifest:
    """``manifest`` with the log's committed events after its seq folded in.

    ``manifest`` itself when the tail cannot be read cheaply (the caller sees
    a seq behind the log's and folds the whole log) or does not follow it.
    """
    tail = tail_events(log, manifest.seq)
    if not tail:
        return manifest
    try:
        return fold_from(manifest, str(log)).apply_all(tail).manifest()
    except Exception:
        return manifest


def manifest_of(data: bytes) -> Manifest | None:
    """The manifest ``data`` holds when they are exactly scenelog's bytes for one."""
    try:
        manifest = decode_manifest(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return manifest if encode_manifest(manifest) == data else None


def _swap_unless(path: Path, manifest: Manifest, keep_old: Callable[[bytes], bool]) -> bool:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return replace_unless_newer(path, encode_manifest(manifest), keep_old)
    except OSError:
        return False


def mend(path: Path, manifest: Manifest) -> bool:
    """A reader's lock-free rewrite of a stale snapshot; a newer one is put back.

    True when ``manifest``'s snapshot stayed in place; a failure (read-only
    store, full disk) is False and leaves no temp file.
    """

    def keep_old(old: bytes) -> bool:
        ours = manifest_of(old)
        return ours is not None and ours.seq > manifest.seq

    return _swap_unless(path, manifest, keep_old)


def replace_seen(path: Path, manifest: Manifest, seen: bytes | None) -> bool:
    """verify's repair of a snapshot ahead of its log: replaces ``seen``, nothing newer."""

    def keep_old(old: bytes) -> bool:
        if old == seen:
            return False
        ours = manifest_of(old)
        return ours is not None and ours.seq > manifest.seq

    return _swap_unless(path, manifest, keep_old)
