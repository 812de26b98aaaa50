"""Run the multi-camera pipeline described by a YAML config (see examples/pipeline.yaml).

Frames from every source go through one detector in cross-stream batches, then per-stream tracking,
the alarm rules and the sinks (SQLite by default). While it runs: a live table on the terminal (per
stream fps, latency p50/p99, drops, reconnects, decode errors, alarms; a summary log line every
--stats-every seconds instead when stderr is not a terminal) and Prometheus metrics on
http://HOST:PORT/metrics (the config's `server` section).

SIGINT or SIGTERM stops it gracefully: sources stop, the frames in flight are finished, every alarm
raised is written, the sinks flush and drain their outboxes; the exit code is then 0. A second signal
exits at once (network sinks keep what they could not deliver on disk for the next run).

Exit codes: 0 stopped or every input ended; 1 config error, or every source failed; 130 forced.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("yolostream.run")

# Attributes every LogRecord has; anything else was passed with `extra=` and goes into the JSON line.
_RECORD_KEYS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="pipeline config (YAML)")
    p.add_argument("--duration", type=float, metavar="S", help="stop gracefully after S seconds")
    p.add_argument("--log-json", action="store_true", help="logs as JSON lines on stderr (and no live table)")
    p.add_argument("--no-live", action="store_true", help="no live table even on a terminal")
    p.add_argument(
        "--stats-every",
        type=float,
        default=10.0,
        metavar="S",
        help="period of the summary log line without a terminal (default 10 s; 0: off)",
    )
    p.add_argument("--metrics-port", type=int, metavar="PORT", help="override server.port (0: any free port)")
    p.add_argument("--no-metrics", action="store_true", help="no /metrics endpoint")
    p.add_argument(
        "--sink-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="at shutdown, how long network sinks may go on delivering (default 10 s)",
    )
    p.add_argument("--check", action="store_true", help="validate the config and exit")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (ISO 8601, UTC), level, logger, message, plus every ``extra`` key."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update({k: v for k, v in vars(record).items() if k not in _RECORD_KEYS and not k.startswith("_")})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def _set_handler(handler: logging.Handler) -> None:
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)


@contextmanager
def _signals(on_signal: Any) -> Iterator[None]:
    """SIGINT/SIGTERM call ``on_signal(name)`` once; a second one raises KeyboardInterrupt (forced exit)."""
    seen: list[int] = []

    def handler(signum: int, _frame: Any) -> None:
        if seen:
            raise KeyboardInterrupt
        seen.append(signum)
        on_signal(signal.Signals(signum).name)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from yolostream.pipeline.app import Pipeline
    from yolostream.pipeline.config import load_config
    from yolostream.pipeline.dashboard import stream_table, summary_line

    console = Console(stderr=True)
    live = console.is_terminal and not (args.no_live or args.log_json)
    if args.log_json:
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        _set_handler(handler)
    elif live:
        from rich.logging import RichHandler

        _set_handler(RichHandler(console=console, show_path=False))

    loaded = load_config(args.config)
    if args.check:
        print(f"{args.config}: OK ({len(loaded.config.sources)} source(s), {len(loaded.rules)} rule(s))")
        return 0
    # Signals are caught from here on: one that comes while the model loads stops the run once it is built.
    asked: list[str] = []
    built: list[Pipeline] = []

    def on_signal(name: str) -> None:
        asked.append(name)
        if built:
            built[0].request_stop(f"{name} received")

    with _signals(on_signal):
        pipeline = Pipeline(loaded)
        built.append(pipeline)
        if asked:
            pipeline.request_stop(f"{asked[0]} received")
        server = None
        try:
            cfg = loaded.config.server
            if cfg.metrics and not args.no_metrics:
                from yolostream.pipeline.prometheus import MetricsServer

                port = cfg.port if args.metrics_port is None else args.metrics_port
                server = MetricsServer(pipeline, cfg.host, port)
            pipeline.start()
            _watch(pipeline, args, console if live else None, stream_table, summary_line)
        finally:
            pipeline.close(args.sink_timeout)
            if server is not None:
                server.close()
    snap = pipeline.snapshot()
    if live:
        console.print(stream_table(snap, title="yolostream (final)"))
    log.info("final: %s", summary_line(snap), extra={"streams": [vars(s) for s in snap.streams]})
    return pipeline.exit_code()


def _watch(pipeline: Any, args: argparse.Namespace, console: Any, table: Any, line: Any) -> None:
    """Until stopped, ended or ``--duration``: refresh the live table, or log a summary line now and then."""
    end = None if args.duration is None else time.monotonic() + args.duration
    if console is not None:
        from rich.live import Live

        with Live(table(pipeline.snapshot()), console=console, refresh_per_second=2, transient=False) as view:
            while not _wait(pipeline, end, 0.5):
                view.update(table(pipeline.snapshot()))
        return
    period = args.stats_every if args.stats_every > 0 else float("inf")
    while not _wait(pipeline, end, period):
        log.info("%s", line(pipeline.snapshot()))


def _wait(pipeline: Any, end: float | None, period: float) -> bool:
    """Wait up to ``period`` s; True when it is time to stop (asked, ended, or the duration is over)."""
    left = period if end is None else min(period, end - time.monotonic())
    if pipeline.wait(max(0.0, left)):
        return True
    if end is not None and time.monotonic() >= end:
        pipeline.request_stop("--duration reached")
        return True
    return False
