"""`LiveHub`: annotated JPEGs of each stream for the dashboard, encoded only while someone watches.

The pipeline's inference thread only stores a reference to each stream's newest result (a tap: no copy,
no drawing). Encoding happens here, on the web side, in one task per watched stream, at most ``fps`` times a
second and at most ``max_width`` pixels wide; every viewer of that stream is sent the same bytes, so ten
viewers cost what one does. A viewer that reads slowly simply skips to the newest picture.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from PIL import Image

from yolostream.pipeline.annotate import draw_detections, encode_jpeg
from yolostream.pipeline.assemble import overlays
from yolostream.pipeline.frames import FrameResult
from yolostream.pipeline.rules import LineCrossRule

BOUNDARY = "frame"


@dataclass(frozen=True)
class _Line:
    """A line to draw with its counts (what `draw_detections` reads from a `LineCounter`)."""

    start: tuple[float, float]
    end: tuple[float, float]
    count_in: int
    count_out: int


@dataclass
class _Channel:
    """One watched stream. Everything here runs on the event loop's thread, so no lock: a new picture sets
    the current ``fresh`` event (waking every viewer) and puts a new one in its place."""

    fresh: asyncio.Event = field(default_factory=asyncio.Event)
    viewers: int = 0
    seq: int = 0
    jpeg: bytes | None = None
    task: asyncio.Task[None] | None = None


class LiveHub:
    """Newest result per stream (fed by `tap`) and the shared encoders of the live view.

    Args:
        pipeline: the running `Pipeline` (its rules give the zones and lines drawn).
        fps: JPEGs per second per watched stream at most.
        max_width: pictures wider than this are scaled down before drawing (cheaper to draw, encode, send).
        quality: JPEG quality.
    """

    def __init__(self, pipeline: Any, fps: float = 5.0, max_width: int = 640, quality: int = 75) -> None:
        self.pipeline = pipeline
        self.period_s = 1.0 / fps
        self.max_width = max_width
        self.quality = quality
        self.latest: dict[str, FrameResult] = {}
        self.encoded: Counter[str] = Counter()  # JPEGs made for viewers, per stream
        self.closing = False
        self._channels: dict[str, _Channel] = {}

    def tap(self, result: FrameResult) -> None:
        """Pipeline tap (inference thread): keep a reference to the newest result; a dict store, nothing more."""
        self.latest[result.frame.stream] = result

    def viewers(self) -> dict[str, int]:
        return {name: ch.viewers for name, ch in self._channels.items() if ch.viewers}

    def render(self, result: FrameResult, annotate: bool = True) -> bytes:
        """JPEG of ``result``'s frame, scaled to at most ``max_width``, with boxes, track IDs, zones and
        lines (with their counts) drawn unless ``annotate`` is False. Runs in a worker thread."""
        image = result.frame.image
        h, w = image.shape[:2]
        scale = min(1.0, self.max_width / w)
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
        if annotate:
            stream = result.frame.stream
            rules = list(self.pipeline.rules.rules)
            counts = self.pipeline.rules.line_counts(stream)
            zones = [[(x * scale, y * scale) for x, y in z] for z in overlays(rules, stream)["zones"]]
            lines = [
                _Line(
                    (r.line[0][0] * scale, r.line[0][1] * scale),
                    (r.line[1][0] * scale, r.line[1][1] * scale),
                    *counts.get(r.name, (0, 0)),
                )
                for r in rules
                if isinstance(r, LineCrossRule) and (not r.streams or stream in r.streams)
            ]
            det = result.detections
            det = replace(det, xyxy=det.xyxy * scale, image_shape=image.shape[:2])
            clock = time.strftime("%H:%M:%S", time.localtime(result.frame.timestamp))
            image = draw_detections(image, det, zones, lines, title=f"{stream}  {clock}  #{result.frame.index}")
        return encode_jpeg(np.ascontiguousarray(image), self.quality, optimize=False)

    async def frames(self, stream: str) -> AsyncIterator[bytes]:
        """The stream's JPEGs as they are encoded, the current one first; ends when the hub closes."""
        ch = self._channels.setdefault(stream, _Channel())
        ch.viewers += 1
        if ch.task is None or ch.task.done():
            ch.task = asyncio.create_task(self._encode(stream, ch), name=f"live-{stream}")
        seen = 0
        try:
            while not self.closing:
                if ch.seq > seen and ch.jpeg is not None:
                    seen = ch.seq
                    yield ch.jpeg
                    continue
                try:
                    await asyncio.wait_for(ch.fresh.wait(), 1.0)
                except TimeoutError:
                    continue  # wake now and then to notice a closing hub
        finally:
            ch.viewers -= 1

    async def _encode(self, stream: str, ch: _Channel) -> None:
        loop = asyncio.get_running_loop()
        last: FrameResult | None = None
        while ch.viewers > 0 and not self.closing:
            started = loop.time()
            result = self.latest.get(stream)
            if result is not None and result is not last:
                last = result
                jpeg = await asyncio.to_thread(self.render, result)
                ch.jpeg, ch.seq = jpeg, ch.seq + 1
                woken, ch.fresh = ch.fresh, asyncio.Event()
                woken.set()
                self.encoded[stream] += 1
            await asyncio.sleep(max(0.0, self.period_s - (loop.time() - started)))
        ch.jpeg = None  # nobody watches: a later viewer must not get a stale picture first

    async def close(self) -> None:
        """End every viewer's stream (before the server shuts down, which waits for open responses)."""
        self.closing = True
        for ch in self._channels.values():
            ch.fresh.set()


def multipart_part(jpeg: bytes) -> bytes:
    """One part of a ``multipart/x-mixed-replace`` (MJPEG) response."""
    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
    return head + jpeg + b"\r\n"
