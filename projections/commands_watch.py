"""The watcher subcommands: watch and consumers."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import threading
import time
from typing import Any

from projections import render
from projections.clikit import EXIT_NO, EXIT_OK, Context, UsageError, command, count_arg, json_flag
from projections.watcher import WatchEvent, consumer_status, watch

__all__: list[str] = []


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


def _watch_arguments(p: argparse.ArgumentParser) -> None:
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
        help="run CMD ARGS per event (no shell); the event is in SCENELOG_EVENT, "
        "SCENELOG_BATCH_ID, SCENELOG_VERSION, SCENELOG_TYPE, SCENELOG_SEQ",
    )


def _environment(event: WatchEvent) -> dict[str, str]:
    import os

    env = dict(os.environ)
    env.update(
        SCENELOG_EVENT=json.dumps(event.to_dict(), ensure_ascii=False),
        SCENELOG_PROJECT=event.project,
        SCENELOG_BATCH_ID=event.batch_id,
        SCENELOG_VERSION=str(event.version),
        SCENELOG_TYPE=event.type,
        SCENELOG_SEQ=str(event.seq),
    )
    return env


@command(
    "watch",
    "print (or --exec a command for) each event as it lands, resuming a consumer's position",
    "scenelog watch --type conformed --consumer boards --exec rebuild_boards.sh",
    _watch_arguments,
)
def cmd_watch(ctx: Context, args: argparse.Namespace) -> int:
    if args.exec is not None and not args.exec:
        raise UsageError("--exec needs a command")
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
    )
    delivered = 0
    events = iter(watcher)
    try:
        for event in events:
            if args.exec:
                code = subprocess.run(
                    args.exec, env=_environment(event), stdin=subprocess.DEVNULL, check=False
                ).returncode
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
        close = getattr(events, "close", None)
        if close is not None:
            close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _consumers_arguments(p: argparse.ArgumentParser) -> None:
    json_flag(p)


@command(
    "consumers",
    "each watcher consumer with its lag and last delivery",
    "scenelog consumers --json",
    _consumers_arguments,
)
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
