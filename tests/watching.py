"""A watcher running in its own process, read line by line under a deadline."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.helpers import child_env

DEADLINE = 60.0


class WatcherProcess:
    def __init__(self, root: str | Path, *args: str) -> None:
        env = child_env(SCENELOG_ROOT=str(root), SCENELOG_PROJECT="show")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "projections", "watch", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.events: list[dict[str, Any]] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.stderr: list[str] = []
        self._ready = threading.Event()
        threading.Thread(target=self._read_err, daemon=True).start()
        if not self._ready.wait(DEADLINE):
            self.stop()
            raise AssertionError("watcher never said it was ready: " + "".join(self.stderr))

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)
            if "scenelog: watching" in line:
                self._ready.set()
        self._ready.set()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def wait_for(
        self, done: Callable[[list[dict[str, Any]]], bool], timeout: float = DEADLINE
    ) -> None:
        deadline = time.monotonic() + timeout
        while not done(self.events):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"watcher did not deliver in time; got {len(self.events)}")
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                code = self.proc.wait()
                raise AssertionError(f"watcher exited {code}: {''.join(self.stderr)}")
            self.events.append(json.loads(line))

    def drain(self) -> None:
        """Collect every line already written (after the process ended)."""
        self._reader.join(timeout=DEADLINE)
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                return
            if line is not None:
                self.events.append(json.loads(line))

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=DEADLINE)
        self.drain()

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=DEADLINE)
        self.drain()
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=DEADLINE)
