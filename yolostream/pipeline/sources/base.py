"""`Source`: a worker thread that decodes frames into a small buffer that keeps the newest ones.

A source is either *lossy* (cameras, streams, files played in real time): when the consumer falls behind,
the oldest buffered frame is dropped and counted, so latency never builds up; or *lossless* (files and
folders read offline): the worker waits for room, so every admitted frame is delivered in order.

Frame accounting, always true: ``frames_decoded = frames_skipped + frames_dropped + frames_delivered +
(frames still buffered)``, where skipped frames are those left out by ``stride`` or the ``fps`` cap, or
flagged corrupt by the decoder (those also count as decode errors).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import ModuleType

import numpy as np

from yolostream.errors import ConfigError
from yolostream.pipeline.frames import Frame

log = logging.getLogger("yolostream.sources")

STATES = ("connecting", "running", "stalled", "reconnecting", "finished", "failed")
_FPS_WINDOW_S = 2.0
_LOGGED_ERRORS = 5  # log the first few decode errors of a source, then one in a hundred


def import_av() -> ModuleType:
    """PyAV, imported on first use so that the package works without the ``video`` extra."""
    try:
        import av
    except ImportError as e:
        raise ConfigError("video sources need PyAV: pip install 'yolostream[video]'") from e
    return av


@dataclass
class SourceStats:
    """Counters of one source (a snapshot: `Source.stats` returns a copy).

    ``state``: connecting (no frame yet), running, stalled (no frame for ``timeout_s``), reconnecting,
    finished (end of input, or stopped) or failed (the input cannot be read at all; ``last_error`` says why).
    ``fps`` is the measured rate of admitted frames (after stride and the fps cap) over the last 2 s.
    ``reconnects`` counts every new connection attempt after the first.
    """

    frames_decoded: int = 0
    frames_skipped: int = 0
    frames_delivered: int = 0
    frames_dropped: int = 0
    decode_errors: int = 0
    reconnects: int = 0
    state: str = "connecting"
    last_error: str | None = None
    fps: float = 0.0


class Source:
    """Base class: subclasses implement `_run`, which decodes and hands pictures to `_offer`.

    Args:
        name: stream name, copied into every `Frame`.
        fps: cap on admitted frames per second of media time (None: no cap).
        stride: admit one decoded frame in ``stride`` (counted before the fps cap).
        queue_size: frames buffered between the worker and the consumer.
        lossless: wait for room instead of dropping the oldest frame.
    """

    def __init__(
        self,
        name: str,
        *,
        fps: float | None = None,
        stride: int = 1,
        queue_size: int = 2,
        lossless: bool = False,
    ) -> None:
        if not isinstance(stride, int) or stride < 1:
            raise ConfigError(f"source {name!r}: stride must be an integer >= 1, got {stride!r}")
        if fps is not None and not fps > 0:
            raise ConfigError(f"source {name!r}: fps must be > 0 or None, got {fps!r}")
        if not isinstance(queue_size, int) or queue_size < 1:
            raise ConfigError(f"source {name!r}: queue_size must be an integer >= 1, got {queue_size!r}")
        self.name = name
        self.fps_cap = fps
        self.stride = stride
        self.queue_size = queue_size
        self.lossless = lossless
        self._buf: deque[Frame] = deque()
        self._cond = threading.Condition()
        self._stats = SourceStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._done = False
        self._index = 0
        self._next_due: float | None = None
        self._admitted: deque[float] = deque()
        # Capture times come from the monotonic clock anchored to wall time once, so they never go back.
        self._wall0, self._mono0 = time.time(), time.monotonic()
        self._started = self._wall0

    def start(self) -> Source:
        """Start the worker thread (once). Returns self."""
        if self._thread is not None:
            raise RuntimeError(f"source {self.name!r} already started")
        self._started = self._now()
        self._thread = threading.Thread(target=self._main, name=f"source-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Ask the worker to end and join it for up to ``timeout`` s (default `join_timeout_s`).

        Buffered frames stay readable. A worker blocked in a network read leaves it when the read times out.
        """
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(self.join_timeout_s if timeout is None else timeout)
            if self._thread.is_alive():
                log.warning("source %s: worker still busy after stop(); it exits on its own", self.name)

    @property
    def join_timeout_s(self) -> float:
        """Longest a worker may take to notice a stop (subclasses with blocking reads raise it)."""
        return 2.0

    def __enter__(self) -> Source:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def get(self, timeout: float | None = None) -> Frame | None:
        """The oldest buffered frame, waiting up to ``timeout`` s (None: until one comes or the source ends);
        None when none came or the source is finished."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._buf:
                if self._done:
                    return None
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._cond.wait(left)
            frame = self._buf.popleft()
            self._stats.frames_delivered += 1
            self._cond.notify_all()
            return frame

    def latest(self, max_items: int = 1) -> list[Frame]:
        """Up to ``max_items`` frames without waiting, oldest first.

        Lossy source: the newest frames; older buffered ones are dropped (counted). Lossless source: the
        oldest frames, nothing dropped.
        """
        with self._cond:
            n = min(max_items, len(self._buf))
            if self.lossless:
                out = [self._buf.popleft() for _ in range(n)]
            else:
                out = list(self._buf)[len(self._buf) - n :]
                self._stats.frames_dropped += len(self._buf) - n
                self._buf.clear()
            self._stats.frames_delivered += n
            self._cond.notify_all()
            return out

    @property
    def finished(self) -> bool:
        """True once the worker has ended (end of input, failure or stop) and the buffer is drained."""
        with self._cond:
            return self._done and not self._buf

    @property
    def stats(self) -> SourceStats:
        with self._cond:
            now = self._now()
            recent = [t for t in self._admitted if t > now - _FPS_WINDOW_S]
            span = min(_FPS_WINDOW_S, now - self._started)
            fps = len(recent) / span if span > 0 else 0.0
            return replace(self._stats, fps=fps)

    def _run(self) -> None:
        """Decode until the input ends (return) or `_stopping` (return); raise on a fatal failure."""
        raise NotImplementedError

    def _main(self) -> None:
        try:
            self._run()
            self._set_state("finished")
        except Exception as e:
            log.exception("source %s failed", self.name)
            self._set_state("failed", f"{type(e).__name__}: {e}")
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def _stopping(self) -> bool:
        return self._stop.is_set()

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopped; True when a stop was asked."""
        return self._stop.wait(max(0.0, seconds))

    def _now(self) -> float:
        return self._wall0 + (time.monotonic() - self._mono0)

    def _set_state(self, state: str, error: str | None = None) -> None:
        assert state in STATES, state
        with self._cond:
            old = self._stats.state
            self._stats.state = state
            if error is not None:
                self._stats.last_error = error
        if old != state:
            level = logging.WARNING if state in ("stalled", "reconnecting", "failed") else logging.INFO
            log.log(level, "source %s: %s -> %s%s", self.name, old, state, f" ({error})" if error else "")

    def _count_reconnect(self) -> None:
        with self._cond:
            self._stats.reconnects += 1

    def _decode_error(self, what: str) -> None:
        """Count a corrupt packet/frame/file and log it (rate-limited)."""
        with self._cond:
            self._stats.decode_errors += 1
            n = self._stats.decode_errors
            self._stats.last_error = what
        if n <= _LOGGED_ERRORS or n % 100 == 0:
            log.warning("source %s: decode error #%d: %s", self.name, n, what)

    def _discard(self, what: str) -> None:
        """A frame that decoded but is flagged corrupt: counted (decoded, skipped, error), never delivered."""
        self._index += 1
        with self._cond:
            self._stats.frames_decoded += 1
            self._stats.frames_skipped += 1
        self._decode_error(what)

    def _admit(self, media_time: float | None) -> int | None:
        """Count one decoded frame; its index when stride and the fps cap keep it, else None.

        ``media_time`` (seconds) drives the fps cap; None uses the capture clock.
        """
        index = self._index
        self._index += 1
        with self._cond:
            self._stats.frames_decoded += 1
        keep = index % self.stride == 0
        if keep and self.fps_cap is not None:
            t = self._now() if media_time is None else media_time
            period = 1.0 / self.fps_cap
            # Admit on a fixed schedule (not "period since the last one"), so a 25 fps input capped at 10
            # gives 10 fps, not 25/3; the small slack absorbs float error in media times.
            if self._next_due is None or t > self._next_due + period:
                self._next_due = t  # first frame, or after a gap (seek, loop, stall): restart the schedule
            keep = t >= self._next_due - 1e-6 * period
            if keep:
                self._next_due += period
        if not keep:
            with self._cond:
                self._stats.frames_skipped += 1
            return None
        return index

    def _offer(self, image: Callable[[], np.ndarray], media_time: float | None = None) -> bool:
        """Hand over one decoded frame; ``image()`` makes the HxWx3 uint8 RGB picture, called only if the
        frame is admitted. Returns False when the source is stopping (the caller should return)."""
        timestamp = self._now()
        index = self._admit(media_time)
        if index is None:
            return not self._stopping()
        # An unpaced (lossless) file runs on its own clock: the rules then time it as the camera would have.
        clock = self._wall0 + media_time if self.lossless and media_time is not None else None
        frame = Frame(self.name, index, timestamp, np.ascontiguousarray(image()), clock)
        with self._cond:
            if self.lossless:
                while len(self._buf) >= self.queue_size and not self._stop.is_set():
                    self._cond.wait()
                if self._stop.is_set():
                    self._stats.frames_dropped += 1  # keeps the accounting identity on stop
                    return False
            elif len(self._buf) >= self.queue_size:
                self._buf.popleft()
                self._stats.frames_dropped += 1
            self._buf.append(frame)
            self._admitted.append(timestamp)
            while self._admitted and self._admitted[0] < timestamp - _FPS_WINDOW_S:
                self._admitted.popleft()
            became_running = self._stats.state != "running"
            self._cond.notify_all()
        if became_running:
            self._set_state("running")
        return not self._stopping()
