"""Who may read: the bearer token of ``scenelog serve --token-file``.

Invariants:
- With a token configured, every request but a CORS preflight must carry it
  — ``Authorization: Bearer <token>``, the ``scenelog_token`` cookie, or
  ``?token=`` (browsers' EventSource cannot send headers) — else 401 and
  nothing is read.
- Tokens are compared in constant time.
- A token that arrived as ``?token=`` is set as an HttpOnly, SameSite=Strict
  cookie on the answer, so the board page's own requests carry it and the
  token need not stay in later URLs.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["COOKIE", "token_middleware"]

COOKIE = "scenelog_token"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _presented(scope: Scope) -> tuple[str | None, bool]:
    """The token the request carries, and whether it came in the query string."""
    auth = _header(scope, b"authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip(), False
    cookie = _header(scope, b"cookie")
    if cookie:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(cookie)
        except Exception:
            jar = SimpleCookie()
        if COOKIE in jar:
            return jar[COOKIE].value, False
    query = parse_qs(bytes(scope.get("query_string", b"")).decode("latin-1"))
    if "token" in query:
        return query["token"][-1], True
    return None, False


def token_middleware(token: str) -> Callable[[ASGIApp], ASGIApp]:
    """An ASGI middleware factory refusing requests without ``token`` (401)."""
    expected = token.encode()

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP or (
                scope.get("method") == "OPTIONS" and _header(scope, b"origin")
            ):
                await app(scope, receive, send)
                return
            given, from_query = _presented(scope)
            if given is None or not hmac.compare_digest(given.encode(), expected):
                await _refuse(send, "missing token" if given is None else "wrong token")
                return
            if not from_query:
                await app(scope, receive, send)
                return

            async def send_with_cookie(message: Message) -> None:
                if message["type"] == "http.response.start":
                    cookie = f"{COOKIE}={given}; Path=/; HttpOnly; SameSite=Strict"
                    headers: list[Any] = list(message.get("headers", []))
                    headers.append((b"set-cookie", cookie.encode("latin-1")))
                    message = {**message, "headers": headers}
                await send(message)

            await app(scope, receive, send_with_cookie)

        return middleware

    return factory


async def _refuse(send: Send, why: str) -> None:
    body = (
        b'{"error":"' + why.encode() + b": send Authorization: Bearer <token> (or the "
        b'scenelog_token cookie, or ?token=)","type":"Unauthorized"}'
    )
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"www-authenticate", b'Bearer realm="scenelog"'),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
