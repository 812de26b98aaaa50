"""`SQLiteSink`: the default sink, alarms and detection summaries in one embedded database file (WAL)."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from yolostream.pipeline.events import AlarmEvent
from yolostream.pipeline.sinks.base import DetectionSummary, Sink
from yolostream.pipeline.sinks.schema import (
    ALARM_COLUMNS,
    DETECTION_COLUMNS,
    SQLITE_SCHEMA,
    alarm_record,
    alarm_row,
    detection_row,
    insert_sql,
)
from yolostream.pipeline.sinks.snapshots import snapshot_path


class SQLiteSink(Sink):
    """Writes to the ``alarms`` and ``detections`` tables of a local SQLite file.

    The file is local, so writes go straight in without an outbox. Each alarm is committed with an
    fsync before `write_alarm` returns (a crash or a power cut cannot lose it); summaries are batched
    into one transaction every ``summary_batch`` rows or ``flush_interval_s`` seconds, because a commit
    per frame would cost an fsync per frame. Inserts ignore keys already stored, so replaying a record
    is harmless. Other processes may read the file while it is written (WAL).

    Args:
        path: database file (created with its folder).
        snapshot_dir: where a `SnapshotSink` writes JPEGs; when set, ``snapshot_path`` is filled in.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        name: str = "sqlite",
        alarms: bool = True,
        summaries: bool = True,
        snapshot_dir: str | os.PathLike[str] | None = None,
        summary_batch: int = 50,
        flush_interval_s: float = 1.0,
    ) -> None:
        self.path = Path(path)
        self.name = name
        self.alarms = alarms
        self.summaries = summaries
        self.snapshot_dir = None if snapshot_dir is None else Path(snapshot_dir)
        self.summary_batch = max(1, summary_batch)
        self.flush_interval_s = flush_interval_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Built in one thread, written from the sink stage's thread: one user at a time, never two.
        self._db: sqlite3.Connection | None = sqlite3.connect(
            self.path, isolation_level=None, timeout=30, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        for statement in SQLITE_SCHEMA:
            self._db.execute(statement)
        self._alarm_sql = insert_sql("alarms", ALARM_COLUMNS, "?")
        self._detection_sql = insert_sql("detections", DETECTION_COLUMNS, "?")
        self._pending: list[tuple[Any, ...]] = []
        self._first_pending = 0.0
        self._counts = {"alarms": 0, "summaries": 0}

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError(f"sink {self.name!r} ({self.path}) is closed")
        return self._db

    def write_alarm(self, event: AlarmEvent) -> None:
        if not self.alarms:
            return
        path = None if self.snapshot_dir is None else snapshot_path(self.snapshot_dir, event)
        db = self._conn()
        db.execute("BEGIN")
        db.execute(self._alarm_sql, alarm_row(alarm_record(event, path)))
        self._write_pending(db)
        db.execute("COMMIT")
        self._counts["alarms"] += 1

    def write_summary(self, summary: DetectionSummary) -> None:
        if not self.summaries:
            return
        self._conn()
        if not self._pending:
            self._first_pending = time.monotonic()
        self._pending.append(detection_row(summary.to_dict()))
        if len(self._pending) >= self.summary_batch or time.monotonic() - self._first_pending >= self.flush_interval_s:
            self.flush()

    def _write_pending(self, db: sqlite3.Connection) -> None:
        if self._pending:
            db.executemany(self._detection_sql, self._pending)
            self._counts["summaries"] += len(self._pending)
            self._pending.clear()

    def flush(self) -> None:
        if self._db is None or not self._pending:
            return
        self._db.execute("BEGIN")
        self._write_pending(self._db)
        self._db.execute("COMMIT")

    def close(self, timeout: float = 10.0) -> None:
        if self._db is None:
            return
        self.flush()
        self._db.close()
        self._db = None

    def stats(self) -> dict[str, int]:
        return {"alarms": self._counts["alarms"], "summaries": self._counts["summaries"]}
