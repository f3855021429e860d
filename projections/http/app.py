"""The HTTP projection API (DESIGN §10): Litestar routes over ``Projection``.

Invariants:
- Read-only by construction: every route reads through ``Projection`` or the
  project's stream hub (a watcher), so through the root's backend
  (``eventstore.log.open_log``); nothing takes a batch lock (R22) or
  appends; no route opens a store file. The only file read here is the
  board's own page, from the package.
- JSON bodies are the shapes of the CLI's ``--json`` (a JSON array where the
  CLI prints JSON lines): ``ls`` → ``/batches``, ``show`` → ``/batches/{b}``
  (plus ``fresh``), ``gate``, ``history``, ``diff``, ``audit``, ``watch`` →
  the stream's ``data:``.
- Path and query parameters are checked against the id grammars of
  ``eventstore.layout`` before any read: a malformed one is 400, a
  well-formed one the store does not hold is 404.
- Errors are ``{"error": <the CLI's one line>, "type": <class>}`` with the
  status of their class: bad input 400, unknown batch or version 404,
  other refusals 409, damaged store 500.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any

import msgspec
from litestar import Litestar, Request, Response, get
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Stream
from litestar.static_files import create_static_files_router

from eventstore import (
    BodyMissing,
    DamagedStore,
    InvalidInput,
    Manifest,
    NoLog,
    ScenelogError,
    UnknownBatch,
    UnregisteredVersion,
)
from eventstore.events import EVENT_TYPES
from eventstore.layout import (
    normalize_episode,
    validate_batch_id,
    validate_project,
    validate_version,
)
from projections import render
from projections.http.security import token_middleware
from projections.http.shapes import (
    AuditRow,
    BatchRow,
    DiffBody,
    ErrorBody,
    Event,
    GateBody,
    ManifestBody,
    SceneBody,
)
from projections.http.stream import HEARTBEAT_SECONDS, Hub, StreamFilter
from projections.projection import Projection

__all__ = ["ServeConfig", "create_app"]

BOARD_DIR = Path(__file__).resolve().parent.parent / "board"
IMMUTABLE = "public, max-age=31536000, immutable"
MAX_PROJECTS = 256
CSV_FIELDS = [
    *("batch_id", "seq", "type", "from_version", "to_version", "actor", "at", "reason"),
    "imported",
]


@dataclass
class ServeConfig:
    """What ``scenelog serve`` was given."""

    root: str | os.PathLike[str] | None = None
    project: str | None = None  # the board's default project
    token: str | None = None
    cors: list[str] = field(default_factory=list)
    poll: bool = False
    heartbeat: float = HEARTBEAT_SECONDS
    queue: int | None = None  # per-subscriber queue bound (tests shrink it)


# ── errors ──────────────────────────────────────────────────────────────────


def _status(error: ScenelogError) -> int:
    if isinstance(error, UnknownBatch | UnregisteredVersion | NoLog | BodyMissing):
        return 404
    if type(error).__name__.startswith("Unknown"):  # e.g. an unknown project
        return 404
    if isinstance(error, InvalidInput):
        return 400
    if isinstance(error, DamagedStore) or error.exit_code == 4:
        return 500
    return 409


def _error_response(_request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    assert isinstance(error, ScenelogError)
    return _json(
        {"error": " ".join(str(error).split()), "type": type(error).__name__}, _status(error)
    )


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        content=msgspec.json.encode(value),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _raw(
    content: bytes, media_type: str | None, headers: dict[str, str] | None = None, status: int = 200
) -> Response[Any]:
    return Response(content=content, media_type=media_type, headers=headers, status_code=status)


def _errors(*codes: int) -> dict[int, ResponseSpec]:
    return {code: ResponseSpec(ErrorBody, description=HTTPStatus(code).phrase) for code in codes}


def _not_found(message: str) -> Response[Any]:
    return _json({"error": message, "type": "NotFound"}, 404)


# ── helpers ─────────────────────────────────────────────────────────────────


def _projection(state: State, project: str) -> Projection:
    views: dict[str, Projection] = state.projections
    project = validate_project(project)
    view = views.get(project)
    if view is None:
        view = Projection(project, root=state.config.root)
        if len(views) < MAX_PROJECTS:  # any well-formed name is asked for: keep the cache bounded
            views[project] = view
    return view


def _matches(request: Request[Any, Any, Any], etag: str) -> bool:
    header = request.headers.get("if-none-match")
    if not header:
        return False
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return etag in tags or "*" in tags


def _version(text: str, batch_id: str) -> int:
    digits = text.removeprefix("v")
    if not digits.isascii() or not digits.isdigit():
        raise InvalidInput(f"invalid version {text!r} of batch {batch_id}: a number like 3 or v3")
    return validate_version(int(digits), batch_id=batch_id)


def _types(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    types = tuple(t.strip() for t in text.split(",") if t.strip())
    unknown = [t for t in types if t not in EVENT_TYPES]
    if unknown or not types:
        raise InvalidInput(f"unknown event type {text!r}: use {','.join(EVENT_TYPES)}")
    return types


# ── routes ──────────────────────────────────────────────────────────────────


@get("/v1/projects/{project:str}/batches", sync_to_thread=True, responses=_errors(400))
def list_batches(
    state: State,
    project: FromPath[str],
    episode: FromQuery[str | None] = None,
    pending: FromQuery[bool] = False,
    candidates: FromQuery[bool] = False,
) -> Response[list[BatchRow]]:
    """Every batch with a log: active version, state, downstream, gate, newest, awaiting."""
    view = _projection(state, project)
    if pending and candidates:
        raise InvalidInput("give pending or candidates, not both")
    if episode is not None:
        episode = normalize_episode(episode)
    pick = view.pending if pending else view.candidates if candidates else view.summaries
    return _json([s.to_dict() for s in pick(episode)])


@get(
    "/v1/projects/{project:str}/batches/{batch_id:str}",
    sync_to_thread=True,
    responses=_errors(400, 404),
)
def batch_manifest(
    request: Request[Any, Any, Any],
    state: State,
    project: FromPath[str],
    batch_id: FromPath[str],
    at: FromQuery[str | None] = None,
    at_seq: FromQuery[int | None] = None,
) -> Response[ManifestBody]:
    """The manifest plus ``fresh``; ETag ``"<seq>"``; ``?at=`` / ``?at_seq=`` for the past."""
    view = _projection(state, project)
    batch_id = validate_batch_id(batch_id)
    manifest: Manifest
    if at is not None or at_seq is not None:
        if at is not None and at_seq is not None:
            raise InvalidInput("give at or at_seq, not both")
        manifest = view.as_of(batch_id, seq=at_seq, at=at)
        return _json({**manifest.to_dict(), "fresh": manifest.is_fresh})
    manifest = view.require(batch_id)
    etag = f'"{manifest.seq}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if _matches(request, etag):
        return _raw(b"", None, headers, 304)
    return _json({**manifest.to_dict(), "fresh": manifest.is_fresh}, headers=headers)


@get(
    "/v1/projects/{project:str}/batches/{batch_id:str}/gate",
    sync_to_thread=True,
    responses={409: ResponseSpec(GateBody, description="blocked"), **_errors(400, 404)},
)
def batch_gate(state: State, project: FromPath[str], batch_id: FromPath[str]) -> Response[GateBody]:
    """200 when dispatch may go ahead, 409 when blocked (with why), 404 for an unknown batch."""
    view = _projection(state, project)
    batch_id = validate_batch_id(batch_id)
    # UnknownBatch for no batch at all; None for a legacy flat batch, which is fresh (R16).
    manifest = view.manifest(batch_id)
    fresh = manifest is None or manifest.blocked_reason() is None
    body = {
        "batch_id": batch_id,
        "fresh": fresh,
        "active_version": None if manifest is None else manifest.active_version,
        "why": render.gate_why(manifest),  # Manifest.blocked_reason, as `gate --json` says it
    }
    return _json(body, 200 if fresh else 409, {"Cache-Control": "no-cache"})


@get(
    "/v1/projects/{project:str}/batches/{batch_id:str}/history",
    sync_to_thread=True,
    responses=_errors(400, 404),
)
def batch_history(
    state: State, project: FromPath[str], batch_id: FromPath[str]
) -> Response[list[Event]]:
    """Every event of the batch in seq order (the objects of ``history --json``)."""
    view = _projection(state, project)
    batch_id = validate_batch_id(batch_id)
    view.require(batch_id)
    return _json([e.to_dict() for e in view.history(batch_id)])


@get(
    "/v1/projects/{project:str}/batches/{batch_id:str}/diff",
    sync_to_thread=True,
    responses=_errors(400, 404),
)
def batch_diff(
    state: State,
    project: FromPath[str],
    batch_id: FromPath[str],
    a: FromQuery[str],
    b: FromQuery[str],
) -> Response[DiffBody]:
    """Shot-level differences from version ``a`` to ``b`` (immutable: bodies never change)."""
    view = _projection(state, project)
    batch_id = validate_batch_id(batch_id)
    diff = view.diff(batch_id, _version(a, batch_id), _version(b, batch_id))
    return _json(diff.to_dict(), headers={"Cache-Control": IMMUTABLE})


@get(
    "/v1/projects/{project:str}/batches/{batch_id:str}/versions/{version:str}/body",
    sync_to_thread=True,
    responses=_errors(400, 404),
)
def version_body(
    request: Request[Any, Any, Any],
    state: State,
    project: FromPath[str],
    batch_id: FromPath[str],
    version: FromPath[str],
) -> Response[SceneBody]:
    """The version's scene JSON as stored; ETag = its structure fingerprint."""
    view = _projection(state, project)
    batch_id = validate_batch_id(batch_id)
    number = _version(version, batch_id)
    entry = view.require(batch_id).entry(number)
    if entry is None:
        raise UnregisteredVersion(
            f"version {number} is not registered for batch {batch_id}",
            batch_id=batch_id,
            version=number,
        )
    etag = f'"{entry.structure_fingerprint}"'
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE}
    if _matches(request, etag):
        return _raw(b"", None, headers, 304)
    body = view.body(batch_id, number).to_json()
    return _raw(body, "application/json", headers)


@get("/v1/projects/{project:str}/audit", sync_to_thread=True, responses=_errors(400))
def project_audit(
    request: Request[Any, Any, Any],
    state: State,
    project: FromPath[str],
    episode: FromQuery[str | None] = None,
    since: FromQuery[str | None] = None,
    until: FromQuery[str | None] = None,
    kinds: Annotated[str | None, QueryParameter(name="type")] = None,
    by: FromQuery[str | None] = None,
) -> Response[list[AuditRow]]:
    """Pointer moves (or ``type=``) across the project; CSV with ``Accept: text/csv``."""
    view = _projection(state, project)
    rows = view.audit(
        episode=episode,
        since=since,
        until=until,
        types=_types(kinds) or ("conformed", "reverted"),
        actor=by,
    )
    wants_csv = request.accept.best_match(["application/json", "text/csv"]) == "text/csv"
    if not wants_csv:
        return _json([r.to_dict() for r in rows])
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(r.to_dict() for r in rows)
    return _raw(out.getvalue().encode(), "text/csv; charset=utf-8")


@get("/v1/projects/{project:str}/events", responses=_errors(400, 404))
async def project_events(
    request: Request[Any, Any, Any],
    state: State,
    project: FromPath[str],
    types: FromQuery[str | None] = None,
    episode: FromQuery[str | None] = None,
    batch: FromQuery[str | None] = None,
    after: FromQuery[str | None] = None,
) -> Response[Any]:
    """Server-Sent Events: ``event:`` type, ``data:`` the watch JSON, ``id:`` resumable."""
    view = await asyncio.to_thread(_projection, state, project)
    wanted = StreamFilter(
        types=None if types is None else frozenset(_types(types) or ()),
        episode=None if episode is None else normalize_episode(episode),
        batch_id=None if batch is None else validate_batch_id(batch),
    )
    if not await asyncio.to_thread(view.episodes):
        return _not_found(f"project {view.project} has no episodes under {view.log.label}")
    hub = _hub(state, view.project)
    await asyncio.to_thread(hub.ready.wait, 30.0)
    resume = request.headers.get("last-event-id") or after
    subscriber = hub.subscribe(wanted, resume)
    return Stream(
        subscriber.stream(heartbeat=state.config.heartbeat),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _hub(state: State, project: str) -> Hub:
    hubs: dict[str, Hub] = state.hubs
    hub = hubs.get(project)
    if hub is None or hub.error is not None:
        config: ServeConfig = state.config
        kwargs: dict[str, Any] = {} if config.queue is None else {"queue": config.queue}
        hub = hubs[project] = Hub(
            project, config.root, asyncio.get_running_loop(), poll=config.poll, **kwargs
        )
    return hub


@get("/", media_type="text/html", include_in_schema=False)
async def board_page(state: State, project: FromQuery[str | None] = None) -> Response[Any]:
    """The review board; ``?project=`` picks the project (default: the server's)."""
    page = (BOARD_DIR / "index.html").read_text(encoding="utf-8")
    chosen = project or state.config.project or ""
    if chosen:
        chosen = validate_project(chosen)
    html = page.replace("{{PROJECT}}", chosen)  # the grammar has no character HTML escapes
    return Response(content=html, media_type="text/html")


def _stop_hubs(app: Litestar) -> None:
    for hub in app.state.hubs.values():
        hub.stop()


def create_app(config: ServeConfig | None = None) -> Litestar:
    """The ASGI app serving ``config.root``'s projects (see the module docstring)."""
    config = config or ServeConfig()
    cors = (
        CORSConfig(
            allow_origins=list(config.cors),
            allow_methods=["GET"],
            allow_headers=["Authorization", "Last-Event-ID"],
            expose_headers=["ETag"],
        )
        if config.cors
        else None
    )
    return Litestar(
        route_handlers=[
            list_batches,
            batch_manifest,
            batch_gate,
            batch_history,
            batch_diff,
            version_body,
            project_audit,
            project_events,
            board_page,
            create_static_files_router(path="/board", directories=[BOARD_DIR]),
        ],
        state=State({"config": config, "projections": {}, "hubs": {}}),
        exception_handlers={ScenelogError: _error_response},
        middleware=[token_middleware(config.token)] if config.token else [],
        cors_config=cors,
        openapi_config=OpenAPIConfig(title="scenelog", version="1", path="/schema"),
        on_shutdown=[_stop_hubs],
    )
