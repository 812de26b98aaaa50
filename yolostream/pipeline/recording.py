"""`RecordingStage`: annotated video of chosen streams, drawn and encoded on its own thread.

Drawing and H.264 encoding cost about as much as inference per frame, so they run apart from it, behind
a bounded queue: when the encoder falls behind, the oldest waiting frames are skipped (counted) and the
recording gets choppy instead of the detections getting late.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from yolostream.pipeline.frames import FrameResult
from yolostream.pipeline.sinks import VideoRecorder

log = logging.getLogger("yolostream.pipeline")


class RecordingStage:
    """Feeds `FrameResult`s of ``streams`` (None: all) to ``recorder``, drawn with ``annotate``.

    ``overlays`` maps a stream to the zones and lines drawn on it (``{"zones": [...], "lines": [...]}``).
    """

    def __init__(
        self,
        recorder: VideoRecorder,
        streams: Iterable[str] | None = None,
        annotate: bool = True,
        overlays: Mapping[str, Mapping[str, Sequence[Any]]] | None = None,
        max_queue: int = 32,
    ) -> None:
        self.recorder = recorder
        self.streams = None if streams is None else set(streams)
        self.annotate = annotate
        self.overlays = dict(overlays or {})
        self._queue: deque[FrameResult] = deque()
        self._max_queue = max_queue
        self._cond = threading.Condition()
        self._closing = False
        self.skipped = 0
        self.errors = 0
        self._thread = threading.Thread(target=self._main, name="recorder", daemon=True)

    def start(self) -> RecordingStage:
        self._thread.start()
        return self

    def wants(self, stream: str) -> bool:
        return self.streams is None or stream in self.streams

    def put(self, result: FrameResult) -> None:
        if not self.wants(result.frame.stream):
            return
        with self._cond:
            if len(self._queue) >= self._max_queue:
                self._queue.popleft()
                self.skipped += 1
            self._queue.append(result)
            self._cond.notify()

    def close(self, timeout: float = 10.0) -> None:
        """Encode what is queued, then finish the files."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join()
        self.recorder.close(timeout)

    def stats(self) -> dict[str, int]:
        return {**self.recorder.stats(), "skipped": self.skipped, "errors": self.errors}

    def _main(self) -> None:
        from yolostream.pipeline.annotate import draw_detections

        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                result = self._queue.popleft()
            frame = result.frame
            try:
                image = frame.image
                if self.annotate:
                    extra = self.overlays.get(frame.stream, {})
                    image = draw_detections(
                        image,
                        result.detections,
                        zones=extra.get("zones", ()),
                        lines=extra.get("lines", ()),
                        title=f"{frame.stream} #{frame.index}",
                    )
                self.recorder.write_frame(frame.stream, image, frame.timestamp)
            except Exception as e:
                self.errors += 1
                if self.errors <= 5:
                    log.error(
                        "recording %s: frame %d not written: %s: %s", frame.stream, frame.index, type(e).__name__, e
                    )
