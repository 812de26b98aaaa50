"""`JsonlSink`: alarms and/or summaries appended to a JSON Lines file."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from yolostream.pipeline.events import AlarmEvent
from yolostream.pipeline.sinks.base import DetectionSummary, Sink, to_json
from yolostream.pipeline.sinks.schema import alarm_record
from yolostream.pipeline.sinks.snapshots import snapshot_path


class JsonlSink(Sink):
    """One JSON object per line, with ``"type"``: ``"alarm"`` (an `alarm_record`) or ``"detections"``.

    An alarm line reaches the operating system before `write_alarm` returns (a crash of the process
    cannot lose it); summaries are buffered up to ``flush_interval_s`` seconds. `flush` and `close`
    fsync. If a previous run died in the middle of a line, a newline is added first so that the
    torn line stays the only bad one.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        name: str = "jsonl",
        alarms: bool = True,
        summaries: bool = True,
        snapshot_dir: str | os.PathLike[str] | None = None,
        flush_interval_s: float = 1.0,
    ) -> None:
        self.path = Path(path)
        self.name = name
        self.alarms = alarms
        self.summaries = summaries
        self.snapshot_dir = None if snapshot_dir is None else Path(snapshot_dir)
        self.flush_interval_s = flush_interval_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a+b")  # noqa: SIM115 - held open until close
        if self._file.tell() > 0:
            self._file.seek(-1, os.SEEK_END)
            if self._file.read(1) != b"\n":
                self._file.write(b"\n")
        self._last_flush = time.monotonic()
        self.lines = 0

    def _write(self, record: dict[str, Any]) -> None:
        if self._file.closed:
            raise RuntimeError(f"sink {self.name!r} ({self.path}) is closed")
        self._file.write(to_json(record).encode() + b"\n")
        self.lines += 1

    def write_alarm(self, event: AlarmEvent) -> None:
        if not self.alarms:
            return
        path = None if self.snapshot_dir is None else snapshot_path(self.snapshot_dir, event)
        self._write({"type": "alarm", **alarm_record(event, path)})
        self._file.flush()

    def write_summary(self, summary: DetectionSummary) -> None:
        if not self.summaries:
            return
        self._write({"type": "detections", **summary.to_dict()})
        if time.monotonic() - self._last_flush >= self.flush_interval_s:
            self.flush()

    def flush(self) -> None:
        if self._file.closed:
            return
        self._file.flush()
        os.fsync(self._file.fileno())
        self._last_flush = time.monotonic()

    def close(self, timeout: float = 10.0) -> None:
        if not self._file.closed:
            self.flush()
            self._file.close()

    def stats(self) -> dict[str, int]:
        return {"lines": self.lines}
