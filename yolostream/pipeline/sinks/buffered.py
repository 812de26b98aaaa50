"""`BufferedSink`: the common front of every network sink, records queued in an `Outbox`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from yolostream.pipeline.events import AlarmEvent
from yolostream.pipeline.sinks.base import DetectionSummary, Sink, safe_name, to_json
from yolostream.pipeline.sinks.outbox import Outbox
from yolostream.pipeline.sinks.schema import alarm_record
from yolostream.pipeline.sinks.snapshots import snapshot_path
from yolostream.pipeline.sinks.transport import Transport

ALARM = "alarm"
SUMMARY = "summary"


class BufferedSink(Sink):
    """Queues alarms and summaries on disk and lets the outbox's thread deliver them through ``transport``.

    `write_alarm` and `write_summary` return once the record is committed to the outbox file at
    ``<state_dir>/<name>.outbox.sqlite``; they never wait on the network. Records are JSON:
    ``kind`` ``"alarm"`` carries `alarm_record` (keyed by ``event_id``), ``"summary"`` carries
    ``DetectionSummary.to_dict()`` (keyed by `DetectionSummary.key`).

    Args:
        snapshot_dir: where a `SnapshotSink` writes JPEGs; fills in ``snapshot_path`` when set.
        include_snapshot: also send the JPEG itself, base64 in ``snapshot_jpeg_b64`` (large).
        **outbox: passed to `Outbox` (caps, batch size, backoff).
    """

    def __init__(
        self,
        name: str,
        transport: Transport,
        state_dir: str | os.PathLike[str],
        *,
        alarms: bool = True,
        summaries: bool = True,
        snapshot_dir: str | os.PathLike[str] | None = None,
        include_snapshot: bool = False,
        **outbox: Any,
    ) -> None:
        self.name = name
        self.alarms = alarms
        self.summaries = summaries
        self.snapshot_dir = None if snapshot_dir is None else Path(snapshot_dir)
        self.include_snapshot = include_snapshot
        path = Path(state_dir) / f"{safe_name(name)}.outbox.sqlite"
        try:
            self.outbox = Outbox(path, transport, droppable=(SUMMARY,), **outbox)
        except BaseException:
            transport.close()
            raise

    def write_alarm(self, event: AlarmEvent) -> None:
        if not self.alarms:
            return
        path = None if self.snapshot_dir is None else snapshot_path(self.snapshot_dir, event)
        record = alarm_record(event, path)
        if self.include_snapshot:
            record.update(event.to_dict(include_snapshot=True))
        self.outbox.put(ALARM, to_json(record), key=event.event_id)

    def write_summary(self, summary: DetectionSummary) -> None:
        if self.summaries:
            self.outbox.put(SUMMARY, summary.to_json(), key=summary.key)

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what can be delivered within ``timeout`` seconds; the rest waits on disk."""
        self.outbox.close(timeout)

    def stats(self) -> dict[str, int]:
        return self.outbox.stats()
