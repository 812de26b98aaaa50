"""Per-stream run statistics: rates, latency percentiles over a recent window, cumulative histograms.

`StreamMetrics` is fed by the inference thread (results, alarms raised) and the sink thread (alarms
stored); readers (dashboard, Prometheus, bench) take `StreamSnapshot`s. Latency is capture -> result
(detections ready, tracked and ruled) and capture -> alarm stored by every sink, in seconds.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

# Histogram bucket upper bounds (seconds) for Prometheus: 5 ms to 10 s, roughly x2 steps.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)


@dataclass
class Histogram:
    """Cumulative counts per bucket upper bound (the last bucket is +Inf), and the sum."""

    bounds: tuple[float, ...] = LATENCY_BUCKETS
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, int]]:
        """``[(upper bound as text, count of values <= it), ..., ("+Inf", n)]``."""
        out, run = [], 0
        for bound, count in zip([*map(str, self.bounds), "+Inf"], self.counts, strict=True):
            run += count
            out.append((bound, run))
        return out


class Window:
    """Values with their times, kept for ``seconds`` (and at most ``max_items``), for rates and percentiles."""

    def __init__(self, seconds: float, max_items: int = 100_000) -> None:
        self.seconds = seconds
        self._items: deque[tuple[float, float]] = deque(maxlen=max_items)

    def add(self, t: float, value: float) -> None:
        self._items.append((t, value))
        self._trim(t)

    def _trim(self, now: float) -> None:
        while self._items and self._items[0][0] < now - self.seconds:
            self._items.popleft()

    def values(self, now: float) -> np.ndarray:
        self._trim(now)
        return np.fromiter((v for _, v in self._items), dtype=np.float64, count=len(self._items))

    def rate(self, now: float, span: float) -> float:
        """Items per second over the last ``span`` seconds."""
        return sum(1 for t, _ in self._items if t >= now - span) / span if span > 0 else 0.0

    def clear(self) -> None:
        self._items.clear()


def percentile_ms(values: np.ndarray, q: float) -> float | None:
    """``q``-th percentile in milliseconds (linear interpolation), None without values."""
    return float(np.percentile(values, q) * 1000.0) if values.size else None


@dataclass(frozen=True)
class StreamSnapshot:
    """What the dashboard, ``/metrics`` and the bench show for one stream (latencies in ms, None if no data).

    ``frames`` and ``alarms`` count since start (or the last `StreamMetrics.reset`); ``drops`` adds the
    frames the source dropped and those the batcher replaced by newer ones.
    """

    stream: str
    state: str
    fps: float
    frames: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    alarm_latency_p50_ms: float | None
    alarm_latency_p99_ms: float | None
    alarms: int
    drops: int
    reconnects: int
    decode_errors: int
    frames_decoded: int
    last_error: str | None


class _Stream:
    def __init__(self, window_s: float) -> None:
        self.frames = 0
        self.alarms = 0
        self.latency = Window(window_s)
        self.alarm_latency = Window(window_s)
        self.latency_hist = Histogram()
        self.alarm_latency_hist = Histogram()


class StreamMetrics:
    """Thread-safe statistics of every stream.

    Args:
        window_s: percentiles cover the results of the last ``window_s`` seconds.
        fps_window_s: the rate is measured over the last ``fps_window_s`` seconds.
    """

    def __init__(self, window_s: float = 10.0, fps_window_s: float = 2.0) -> None:
        self.window_s = window_s
        self.fps_window_s = fps_window_s
        self._lock = threading.Lock()
        self._streams: dict[str, _Stream] = {}
        self._started = time.monotonic()

    def _get(self, stream: str) -> _Stream:
        s = self._streams.get(stream)
        if s is None:
            s = self._streams[stream] = _Stream(self.window_s)
        return s

    def on_result(self, stream: str, latency_s: float) -> None:
        """A frame's result is ready (``latency_s``: capture -> result)."""
        with self._lock:
            s = self._get(stream)
            s.frames += 1
            s.latency.add(time.monotonic(), latency_s)
            s.latency_hist.observe(latency_s)

    def on_alarm(self, stream: str) -> None:
        """A rule raised an alarm on ``stream``."""
        with self._lock:
            self._get(stream).alarms += 1

    def on_alarm_stored(self, stream: str, latency_s: float) -> None:
        """Every sink has taken an alarm (``latency_s``: capture of its frame -> stored)."""
        with self._lock:
            s = self._get(stream)
            s.alarm_latency.add(time.monotonic(), latency_s)
            s.alarm_latency_hist.observe(latency_s)

    def reset(self) -> None:
        """Start counting again (the bench drops its warm-up this way); histograms are kept."""
        with self._lock:
            for s in self._streams.values():
                s.frames = s.alarms = 0
                s.latency.clear()
                s.alarm_latency.clear()
            self._started = time.monotonic()

    def pooled(self, alarms: bool = False) -> np.ndarray:
        """Latencies (seconds) of every stream in the window: capture -> result, or -> alarm stored."""
        now = time.monotonic()
        with self._lock:
            parts = [(s.alarm_latency if alarms else s.latency).values(now) for s in self._streams.values()]
        return np.concatenate(parts) if parts else np.zeros(0)

    def histograms(self) -> dict[str, tuple[Histogram, Histogram]]:
        """stream -> (result latency, alarm latency) cumulative histograms (copies)."""
        with self._lock:
            return {name: (_copy(s.latency_hist), _copy(s.alarm_latency_hist)) for name, s in self._streams.items()}

    def snapshot(self, stream: str, source_stats: object = None, replaced: int = 0) -> StreamSnapshot:
        """Figures of ``stream``; ``source_stats`` is its `SourceStats` (state, drops, errors...)."""
        now = time.monotonic()
        with self._lock:
            s = self._get(stream)
            lat, alat = s.latency.values(now), s.alarm_latency.values(now)
            span = min(self.fps_window_s, now - self._started)
            fps = s.latency.rate(now, span)
            frames, alarms = s.frames, s.alarms
        get = getattr
        return StreamSnapshot(
            stream=stream,
            state=get(source_stats, "state", "unknown"),
            fps=fps,
            frames=frames,
            latency_p50_ms=percentile_ms(lat, 50),
            latency_p99_ms=percentile_ms(lat, 99),
            alarm_latency_p50_ms=percentile_ms(alat, 50),
            alarm_latency_p99_ms=percentile_ms(alat, 99),
            alarms=alarms,
            drops=int(get(source_stats, "frames_dropped", 0)) + replaced,
            reconnects=int(get(source_stats, "reconnects", 0)),
            decode_errors=int(get(source_stats, "decode_errors", 0)),
            frames_decoded=int(get(source_stats, "frames_decoded", 0)),
            last_error=get(source_stats, "last_error", None),
        )


def _copy(h: Histogram) -> Histogram:
    out = Histogram(h.bounds)
    out.counts, out.total = list(h.counts), h.total
    return out
