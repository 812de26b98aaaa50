"""`VideoFileSource`: a video file decoded with PyAV, played in real time like a camera or read offline."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from yolostream.errors import ConfigError, ImageReadError
from yolostream.pipeline.sources.base import Source, import_av, log

# Consecutive demuxer errors without a good packet in between after which the rest of the file is
# taken as lost (a truncated file fails at the same position every time).
_MAX_DEMUX_FAILURES = 8
# Playing more than this behind the file's clock, re-anchor instead of bursting to catch up.
_MAX_LAG_S = 1.0


class VideoFileSource(Source):
    """Frames of the first video stream of ``path``.

    ``realtime=True`` paces frames at the file's own frame rate, so the file behaves like a camera (a lossy
    buffer of ``queue_size``); ``realtime=False`` decodes as fast as the consumer takes frames and loses
    none. ``loop`` starts again at the end; media time (for the ``fps`` cap) keeps increasing across loops.
    Corrupt packets or frames are counted in ``decode_errors`` and skipped; a truncated file delivers what
    decodes and then ends (or loops). A file with no decodable frame at all makes the source ``failed``.
    """

    def __init__(
        self,
        name: str,
        path: str | Path,
        loop: bool = False,
        fps: float | None = None,
        stride: int = 1,
        realtime: bool = True,
        queue_size: int = 2,
    ) -> None:
        super().__init__(name, fps=fps, stride=stride, queue_size=queue_size, lossless=not realtime)
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"source {name!r}: video file not found: {self.path}")
        import_av()
        self.loop = loop
        self.realtime = realtime
        # (monotonic clock, media time) of the pacing origin; kept across loops so they join seamlessly.
        self._anchor: tuple[float, float] | None = None

    def _run(self) -> None:
        offset = 0.0
        while not self._stopping():
            n, end = self._play_once(offset)
            if n == 0 and not self._stopping():
                raise ImageReadError(f"{self.path}: no decodable video frame")
            if not self.loop:
                return
            offset = end

    def _play_once(self, offset: float) -> tuple[int, float]:
        """Play the file once with media times starting at ``offset``; returns (good frames, end media time)."""
        av = import_av()
        try:
            container = av.open(str(self.path))
        except av.error.FFmpegError as e:
            raise ImageReadError(f"{self.path}: cannot open video: {e}") from e
        with container:
            if not container.streams.video:
                raise ImageReadError(f"{self.path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame threads: throughput over latency, fine for a file
            period = 1.0 / float(stream.average_rate or stream.guessed_rate or 25)
            decoded, good, first, last = 0, 0, None, None
            for frame in self._frames(container, stream):
                decoded += 1
                if frame.is_corrupt:
                    self._discard(f"{self.path}: corrupt frame at pts {frame.pts}")
                    continue
                ft = frame.time
                if ft is not None and first is None:
                    first = ft
                t = offset + ft - first if ft is not None and first is not None else None
                if t is None or (last is not None and t <= last):
                    # Missing or non-increasing timestamps (corruption): assume the nominal frame rate.
                    t = offset if last is None else last + period
                last = t
                if self.realtime:
                    now = time.monotonic()
                    if self._anchor is None or now - (self._anchor[0] + t - self._anchor[1]) > _MAX_LAG_S:
                        self._anchor = (now, t)
                    if self._sleep(self._anchor[0] + t - self._anchor[1] - now):
                        return good, t
                if not self._offer(lambda f=frame: f.to_ndarray(format="rgb24"), t):
                    return good + 1, t
                good += 1
            if 0 < decoded < (stream.frames or 0) and not self._stopping():
                # Frame threading can swallow the error of a cut last packet: the index still tells.
                self._decode_error(f"{self.path}: ends early, {decoded} of {stream.frames} frames decoded")
        return good, (offset if last is None else last + period)

    def _frames(self, container: Any, stream: Any) -> Iterator[Any]:
        """Decoded frames; packets that fail to demux or decode are counted and skipped."""
        av = import_av()
        packets = container.demux(stream)
        failures = 0
        while not self._stopping():
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.error.FFmpegError as e:
                self._decode_error(f"{self.path}: demuxing: {e}")
                failures += 1
                if failures >= _MAX_DEMUX_FAILURES:
                    log.warning("source %s: %s unreadable past this point, ending it", self.name, self.path)
                    return
                packets = container.demux(stream)  # the old generator is dead; go on from where it stopped
                continue
            failures = 0
            try:
                decoded = packet.decode()
            except av.error.FFmpegError as e:
                self._decode_error(f"{self.path}: decoding packet at pts {packet.pts}: {e}")
                continue
            yield from decoded
