"""``scenelog serve``: the HTTP projection API, the live event stream and the review board.

    from projections.http import ServeConfig, create_app, serve
    app = create_app(ServeConfig(root="/show/store", project="myshow"))   # any ASGI server
    serve(ServeConfig(...), host="127.0.0.1", port=8750)                  # uvicorn, blocking

Needs the ``serve`` extra (litestar, uvicorn). ``app`` holds the routes over
``Projection`` (read-only by construction), ``shapes`` the Structs the
OpenAPI document (``/schema``) publishes for each body, ``stream`` one watcher
per project fanned out to SSE subscribers, ``security`` the bearer token. The
board page is static files in ``projections/board/`` (no build step, nothing
loaded from the internet).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

from projections.http.app import ServeConfig, create_app

if TYPE_CHECKING:
    import uvicorn
    from litestar import Litestar

__all__ = [
    "BackgroundServer",
    "ServeConfig",
    "create_app",
    "is_loopback",
    "serve",
    "stop_streams",
]


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say they are TCP;
    # without it every response pays Nagle + delayed ACK (~40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(512)
    return sock


def _server(app: Litestar) -> uvicorn.Server:
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            super().handle_exit(sig, frame)
            stop_streams(app)

    logging.getLogger("watchfiles").setLevel(logging.WARNING)
    return Server(
        uvicorn.Config(
            app, log_level="warning", access_log=False, timeout_graceful_shutdown=1, lifespan="on"
        )
    )


def stop_streams(app: Litestar) -> None:
    """End every open event stream (thread-safe): they would hold a graceful shutdown."""
    for hub in list(app.state.hubs.values()):
        if not hub.loop.is_closed():
            hub.loop.call_soon_threadsafe(hub.stop)


def serve(
    config: ServeConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8750,
    on_listening: Callable[[str, int], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM. The socket is bound before ``on_listening`` is called,
    so ``port=0`` reports the port the system chose."""
    sock = _bind(host, port)
    server = _server(create_app(config))
    if on_listening is not None:
        bound = sock.getsockname()
        on_listening(str(bound[0]), int(bound[1]))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


class BackgroundServer:
    """``create_app(config)`` under uvicorn in a daemon thread, for tests, tools and benchmarks.

    The socket listens before the constructor returns, so requests to ``url``
    may start at once (they wait in the backlog until the server accepts).
    ``close()`` (or leaving the ``with`` block) ends open streams and waits.
    """

    def __init__(self, config: ServeConfig, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = create_app(config)
        self._sock = _bind(host, port)
        bound = self._sock.getsockname()
        self.url = f"http://{host}:{bound[1]}"
        self._server = _server(self.app)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self._thread.start()

    def close(self, *, timeout: float = 10.0) -> None:
        stop_streams(self.app)
        self._server.should_exit = True
        self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
