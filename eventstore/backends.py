"""Which backend serves a root: the one place that reads a root's scheme.

    a folder, or ``file:///folder``   FileLog
    ``memory://NAME``                 MemoryLog (in-process, for tests of tools)

Backends are shared per storage and project within a process: the file
backend's instances are keyed on the root folder's identity (device, inode),
so every spelling of a root reaches one cache (R23).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from eventstore.errors import InvalidInput
from eventstore.filelog.paths import Layout
from eventstore.layout import resolve_root, validate_project
from eventstore.log import EventLog

__all__ = ["open_backend", "root_label"]

_LIMIT = 256
_guard = threading.Lock()
_instances: dict[tuple[object, ...], EventLog] = {}


def root_label(root: str | os.PathLike[str] | None) -> str:
    """The root as shown to people."""
    text = os.fspath(root) if root is not None else os.environ.get("SCENELOG_ROOT") or os.getcwd()
    return text


def open_backend(project: str, root: str | os.PathLike[str] | None = None) -> EventLog:
    """The backend for ``project`` at ``root`` (argument, ``$SCENELOG_ROOT``, cwd)."""
    project = validate_project(project)
    text = os.fspath(root) if root is not None else os.environ.get("SCENELOG_ROOT") or ""
    if text.startswith("memory://"):
        from eventstore.memlog import MemoryLog

        return MemoryLog.named(text[len("memory://") :], project)
    if text.startswith(("postgresql://", "postgres://")):
        from eventstore.pglog import open_pg  # psycopg only for PostgreSQL roots

        return open_pg(text, project)
    if "://" in text and not text.startswith("file://"):
        raise InvalidInput(
            f"unknown root {text.split('://', 1)[0]}://…: use a folder, file:///folder, "
            "postgresql://… or memory://NAME",
            value=text.split("://", 1)[0],
        )
    if text.startswith("file://"):
        text = text[len("file://") :]
    folder = resolve_root(text or None)
    return _file_backend(folder, project)


def _file_backend(folder: Path, project: str) -> EventLog:
    from eventstore.filelog import FileLog

    try:
        st = os.stat(folder)
        key: tuple[object, ...] = ("file", st.st_dev, st.st_ino, project)
    except OSError:
        key = ("file", str(folder), project)  # not there (yet): readers say so
    with _guard:
        found = _instances.get(key)
        if found is not None and not _same_folder(found, key):
            found = None  # the folder it served was removed and its inode reused
        if found is None:
            if len(_instances) >= _LIMIT:
                _instances.pop(next(iter(_instances)))
            found = _instances[key] = FileLog(Layout(folder, project))
        return found


def _same_folder(log: EventLog, key: tuple[object, ...]) -> bool:
    """Whether ``log``'s root is still the folder ``key`` names (inodes are reused)."""
    root = getattr(log, "layout", None)
    if root is None or len(key) != 4:
        return True
    try:
        st = os.stat(root.root)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == key[1:3]
