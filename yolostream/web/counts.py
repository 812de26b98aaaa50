"""`CountSeries`: objects per class per stream over time, one point per second, for the dashboard's chart.

Fed by a pipeline tap on the inference thread, so `observe` only counts classes (a few microseconds);
each point is the largest count of each class seen in any frame of that second (what was in view, not the
sum over frames, which would scale with the frame rate).
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from typing import Any

from yolostream.pipeline.frames import FrameResult


class CountSeries:
    """Per stream, the last ``keep_s`` seconds of per-class counts (wall-clock seconds of capture)."""

    def __init__(self, keep_s: int = 3600) -> None:
        self.keep_s = keep_s
        self._lock = threading.Lock()
        self._series: dict[str, deque[tuple[int, Counter[str]]]] = {}

    def observe(self, result: FrameResult) -> None:
        """Count one frame's detections (a pipeline tap)."""
        det = result.detections
        counts = Counter(det.class_names) if len(det) else Counter()
        second = int(result.frame.timestamp)
        with self._lock:
            series = self._series.setdefault(result.frame.stream, deque(maxlen=self.keep_s))
            if series and series[-1][0] == second:
                last = series[-1][1]
                for name, n in counts.items():
                    if n > last[name]:
                        last[name] = n
            elif not series or series[-1][0] < second:  # capture times of one stream only go forward
                series.append((second, counts))

    def query(self, stream: str, seconds: int, now: float) -> dict[str, Any]:
        """``{"stream", "start", "end", "times": [s, ...], "series": {class: [n, ...]}}`` for the seconds in
        ``(now - seconds, now]``; a second without frames has no point (the chart leaves a gap)."""
        start = int(now) - seconds
        with self._lock:
            points = [(t, dict(c)) for t, c in self._series.get(stream, ()) if t > start]
        names = sorted({n for _, c in points for n in c})
        return {
            "stream": stream,
            "start": start,
            "end": int(now),
            "times": [t for t, _ in points],
            "series": {n: [c.get(n, 0) for _, c in points] for n in names},
        }
