"""The two tables every database sink writes, and how records map to their rows.

``alarms`` is keyed by ``event_id`` and ``detections`` by ``(stream, time, frame)``, so a record
delivered twice (after a retry or a crash) is stored once: inserts do ``ON CONFLICT DO NOTHING``.
JSON columns are TEXT in SQLite (its ``json_*`` functions read them) and JSONB in PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from yolostream.pipeline.events import AlarmEvent
from yolostream.pipeline.sinks.base import to_json

ALARM_COLUMNS = ("event_id", "rule", "stream", "time", "kind", "severity", "objects", "details", "snapshot_path")
DETECTION_COLUMNS = ("stream", "frame", "time", "n", "counts", "latency_s")


def _schema(json_type: str, float_type: str) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS alarms (
            event_id TEXT PRIMARY KEY,
            rule TEXT NOT NULL,
            stream TEXT NOT NULL,
            time {float_type} NOT NULL,
            kind TEXT NOT NULL,
            severity TEXT NOT NULL,
            objects {json_type} NOT NULL,
            details {json_type} NOT NULL,
            snapshot_path TEXT
        )""",
        "CREATE INDEX IF NOT EXISTS alarms_stream_time ON alarms(stream, time)",
        "CREATE INDEX IF NOT EXISTS alarms_time ON alarms(time)",
        f"""CREATE TABLE IF NOT EXISTS detections (
            stream TEXT NOT NULL,
            frame BIGINT NOT NULL,
            time {float_type} NOT NULL,
            n INTEGER NOT NULL,
            counts {json_type} NOT NULL,
            latency_s {float_type} NOT NULL,
            PRIMARY KEY (stream, time, frame)
        )""",
        "CREATE INDEX IF NOT EXISTS detections_time ON detections(time)",
    ]


SQLITE_SCHEMA = _schema("TEXT", "REAL")
POSTGRES_SCHEMA = _schema("JSONB", "DOUBLE PRECISION")


def insert_sql(table: str, columns: tuple[str, ...], placeholder: str) -> str:
    """``INSERT ... ON CONFLICT DO NOTHING`` with one ``placeholder`` (``?`` or ``%s``) per column."""
    marks = ", ".join([placeholder] * len(columns))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) ON CONFLICT DO NOTHING"


def alarm_record(event: AlarmEvent, snapshot_path: Path | None = None) -> dict[str, Any]:
    """The JSON-ready dict every sink stores or sends for an alarm (``AlarmEvent.to_dict`` plus the path)."""
    record = event.to_dict()
    record["snapshot_path"] = None if snapshot_path is None else str(snapshot_path)
    return record


def alarm_row(record: dict[str, Any]) -> tuple[Any, ...]:
    """Row of ``alarms`` for an `alarm_record` (objects and details as JSON text)."""
    return (
        record["event_id"],
        record["rule"],
        record["stream"],
        float(record["time"]),
        record["kind"],
        record.get("severity", "warning"),
        to_json(record.get("objects", [])),
        to_json(record.get("details", {})),
        record.get("snapshot_path"),
    )


def detection_row(record: dict[str, Any]) -> tuple[Any, ...]:
    """Row of ``detections`` for a ``DetectionSummary.to_dict()``."""
    return (
        record["stream"],
        int(record["frame"]),
        float(record["time"]),
        int(record["n"]),
        to_json(record.get("counts", {})),
        float(record["latency_s"]),
    )
