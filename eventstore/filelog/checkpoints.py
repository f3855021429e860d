"""The file backend's consumer checkpoints under ``.scenelog/consumers/`` (issue 11 stub)."""

from __future__ import annotations

from contextlib import AbstractContextManager

from eventstore.layout import Layout

__all__ = ["claim", "delete", "load", "names", "save"]


def load(layout: Layout, consumer: str) -> bytes | None:
    raise NotImplementedError


def save(layout: Layout, consumer: str, data: bytes) -> None:
    raise NotImplementedError


def delete(layout: Layout, consumer: str) -> bool:
    raise NotImplementedError


def names(layout: Layout) -> list[str]:
    raise NotImplementedError


def claim(layout: Layout, consumer: str) -> AbstractContextManager[None]:
    raise NotImplementedError
