"""The watcher subcommands: watch and consumers.

``watch --exec CMD`` hands each event to CMD three ways: the JSON line on its
stdin, the same line in the file named by ``SCENELOG_EVENT_FILE`` (removed
once CMD exits), and in ``SCENELOG_EVENT`` — unless the event is too large
for one environment string (the kernel's 128 KiB limit, e.g. a long
``--reason``): then ``SCENELOG_EVENT`` is left out and
``SCENELOG_EVENT_OMITTED=1`` says so, while the short variables
(``SCENELOG_BATCH_ID``, ``_VERSION``, ``_TYPE``, ``_SEQ``, ``_PROJECT``) are
always there. So every event reaches the handler, whatever its size.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from typing import Any

from projections import render
from projections.cli.context import Context, count_arg, json_flag
from projections.cli.errors import EXIT_NO, EXIT_OK, UsageError
from projections.watcher import WatchEvent, consumer_status, watch

__all__ = [
    "cmd_consumers",
    "cmd_watch",
    "consumers_arguments",
    "watch_arguments",
]


class _Stop:
    """Set by SIGINT/SIGTERM, or when ``idle`` seconds pass without an event."""

    def __init__(self, idle: float | None) -> None:
        self.flag = threading.Event()
        self.idle = idle
        self.touch()

    def touch(self) -> None:
        self.deadline = None if self.idle is None else time.monotonic() + self.idle

    def is_set(self) -> bool:
        return self.flag.is_set() or (
            self.deadline is not None and time.monotonic() > self.deadline
        )


def _types(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"invalid seconds {text!r}") from e
    if not value > 0:
        raise argparse.ArgumentTypeError(f"invalid seconds {text!r}: must be > 0")
    return value


def watch_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--type", type=_types, metavar="T,T", help="only these event types")
    p.add_argument("--episode", metavar="EPISODE", help="only this episode's batches")
    p.add_argument(
        "--consumer", metavar="NAME", help="resume from (and checkpoint) this consumer's position"
    )
    p.add_argument(
        "--start",
        choices=("now", "beginning"),
        default="now",
        help="where a consumer without a checkpoint starts (default: now)",
    )
    p.add_argument(
        "--poll", action="store_true", help="poll sizes instead of inotify (network filesystems)"
    )
    p.add_argument(
        "--interval",
        type=_seconds,
        default=0.1,
        metavar="S",
        help="poll interval in seconds (default: 0.1)",
    )
    p.add_argument("--max-events", type=count_arg, metavar="N", help="stop after N events")
    p.add_argument(
        "--timeout", type=_seconds, metavar="S", help="stop after S seconds without an event"
    )
    p.add_argument(
        "--exec",
        nargs=argparse.REMAINDER,
        metavar="CMD ARGS",
        help="run CMD ARGS per event (no shell); the event's JSON line is on its stdin and "
        "in the file $SCENELOG_EVENT_FILE, and in $SCENELOG_EVENT unless over 128 KiB "
        "(then SCENELOG_EVENT_OMITTED=1); also SCENELOG_BATCH_ID, SCENELOG_VERSION, "
        "SCENELOG_TYPE, SCENELOG_SEQ",
    )


ENV_STRING_MAX = 32 * 4096
"""The kernel's limit for one ``NAME=value`` environment string, NUL included
(Linux MAX_ARG_STRLEN): a longer one makes every exec fail with E2BIG."""


def _environment(event: WatchEvent, line: str, event_file: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SCENELOG_EVENT", None)
    env.pop("SCENELOG_EVENT_OMITTED", None)
    env.update(
        SCENELOG_EVENT_FILE=event_file,
        SCENELOG_PROJECT=event.project,
        SCENELOG_BATCH_ID=event.batch_id,
        SCENELOG_VERSION=str(event.version),
        SCENELOG_TYPE=event.type,
        SCENELOG_SEQ=str(event.seq),
    )
    if len(b"SCENELOG_EVENT=") + len(line.encode()) + 1 <= ENV_STRING_MAX:
        env["SCENELOG_EVENT"] = line
    else:
        env["SCENELOG_EVENT_OMITTED"] = "1"
    return env


def _handle(command: list[str], event: WatchEvent) -> int:
    """Run the handler on one event; its exit code.

    The event file lives only while the handler runs; a crash of the watcher
    at any point leaves at most that one temporary file and the checkpoint
    before the event, so the event is redelivered.
    """
    line = json.dumps(event.to_dict(), ensure_ascii=False)
    with tempfile.NamedTemporaryFile(prefix="scenelog-event-", suffix=".json") as f:
        f.write(line.encode() + b"\n")
        f.flush()
        f.seek(0)
        return subprocess.run(
            command, env=_environment(event, line, f.name), stdin=f, check=False
        ).returncode


def _check_handler(command: list[str]) -> None:
    """A handler that cannot run is bad input at start, not a failure at the first event."""
    if not command:
        raise UsageError("--exec needs a command")
    if shutil.which(command[0]) is None:
        raise UsageError(
            f"--exec: {command[0]!r} is not an executable file nor a command on PATH; "
            "check its path and its x bit"
        )


def cmd_watch(ctx: Context, args: argparse.Namespace) -> int:
    if args.exec is not None:
        _check_handler(args.exec)
    stop = _Stop(args.timeout)
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.flag.set())
    watcher = watch(
        ctx.project,
        root=ctx.root,
        types=args.type,
        episode=args.episode,
        consumer=args.consumer,
        start=args.start,
        poll=args.poll,
        interval=args.interval,
        stop=stop,
        on_ready=lambda: ctx.note(
            f"scenelog: watching {ctx.project} ({'poll' if args.poll else 'live'}, "
            f"start {args.start}); Ctrl-C stops"
        ),
        on_notice=ctx.note,
    )
    delivered = 0
    try:
        for event in watcher:
            if args.exec:
                try:
                    code = _handle(args.exec, event)
                except OSError as e:
                    ctx.note(
                        f"scenelog: error: cannot run handler {args.exec[0]!r} on "
                        f"{event.batch_id} seq {event.seq}: {e.strerror or e}; the checkpoint "
                        "stays before it — fix the handler and restart to have it redelivered"
                    )
                    return EXIT_NO
                if code != 0:
                    ctx.note(
                        f"scenelog: error: handler {args.exec[0]!r} exited {code} on "
                        f"{event.batch_id} seq {event.seq}; the checkpoint stays before "
                        "it — fix the handler and restart to have it redelivered"
                    )
                    return EXIT_NO
            else:
                ctx.json(event.to_dict())
            delivered += 1
            stop.touch()
            if (args.max_events is not None and delivered >= args.max_events) or stop.flag.is_set():
                watcher.commit()
                break
        return EXIT_OK
    finally:
        watcher.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def consumers_arguments(p: argparse.ArgumentParser) -> None:
    json_flag(p)


def cmd_consumers(ctx: Context, args: argparse.Namespace) -> int:
    rows = consumer_status(ctx.project, ctx.root)
    if args.json:
        ctx.json(rows)
    elif rows:
        ctx.print(
            render.table(
                ["CONSUMER", "LAG", "LAST DELIVERY (UTC)", "BATCHES"],
                [
                    [
                        r["consumer"],
                        str(r["lag"]),
                        render.short_time(r["last_delivery"]) if r["last_delivery"] else "-",
                        str(r["batches"]),
                    ]
                    for r in rows
                ],
            )
        )
    else:
        ctx.note("no consumers yet: `scenelog watch --consumer NAME` makes one")
    return EXIT_OK
