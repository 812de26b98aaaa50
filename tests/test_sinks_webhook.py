"""Webhook sink against a real HTTP server on loopback: retries, dead letters, and a graceful drain on signals."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from yolostream.errors import ConfigError
from yolostream.pipeline.events import AlarmEvent
from yolostream.pipeline.sinks import DetectionSummary, WebhookSink

REPO = Path(__file__).resolve().parents[1]
FAST = {"retry_initial_s": 0.01, "retry_max_s": 0.05}  # backoffs short enough for tests


class Hook:
    """Records every request; answers ``fail_first`` requests with 503, then per-key ``plans``, then 200.

    ``plans[key]`` is the list of statuses for that key's first attempts. With ``gate`` cleared, requests
    wait (up to 30 s) until it is set.
    """

    def __init__(self) -> None:
        self.fail_first = 0
        self.plans: dict[str, list[int]] = {}
        self.attempts: defaultdict[str, list[int]] = defaultdict(list)  # key -> statuses answered
        self.accepted: Counter[str] = Counter()  # key -> 2xx answers
        self.bodies: dict[str, dict] = {}
        self.gate = threading.Event()
        self.gate.set()
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                hook.gate.wait(30)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = self.headers["Idempotency-Key"]
                with hook.lock:
                    n_requests = sum(len(v) for v in hook.attempts.values())
                    plan = hook.plans.get(key, [])
                    tried = len(hook.attempts[key])
                    if n_requests < hook.fail_first:
                        status = 503
                    elif tried < len(plan):
                        status = plan[tried]
                    else:
                        status = 200
                    hook.attempts[key].append(status)
                    if status == 200:
                        hook.accepted[key] += 1
                        hook.bodies[key] = body
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.gate.set()
    h.server.shutdown()
    h.server.server_close()


def alarms(n: int) -> list[AlarmEvent]:
    return [AlarmEvent(rule="door", stream="cam1", time=100.0 + i, kind="presence") for i in range(n)]


def test_503s_are_retried_and_each_event_arrives_once(hook: Hook, tmp_path: Path) -> None:
    hook.fail_first = 3
    events = alarms(4)
    summary = DetectionSummary("cam1", 7, 99.0, {"car": 2}, 2, 0.1)
    with WebhookSink(hook.url, tmp_path, summaries=True, headers={"Authorization": "Bearer t"}, **FAST) as sink:
        for e in events:
            sink.write_alarm(e)
        sink.write_summary(summary)
        assert sink.outbox.wait_empty(15)
        stats = sink.stats()
    # Alarms first, then the summary: each accepted once, under its idempotency key.
    assert hook.accepted == Counter({e.event_id: 1 for e in events} | {summary.key: 1})
    assert sum(len(v) for v in hook.attempts.values()) == 5 + 3  # five records plus three 503s
    assert stats["failed_attempts"] == 3 and stats["delivered"] == 5
    for e in events:
        assert hook.bodies[e.event_id]["type"] == "alarm"
        assert hook.bodies[e.event_id]["event_id"] == e.event_id
    assert hook.bodies[summary.key]["type"] == "detections"
    assert hook.bodies[summary.key]["counts"] == {"car": 2}


@pytest.mark.parametrize(
    ("status", "attempts", "rejected"),
    [
        (400, 1, 1),  # bad request: dead letter after one try
        (404, 1, 1),  # wrong URL path: same
        (408, 3, 0),  # request timeout: two retried failures, then the 200
        (429, 3, 0),  # too many requests: same
        (500, 3, 0),  # server error: same
    ],
)
def test_status_decides_retry(hook: Hook, tmp_path: Path, status: int, attempts: int, rejected: int) -> None:
    first, poison, last = alarms(3)
    hook.plans[poison.event_id] = [status, status]
    with WebhookSink(hook.url, tmp_path, **FAST) as sink:
        for e in (first, poison, last):
            sink.write_alarm(e)
        assert sink.outbox.wait_empty(15)
        stats = sink.stats()
    assert len(hook.attempts[poison.event_id]) == attempts
    assert hook.accepted[poison.event_id] == 1 - rejected
    # A refused record does not hold back the ones behind it.
    assert hook.accepted[first.event_id] == hook.accepted[last.event_id] == 1
    assert stats["rejected"] == rejected


@pytest.mark.parametrize("url", ["ftp://host/x", "127.0.0.1:8080", ""])
def test_bad_url(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError, match="webhook"):
        WebhookSink(url, tmp_path)


_CHILD = """
import json, signal, sys
from yolostream.pipeline.events import AlarmEvent
from yolostream.pipeline.sinks import WebhookSink

signal.signal(signal.SIGTERM, lambda *args: sys.exit(0))
try:
    with WebhookSink(sys.argv[1], sys.argv[2], retry_initial_s=0.01, retry_max_s=0.05) as sink:
        ids = []
        for i in range(10):
            event = AlarmEvent(rule="door", stream="cam1", time=float(i), kind="presence")
            sink.write_alarm(event)
            ids.append(event.event_id)
        print(json.dumps(ids), flush=True)
        signal.pause()
except KeyboardInterrupt:
    sys.exit(0)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_drains_the_outbox_and_exits_0(hook: Hook, tmp_path: Path, sig: signal.Signals) -> None:
    hook.gate.clear()  # nothing can be delivered before the signal
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, hook.url, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert child.stdout is not None
        ids = json.loads(child.stdout.readline())
        child.send_signal(sig)
        hook.gate.set()
        assert child.wait(30) == 0
    finally:
        if child.poll() is None:
            child.kill()
    assert hook.accepted == Counter(dict.fromkeys(ids, 1))
    with sqlite3.connect(tmp_path / "webhook.outbox.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM items").fetchone() == (0,)
