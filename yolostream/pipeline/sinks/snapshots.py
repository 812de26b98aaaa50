"""`SnapshotSink`: the JPEG of each alarm as a file, at a path other sinks can compute and store."""

from __future__ import annotations

import os
import time
from pathlib import Path

from yolostream.pipeline.events import AlarmEvent
from yolostream.pipeline.sinks.base import Sink, safe_name


def snapshot_path(directory: str | os.PathLike[str], event: AlarmEvent) -> Path | None:
    """``<directory>/<stream>/<UTC time>_<rule>_<event_id>.jpg``, or None when the event has no JPEG.

    A pure function of the event, so a database sink records the same path the snapshot sink writes.
    """
    if event.snapshot_jpeg is None:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(event.time))
    millis = int(event.time % 1.0 * 1000)  # truncated: rounding up could print .1000
    name = f"{stamp}.{millis:03d}Z_{safe_name(event.rule)}_{safe_name(event.event_id)}.jpg"
    return Path(directory) / safe_name(event.stream) / name


class SnapshotSink(Sink):
    """Writes ``event.snapshot_jpeg`` of each alarm to `snapshot_path` (alarms without one are skipped).

    Files are written to a temporary name, fsynced and renamed, so a crash never leaves half a JPEG
    under the final name; writing the same event twice rewrites the same file.
    """

    def __init__(self, directory: str | os.PathLike[str], *, name: str = "snapshots") -> None:
        self.directory = Path(directory)
        self.name = name
        self.written = 0
        self.last_path: Path | None = None

    def path_for(self, event: AlarmEvent) -> Path | None:
        return snapshot_path(self.directory, event)

    def write_alarm(self, event: AlarmEvent) -> None:
        path = self.path_for(event)
        if path is None or event.snapshot_jpeg is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(event.snapshot_jpeg)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        self.written += 1
        self.last_path = path

    def close(self, timeout: float = 10.0) -> None:
        pass

    def stats(self) -> dict[str, int]:
        return {"written": self.written}
