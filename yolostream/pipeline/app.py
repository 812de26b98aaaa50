"""`Pipeline`: sources -> batcher -> trackers -> rules -> sinks, as threads, with a graceful shutdown.

Threads: one decoder per source (inside `Source`), one inference thread (batching, the detector,
tracking, rules), one sink thread (`SinkStage`), one recording thread when video is recorded. Inference
never waits on a sink. Shutdown (`close`, after `request_stop`, a ``--duration`` or the end of every
input): stop the sources, let the inference thread finish the frames already taken (the batch in
flight and what the sources had buffered), then write every queued alarm and close the sinks, which
flush and drain their outboxes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from yolostream.engine.runtime import settle_gc
from yolostream.pipeline import assemble
from yolostream.pipeline.batcher import Batcher, BatchStats
from yolostream.pipeline.config import LoadedConfig
from yolostream.pipeline.events import AlarmEvent
from yolostream.pipeline.frames import FrameResult
from yolostream.pipeline.metrics import StreamMetrics, StreamSnapshot
from yolostream.pipeline.sink_stage import SinkStage
from yolostream.pipeline.sinks import DetectionSummary

log = logging.getLogger("yolostream.pipeline")

_DRAIN_TIMEOUT_S = 30.0  # longest the inference thread may take to finish what it has after a stop


@dataclass(frozen=True)
class PipelineSnapshot:
    """Everything the dashboard and ``/metrics`` show, taken at one moment."""

    streams: list[StreamSnapshot]
    batches: BatchStats
    sinks: dict[str, dict[str, int]]
    uptime_s: float
    inference_errors: int
    recording: dict[str, int] = field(default_factory=dict)


class Pipeline:
    """The running system for one config. ``detector`` may be passed in (already loaded, e.g. by the bench
    across trials); else the config's ``model`` is loaded. Use `run` or ``start`` / ``wait`` / ``close``."""

    def __init__(self, loaded: LoadedConfig, detector: Any = None, metrics_window_s: float = 10.0) -> None:
        self.loaded = loaded
        cfg = loaded.config
        self.detector = detector if detector is not None else assemble.build_detector(loaded)
        assemble.check_rules(loaded, self.detector.names)
        self.trackers = assemble.build_trackers(loaded)
        self.rules = assemble.build_rule_engine(loaded)
        self.sources = assemble.build_sources(loaded)
        self.metrics = StreamMetrics(window_s=metrics_window_s)
        self.batcher = Batcher(self.detector, self.sources, cfg.batcher.max_batch, cfg.batcher.max_wait_ms)
        self.sink_stage = SinkStage(assemble.build_sinks(loaded), self.metrics, max_summaries=cfg.sinks.queue_summaries)
        try:
            self.recording = assemble.build_recording(loaded)
        except BaseException:
            self.sink_stage.close(0.0)
            raise
        self.summary_every = cfg.sinks.summary_every
        self.inference_errors = 0
        self.failed = False
        self.stop_reason: str | None = None
        self._stop = threading.Event()  # asked to stop (signal, duration, caller)
        self._done = threading.Event()  # the inference thread has ended
        self._abort = threading.Event()  # the inference thread must end now, frames or not
        self._seen: dict[str, int] = {}  # stream -> frames seen, for summary_every
        self._reconnects: dict[str, int] = {s.name: 0 for s in self.sources}
        self._thread = threading.Thread(target=self._infer_main, name="inference", daemon=True)
        self._started_at = time.monotonic()
        self._closed = False
        # Called on the inference thread with every tracked and ruled result (the web live view keeps the
        # newest): a tap must only take a reference or count, never encode or block.
        self.taps: list[Callable[[FrameResult], None]] = []
        self._new_rules: LoadedConfig | None = None  # rules to swap in on the inference thread

    # ---- lifecycle ---------------------------------------------------------------------------------

    def start(self, stagger_s: float = 0.0) -> Pipeline:
        """Start every thread; ``stagger_s`` between source starts spreads the streams' frame phases (as
        independent cameras have) where they would otherwise tick together (the bench's copies of one clip)."""
        self._warm_up()
        settle_gc()  # the model is loaded and warm: keep the collector's pauses off the serving path
        self.sink_stage.start()
        if self.recording is not None:
            self.recording.start()
        for i, source in enumerate(self.sources):
            if i and stagger_s > 0:
                time.sleep(stagger_s)
            source.start()
        self._started_at = time.monotonic()
        self._thread.start()
        log.info(
            "pipeline started: %d stream(s), max_batch %d, max_wait %.0f ms, %d rule(s), sinks: %s",
            len(self.sources),
            self.batcher.max_batch,
            self.batcher.max_wait_s * 1000,
            len(self.rules.rules),
            ", ".join(s.name for s in self.sink_stage.sinks) or "none",
        )
        return self

    def _warm_up(self) -> None:
        """One call per batch size the batcher may send, on grey frames, before any camera starts: an eager
        model's first calls build its kernels (~1 s on a CPU), during which a paced source would drop frames.
        Compiled engines warmed up at load; their buckets may not hold this shape, so they are left alone."""
        if getattr(self.detector, "compiled", True):
            return
        size = self.detector.config.imgsz
        grey = np.full((size, size, 3), 114, np.uint8)
        for n in sorted({1, self.batcher.max_batch}):
            self.detector([grey] * n)

    def request_stop(self, reason: str = "stop requested") -> None:
        """Ask for a graceful stop (safe from a signal handler: it only sets a flag)."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a stop is requested or every input ended; True if so, False on timeout."""
        end = None if timeout is None else time.monotonic() + timeout
        while not (self._stop.is_set() or self._done.is_set()):
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                return False
            self._stop.wait(0.1 if left is None else min(left, 0.1))
        return True

    def close(self, sink_timeout: float = 10.0) -> None:
        """Graceful shutdown (idempotent): sources, in-flight frames, then sinks."""
        if self._closed:
            return
        self._closed = True
        self.request_stop("closed")
        log.info("pipeline stopping (%s)", self.stop_reason)
        # Stop every source at once: a stream blocked in a read can take its timeout to notice.
        stoppers = [threading.Thread(target=s.stop, name=f"stop-{s.name}") for s in self.sources]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join()
        if self._thread.is_alive():
            self._thread.join(_DRAIN_TIMEOUT_S)
            if self._thread.is_alive():
                log.warning("inference still busy after %.0f s; leaving its frames", _DRAIN_TIMEOUT_S)
                self._abort.set()
                self._thread.join(5.0)
        self.sink_stage.close(sink_timeout)
        if self.recording is not None:
            self.recording.close(sink_timeout)
        log.info(
            "pipeline stopped: %d frame(s), %d alarm(s) written, %d summaries written",
            self.batcher.stats.frames,
            self.sink_stage.alarms_written,
            self.sink_stage.summaries_written,
        )

    def run(self, duration_s: float | None = None) -> int:
        """Start, run until stopped / ``duration_s`` passed / every input ended, close. Exit code: 0, or 1
        when no frame could be processed because every source failed."""
        self.start()
        try:
            if not self.wait(duration_s) and duration_s is not None:
                self.request_stop(f"duration {duration_s:g} s reached")
        finally:
            self.close()
        return self.exit_code()

    def exit_code(self) -> int:
        """0, or 1 when the inference thread failed or every source failed before any frame was processed."""
        failed = all(s.stats.state == "failed" for s in self.sources)
        return 1 if self.failed or (failed and self.batcher.stats.frames == 0) else 0

    def update_rules(self, loaded: LoadedConfig) -> list[str]:
        """Use the rules of ``loaded`` (the same config with, say, a zone redrawn) from the next frame on;
        returns the names of the rules added, changed or removed. Only rules change: other sections need a
        restart. Rules whose definition is unchanged keep their state."""
        assemble.check_rules(loaded, self.detector.names)
        old = {r.name: r for r in self.rules.rules}
        new = {r.name: r for r in loaded.rules}
        changed = sorted({n for n, r in new.items() if old.get(n) != r} | (set(old) - set(new)))
        self.loaded = loaded
        self._new_rules = loaded  # the inference thread owns the rule engine's state: it swaps them in
        if not self._thread.is_alive() and self._new_rules is not None:  # not started, or already ended
            self._new_rules = None
            self._swap_rules(loaded)
        return changed

    def _swap_rules(self, loaded: LoadedConfig) -> None:
        changed = self.rules.replace_rules(loaded.rules)
        if self.recording is not None:
            self.recording.overlays = {s.name: assemble.overlays(loaded.rules, s.name) for s in self.sources}
        log.info("rules updated: %s", ", ".join(changed) or "none changed")

    @property
    def ended(self) -> bool:
        """The inference thread has ended (every input finished, or closed)."""
        return self._done.is_set()

    # ---- figures -----------------------------------------------------------------------------------

    def snapshot(self) -> PipelineSnapshot:
        streams = [self.metrics.snapshot(s.name, s.stats, self.batcher.replaced[s.name]) for s in self.sources]
        return PipelineSnapshot(
            streams=streams,
            # A copy: the inference thread goes on counting while a scrape or the table reads this.
            batches=replace(self.batcher.stats, sizes=Counter(self.batcher.stats.sizes)),
            sinks=self.sink_stage.stats(),
            uptime_s=time.monotonic() - self._started_at,
            inference_errors=self.inference_errors,
            recording=self.recording.stats() if self.recording is not None else {},
        )

    # ---- inference thread --------------------------------------------------------------------------

    def _infer_main(self) -> None:
        try:
            while not self._abort.is_set():
                frames = self.batcher.collect(self._abort)
                if not frames:
                    if self.batcher.exhausted:
                        break
                    continue
                try:
                    results = self.batcher.detect(frames)
                except Exception as e:
                    self._error(f"inference failed on a batch of {len(frames)}", e)
                    continue
                for result in results:
                    try:
                        self._handle(result)
                    except Exception as e:  # one bad frame must not end a 24/7 run
                        self._error(f"tracking/rules failed on {result.frame.stream} #{result.frame.index}", e)
        except Exception:
            log.exception("inference thread failed")
            self.failed = True
            self.request_stop("inference thread failed")
        finally:
            self._done.set()
            self.request_stop("every input ended")

    def _error(self, what: str, e: Exception) -> None:
        self.inference_errors += 1
        n = self.inference_errors
        if n <= 5 or n % 100 == 0:  # the first with their traceback, then one in a hundred
            log.error("%s (error #%d): %s: %s", what, n, type(e).__name__, e, exc_info=n <= 5)

    def _handle(self, result: FrameResult) -> None:
        stream = result.frame.stream
        if self._new_rules is not None:
            loaded, self._new_rules = self._new_rules, None
            self._swap_rules(loaded)
        if self.trackers is not None:
            self._reset_after_reconnect(stream)
            result = self.trackers.process(result)
        events = self.rules.process(result)
        # Latency ends here: detections are tracked and ruled, alarms are raised.
        self.metrics.on_result(stream, time.time() - result.frame.timestamp)
        for event in events:
            self._raise(event)
        n = self._seen.get(stream, 0)
        self._seen[stream] = n + 1
        if n % self.summary_every == 0:
            self.sink_stage.put_summary(DetectionSummary.from_result(result))
        if self.recording is not None:
            self.recording.put(result)
        for tap in self.taps:  # last: a failing tap costs no alarm
            tap(result)

    def _raise(self, event: AlarmEvent) -> None:
        self.metrics.on_alarm(event.stream)
        log.info(
            "alarm %s on %s: %s (%s), %d object(s)",
            event.rule,
            event.stream,
            event.kind,
            event.severity,
            len(event.objects),
            extra={"alarm": event.to_dict()},
        )
        self.sink_stage.put_alarm(event)

    def _reset_after_reconnect(self, stream: str) -> None:
        # A reconnected camera restarts mid-scene: old tracks would be matched to whatever is there now.
        source = self.batcher.sources[stream]
        count = source.stats.reconnects
        if count != self._reconnects.get(stream, 0):
            self._reconnects[stream] = count
            assert self.trackers is not None
            self.trackers.reset(stream)
