"""The ``serve`` subcommand: the HTTP projection API and review board (projections.http).

Listening anywhere but loopback needs ``--token-file``: the store's history
names people and reasons, and the server has no other access control.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from projections.cli.context import Context
from projections.cli.errors import EXIT_OK, UsageError

__all__ = [
    "cmd_serve",
    "serve_arguments",
]


def _port(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: 0-65535 (0: any free port)")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"invalid seconds {text!r}: must be > 0")
    return value


def serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8750, help="port (default: 8750; 0: any free)")
    p.add_argument(
        "--token-file",
        metavar="FILE",
        help="require the bearer token in FILE (needed to listen beyond this machine)",
    )
    p.add_argument(
        "--cors",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allow browser pages of ORIGIN to read (repeatable; default: none)",
    )
    p.add_argument(
        "--poll", action="store_true", help="the event stream polls (network filesystems)"
    )
    p.add_argument(
        "--heartbeat",
        type=_seconds,
        default=15.0,
        metavar="S",
        help="seconds between event-stream heartbeats (default: 15)",
    )


def _read_token(path: str) -> str:
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read token file {path}: {e}") from e
    if len(token) < 16 or not token.isascii() or not token.isprintable() or " " in token:
        raise UsageError(
            f"token file {path} must hold one token of 16+ printable ASCII characters "
            "(e.g. `python -c 'import secrets; print(secrets.token_hex(24))' > FILE`)"
        )
    return token


def cmd_serve(ctx: Context, args: argparse.Namespace) -> int:
    try:
        from projections.http import ServeConfig, is_loopback, serve
    except ImportError as e:
        raise UsageError(
            f"scenelog serve needs the serve extra ({e.name} is missing): "
            "pip install 'scenelog[serve]'"
        ) from e
    token = None if args.token_file is None else _read_token(args.token_file)
    if token is None and not is_loopback(args.host):
        raise UsageError(
            f"listening on {args.host} needs --token-file: anyone who can reach it could read "
            "the store"
        )
    project = ctx.args.project or os.environ.get("SCENELOG_PROJECT") or None
    config = ServeConfig(
        root=ctx.root,
        project=project,
        token=token,
        cors=list(args.cors),
        poll=args.poll,
        heartbeat=args.heartbeat,
    )

    def listening(host: str, port: int) -> None:
        shown = f"[{host}]" if ":" in host else host
        ctx.note(f"scenelog: serving http://{shown}:{port}/ (Ctrl-C stops)")

    try:
        serve(config, host=args.host, port=args.port, on_listening=listening)
    except OSError as e:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from e
    return EXIT_OK
