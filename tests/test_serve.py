"""`scenelog serve` (issue 14, DESIGN §10): every endpoint, status and content type over a
live uvicorn on 127.0.0.1; the SSE stream resumes exactly; tokens, CORS, read-only.

The endpoints and the stream run on every backend (``backend_root``); tests of the HTTP
layer alone (tokens, CORS, heartbeats, id grammars) and of files (a held lock file, a
damaged log file) run on the file backend only.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import pytest

if TYPE_CHECKING:
    import httpx
else:
    httpx = pytest.importorskip("httpx", reason="the serve tests need the test extra (httpx)")
pytest.importorskip("litestar", reason="scenelog serve needs the serve extra (litestar)")
pytest.importorskip("uvicorn", reason="scenelog serve needs the serve extra (uvicorn)")

from eventstore import SceneVersionStore
from eventstore.filelog.paths import Layout
from projections import Projection
from projections.cli import cli
from projections.http import BackgroundServer, ServeConfig, shapes
from projections.http.stream import Item, StreamFilter, Subscriber, sse_frame
from tests.conftest import on_files_only, on_shared_backends
from tests.helpers import DEADLINE, REPO, child_env, scene, snapshot

FRESH = "ep_001_BATCH_001"  # v2 active and derived; v3 a candidate awaiting review
BLOCKED = "ep_001_BATCH_002"  # v2 conformed, boards not rebuilt
OTHER = "ep_002_BATCH_001"  # one version
MISSING = "ep_001_BATCH_009"
TOKEN = "0123456789abcdef0123456789abcdef"


def _build(root: str) -> None:
    one = SceneVersionStore("show", 1, root=root)
    one.write_scene_candidate(FRESH, scene(FRESH), actor="layout")
    one.write_scene_candidate(FRESH, scene(FRESH, shots=4), actor="layout")
    one.conform(FRESH, 2, actor="sup", reason="dailies")
    one.mark_derived(FRESH, 2, actor="boards")
    one.write_scene_candidate(FRESH, scene(FRESH, shots=5, tag="x"), actor="layout")
    one.write_scene_candidate(BLOCKED, scene(BLOCKED), actor="layout")
    one.write_scene_candidate(BLOCKED, scene(BLOCKED, shots=2), actor="layout")
    one.conform(BLOCKED, 2, actor="sup", reason="better")
    SceneVersionStore("show", 2, root=root).write_scene_candidate(OTHER, scene(OTHER))


@pytest.fixture
def store_root(backend_root: str) -> str:
    _build(backend_root)
    return backend_root


@pytest.fixture
def server(store_root: str) -> Iterator[BackgroundServer]:
    with BackgroundServer(ServeConfig(root=store_root, project="show")) as live:
        yield live


@pytest.fixture
def http(server: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url + "/v1/projects/show", timeout=DEADLINE) as client:
        yield client


def _cli_json(root: str, *args: str) -> Any:
    out, err = io.StringIO(), io.StringIO()
    code = cli("--root", str(root), "--project", "show", *args, "--json", out=out, err=err)
    assert code in (0, 1), err.getvalue()
    text = out.getvalue()
    assert text.strip()
    lines = text.splitlines()
    return json.loads(text) if len(lines) == 1 else [json.loads(x) for x in lines]


def _manifest(show: dict[str, Any]) -> dict[str, Any]:
    """``show --json`` without what only the CLI adds (blocked_reason, each body_path)."""
    versions = [{k: v for k, v in e.items() if k != "body_path"} for e in show["versions"]]
    return {**{k: v for k, v in show.items() if k != "blocked_reason"}, "versions": versions}


def _is_json(response: httpx.Response) -> Any:
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


# ── endpoints: the shapes of the CLI's --json ─────────────────────────────────


def test_issue14_batches_are_the_ls_json_with_filters(http: httpx.Client, store_root: str) -> None:
    r = http.get("/batches")
    assert r.status_code == 200
    assert _is_json(r) == _cli_json(store_root, "ls")
    assert [s["batch_id"] for s in r.json()] == [FRESH, BLOCKED, OTHER]
    pending = _is_json(http.get("/batches", params={"pending": "true"}))
    assert [s["batch_id"] for s in pending] == [BLOCKED]
    candidates = _is_json(http.get("/batches", params={"candidates": "true"}))
    assert [(s["batch_id"], s["awaiting_review"]) for s in candidates] == [(FRESH, [3])]
    ep2 = _is_json(http.get("/batches", params={"episode": "2"}))
    assert [s["batch_id"] for s in ep2] == [OTHER]
    assert http.get("/batches", params={"episode": "ep_x"}).status_code == 400
    both = http.get("/batches", params={"pending": "true", "candidates": "true"})
    assert both.status_code == 400 and "not both" in both.json()["error"]


def test_issue14_manifest_has_fresh_and_a_seq_etag_answering_304(
    http: httpx.Client, store_root: str
) -> None:
    r = http.get(f"/batches/{FRESH}")
    body = _is_json(r)
    show = _cli_json(store_root, "show", FRESH)
    assert body == {**_manifest(show), "fresh": True}
    assert r.headers["etag"] == f'"{show["seq"]}"'
    again = http.get(f"/batches/{FRESH}", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    stale = http.get(f"/batches/{FRESH}", headers={"If-None-Match": '"1"'})
    assert stale.status_code == 200
    SceneVersionStore("show", 1, root=store_root).revert(FRESH, 1, reason="undo")
    moved = http.get(f"/batches/{FRESH}", headers={"If-None-Match": r.headers["etag"]})
    assert moved.status_code == 200 and moved.headers["etag"] == f'"{show["seq"] + 1}"'
    assert moved.json()["active_version"] == 1
    assert _is_json(http.get(f"/batches/{BLOCKED}"))["fresh"] is False
    assert http.get(f"/batches/{MISSING}").status_code == 404


def test_issue14_manifest_as_of_seq_and_time(http: httpx.Client, store_root: str) -> None:
    history = Projection("show", root=store_root).history(FRESH)
    r = http.get(f"/batches/{FRESH}", params={"at_seq": 2})
    shown = _manifest(_cli_json(store_root, "show", FRESH, "--at-seq", "2"))
    assert _is_json(r) == {**shown, "fresh": True}
    assert r.json()["active_version"] == 1 and r.json()["seq"] == 2
    at = history[2].at  # the conform of v2, not yet derived
    r = http.get(f"/batches/{FRESH}", params={"at": at})
    assert r.json()["seq"] == 3 and r.json()["active_version"] == 2 and r.json()["fresh"] is False
    assert http.get(f"/batches/{FRESH}", params={"at_seq": 99}).status_code == 400
    assert http.get(f"/batches/{FRESH}", params={"at_seq": "x"}).status_code == 400
    assert http.get(f"/batches/{FRESH}", params={"at": "yesterday"}).status_code == 400
    both = http.get(f"/batches/{FRESH}", params={"at": at, "at_seq": 1})
    assert both.status_code == 400


def test_issue14_gate_200_fresh_409_blocked_404_unknown(
    http: httpx.Client, store_root: str
) -> None:
    fresh = http.get(f"/batches/{FRESH}/gate")
    assert fresh.status_code == 200
    assert _is_json(fresh) == _cli_json(store_root, "gate", FRESH)
    blocked = http.get(f"/batches/{BLOCKED}/gate")
    assert blocked.status_code == 409
    assert _is_json(blocked) == {
        "batch_id": BLOCKED,
        "fresh": False,
        "active_version": 2,
        "why": "blocked (v2 active, boards not rebuilt)",
    }
    unknown = http.get(f"/batches/{MISSING}/gate")
    assert unknown.status_code == 404
    assert _is_json(unknown)["type"] == "UnknownBatch" and MISSING in unknown.json()["error"]


def test_issue14_history_is_the_history_json_lines(http: httpx.Client, store_root: str) -> None:
    r = http.get(f"/batches/{FRESH}/history")
    assert _is_json(r) == _cli_json(store_root, "history", FRESH)
    assert [e["seq"] for e in r.json()] == [1, 2, 3, 4, 5]
    assert http.get(f"/batches/{MISSING}/history").status_code == 404


def test_issue14_body_and_diff_are_immutable_with_the_fingerprint_as_etag(
    http: httpx.Client, store_root: str
) -> None:
    view = Projection("show", root=store_root)
    entry = view.require(FRESH).entry(2)
    assert entry is not None
    r = http.get(f"/batches/{FRESH}/versions/2/body")
    assert _is_json(r) == view.body(FRESH, 2).data
    assert r.headers["etag"] == f'"{entry.structure_fingerprint}"'
    assert "immutable" in r.headers["cache-control"]
    again = http.get(
        f"/batches/{FRESH}/versions/v2/body", headers={"If-None-Match": r.headers["etag"]}
    )
    assert again.status_code == 304 and again.content == b""
    assert http.get(f"/batches/{FRESH}/versions/7/body").status_code == 404
    assert http.get(f"/batches/{FRESH}/versions/x/body").status_code == 400
    assert http.get(f"/batches/{FRESH}/versions/0/body").status_code == 400
    diff = http.get(f"/batches/{FRESH}/diff", params={"a": 1, "b": "v2"})
    assert _is_json(diff) == _cli_json(store_root, "diff", FRESH, "1", "2")
    assert diff.json()["added"] == ["sh003"] and "immutable" in diff.headers["cache-control"]
    assert http.get(f"/batches/{FRESH}/diff", params={"a": 1, "b": 9}).status_code == 404
    assert http.get(f"/batches/{FRESH}/diff", params={"a": 1}).status_code == 400


def test_issue14_audit_is_json_or_csv_by_accept(http: httpx.Client, store_root: str) -> None:
    rows = _is_json(http.get("/audit"))
    assert rows == _cli_json(store_root, "audit")
    assert [(r["batch_id"], r["to_version"]) for r in rows] == [(FRESH, 2), (BLOCKED, 2)]
    r = http.get("/audit", headers={"Accept": "text/csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    parsed = list(csv.DictReader(io.StringIO(r.text)))
    assert [(p["batch_id"], p["to_version"], p["actor"]) for p in parsed] == [
        (FRESH, "2", "sup"),
        (BLOCKED, "2", "sup"),
    ]
    by = _is_json(http.get("/audit", params={"type": "appended", "by": "layout"}))
    assert len(by) == 5 and {r["type"] for r in by} == {"appended"}
    since = _is_json(http.get("/audit", params={"since": rows[1]["at"]}))
    assert [r["batch_id"] for r in since] == [BLOCKED]
    assert http.get("/audit", params={"type": "deleted"}).status_code == 400
    assert http.get("/audit", params={"since": "last tuesday"}).status_code == 400


@on_files_only  # the HTTP layer alone
def test_issue14_openapi_document_and_board_files(server: BackgroundServer) -> None:
    with httpx.Client(base_url=server.url, timeout=DEADLINE) as client:
        schema = client.get("/schema/openapi.json")
        assert schema.status_code == 200
        paths = schema.json()["paths"]
        for path in (
            "/v1/projects/{project}/batches",
            "/v1/projects/{project}/batches/{batch_id}",
            "/v1/projects/{project}/batches/{batch_id}/gate",
            "/v1/projects/{project}/batches/{batch_id}/history",
            "/v1/projects/{project}/batches/{batch_id}/diff",
            "/v1/projects/{project}/batches/{batch_id}/versions/{version}/body",
            "/v1/projects/{project}/audit",
            "/v1/projects/{project}/events",
        ):
            assert path in paths
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert '<meta name="scenelog-project" content="show">' in page.text
        other = client.get("/", params={"project": "other_show"})
        assert 'content="other_show"' in other.text
        assert client.get("/", params={"project": "<script>"}).status_code == 400
        for name, kind in (("board.js", "text/javascript"), ("board.css", "text/css")):
            r = client.get(f"/board/{name}")
            assert r.status_code == 200 and r.headers["content-type"].startswith(kind)
            assert "http://" not in r.text and "https://" not in r.text  # nothing from the internet
        assert "http" not in page.text.replace('content="', "")
        assert client.get("/board/../http/app.py").status_code == 404


def test_issue14_every_json_body_is_the_shape_the_openapi_document_publishes(
    server: BackgroundServer,
) -> None:
    """Each answer decodes strictly (unknown fields refused) into the Struct /schema names."""
    cases: list[tuple[str, Any, str]] = [
        ("/batches", list[shapes.BatchRow], "200"),
        (f"/batches/{FRESH}", shapes.ManifestBody, "200"),
        (f"/batches/{FRESH}?at_seq=2", shapes.ManifestBody, "200"),
        (f"/batches/{FRESH}/gate", shapes.GateBody, "200"),
        (f"/batches/{BLOCKED}/gate", shapes.GateBody, "409"),
        (f"/batches/{FRESH}/history", list[shapes.Event], "200"),
        (f"/batches/{FRESH}/diff?a=1&b=3", shapes.DiffBody, "200"),
        (f"/batches/{FRESH}/versions/3/body", shapes.SceneBody, "200"),
        ("/audit?type=appended,conformed,reverted,derived", list[shapes.AuditRow], "200"),
        (f"/batches/{MISSING}/gate", shapes.ErrorBody, "404"),
        ("/batches?episode=x", shapes.ErrorBody, "400"),
    ]
    with httpx.Client(base_url=server.url, timeout=DEADLINE) as client:
        schema = client.get("/schema/openapi.json").json()
        for path, shape, status in cases:
            r = client.get("/v1/projects/show" + path)
            assert str(r.status_code) == status, path
            decoded = msgspec.json.decode(r.content, type=shape, strict=True)
            assert decoded, path
            route = "/v1/projects/{project}" + path.split("?")[0].replace(FRESH, "{batch_id}")
            route = route.replace(BLOCKED, "{batch_id}").replace(MISSING, "{batch_id}")
            route = route.replace("/versions/3/", "/versions/{version}/")
            published = schema["paths"][route]["get"]["responses"][status]
            assert "application/json" in published["content"], (path, status)
    names = set(schema["components"]["schemas"])
    assert {"BatchRow", "ManifestBody", "GateBody", "DiffBody", "AuditRow", "ErrorBody"} <= names
    assert {"Appended", "Conformed", "Reverted", "Derived", "VersionEntry"} <= names


# ── ids and paths ──────────────────────────────────────────────────────────────


@on_files_only  # traversal aims at files
@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/projects/-show/batches", 400),
        ("/v1/projects/sh%20ow/batches", 400),
        ("/v1/projects/show/batches/ep_1_BATCH_1", 400),
        ("/v1/projects/show/batches/ep_001_BATCH_0001/gate", 400),
        ("/v1/projects/show/batches/EP_001_BATCH_001/history", 400),
        ("/v1/projects/show/batches/ep_001_BATCH_%D9%A1%D9%A1%D9%A1/gate", 400),
        ("/v1/projects/show/batches/..%2F..%2F..%2Fetc%2Fpasswd", 404),
        ("/v1/projects/..%2F..%2Fetc/batches", 404),
        ("/v1/projects/show/batches/ep_001_BATCH_001/versions/..%2F..%2Fx/body", 404),
        ("/v1/projects/show/batches/ep_001_BATCH_001/versions/-1/body", 400),
        ("/v1/projects/show/events?batch=../x", 400),
        ("/v1/projects/show/events?types=deleted", 400),
        ("/v1/projects/no_such_show/events", 404),
    ],
)
def test_issue14_path_parameters_follow_the_id_grammars(
    server: BackgroundServer, path: str, status: int
) -> None:
    with httpx.Client(base_url=server.url, timeout=DEADLINE) as client:
        r = client.get(path)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/json")
    assert "root:" not in r.text


@on_files_only  # holds the lock file
def test_issue14_every_endpoint_answers_while_a_batch_lock_is_held(
    server: BackgroundServer, store_root: str
) -> None:
    """Read-only by construction: a writer holding the lock in another process blocks nothing."""
    lock = Layout.of("show", store_root).batch(BLOCKED).lock
    files = Path(store_root)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\nfrom pathlib import Path\nfrom eventstore.filelog.lock import batch_lock\n"
            "with batch_lock(Path(sys.argv[1]), timeout=5):\n"
            "    print('held', flush=True)\n    sys.stdin.read()\n",
            str(lock),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=str(REPO),
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        before = snapshot(files)
        with httpx.Client(base_url=server.url + "/v1/projects/show", timeout=5.0) as client:
            answers = {
                path: client.get(path).status_code
                for path in (
                    "/batches",
                    f"/batches/{BLOCKED}",
                    f"/batches/{BLOCKED}?at_seq=1",
                    f"/batches/{BLOCKED}/gate",
                    f"/batches/{BLOCKED}/history",
                    f"/batches/{BLOCKED}/diff?a=1&b=2",
                    f"/batches/{BLOCKED}/versions/2/body",
                    "/audit",
                )
            }
            with client.stream("GET", "/events", params={"batch": BLOCKED}) as stream:
                first = next(stream.iter_lines())
        assert answers == {
            **dict.fromkeys(answers, 200),
            f"/batches/{BLOCKED}/gate": 409,
        }
        assert stream.status_code == 200 and first == ": subscribed"
        assert snapshot(files) == before  # and nothing was written
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=DEADLINE)


# ── token, host, CORS ──────────────────────────────────────────────────────────


@on_files_only  # the HTTP layer alone
def test_issue14_a_token_is_required_by_header_cookie_or_query(store_root: str) -> None:
    config = ServeConfig(root=store_root, project="show", token=TOKEN)
    with BackgroundServer(config) as live, httpx.Client(base_url=live.url, timeout=DEADLINE) as c:
        gate = f"/v1/projects/show/batches/{FRESH}/gate"
        for path in (
            gate,
            "/",
            "/board/board.js",
            "/schema/openapi.json",
            "/v1/projects/show/events",
        ):
            r = c.get(path)
            assert r.status_code == 401, path
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert r.json()["type"] == "Unauthorized"
        assert c.get(gate, headers={"Authorization": "Bearer wrong-token"}).status_code == 401
        assert c.get(gate, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert c.get(gate, params={"token": "nope"}).status_code == 401
        page = c.get("/", params={"token": TOKEN})
        assert page.status_code == 200
        assert (
            "HttpOnly" in page.headers["set-cookie"]
            and "SameSite=Strict" in page.headers["set-cookie"]
        )
        assert c.get(gate).status_code == 200  # the cookie the page answer set
        with httpx.Client(base_url=live.url, timeout=DEADLINE) as other:
            assert (
                other.get(gate, headers={"Cookie": "scenelog_token=" + "x" * 32}).status_code == 401
            )


def _run_cli(*args: str, timeout: float = DEADLINE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "projections", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(),
        cwd=str(REPO),
    )


def test_issue14_listening_beyond_loopback_needs_a_token_file(tmp_path: Path) -> None:
    result = _run_cli("--root", str(tmp_path), "--project", "show", "serve", "--host", "0.0.0.0")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "needs --token-file" in result.stderr
    weak = tmp_path / "token"
    weak.write_text("short\n")
    result = _run_cli(
        "--root", str(tmp_path), "serve", "--host", "0.0.0.0", "--token-file", str(weak)
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "16+" in result.stderr
    result = _run_cli("serve", "--token-file", str(tmp_path / "absent"))
    assert result.returncode == 2 and "cannot read token file" in result.stderr


@on_files_only  # the HTTP layer alone
def test_issue14_cors_only_for_the_given_origins(store_root: str) -> None:
    allowed = "http://tools.studio.example"
    gate = f"/v1/projects/show/batches/{FRESH}/gate"
    with BackgroundServer(ServeConfig(root=store_root)) as live:
        r = httpx.get(live.url + gate, headers={"Origin": allowed}, timeout=DEADLINE)
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    with BackgroundServer(ServeConfig(root=store_root, cors=[allowed])) as live:
        r = httpx.get(live.url + gate, headers={"Origin": allowed}, timeout=DEADLINE)
        assert r.headers["access-control-allow-origin"] == allowed
        r = httpx.get(live.url + gate, headers={"Origin": "http://evil.example"}, timeout=DEADLINE)
        assert "access-control-allow-origin" not in r.headers
        pre = httpx.options(
            live.url + gate,
            headers={"Origin": allowed, "Access-Control-Request-Method": "GET"},
            timeout=DEADLINE,
        )
        assert (
            pre.status_code in (200, 204) and pre.headers["access-control-allow-origin"] == allowed
        )


@on_shared_backends
def test_issue14_serve_command_serves_until_terminated(store_root: str) -> None:
    """As a user runs it: `scenelog serve --port 0` says where it listens and answers there."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "projections",
            "--root",
            str(store_root),
            "--project",
            "show",
            "serve",
            "--port",
            "0",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=child_env(),
        cwd=str(REPO),
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line.startswith("scenelog: serving http://127.0.0.1:"), line
        url = line.split()[2].rstrip("/")
        r = httpx.get(f"{url}/v1/projects/show/batches/{BLOCKED}/gate", timeout=DEADLINE)
        assert r.status_code == 409 and r.json()["fresh"] is False
    finally:
        proc.terminate()
        proc.wait(timeout=DEADLINE)


# ── the event stream ──────────────────────────────────────────────────────────


class SSE:
    """A minimal SSE reader over an httpx stream: frames as dicts, comments kept."""

    def __init__(self, client: httpx.Client, path: str, **kwargs: Any) -> None:
        self._cm = client.stream("GET", path, **kwargs)
        self.response = self._cm.__enter__()
        self._lines = self.response.iter_lines()

    def frame(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for line in self._lines:
            if line == "":
                if found:
                    return found
                continue
            key, _, value = line.partition(":")
            found[key or "comment"] = value.removeprefix(" ")
        raise AssertionError("the stream ended")

    def event(self) -> dict[str, str]:
        while True:
            frame = self.frame()
            if "event" in frame:
                return frame

    def close(self) -> None:
        self._cm.__exit__(None, None, None)


def test_issue14_events_carry_type_resumable_id_and_the_watch_json(
    http: httpx.Client, store_root: str
) -> None:
    stream = SSE(http, "/events")
    try:
        assert stream.response.headers["content-type"].startswith("text/event-stream")
        assert stream.frame() == {"comment": "subscribed"}
        store = SceneVersionStore("show", 1, root=store_root)
        store.mark_derived(BLOCKED, 2, actor="boards", reason="rebuilt")
        frame = stream.event()
        data = json.loads(frame["data"])
        last = Projection("show", root=store_root).history(BLOCKED)[-1]
        assert frame["event"] == "derived"
        assert data == {"project": "show", "episode": "ep_001", **last.to_dict()}
        epoch, _, index = frame["id"].rpartition("-")
        assert epoch and index == "1"
    finally:
        stream.close()


def _event_ids(frames: list[dict[str, str]]) -> list[str]:
    return [json.loads(f["data"])["event_id"] for f in frames]


def test_issue14_resume_with_last_event_id_gets_exactly_the_missed_events(
    http: httpx.Client, store_root: str
) -> None:
    """A client that drops and comes back with Last-Event-ID gets what a client that stayed
    got after that id: the same frames (id, type, data), none twice, none missing."""
    one = SceneVersionStore("show", 1, root=store_root)
    two = SceneVersionStore("show", 2, root=store_root)
    witness = SSE(http, "/events")  # stays connected throughout
    stream = SSE(http, "/events")
    try:
        assert witness.frame() == stream.frame() == {"comment": "subscribed"}
        one.conform(FRESH, 3, reason="take v3")
        two.write_scene_candidate(OTHER, scene(OTHER, shots=6))
        seen = [stream.event(), stream.event()]
        stream.close()  # disconnected: these land while it is away
        one.mark_derived(FRESH, 3)
        two.conform(OTHER, 2)
        one.revert(BLOCKED, 1, reason="back")
        stayed = [witness.event() for _ in range(5)]
        assert stayed[:2] == seen
        view = Projection("show", root=store_root)
        missed = {view.history(b)[-1].event_id for b in (FRESH, OTHER, BLOCKED)}
        assert set(_event_ids(stayed[2:])) == missed

        resumed = SSE(http, "/events", headers={"Last-Event-ID": seen[-1]["id"]})
        try:
            assert resumed.frame() == {"comment": "subscribed"}
            assert [resumed.event() for _ in range(3)] == stayed[2:]
            one.write_scene_candidate(BLOCKED, scene(BLOCKED, shots=7))
            live = resumed.event()  # then live events, each once
            assert live == witness.event()
            assert json.loads(live["data"])["event_id"] == view.history(BLOCKED)[-1].event_id
        finally:
            resumed.close()
        # ?after= for clients that cannot set headers: the same position, the same events.
        wanted = ("derived", "conformed")
        after = SSE(http, "/events", params={"after": seen[0]["id"], "types": ",".join(wanted)})
        try:
            after.frame()
            expected = [f for f in stayed[1:] if f["event"] in wanted]
            assert len(expected) == 2
            assert [after.event() for _ in expected] == expected
        finally:
            after.close()
    finally:
        stream.close()
        witness.close()


def test_issue14_unknown_resume_position_gets_a_reset(http: httpx.Client) -> None:
    for position in ("0123abcd-5", "garbage", "-1"):
        stream = SSE(http, "/events", headers={"Last-Event-ID": position})
        try:
            stream.frame()
            frame = stream.event()
            assert frame["event"] == "reset"
            assert json.loads(frame["data"])["reason"] == "unknown position"
        finally:
            stream.close()


def test_issue14_stream_filters_by_type_episode_and_batch(
    http: httpx.Client, store_root: str
) -> None:
    one = SceneVersionStore("show", 1, root=store_root)
    two = SceneVersionStore("show", 2, root=store_root)
    streams = {
        "types": SSE(http, "/events", params={"types": "conformed"}),
        "episode": SSE(http, "/events", params={"episode": "ep_002"}),
        "batch": SSE(http, "/events", params={"batch": BLOCKED}),
    }
    try:
        for s in streams.values():
            s.frame()
        one.write_scene_candidate(FRESH, scene(FRESH, shots=9))  # appended v4 of FRESH
        two.write_scene_candidate(OTHER, scene(OTHER, shots=9))  # appended v2 of OTHER
        one.conform(FRESH, 4)
        one.mark_derived(BLOCKED, 2)
        got = {name: json.loads(s.event()["data"]) for name, s in streams.items()}
        assert (got["types"]["type"], got["types"]["batch_id"]) == ("conformed", FRESH)
        assert (got["episode"]["type"], got["episode"]["batch_id"]) == ("appended", OTHER)
        assert (got["batch"]["type"], got["batch"]["batch_id"]) == ("derived", BLOCKED)
    finally:
        for s in streams.values():
            s.close()


@on_files_only  # damages the log file
def test_issue14_a_damaged_log_ends_the_stream_with_an_error_event(
    http: httpx.Client, store_root: str
) -> None:
    """The watcher stops rather than skip (R18); subscribers are told, not left hanging."""
    stream = SSE(http, "/events")
    try:
        stream.frame()
        with open(Layout.of("show", store_root).batch(OTHER).log, "ab") as log:
            log.write(b"this is not an event\n")
        frame = stream.event()
        assert frame["event"] == "error" and "DamagedLog" in json.loads(frame["data"])["error"]
        with pytest.raises(AssertionError, match="the stream ended"):
            stream.frame()
    finally:
        stream.close()


@on_files_only  # the HTTP layer alone
def test_issue14_heartbeats_keep_an_idle_stream_open(store_root: str) -> None:
    config = ServeConfig(root=store_root, heartbeat=0.05)
    with BackgroundServer(config) as live, httpx.Client(base_url=live.url, timeout=DEADLINE) as c:
        stream = SSE(c, "/v1/projects/show/events")
        try:
            assert stream.frame() == {"comment": "subscribed"}
            assert stream.frame() == {"comment": "heartbeat"}
        finally:
            stream.close()


class _FakeHub:
    def reset_frame(self, reason: str, last: int) -> bytes:
        return sse_frame("reset", json.dumps({"reason": reason}).encode(), f"e-{last}")

    def unsubscribe(self, subscriber: Subscriber) -> None:
        pass


def _item(index: int) -> Item:
    frame = sse_frame("appended", b"{}", f"e-{index}")
    return Item(index, "appended", "ep_001", FRESH, frame)


def test_issue14_a_slow_subscriber_gets_a_reset_and_never_holds_the_others() -> None:
    """The fan-out never waits: an overflowing queue is dropped for one `reset` event."""

    async def scenario() -> tuple[list[bytes], list[bytes]]:
        hub: Any = _FakeHub()
        slow = Subscriber(hub, StreamFilter(), 0, limit=3)
        quick = Subscriber(hub, StreamFilter(), 0, limit=3)
        quick_frames: list[bytes] = []
        quick_stream = quick.stream(heartbeat=5)
        await quick_stream.__anext__()  # ": subscribed"
        for index in range(1, 9):
            slow.offer(_item(index))  # nobody reads `slow` meanwhile
            quick.offer(_item(index))
            quick_frames.append(await quick_stream.__anext__())
            quick.offer(_item(index))  # a duplicate offer is ignored
        slow_stream = slow.stream(heartbeat=5)
        slow_frames = [await slow_stream.__anext__() for _ in range(2)]
        slow.offer(_item(9))
        slow_frames.append(await slow_stream.__anext__())
        return quick_frames, slow_frames

    quick_frames, slow_frames = asyncio.run(scenario())
    assert quick_frames == [_item(i).frame for i in range(1, 9)]
    assert slow_frames[0] == b": subscribed\n\n"
    assert slow_frames[1].startswith(b"id: e-8\nevent: reset\n")  # events 4-8 dropped
    assert slow_frames[2] == _item(9).frame  # and it goes on from there
