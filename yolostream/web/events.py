"""`EventStore`: the alarms the SQLite sink wrote, read back for ``/v1/events`` (read-only connections).

The sink commits each alarm as it is raised and the file is in WAL mode, so a reader here sees an alarm
moments after it fired and never blocks the writer. Snapshots are the files `SnapshotSink` wrote; a
stored path is only served when it lies inside the configured snapshot folder.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from yolostream.pipeline.sinks.schema import ALARM_COLUMNS


class EventStore:
    """Reads ``alarms`` of the database at ``path``; ``snapshot_dir`` is `SnapshotSink`'s folder (or None)."""

    def __init__(self, path: Path, snapshot_dir: Path | None) -> None:
        self.path = Path(path)
        self.snapshot_dir = None if snapshot_dir is None else Path(snapshot_dir).resolve()

    def _connect(self) -> sqlite3.Connection:
        # Read-only by URI: a bug here can never write to the sink's database.
        return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)

    def query(
        self,
        since: float | None = None,
        until: float | None = None,
        stream: str | None = None,
        rule: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Alarms with ``since <= time < until`` (capture times, epoch seconds), newest first."""
        where, args = [], []
        for clause, value in (("time >= ?", since), ("time < ?", until), ("stream = ?", stream), ("rule = ?", rule)):
            if value is not None:
                where.append(clause)
                args.append(value)
        sql = f"SELECT {', '.join(ALARM_COLUMNS)} FROM alarms"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY time DESC LIMIT ?"
        if not self.path.exists():
            return []  # the sink creates the file when the pipeline is built; nothing stored yet
        db = self._connect()
        try:
            rows = db.execute(sql, (*args, limit)).fetchall()
        finally:
            db.close()
        return [self._record(dict(zip(ALARM_COLUMNS, row, strict=True))) for row in rows]

    def get(self, event_id: str) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        db = self._connect()
        try:
            sql = f"SELECT {', '.join(ALARM_COLUMNS)} FROM alarms WHERE event_id = ?"
            row = db.execute(sql, (event_id,)).fetchone()
        finally:
            db.close()
        return None if row is None else self._record(dict(zip(ALARM_COLUMNS, row, strict=True)))

    def snapshot_file(self, record: dict[str, Any]) -> Path | None:
        """The event's JPEG, if stored and inside the snapshot folder."""
        stored = record.get("_snapshot_path")
        if not stored or self.snapshot_dir is None:
            return None
        path = Path(stored).resolve()
        if not path.is_relative_to(self.snapshot_dir) or not path.is_file():
            return None
        return path

    def _record(self, row: dict[str, Any]) -> dict[str, Any]:
        stored = row.pop("snapshot_path")
        row["objects"] = json.loads(row["objects"])
        row["details"] = json.loads(row["details"])
        row["snapshot_url"] = f"/v1/events/{row['event_id']}/snapshot" if stored else None
        row["_snapshot_path"] = stored  # server side only: removed before a record is sent
        return row
