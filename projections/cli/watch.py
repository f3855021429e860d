"""The watcher subcommands: watch and consumers (with retry, reset and delete).

``watch --consumer NAME -- CMD ARGS…`` hands each event to the handler CMD
(``--exec CMD`` for a handler without arguments) three ways: the JSON line on
its stdin, the same line in the file named by ``SCENELOG_EVENT_FILE``
(removed once CMD exits), and in ``SCENELOG_EVENT`` — unless the event is too
large for one environment string (the kernel's 128 KiB limit, e.g. a long
``--reason``): then ``SCENELOG_EVENT`` is left out and
``SCENELOG_EVENT_OMITTED=1`` says so, while the short variables
(``SCENELOG_BATCH_ID``, ``_VERSION``, ``_TYPE``, ``_SEQ``, ``_PROJECT``) are
always there. So every event reaches the handler, whatever its size.

Invariants:
- The handler is checked before anything is read (exit 2 when it cannot run).
- Error policy (``--on-error``): a handler exiting non-zero is run again up
  to ``--retries`` times, waiting ``--backoff`` seconds, doubled each time and
  capped at ``BACKOFF_CAP``; then ``stop`` (the default) and ``retry`` stop
  the watcher (exit 1) with the checkpoint before the event, and ``skip``
  parks it in the consumer's checkpoint (exit code, stderr tail) and goes on.
  A handler that cannot be started at all always stops the watcher.
- SIGINT/SIGTERM stop the watcher after the current event (during a backoff:
  at once, the event stays due); the handler itself is not signalled by the
  watcher.
- ``--health FILE`` is replaced atomically (temp file + rename, no fsync:
  it says how the process is now, not what survives a power loss) after each
  event and every ``HEALTH_SECONDS``; a crash leaves the last one, whose
  ``updated_at`` then stops moving.
- Progress goes to stderr only when stderr is a terminal.
- ``consumers retry|reset|delete NAME`` hold the consumer's claim: while its
  watcher runs they exit 3 naming the holder.
"""

from __future__ import annotations

import argparse
import codecs
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from typing import Any

from eventstore.events import utc_now
from projections import render
from projections.cli.context import Context, count_arg, episode_arguments, episode_of, json_flag
from projections.cli.errors import EXIT_NO, EXIT_OK, UsageError
from projections.watcher import (
    Watcher,
    WatchEvent,
    consumer_status,
    delete_consumer,
    parked_events,
    reset_consumer,
    retry_parked,
    watch,
)

__all__ = [
    "BACKOFF_CAP",
    "HEALTH_SECONDS",
    "cmd_consumers",
    "cmd_watch",
    "consumers_arguments",
    "watch_arguments",
]

BACKOFF_CAP = 60.0
"""The longest wait between two runs of a failing handler, in seconds."""
HEALTH_SECONDS = 5.0
"""The health file is rewritten at least this often while the watcher runs."""
_PROGRESS_SECONDS = 0.5


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


def _handler_argument(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "command_line",  # not "handler": that is the subcommand's function
        nargs="*",
        metavar="-- CMD ARGS",
        help=f"{what} (no shell); the event's JSON line is on its stdin and in the file "
        "$SCENELOG_EVENT_FILE, and in $SCENELOG_EVENT unless over 128 KiB (then "
        "SCENELOG_EVENT_OMITTED=1); also SCENELOG_BATCH_ID, SCENELOG_VERSION, SCENELOG_TYPE, "
        "SCENELOG_SEQ",
    )


def watch_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--type", type=_types, metavar="T,T", help="only these event types")
    episode_arguments(p)
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
        "--on-error",
        choices=("stop", "skip", "retry"),
        default="stop",
        help="when the handler fails, after --retries more runs: stop (exit 1, the event stays "
        "due), skip (park it in the consumer's checkpoint and go on; needs --consumer) or retry "
        "(as stop, with --retries 3 by default) (default: stop)",
    )
    p.add_argument(
        "--retries",
        type=count_arg,
        metavar="N",
        help="run a failing handler up to N more times first (default: 3 with --on-error "
        "retry, else 0)",
    )
    p.add_argument(
        "--backoff",
        type=_seconds,
        default=1.0,
        metavar="S",
        help=f"seconds before the first rerun, doubled each time up to {BACKOFF_CAP:g} "
        "(default: 1)",
    )
    p.add_argument(
        "--health",
        metavar="FILE",
        help=f"keep FILE (JSON: pid, consumer, state, last event, lag, parked, updated_at) "
        f"rewritten after each event and every {HEALTH_SECONDS:g} s, for a supervisor",
    )
    p.add_argument(
        "--exec",
        metavar="CMD",
        help="run CMD (one program, no arguments) per event; a handler with arguments goes "
        "after --",
    )
    _handler_argument(p, "after --: run CMD ARGS per event")


ENV_STRING_MAX = 32 * 4096
"""The kernel's limit for one ``NAME=value`` environment string, NUL included
(Linux MAX_ARG_STRLEN): a longer one makes every exec fail with E2BIG."""
STDERR_KEEP = 4096


def _environment(event: dict[str, Any], line: str, event_file: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SCENELOG_EVENT", None)
    env.pop("SCENELOG_EVENT_OMITTED", None)
    env.update(
        SCENELOG_EVENT_FILE=event_file,
        SCENELOG_PROJECT=str(event.get("project", "")),
        SCENELOG_BATCH_ID=str(event["batch_id"]),
        SCENELOG_VERSION=str(event.get("version")),
        SCENELOG_TYPE=str(event["type"]),
        SCENELOG_SEQ=str(event["seq"]),
    )
    if len(b"SCENELOG_EVENT=") + len(line.encode()) + 1 <= ENV_STRING_MAX:
        env["SCENELOG_EVENT"] = line
    else:
        env["SCENELOG_EVENT_OMITTED"] = "1"
    return env


def _handle(command: list[str], event: dict[str, Any], err: Any) -> tuple[int, bytes]:
    """Run the handler on one event (its ``to_dict()``): its exit code and stderr's end.

    The handler's stderr is passed on to ``err`` as it comes. The event file
    lives only while the handler runs; a crash of the watcher at any point
    leaves at most that one temporary file and the checkpoint before the
    event, so the event is redelivered. OSError when it cannot be started.
    """
    line = json.dumps(event, ensure_ascii=False)
    with tempfile.NamedTemporaryFile(prefix="scenelog-event-", suffix=".json") as f:
        f.write(line.encode() + b"\n")
        f.flush()
        f.seek(0)
        proc = subprocess.Popen(
            command, env=_environment(event, line, f.name), stdin=f, stderr=subprocess.PIPE
        )
        assert proc.stderr is not None
        tail = bytearray()
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        with proc.stderr:
            while chunk := os.read(proc.stderr.fileno(), 65536):
                tail += chunk
                del tail[:-STDERR_KEEP]
                err.write(decoder.decode(chunk))
                err.flush()
        return proc.wait(), bytes(tail)


def _handler(args: argparse.Namespace, *, required: bool) -> list[str] | None:
    """The handler command from ``--exec CMD`` or ``-- CMD ARGS``, checked (UsageError)."""
    rest = list(args.command_line or [])
    if rest and rest[0] == "--":
        rest = rest[1:]
    elif rest:
        raise UsageError(
            f"unexpected {rest[0]!r}: a handler goes after -- "
            "(scenelog watch --consumer boards -- rebuild.sh --fast)"
        )
    exec_ = getattr(args, "exec", None)
    if exec_ is not None and rest:
        raise UsageError("give the handler either with --exec CMD or after --, not both")
    command = [exec_] if exec_ is not None else rest
    if not command:
        if required:
            raise UsageError("a handler is needed after -- (e.g. -- rebuild.sh --fast)")
        return None
    if shutil.which(command[0]) is None:
        raise UsageError(
            f"handler {command[0]!r} is not an executable file nor a command on PATH; "
            "check its path and its x bit"
        )
    return command


class _Health:
    """The ``--health`` file: how the watcher is now, replaced atomically."""

    def __init__(self, path: str | None, watcher: Watcher, consumer: str | None) -> None:
        self.path = path
        self.watcher = watcher
        self.lock = threading.Lock()
        self.state: dict[str, Any] = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "project": watcher.project,
            "consumer": consumer,
            "state": "starting",
            "started_at": utc_now(),
            "delivered": 0,
            "last_event": None,
        }
        self.done = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        if self.path is None:
            return
        self.write()
        self.thread = threading.Thread(target=self._beat, name="scenelog-health", daemon=True)
        self.thread.start()

    def _beat(self) -> None:
        while not self.done.wait(HEALTH_SECONDS):
            self.write()

    def update(self, **fields: Any) -> None:
        with self.lock:
            self.state.update(fields)
        self.write()

    def write(self) -> None:
        """Temp file + rename in the same folder: readers see the old or the new file.

        No fsync: a power loss may leave an older one (or none), which a
        supervisor reads as "not updated", the truth.
        """
        if self.path is None:
            return
        w = self.watcher
        with self.lock:
            backlog = w.backlog
            lag = max(backlog - w.read_count, 0) if backlog is not None and not w.caught_up else 0
            data = {
                **self.state,
                "lag": lag,
                "parked": len(w.parked),
                "updated_at": utc_now(),
            }
            folder = os.path.dirname(os.path.abspath(self.path))
            fd, tmp = tempfile.mkstemp(prefix=".health-", dir=folder)
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(json.dumps(data) + "\n")
                os.replace(tmp, self.path)
            except BaseException:
                with _quiet():
                    os.unlink(tmp)
                raise

    def stop(self, state: str) -> None:
        self.done.set()
        if self.thread is not None:
            self.thread.join()
        if self.path is not None:
            self.update(state=state, pid=os.getpid())


class _quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is not None and issubclass(exc[0], OSError)  # type: ignore[arg-type]


class _Progress:
    """``done/total events, rate`` on a terminal's stderr while catching up."""

    def __init__(self, ctx: Context, watcher: Watcher) -> None:
        isatty = getattr(ctx.err, "isatty", None)
        self.on = bool(isatty and isatty())
        self.ctx = ctx
        self.watcher = watcher
        self.t0 = time.monotonic()
        self.last = 0.0

    def tick(self, *, final: bool = False) -> None:
        w = self.watcher
        if not self.on or not w.backlog:
            return
        now = time.monotonic()
        if not final and now - self.last < _PROGRESS_SECONDS:
            return
        self.last = now
        done = w.backlog if final else min(w.read_count, w.backlog)
        rate = done / max(now - self.t0, 1e-6)
        self.ctx.err.write(
            f"\rscenelog: catching up: {done}/{w.backlog} events, {rate:,.0f} events/s"
            + ("\n" if final else "")
        )
        self.ctx.err.flush()


def _banner(ctx: Context, args: argparse.Namespace, watcher: Watcher) -> str:
    mode = "poll" if args.poll else "live"
    if watcher.resumed_from is not None:
        start = f"consumer {args.consumer} resumes from its checkpoint of {watcher.resumed_from}"
    elif args.consumer is not None:
        where = "now" if args.start == "now" else "at the beginning"
        start = f"new consumer {args.consumer} starts {where}"
    else:
        start = "starting now" if args.start == "now" else "starting at the beginning"
    due = "" if not watcher.backlog else f", {watcher.backlog} events to catch up"
    parked = (
        f"; {len(watcher.parked)} parked events (`scenelog consumers retry {args.consumer}`)"
        if watcher.parked
        else ""
    )
    return f"scenelog: watching {ctx.project} ({mode}): {start}{due}{parked}; Ctrl-C stops"


def _run(
    ctx: Context,
    command: list[str],
    event: WatchEvent,
    *,
    retries: int,
    backoff: float,
    stop: _Stop,
) -> tuple[int | None, bytes]:
    """Run the handler, and again up to ``retries`` times while it fails.

    Returns (exit code, stderr tail); (None, b"") when a stop signal came
    during a backoff (the event stays due). OSError when it cannot start.
    """
    data = event.to_dict()
    delay = backoff
    attempt = 0
    while True:
        code, tail = _handle(command, data, ctx.err)
        if code == 0 or attempt >= retries:
            return code, tail
        attempt += 1
        ctx.note(
            f"scenelog: handler {command[0]!r} exited {code} on {event.batch_id} seq "
            f"{event.seq}; run {attempt + 1} of {retries + 1} in {delay:g} s"
        )
        if stop.flag.wait(delay):
            return None, b""
        delay = min(delay * 2, BACKOFF_CAP)


def cmd_watch(ctx: Context, args: argparse.Namespace) -> int:
    command = _handler(args, required=False)
    if args.on_error == "skip" and args.consumer is None:
        raise UsageError(
            "--on-error skip parks failed events in the consumer's checkpoint: give --consumer NAME"
        )
    if args.on_error != "stop" and command is None:
        raise UsageError(f"--on-error {args.on_error} needs a handler (-- CMD ARGS)")
    retries = args.retries if args.retries is not None else (3 if args.on_error == "retry" else 0)
    stop = _Stop(args.timeout)
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.flag.set())
    watcher: Watcher = watch(
        ctx.project,
        root=ctx.root,
        types=args.type,
        episode=episode_of(args),
        consumer=args.consumer,
        start=args.start,
        poll=args.poll,
        interval=args.interval,
        stop=stop,
        on_ready=lambda: _ready(),
        on_notice=ctx.note,
        on_caught_up=lambda: _caught_up(),
        measure_backlog=True,
    )
    health = _Health(args.health, watcher, args.consumer)
    progress = _Progress(ctx, watcher)

    def _ready() -> None:
        ctx.note(_banner(ctx, args, watcher))
        health.start()
        health.update(state="catching_up" if watcher.backlog else "live")

    def _caught_up() -> None:
        progress.tick(final=True)  # on a terminal: the catch-up's count and rate
        health.update(state="live")

    delivered = 0
    final = "stopped"
    try:
        for event in watcher:
            if command is not None:
                try:
                    code, tail = _run(
                        ctx, command, event, retries=retries, backoff=args.backoff, stop=stop
                    )
                except OSError as e:
                    final = "failed"
                    ctx.note(
                        f"scenelog: error: cannot run handler {command[0]!r} on "
                        f"{event.batch_id} seq {event.seq}: {e.strerror or e}; the checkpoint "
                        "stays before it — fix the handler and restart to have it redelivered"
                    )
                    return EXIT_NO
                if code is None:  # stopped during a backoff: the event stays due
                    break
                if code != 0 and args.on_error == "skip":
                    watcher.park(event, exit_code=code, stderr=tail)
                    ctx.note(
                        f"scenelog: handler {command[0]!r} exited {code} on {event.batch_id} "
                        f"seq {event.seq}: parked ({len(watcher.parked)} parked; "
                        f"`scenelog consumers retry {args.consumer} -- CMD` runs them again)"
                    )
                elif code != 0:
                    final = "failed"
                    ctx.note(
                        f"scenelog: error: handler {command[0]!r} exited {code} on "
                        f"{event.batch_id} seq {event.seq}; the checkpoint stays before "
                        "it — fix the handler and restart to have it redelivered, or run "
                        "with --on-error skip to park it"
                    )
                    return EXIT_NO
            else:
                ctx.json(event.to_dict())
            delivered += 1
            stop.touch()
            progress.tick()
            if args.health is not None:
                health.update(
                    delivered=delivered,
                    last_event={
                        "batch_id": event.batch_id,
                        "seq": event.seq,
                        "type": event.type,
                        "at": event.at,
                        "handled_at": utc_now(),
                    },
                )
            if (args.max_events is not None and delivered >= args.max_events) or stop.flag.is_set():
                watcher.commit()
                break
        return EXIT_OK
    finally:
        try:
            watcher.close()
        finally:
            health.stop(final)
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _subcommand(subs: Any, name: str, summary: str, example: str) -> argparse.ArgumentParser:
    from projections.cli import _global_options  # the parser module imports this one

    p: argparse.ArgumentParser = subs.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + ".",
        epilog=f"Example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", metavar="NAME", help="the consumer")
    _global_options(p, suppress=True)
    return p


def consumers_arguments(p: argparse.ArgumentParser) -> None:
    json_flag(p, "print JSON (an array; with each consumer's parked events)")
    subs = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    retry = _subcommand(
        subs,
        "retry",
        "run the consumer's parked events through the handler again; "
        "exit 1 if any fails again (it stays parked)",
        "scenelog consumers retry boards -- rebuild_boards.sh",
    )
    _handler_argument(retry, "after --: the handler to run each parked event through")
    reset = _subcommand(
        subs,
        "reset",
        "move the consumer's position: beginning, now, or just after BATCH's event SEQ",
        "scenelog consumers reset boards --to ep_001_BATCH_003:7",
    )
    reset.add_argument(
        "--to",
        required=True,
        metavar="beginning|now|BATCH:SEQ",
        help="where its next watch resumes: every event again, only new ones, or BATCH after "
        "its event SEQ (BATCH:0: the whole batch) with other batches unchanged",
    )
    _subcommand(
        subs,
        "delete",
        "remove the consumer's checkpoint and its parked events",
        "scenelog consumers delete boards",
    )


def cmd_consumers(ctx: Context, args: argparse.Namespace) -> int:
    action = getattr(args, "action", None)
    if action == "retry":
        return _retry(ctx, args)
    if action == "reset":
        reset_consumer(ctx.project, args.name, args.to, ctx.root)
        ctx.note(f"scenelog: consumer {args.name} reset to {args.to}")
        return EXIT_OK
    if action == "delete":
        delete_consumer(ctx.project, args.name, ctx.root)
        ctx.note(f"scenelog: consumer {args.name} deleted")
        return EXIT_OK
    rows = consumer_status(ctx.project, ctx.root)
    if args.json:
        for r in rows:
            r["parked_events"] = parked_events(ctx.project, r["consumer"], ctx.root)
        ctx.json(rows)
    elif rows:
        ctx.print(
            render.table(
                ["CONSUMER", "LAG", "PARKED", "LAST DELIVERY (UTC)", "BATCHES"],
                [
                    [
                        r["consumer"],
                        str(r["lag"]),
                        str(r["parked"]),
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


def _retry(ctx: Context, args: argparse.Namespace) -> int:
    command = _handler(args, required=True)
    assert command is not None

    def run(event: dict[str, Any]) -> tuple[int | None, bytes]:
        try:
            return _handle(command, event, ctx.err)
        except OSError as e:  # it stays parked, with why
            return None, f"cannot run handler {command[0]!r}: {e.strerror or e}".encode()

    done, left = retry_parked(ctx.project, args.name, run, ctx.root)
    ctx.note(f"scenelog: consumer {args.name}: {done} parked events handled, {left} still parked")
    return EXIT_OK if left == 0 else EXIT_NO
