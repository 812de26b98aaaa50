"""`Sink`: where alarm events and per-frame detection summaries leave the pipeline."""

from __future__ import annotations

import json
import math
import re
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from yolostream.pipeline.events import AlarmEvent
from yolostream.pipeline.frames import FrameResult

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    """``text`` reduced to ``[A-Za-z0-9._-]`` (for file names and MQTT topic levels); never empty."""
    cleaned = _UNSAFE.sub("_", text).strip("._")
    return cleaned or "_"


def redact(url: str) -> str:
    """``url`` without user info, query or fragment (they may hold secrets), for messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")) if parts.scheme else "<url>"


def to_json(value: Any) -> str:
    """Strict JSON text: NaN and infinities become ``null`` (PostgreSQL's JSONB refuses them)."""
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(value), sort_keys=True, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


@dataclass(frozen=True)
class DetectionSummary:
    """What one frame of one stream held, without boxes (cheap to store for every frame).

    Attributes:
        stream: source name.
        frame: frame index within the source.
        time: capture time of the frame, ``time.time()`` seconds.
        counts: class name -> number of detections of that class.
        n: number of detections in the frame.
        latency_s: capture-to-result latency in seconds.
    """

    stream: str
    frame: int
    time: float
    counts: dict[str, int] = field(default_factory=dict)
    n: int = 0
    latency_s: float = 0.0

    @classmethod
    def from_result(cls, result: FrameResult) -> DetectionSummary:
        """Summary of one inference result."""
        counts = Counter(result.detections.class_names)
        return cls(
            stream=result.frame.stream,
            frame=int(result.frame.index),
            time=float(result.frame.timestamp),
            counts=dict(sorted(counts.items())),
            n=len(result.detections),
            latency_s=float(result.latency_s),
        )

    @property
    def key(self) -> str:
        """Idempotency key: a stream never has two frames with the same index and capture time."""
        return f"{self.stream}/{self.frame}/{self.time!r}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return to_json(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DetectionSummary:
        return cls(**d)


class Sink(ABC):
    """A destination for alarms and summaries; a context manager whose exit flushes and closes.

    Sinks are called from one thread (the pipeline's sink stage); a sink that talks to the network
    never blocks that thread on the network (it buffers through an `Outbox`). A sink that only takes
    one kind of record ignores the other.
    """

    name: str = "sink"

    def write_alarm(self, event: AlarmEvent) -> None:  # noqa: B027 - a no-op default is the contract
        """Store or forward one alarm; on return it is durable (or, for a buffered sink, queued on disk)."""

    def write_summary(self, summary: DetectionSummary) -> None:  # noqa: B027
        """Store or forward one per-frame summary (may be buffered briefly)."""

    def flush(self) -> None:  # noqa: B027
        """Push anything buffered in memory down to its file or queue."""

    @abstractmethod
    def close(self, timeout: float = 10.0) -> None:
        """Flush, try to deliver what is queued for up to ``timeout`` seconds, release resources.

        Idempotent. Whatever a buffered sink could not deliver stays on disk for the next run.
        """

    def stats(self) -> dict[str, int]:
        """Counters for metrics (``pending``, ``delivered``, ``dropped_*``...); empty when none apply."""
        return {}

    def __enter__(self) -> Sink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
