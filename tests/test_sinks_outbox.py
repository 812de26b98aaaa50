"""The on-disk outbox: order, retry, dead letters, caps, and surviving a kill -9 (no servers needed)."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from yolostream.errors import ConfigError
from yolostream.pipeline.sinks.outbox import Outbox
from yolostream.pipeline.sinks.transport import OutboxItem, Outcome

REPO = Path(__file__).resolve().parents[1]
FAST = {"retry_initial_s": 0.01, "retry_max_s": 0.05}  # backoffs short enough for tests
NEVER = {"retry_initial_s": 60.0, "retry_max_s": 60.0}  # one failed attempt, then quiet for the test


class FakeTransport:
    """Records what it delivers; fails its first ``fail_first`` calls and while ``down`` is set;
    rejects for good the keys in ``reject``."""

    def __init__(self, fail_first: int = 0, reject: Sequence[str] = (), down: bool = False) -> None:
        self.fail_first = fail_first
        self.reject = set(reject)
        self.down = threading.Event()
        if down:
            self.down.set()
        self.calls = 0
        self.delivered: list[OutboxItem] = []
        self.closed = False

    def deliver(self, items: Sequence[OutboxItem]) -> Outcome:
        self.calls += 1
        if self.down.is_set() or self.calls <= self.fail_first:
            return Outcome(error=ConnectionError("target down"))
        out = Outcome()
        for item in items:
            if item.key in self.reject:
                out.rejected.append((item.id, "refused"))
            else:
                self.delivered.append(item)
                out.done.append(item.id)
        return out

    def close(self) -> None:
        self.closed = True

    def keys(self) -> list[str | None]:
        return [item.key for item in self.delivered]


def remaining(path: Path) -> list[str]:
    """Payloads still queued in a closed outbox file, oldest first."""
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("SELECT payload FROM items ORDER BY id")]


def test_delivers_each_record_once_alarms_first(tmp_path: Path) -> None:
    transport = FakeTransport(down=True)
    box = Outbox(tmp_path / "o.sqlite", transport, **FAST)
    # Queued while the target is down, so that one batch sees them all.
    for i, kind in enumerate("SASSA"):
        box.put("summary" if kind == "S" else "alarm", json.dumps(i), key=f"{kind}{i}")
    transport.down.clear()
    assert box.wait_empty(10)
    box.close()
    # Alarms before summaries, each kind in the order it was put.
    assert transport.keys() == ["A1", "A4", "S0", "S2", "S3"]
    assert box.stats()["delivered"] == 5
    assert transport.closed


def test_retries_with_backoff_and_logs_once_per_outage(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="yolostream.pipeline.sinks.outbox")
    transport = FakeTransport(fail_first=4)
    box = Outbox(tmp_path / "o.sqlite", transport, **FAST)
    for i in range(3):
        box.put("alarm", "{}", key=f"a{i}")
    assert box.wait_empty(10)
    stats = box.stats()
    box.close()
    assert transport.keys() == ["a0", "a1", "a2"]  # nothing lost, nothing twice
    assert stats["failed_attempts"] == 4 and stats["outage"] == 0
    messages = [r.getMessage() for r in caplog.records]
    assert sum("delivery failing" in m for m in messages) == 1
    assert sum("delivering again" in m for m in messages) == 1


def test_rejected_records_become_dead_letters(tmp_path: Path) -> None:
    transport = FakeTransport(reject=["bad"])
    path = tmp_path / "o.sqlite"
    box = Outbox(path, transport, **FAST)
    for key in ("a", "bad", "b"):
        box.put("alarm", json.dumps(key), key=key)
    assert box.wait_empty(10)
    box.close()
    assert transport.keys() == ["a", "b"]
    assert box.stats()["rejected"] == 1
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT key, reason FROM dead").fetchall() == [("bad", "refused")]


def test_same_key_is_queued_once(tmp_path: Path) -> None:
    transport = FakeTransport(down=True)
    path = tmp_path / "o.sqlite"
    box = Outbox(path, transport, **NEVER)
    assert box.put("alarm", '"first"', key="k")
    assert box.put("alarm", '"again"', key="k")  # accepted, but already waiting
    assert box.pending() == 1
    box.close(timeout=0)
    assert remaining(path) == ['"first"']


@pytest.mark.parametrize(
    ("caps", "puts", "kept", "dropped"),
    [
        # Soft cap 3: the 4th record (an alarm) pushes out the oldest summary.
        ({"max_items": 3}, "S1 S2 S3 A4", ["S2", "S3", "A4"], {"dropped_summary": 1}),
        # Soft cap 3 full of alarms: a new summary is the one dropped.
        ({"max_items": 3}, "A1 A2 A3 S4", ["A1", "A2", "A3"], {"dropped_summary": 1}),
        # Alarms go past the soft cap (3) up to the hard cap (4); the 5th drops the oldest alarm.
        ({"max_items": 3, "hard_max_items": 4}, "A1 A2 A3 A4 A5", ["A2", "A3", "A4", "A5"], {"dropped_alarm": 1}),
        # Cap 2: S3 drops S1, A4 drops S3, S5 finds only alarms and is dropped itself.
        ({"max_items": 2}, "S1 A2 S3 A4 S5", ["A2", "A4"], {"dropped_summary": 3}),
        # Byte cap 6 with 2-byte payloads: S4 would make 8 bytes, so S1 goes.
        ({"max_bytes": 6}, "S1 S2 A3 S4", ["S2", "A3", "S4"], {"dropped_summary": 1}),
    ],
)
def test_caps_drop_summaries_first(tmp_path: Path, caps: dict, puts: str, kept: list, dropped: dict) -> None:
    path = tmp_path / "o.sqlite"
    box = Outbox(path, FakeTransport(down=True), **caps, **NEVER)
    for label in puts.split():
        box.put("alarm" if label[0] == "A" else "summary", label, key=label)
    stats = box.stats()
    box.close(timeout=0)
    assert remaining(path) == kept
    assert {k: v for k, v in stats.items() if k.startswith("dropped_")} == dropped
    assert stats["pending"] == len(kept)
    assert stats["pending_bytes"] == sum(len(label) for label in kept)


def test_left_over_records_are_delivered_by_the_next_open(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    box = Outbox(path, FakeTransport(down=True), **NEVER)
    for i in range(4):
        box.put("alarm", "{}", key=f"a{i}")
    box.close(timeout=0.1)
    transport = FakeTransport(down=True)
    again = Outbox(path, transport, **FAST)
    assert again.stats()["pending"] == 4  # counters rebuilt from the file
    transport.down.clear()
    assert again.wait_empty(10)
    again.close()
    assert transport.keys() == ["a0", "a1", "a2", "a3"]


def test_close_drains_what_is_queued(tmp_path: Path) -> None:
    transport = FakeTransport(down=True)
    box = Outbox(tmp_path / "o.sqlite", transport, **FAST)
    for i in range(5):
        box.put("alarm", "{}", key=f"a{i}")
    transport.down.clear()
    box.close(timeout=10)  # no wait_empty before: close itself must deliver
    assert transport.keys() == [f"a{i}" for i in range(5)]


def test_one_process_per_outbox_file(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", FakeTransport(), **FAST)
    with pytest.raises(ConfigError, match="in use by another process"):
        Outbox(tmp_path / "o.sqlite", FakeTransport(), **FAST)
    box.close()
    Outbox(tmp_path / "o.sqlite", FakeTransport(), **FAST).close()  # free again once closed


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"max_items": 0}, "max_items"),
        ({"max_bytes": 0}, "max_bytes"),
        ({"max_items": 10, "hard_max_items": 5}, "hard_max_items"),  # hard below soft
        ({"batch_size": 0}, "batch_size"),
        ({"retry_initial_s": 0.0}, "retry_initial_s"),
        ({"retry_initial_s": 2.0, "retry_max_s": 1.0}, "retry_max_s"),  # cap below the first delay
    ],
)
def test_invalid_arguments(tmp_path: Path, kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        Outbox(tmp_path / "o.sqlite", FakeTransport(), **kwargs)


_CHILD = """
import sys
from yolostream.pipeline.sinks.outbox import Outbox
from yolostream.pipeline.sinks.transport import Outcome

class Down:
    def deliver(self, items):
        return Outcome(error=ConnectionError("down"))
    def close(self):
        pass

box = Outbox(sys.argv[1], Down(), retry_initial_s=60, retry_max_s=60)
for i in range(20):
    box.put("alarm", "{}", key=f"a{i}")
print("queued", flush=True)
sys.stdin.read()  # wait to be killed
"""


def test_kill_9_after_put_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "queued"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    assert child.returncode == -signal.SIGKILL
    transport = FakeTransport()
    box = Outbox(path, transport, **FAST)
    assert box.wait_empty(10)
    box.close()
    assert Counter(transport.keys()) == Counter({f"a{i}": 1 for i in range(20)})
