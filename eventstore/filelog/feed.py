"""The file backend's change feed: every batch log of a project, tailed (issue 11 stub)."""

from __future__ import annotations

from collections.abc import Callable

from eventstore.layout import Layout
from eventstore.log import Feed

__all__ = ["open_feed"]


def open_feed(
    layout: Layout,
    position: str | None,
    *,
    start: str,
    episode: str | None,
    poll: float | None,
    warn: Callable[[str], None] | None,
) -> Feed:
    raise NotImplementedError("issue 11: the file feed")
