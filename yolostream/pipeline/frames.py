"""Types a frame travels in through the pipeline: `Frame` from a source, `FrameResult` after inference."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from yolostream.detections import Detections


@dataclass(frozen=True)
class Frame:
    """One decoded picture from a source.

    Attributes:
        stream: name of the source (unique in a config).
        index: frame number within the source, counting every decoded frame (before stride/fps dropping).
        timestamp: capture time, ``time.time()`` seconds, taken when the decoder produced the frame.
        image: HxWx3 uint8 RGB, C-contiguous.
        media_clock: for a file read unpaced (``realtime: false``): the time the source started plus the
            frame's own media time, so durations follow the video, not the processing speed. None otherwise.
    """

    stream: str
    index: int
    timestamp: float
    image: np.ndarray
    media_clock: float | None = None

    @property
    def clock(self) -> float:
        """The time rules measure dwell, durations and cooldowns in: the media clock where there is one (a
        replayed recording then raises the same alarms however fast it is processed), else capture time."""
        return self.timestamp if self.media_clock is None else self.media_clock

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)``."""
        return int(self.image.shape[0]), int(self.image.shape[1])


@dataclass(frozen=True)
class FrameResult:
    """A frame with its detections (in that frame's pixels), as the batcher hands it back.

    ``inference_done`` is ``time.time()`` when the detections were ready; ``latency_s`` is capture to result.
    """

    frame: Frame
    detections: Detections
    inference_done: float

    @property
    def latency_s(self) -> float:
        return self.inference_done - self.frame.timestamp
