"""`SinkStage`: writes alarms and detection summaries to every sink from its own thread.

Inference hands records over and goes on; a slow sink (an fsync, a full disk, a sink stuck in its own
code) holds up this thread, never the detector. Alarms wait in an unbounded queue (they are rare and
must never be lost); summaries in a bounded one whose oldest entries are dropped and counted when the
sinks fall behind. `close` writes everything still queued, then closes the sinks (which flush and hand
their outboxes the rest of ``timeout`` to deliver).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence

from yolostream.pipeline.events import AlarmEvent
from yolostream.pipeline.metrics import StreamMetrics
from yolostream.pipeline.sinks import DetectionSummary, Sink

log = logging.getLogger("yolostream.pipeline")

_LOGGED_ERRORS = 5  # per sink, then one in a hundred


class SinkStage:
    """The sink thread. ``sinks`` are written in order (put a `SnapshotSink` first, so that the JPEG a
    database row points to exists before the row does)."""

    def __init__(
        self, sinks: Sequence[Sink], metrics: StreamMetrics | None = None, max_summaries: int = 10_000
    ) -> None:
        self.sinks = list(sinks)
        self.metrics = metrics
        self._alarms: deque[AlarmEvent] = deque()
        self._summaries: deque[DetectionSummary] = deque()
        self._max_summaries = max_summaries
        self._cond = threading.Condition()
        self._closing = False
        self._busy = False
        self._thread = threading.Thread(target=self._main, name="sinks", daemon=True)
        self.alarms_written = 0
        self.summaries_written = 0
        self.summaries_dropped = 0
        self.errors: Counter[str] = Counter()
        self._closed = False

    def start(self) -> SinkStage:
        self._thread.start()
        return self

    def put_alarm(self, event: AlarmEvent) -> None:
        with self._cond:
            self._alarms.append(event)
            self._cond.notify()

    def put_summary(self, summary: DetectionSummary) -> None:
        with self._cond:
            if len(self._summaries) >= self._max_summaries:
                self._summaries.popleft()
                self.summaries_dropped += 1
            self._summaries.append(summary)
            self._cond.notify()

    @property
    def queued(self) -> int:
        with self._cond:
            return len(self._alarms) + len(self._summaries)

    def wait_idle(self, timeout: float) -> bool:
        """Block until every queued record is written (True) or ``timeout`` seconds passed (False)."""
        end = time.monotonic() + timeout
        with self._cond:
            while self._alarms or self._summaries or self._busy:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
            return True

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then close every sink (each gets ``timeout`` s to deliver); idempotent."""
        if self._closed:
            return
        self._closed = True
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join()
        for sink in self.sinks:
            try:
                sink.close(timeout)
            except Exception:
                log.exception("sink %s: close failed", sink.name)

    def stats(self) -> dict[str, dict[str, int]]:
        """sink name -> its `Sink.stats` plus ``errors``; and ``"queue"`` for this stage's own counters."""
        out = {}
        for sink in self.sinks:
            try:
                stats = dict(sink.stats())
            except Exception:  # a closed sink may refuse
                stats = {}
            stats["errors"] = self.errors[sink.name]
            out[sink.name] = stats
        out["queue"] = {
            "queued": self.queued,
            "alarms_written": self.alarms_written,
            "summaries_written": self.summaries_written,
            "summaries_dropped": self.summaries_dropped,
        }
        return out

    def _main(self) -> None:
        while True:
            with self._cond:
                while not (self._alarms or self._summaries or self._closing):
                    self._cond.wait()
                if not self._alarms and not self._summaries:
                    self._cond.notify_all()
                    return  # closing and drained
                alarm = self._alarms.popleft() if self._alarms else None
                summaries = [] if alarm is not None else list(self._summaries)
                if alarm is None:
                    self._summaries.clear()
                self._busy = True
            try:
                if alarm is not None:
                    self._write_alarm(alarm)
                else:
                    self._write_summaries(summaries)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _write_alarm(self, event: AlarmEvent) -> None:
        for sink in self.sinks:
            self._call(sink, sink.write_alarm, event)
        self.alarms_written += 1
        if self.metrics is not None:
            self.metrics.on_alarm_stored(event.stream, time.time() - event.time)

    def _write_summaries(self, summaries: list[DetectionSummary]) -> None:
        for summary in summaries:
            for sink in self.sinks:
                self._call(sink, sink.write_summary, summary)
        self.summaries_written += len(summaries)

    def _call(self, sink: Sink, method: object, record: object) -> None:
        try:
            method(record)  # type: ignore[operator]
        except Exception as e:
            self.errors[sink.name] += 1
            n = self.errors[sink.name]
            if n <= _LOGGED_ERRORS or n % 100 == 0:
                log.error("sink %s: write failed (#%d): %s: %s", sink.name, n, type(e).__name__, e)
