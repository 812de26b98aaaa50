"""Run the pipeline of a YAML config with the web dashboard and HTTP API (needs: pip install 'yolostream[web]').

The pipeline is the one `yolostream run` builds from the same file. The dashboard (http://HOST:PORT/) shows
each stream live with boxes, track IDs, zones and lines, its health (fps, latency, drops, reconnects), the
alarm list with snapshots and filters, objects per class over time, the engine (compile mode, buckets,
latency), and an editor that saves zones and lines back into the config file (validated, a backup kept; the
running rules take the new geometry from the next frame).

HTTP API (OpenAPI docs at /docs): POST /v1/detect (an image upload; answers the `predict --json` record),
GET /v1/streams, /v1/engine, /v1/events?since=&until=&stream=&rule=, /v1/events/{id}/snapshot, /v1/counts,
/v1/config, PUT/DELETE /v1/zones/{name} and /v1/lines/{name}, GET /healthz (no token), GET /metrics.

Every path but /healthz needs the bearer token: server.web.token, else $YOLOSTREAM_TOKEN, else one made at
start and printed with a login link. It listens on server.host (127.0.0.1 unless told otherwise) and
server.web.port. SIGINT/SIGTERM stop it gracefully (as `run`); it keeps serving after finite inputs end.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("yolostream.serve")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="pipeline config (YAML), as for `yolostream run`")
    p.add_argument("--host", help="override server.host (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, metavar="PORT", help="override server.web.port (0: any free port)")
    p.add_argument("--duration", type=float, metavar="S", help="stop gracefully after S seconds")
    p.add_argument("--log-json", action="store_true", help="logs as JSON lines on stderr")
    p.add_argument(
        "--stats-every", type=float, default=30.0, metavar="S", help="period of the summary log line (0: off)"
    )
    p.add_argument("--sink-timeout", type=float, default=10.0, metavar="S", help="see `yolostream run --help`")


def _login_url(url: str, token: str, source: str) -> str:
    from urllib.parse import quote

    # Only a token made here is printed: one from the config or the environment is the operator's to know.
    return f"{url}/login#token={quote(token)}" if source == "generated" else f"{url}/login"


def run(args: argparse.Namespace) -> int:
    from yolostream.cli.run import JsonFormatter, _set_handler, _signals
    from yolostream.errors import ConfigError
    from yolostream.pipeline.config import load_config
    from yolostream.pipeline.dashboard import summary_line

    try:
        from yolostream.web.app import create_app
        from yolostream.web.auth import resolve_token
        from yolostream.web.server import WebServer
        from yolostream.web.state import WebState
    except ImportError as e:
        raise ConfigError(f"serve needs the web extra ({e.name} is missing): pip install 'yolostream[web]'") from None
    from yolostream.pipeline.app import Pipeline

    if args.log_json:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        _set_handler(handler)
    loaded = load_config(args.config)
    web_cfg = loaded.config.server.web
    token, token_source = resolve_token(web_cfg.token)
    host = args.host or loaded.config.server.host
    port = web_cfg.port if args.port is None else args.port
    if loaded.config.sinks.sqlite is None:
        log.warning("sinks.sqlite is off: the dashboard's alarm list and /v1/events have nothing to show")
    asked: list[str] = []
    built: list[Pipeline] = []

    def on_signal(name: str) -> None:
        asked.append(name)
        if built:
            built[0].request_stop(f"{name} received")

    with _signals(on_signal):
        pipeline = Pipeline(loaded)
        built.append(pipeline)
        state = WebState(pipeline, Path(args.config), token, web_cfg)
        server = None
        try:
            server = WebServer(create_app(state), host, port, hub=state.hub).start()
            pipeline.start()
            if asked:
                pipeline.request_stop(f"{asked[0]} received")
            print(f"dashboard: {_login_url(server.url, token, token_source)}", file=sys.stderr, flush=True)
            if token_source == "generated":
                print(f"API token (generated; set server.web.token or $YOLOSTREAM_TOKEN to fix it): {token}",
                      file=sys.stderr, flush=True)  # fmt: skip
            _serve(pipeline, args, asked)
        finally:
            if server is not None:
                server.stop()
            state.close()
            pipeline.close(args.sink_timeout)
    log.info("final: %s", summary_line(pipeline.snapshot()))
    return pipeline.exit_code()


def _serve(pipeline: Any, args: argparse.Namespace, asked: list[str]) -> None:
    """Until a signal (``asked``) or ``--duration``; a summary log line every ``--stats-every`` seconds. The end
    of every input does not stop it: the API, the alarm list and the editor stay useful."""
    from yolostream.pipeline.dashboard import summary_line

    end = None if args.duration is None else time.monotonic() + args.duration
    period = args.stats_every if args.stats_every > 0 else float("inf")
    next_line = time.monotonic() + period
    said_ended = False
    while not asked:
        now = time.monotonic()
        if end is not None and now >= end:
            pipeline.request_stop("--duration reached")
            return
        if pipeline.ended and not said_ended:
            said_ended = True
            log.info("every input ended; still serving the API and dashboard (Ctrl-C stops)")
        if now >= next_line:
            log.info("%s", summary_line(pipeline.snapshot()))
            next_line = now + period
        time.sleep(0.2)
