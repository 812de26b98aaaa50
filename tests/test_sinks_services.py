"""MQTT and PostgreSQL sinks against real servers on loopback: outages, restarts and kill -9.

The servers come from the Debian packages ``mosquitto`` and ``postgresql`` (see tests/services.py);
these tests skip only when those binaries are not installed.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from services import (
    INSTALL_HINT,
    Mosquitto,
    Postgres,
    Subscriber,
    mosquitto_binary,
    postgres_bindir,
    wait_for,
)

from yolostream.errors import ConfigError
from yolostream.pipeline.events import AlarmEvent
from yolostream.pipeline.sinks import DetectionSummary, MqttSink, PostgresSink, SQLiteSink

REPO = Path(__file__).resolve().parents[1]
# Short backoffs and timeouts so that recovery after a restart takes well under a second.
FAST = {"retry_initial_s": 0.02, "retry_max_s": 0.2, "connect_timeout_s": 2.0}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    if mosquitto_binary() is None:
        pytest.skip(f"mosquitto is not installed; {INSTALL_HINT}")
    b = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    if postgres_bindir() is None:
        pytest.skip(f"PostgreSQL server binaries are not installed; {INSTALL_HINT}")
    p = Postgres()
    p.start()
    yield p
    p.destroy()


def alarms(n: int, stream: str, rule: str = "door") -> list[AlarmEvent]:
    return [AlarmEvent(rule=rule, stream=stream, time=1000.0 + i, kind="presence") for i in range(n)]


def pg_counts(url: str, ids: list[str]) -> Counter[str]:
    """How many rows of ``alarms`` hold each of ``ids``."""
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT event_id FROM alarms WHERE event_id = ANY(%s)", (ids,)).fetchall()
    return Counter(r[0] for r in rows)


def test_mqtt_topics_and_payloads(broker: Mosquitto, tmp_path: Path) -> None:
    sub = Subscriber(broker.port, "topics/#", client_id="sub-topics")
    event = AlarmEvent(rule="zone a", stream="cam/1", time=5.0, kind="count", details={"n": 3})
    summary = DetectionSummary("cam/1", 4, 5.0, {"person": 3}, 3, 0.02)
    try:
        with MqttSink("127.0.0.1", tmp_path, port=broker.port, prefix="topics", **FAST) as sink:
            sink.write_summary(summary)
            sink.write_alarm(event)
            wait_for(lambda: len(sub.snapshot()) == 2, what="both messages")
    finally:
        sub.close()
    by_topic = dict(sub.messages)
    # Names are cleaned for topics ('/' and ' ' become '_'); payloads are the records as JSON.
    assert sorted(by_topic) == ["topics/cam_1/alarms/zone_a", "topics/cam_1/detections"]
    assert by_topic["topics/cam_1/alarms/zone_a"]["event_id"] == event.event_id
    assert by_topic["topics/cam_1/alarms/zone_a"]["details"] == {"n": 3}
    assert DetectionSummary.from_dict(by_topic["topics/cam_1/detections"]) == summary


def test_mqtt_broker_outage_delivers_each_alarm_once(broker: Mosquitto, tmp_path: Path) -> None:
    sub = Subscriber(broker.port, "outage/#", client_id="sub-outage")
    before, during, after = alarms(3, "cam1"), alarms(20, "cam1"), alarms(1, "cam1")
    try:
        with (
            SQLiteSink(tmp_path / "db.sqlite") as db,
            MqttSink("127.0.0.1", tmp_path, port=broker.port, prefix="outage", ack_timeout_s=2, **FAST) as sink,
        ):
            for e in before:
                db.write_alarm(e)
                sink.write_alarm(e)
            wait_for(lambda: len(sub.snapshot()) == len(before), what="alarms before the outage")
            wait_for(lambda: sink.stats()["pending"] == 0, what="PUBACKs before the outage")
            # Without this, the broker may save the last alarm as unacknowledged by the subscriber and
            # send it again after the restart: QoS 1 on the broker-to-subscriber leg, not the sink.
            sub.sync()
            broker.stop()
            try:
                for e in during:
                    db.write_alarm(e)
                    sink.write_alarm(e)
                wait_for(lambda: sink.stats()["failed_attempts"] > 0, what="the sink to notice the outage")
                assert sink.stats()["pending"] == len(during)  # nothing got through, nothing was lost
            finally:
                broker.start()  # same port; the subscriber's session was saved by the broker
            wait_for(lambda: sink.stats()["pending"] == 0, what="the backlog to drain")
            # Published after every earlier PUBACK on the same topic: once it arrives, any duplicate
            # of an earlier alarm would have arrived before it.
            for e in after:
                db.write_alarm(e)
                sink.write_alarm(e)
            wait_for(lambda: after[0].event_id in sub.snapshot(), what="the last alarm")
            stats = sink.stats()
    finally:
        sub.close()
    ids = [e.event_id for e in before + during + after]
    assert sub.snapshot() == Counter(dict.fromkeys(ids, 1))
    assert stats["delivered"] == len(ids) and stats["outage"] == 0
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        stored = Counter(r[0] for r in conn.execute("SELECT event_id FROM alarms"))
    assert stored == Counter(dict.fromkeys(ids, 1))


def test_postgres_outage_stores_each_record_once(pg: Postgres, tmp_path: Path) -> None:
    before, during = alarms(3, "pg-outage"), alarms(20, "pg-outage")
    summaries = [DetectionSummary("pg-outage", f, 1000.0 + f, {"car": f}, f, 0.01) for f in range(6)]
    with PostgresSink(pg.url, tmp_path, **FAST) as sink:
        for e in before:
            sink.write_alarm(e)
        sink.write_summary(summaries[0])
        assert sink.outbox.wait_empty(15)
        pg.stop()
        try:
            for e in during:
                sink.write_alarm(e)
            for s in summaries[1:]:
                sink.write_summary(s)
            wait_for(lambda: sink.stats()["failed_attempts"] > 0, what="the sink to notice the outage")
            assert sink.stats()["pending"] == len(during) + len(summaries) - 1
        finally:
            pg.start()
        assert sink.outbox.wait_empty(15)
        sink.write_alarm(before[0])  # a replay after delivery: the primary key keeps one row
        assert sink.outbox.wait_empty(15)
        stats = sink.stats()
    assert stats["rejected"] == 0  # the replay was accepted as a no-op, not refused
    ids = [e.event_id for e in before + during]
    assert pg_counts(pg.url, ids) == Counter(dict.fromkeys(ids, 1))
    import psycopg

    with psycopg.connect(pg.url) as conn:
        rows = conn.execute("SELECT frame, n, counts FROM detections WHERE stream = 'pg-outage' ORDER BY frame")
        assert rows.fetchall() == [(f, f, {"car": f}) for f in range(6)]


def test_postgres_bad_row_is_rejected_alone(pg: Postgres, tmp_path: Path) -> None:
    good1, good2 = alarms(2, "pg-bad")
    # PostgreSQL text cannot hold NUL characters: this row can never be stored.
    bad = AlarmEvent(rule="bad\x00rule", stream="pg-bad", time=1.0, kind="presence")
    nan = AlarmEvent(rule="nan", stream="pg-bad", time=2.0, kind="count", details={"ratio": float("nan")})
    with PostgresSink(pg.url, tmp_path, **FAST) as sink:
        for e in (good1, bad, nan, good2):
            sink.write_alarm(e)
        assert sink.outbox.wait_empty(15)
        stats = sink.stats()
    ids = [good1.event_id, bad.event_id, nan.event_id, good2.event_id]
    # NaN is not JSON: it is stored as null rather than losing the alarm.
    assert pg_counts(pg.url, ids) == Counter({good1.event_id: 1, nan.event_id: 1, good2.event_id: 1})
    assert stats["rejected"] == 1


@pytest.mark.parametrize("url", ["mysql://x", "127.0.0.1:5432", ""])
def test_postgres_bad_url(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError, match="postgres"):
        PostgresSink(url, tmp_path)


_CHILD = """
import json, sys
from yolostream.pipeline.events import AlarmEvent
from yolostream.pipeline.sinks import MqttSink, PostgresSink

kind, target, state = sys.argv[1:4]
never = {"retry_initial_s": 60.0, "retry_max_s": 60.0, "connect_timeout_s": 1.0}
if kind == "mqtt":
    sink = MqttSink("127.0.0.1", state, port=int(target), prefix="crash", **never)
else:
    sink = PostgresSink(target, state, **never)
ids = []
for i in range(10):
    event = AlarmEvent(rule="door", stream="crash-" + kind, time=float(i), kind="presence")
    sink.write_alarm(event)
    ids.append(event.event_id)
print(json.dumps(ids), flush=True)
sys.stdin.read()  # wait to be killed
"""


def run_and_kill(kind: str, target: str, state: Path) -> list[str]:
    """Queue 10 alarms in a child process while the target is down, then SIGKILL it; their ids."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, kind, target, str(state)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert child.stdout is not None
        ids = json.loads(child.stdout.readline())
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    assert child.returncode == -signal.SIGKILL
    return ids


def test_mqtt_kill_9_then_reopen_delivers_once(broker: Mosquitto, tmp_path: Path) -> None:
    broker.stop()
    try:
        ids = run_and_kill("mqtt", str(broker.port), tmp_path)
    finally:
        broker.start()
    sub = Subscriber(broker.port, "crash/#", client_id="sub-crash")
    try:
        with MqttSink("127.0.0.1", tmp_path, port=broker.port, prefix="crash", **FAST) as sink:
            stats = sink.stats()  # the thread may have delivered some already; none is unaccounted for
            assert stats["pending"] + stats["delivered"] == len(ids)
            assert sink.outbox.wait_empty(15)
            wait_for(lambda: len(sub.snapshot()) == len(ids), what="the alarms of the killed process")
    finally:
        sub.close()
    assert sub.snapshot() == Counter(dict.fromkeys(ids, 1))


def test_postgres_kill_9_then_reopen_delivers_once(pg: Postgres, tmp_path: Path) -> None:
    pg.stop()
    try:
        ids = run_and_kill("postgres", pg.url, tmp_path)
    finally:
        pg.start()
    with PostgresSink(pg.url, tmp_path, **FAST) as sink:
        stats = sink.stats()  # the thread may have delivered some already; none is unaccounted for
        assert stats["pending"] + stats["delivered"] == len(ids)
        assert sink.outbox.wait_empty(15)
    assert pg_counts(pg.url, ids) == Counter(dict.fromkeys(ids, 1))
