"""`VideoRecorder`: annotated frames of each stream recorded to MP4 files that rotate by duration."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from yolostream.errors import ConfigError, ShapeError
from yolostream.pipeline.sinks.base import Sink, safe_name

log = logging.getLogger(__name__)

# Timestamps in milliseconds: fine enough for any camera rate, coarse enough to keep pts small.
_TIME_BASE = Fraction(1, 1000)


@dataclass
class _Segment:
    container: Any
    stream: Any
    path: Path
    start: float
    shape: tuple[int, int]
    last_pts: int = -1
    frames: int = 0


class VideoRecorder(Sink):
    """Encodes frames per stream to ``<directory>/<stream>/<UTC start time>.mp4`` with PyAV.

    Frames are stamped with their capture time, so a stream with dropped or irregular frames plays
    back at the right speed. A new file starts every ``segment_s`` seconds of capture time, and when
    the picture size changes. Files are fragmented MP4 by default, so a crash leaves a playable file
    up to the last fragment instead of one without its index. Odd sizes lose their last row/column
    (4:2:0 chroma needs even sizes).

    Args:
        fps: nominal rate, a hint for the encoder's rate control.
        codec: encoder name (``libx264``; ``mpeg4`` where H.264 is not built in).
        options: encoder options, e.g. ``{"crf": "23", "preset": "veryfast"}``.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        name: str = "video",
        fps: float = 25.0,
        segment_s: float = 300.0,
        codec: str = "libx264",
        options: dict[str, str] | None = None,
        fragmented: bool = True,
    ) -> None:
        try:
            import av
        except ImportError as e:  # optional dependency
            raise ConfigError(f"sink {name!r}: video recording needs PyAV: pip install 'yolostream[video]'") from e
        if segment_s <= 0 or fps <= 0:
            raise ConfigError(f"sink {name!r}: segment_s and fps must be > 0, got {segment_s}, {fps}")
        try:
            av.codec.Codec(codec, "w")
        except Exception as e:
            raise ConfigError(f"sink {name!r}: no video encoder named {codec!r} in this PyAV build") from e
        self._av = av
        self.directory = Path(directory)
        self.name = name
        self.fps = fps
        self.segment_s = segment_s
        self.codec = codec
        self.options = {"preset": "veryfast", "crf": "23"} if options is None and codec == "libx264" else options
        self.fragmented = fragmented
        self._segments: dict[str, _Segment] = {}
        self.files: list[Path] = []
        self.frames = 0

    def write_frame(self, stream: str, image: np.ndarray, timestamp: float) -> None:
        """Append one frame: ``image`` HxWx3 uint8 RGB, ``timestamp`` its capture time (seconds)."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ShapeError(f"video {stream!r}: expected HxWx3 uint8, got {image.shape} {image.dtype}")
        h, w = image.shape[0] & ~1, image.shape[1] & ~1
        if h == 0 or w == 0:
            raise ShapeError(f"video {stream!r}: frame {image.shape} too small to encode")
        seg = self._segments.get(stream)
        if seg is not None and (seg.shape != (h, w) or timestamp - seg.start >= self.segment_s):
            self._finish(stream)
            seg = None
        if seg is None:
            seg = self._open(stream, (h, w), timestamp)
        # Capture clocks can repeat or step back (NTP); pts must strictly increase.
        pts = max(round((timestamp - seg.start) / _TIME_BASE), seg.last_pts + 1)
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:h, :w]), format="rgb24")
        frame.pts = pts
        frame.time_base = _TIME_BASE
        for packet in seg.stream.encode(frame):
            seg.container.mux(packet)
        seg.last_pts = pts
        seg.frames += 1
        self.frames += 1

    def _open(self, stream: str, shape: tuple[int, int], start: float) -> _Segment:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(start)) + f".{int(start % 1 * 1000):03d}Z"
        path = self.directory / safe_name(stream) / f"{stamp}.mp4"
        n = 0
        while path.exists():  # a size change within the same millisecond
            n += 1
            path = path.with_name(f"{stamp}-{n}.mp4")
        path.parent.mkdir(parents=True, exist_ok=True)
        options = {"movflags": "frag_keyframe+empty_moov+default_base_moof"} if self.fragmented else {}
        container = self._av.open(str(path), "w", format="mp4", options=options)
        out = container.add_stream(self.codec, rate=Fraction(self.fps).limit_denominator(1001))
        out.height, out.width = shape
        out.pix_fmt = "yuv420p"
        out.time_base = _TIME_BASE
        out.codec_context.time_base = _TIME_BASE
        if self.options:
            out.options = dict(self.options)
        seg = _Segment(container, out, path, start, shape)
        self._segments[stream] = seg
        self.files.append(path)
        return seg

    def _finish(self, stream: str) -> None:
        seg = self._segments.pop(stream)
        try:
            for packet in seg.stream.encode(None):
                seg.container.mux(packet)
        finally:
            seg.container.close()
        log.info("video %s: closed %s (%d frames)", stream, seg.path, seg.frames)

    def close(self, timeout: float = 10.0) -> None:
        """Flush the encoders and close every open file."""
        for stream in list(self._segments):
            try:
                self._finish(stream)
            except Exception:  # one broken file must not keep the others open
                log.exception("video %s: could not finish %s", stream, self.directory)

    def stats(self) -> dict[str, int]:
        return {"frames": self.frames, "files": len(self.files), "open": len(self._segments)}
