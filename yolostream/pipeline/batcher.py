"""`Batcher`: the newest frame of every ready stream into one detector call, each result routed back.

Cross-stream batching amortises one model call over many cameras; the price is a short wait for
streams to fill the batch. The wait is bounded twice: a batch leaves as soon as it holds ``max_batch``
frames, as soon as every live stream has a frame in it, or ``max_wait_ms`` after its first frame came,
whichever is first. A stream without a new frame (slow, stalled, reconnecting) is simply not in the
batch: the others never wait for the slowest camera beyond ``max_wait_ms``, and not at all for one that
has delivered nothing for ``live_s`` (it is not counted among the live streams a batch waits to fill).

Frames of different sizes share a batch: the detector letterboxes each to the one input size and maps
its boxes back to that frame's own pixels.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from yolostream.pipeline.frames import Frame, FrameResult
from yolostream.pipeline.sources import Source

DEFAULT_MAX_BATCH = 8


def engine_max_batch(detector: Any) -> int | None:
    """The largest batch the detector's engine serves in one call (its largest bucket), or None when it
    takes any batch (the eager detector)."""
    return getattr(detector, "max_batch", None)


@dataclass
class BatchStats:
    """Counters of the detector calls: ``sizes`` maps batch size -> calls; times are seconds summed."""

    calls: int = 0
    frames: int = 0
    sizes: Counter[int] = field(default_factory=Counter)
    preprocess_s: float = 0.0
    infer_s: float = 0.0
    postprocess_s: float = 0.0
    last_batch_s: float = 0.0


class Batcher:
    """Gathers frames from ``sources`` and runs ``detector`` on them.

    Args:
        detector: a `yolostream.Detector` (anything with ``preprocess``, ``infer``, ``postprocess``).
        sources: started sources; their names must be unique.
        max_batch: frames per call at most; None: `engine_max_batch` of the detector, else 8.
        max_wait_ms: longest wait for more streams once a batch has its first frame.
        poll_s: how often sources are polled while waiting (they have no shared wake-up).
        live_s: a stream that delivered a frame within this many seconds is live: a batch waits for it
            (up to ``max_wait_ms``) unless full.

    Each stream has at most one frame waiting here, its newest: a lossy source's frame that waited here
    while a newer one arrived is replaced and counted in ``replaced`` (a drop, like the source's own).
    A lossless source (offline file) is read one frame at a time, so none is lost. When more streams are
    ready than ``max_batch``, those waiting longest go first, so none starves.
    """

    def __init__(
        self,
        detector: Any,
        sources: Iterable[Source],
        max_batch: int | None = None,
        max_wait_ms: float = 10.0,
        poll_s: float = 0.001,
        live_s: float = 1.0,
    ) -> None:
        self.detector = detector
        self.sources = {s.name: s for s in sources}
        self.max_batch = max_batch or engine_max_batch(detector) or DEFAULT_MAX_BATCH
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")
        self.max_wait_s = max(0.0, max_wait_ms) / 1000.0
        self.poll_s = poll_s
        self.live_s = live_s
        self._last_frame: dict[str, float] = {}  # stream -> monotonic time of its last frame
        self.replaced: Counter[str] = Counter()
        self.stats = BatchStats()
        self._pending: dict[str, tuple[float, Frame]] = {}  # stream -> (monotonic time it came, frame)

    @property
    def exhausted(self) -> bool:
        """Every source has ended and no frame waits here."""
        return not self._pending and all(s.finished for s in self.sources.values())

    def collect(self, stop: threading.Event | None = None) -> list[Frame]:
        """The next batch (oldest-waiting streams first, one frame each); [] once `exhausted` or ``stop`` set."""
        while True:
            self._poll()
            if self._pending and self._ready():
                return self._take()
            if self.exhausted or (stop is not None and stop.is_set()):
                return []
            if stop is not None:
                stop.wait(self.poll_s)
            else:
                time.sleep(self.poll_s)

    def detect(self, frames: list[Frame]) -> list[FrameResult]:
        """One detector call on ``frames``; one `FrameResult` per frame, in order."""
        if not frames:
            return []
        det = self.detector
        t0 = time.perf_counter()
        batch = det.preprocess([f.image for f in frames])
        t1 = time.perf_counter()
        cands = det.infer(batch)
        t2 = time.perf_counter()
        detections = det.postprocess(cands, batch.plans)
        t3 = time.perf_counter()
        done = time.time()
        s = self.stats
        s.calls += 1
        s.frames += len(frames)
        s.sizes[len(frames)] += 1
        s.preprocess_s += t1 - t0
        s.infer_s += t2 - t1
        s.postprocess_s += t3 - t2
        s.last_batch_s = t3 - t0
        return [FrameResult(f, d, done) for f, d in zip(frames, detections, strict=True)]

    def step(self, stop: threading.Event | None = None) -> list[FrameResult]:
        """`collect` then `detect`."""
        return self.detect(self.collect(stop))

    def _poll(self) -> None:
        now = time.monotonic()
        for name, source in self.sources.items():
            held = name in self._pending
            if held and source.lossless:
                continue  # read a lossless source one frame at a time: nothing may be replaced
            got = source.latest(1)
            if got:
                self._last_frame[name] = now
                if held:
                    self.replaced[name] += 1
                # A replaced frame keeps its place in line: the stream has waited since then.
                self._pending[name] = (self._pending[name][0] if held else now, got[0])

    def _ready(self) -> bool:
        if len(self._pending) >= self.max_batch:
            return True
        now = time.monotonic()
        quiet = now - self.live_s
        if all(n in self._pending or self._last_frame.get(n, quiet) <= quiet for n in self.sources):
            return True  # every live stream is in: nothing to wait for
        first = min(t for t, _ in self._pending.values())
        return now - first >= self.max_wait_s

    def _take(self) -> list[Frame]:
        order = sorted(self._pending, key=lambda n: (self._pending[n][0], self._pending[n][1].timestamp))
        return [self._pending.pop(n)[1] for n in order[: self.max_batch]]
