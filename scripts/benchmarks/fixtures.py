"""What the rows stand on: the bench project, scene bodies, the bare primitive, big logs.

Invariants: fixtures are built with fsync disabled (``no_fsync``) and never
inside a timed region; ``Primitive`` is the baseline of every append row (encode,
``flock``, write, fsync of one line, nothing else); ``big_log`` leaves a batch whose
view is current (its last event is a real ``conform``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from eventstore import Conformed, FileLog, Layout, Scene, SceneVersionStore
from eventstore.events import encode_event, new_event_id, utc_now

REPO = Path(__file__).resolve().parents[2]
BENCH_SCRIPT = REPO / "scripts" / "bench.py"
PROJECT = "bench"


def scene(batch_id: str, shots: int, salt: str = "") -> Scene:
    """A body of ``shots`` beats; ``salt`` makes bodies of one batch differ."""
    beats = [
        {"shot_id": f"sh{i:04d}", "raw": {"description": f"shot {i} {salt}"}} for i in range(shots)
    ]
    return Scene({"scene_id": batch_id, "beats": beats})


@contextlib.contextmanager
def no_fsync() -> Iterator[None]:
    """Setup only: build large fixtures without paying for durability.

    What the setup wrote is then flushed (``os.sync``), so the writeback of
    thousands of dirty files is not timed inside the row that follows.
    """
    real = os.fsync
    os.fsync = lambda fd: None
    try:
        yield
    finally:
        os.fsync = real
        os.sync()


def conformed_line(batch_id: str, version: int, prev: str) -> bytes:
    """One encoded ``Conformed`` event, as the primitive appends it."""
    return encode_event(
        Conformed(
            seq=1,
            batch_id=batch_id,
            version=version,
            at=utc_now(),
            actor="bench@farm",
            reason="approved in dailies",
            event_id=new_event_id(),
            prev=prev,
            previous_active=1,
        )
    )


class Primitive:
    """The bare durable append: encode + flock + write + fsync of one line."""

    def __init__(self, folder: Path, name: str = "primitive") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.lock_fd = os.open(folder / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        self.fd = os.open(folder / f"{name}.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.prev = "0" * 64

    def append(self, n: int) -> None:
        """Append ``n`` lines, each under the lock and fsynced before the unlock."""
        for i in range(n):
            line = conformed_line("ep_001_BATCH_001", 1 + i % 2, self.prev) + b"\n"
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
            os.write(self.fd, line)
            os.fsync(self.fd)
            fcntl.flock(self.lock_fd, fcntl.LOCK_UN)


def big_log(root: Path, batch: str, events: int, versions: int, project: str = PROJECT) -> Path:
    """A log of ``versions`` appended events then pointer events up to ``events``.

    Built without fsync, 5,000 events per session, in ``project`` (whose view
    policy decides what the sessions leave); the last event is a real
    ``conform``, so under ``sync`` the batch's view is current at the end.
    """
    log = FileLog(Layout.of(project, root))
    store = SceneVersionStore(project, batch[:6], root=root)
    with no_fsync():
        for v in range(versions):
            store.write_scene_candidate(batch, scene(batch, 12, str(v)))
        active, remaining = 1, events - versions
        while remaining > 0:
            chunk = []
            for _ in range(min(5000, remaining)):
                target = active % versions + 1
                chunk.append(
                    Conformed(
                        seq=0,
                        batch_id=batch,
                        version=target,
                        at=utc_now(),
                        actor="sup.ana@studio",
                        reason="approved in dailies",
                        event_id=new_event_id(),
                        prev=None,
                        previous_active=active,
                    )
                )
                active = target
            with log.session(batch) as session:
                session.append(chunk)
            remaining -= len(chunk)
        store.conform(batch, active % versions + 1)  # rewrites the view at the end
    return log.path(batch)
