"""`WebState`: what the routes read and change, around one running `Pipeline`.

Built once by `yolostream serve` (or a test) before the server starts: it installs the live view's and the
chart's taps on the pipeline, opens the alarm store, and owns the one worker thread that runs ``/v1/detect``
uploads through the pipeline's detector (one at a time, so uploads queue instead of fighting the pipeline
for the cores; a full queue is answered 429).
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yolostream.pipeline.config import LoadedConfig, WebConfig
from yolostream.web.auth import TokenAuth
from yolostream.web.counts import CountSeries
from yolostream.web.events import EventStore
from yolostream.web.images import decode_upload
from yolostream.web.live import LiveHub
from yolostream.web.metrics import make_registry

log = logging.getLogger("yolostream.web")


class BusyError(Exception):
    """Too many uploads already wait for the detector."""


@dataclass
class DetectStats:
    requests: int = 0
    refused_busy: int = 0
    seconds: float = 0.0  # detector time, summed


@dataclass
class WebState:
    """The running pipeline and the web side's own parts. ``config_path``: the YAML file zones are saved to."""

    pipeline: Any
    config_path: Path
    token: str
    web: WebConfig = field(default_factory=WebConfig)
    hub: LiveHub = field(init=False)
    counts: CountSeries = field(init=False)
    events: EventStore | None = field(init=False)
    auth: TokenAuth = field(init=False)
    detect_stats: DetectStats = field(default_factory=DetectStats)
    started_config: Any = field(init=False)
    registry: Any = field(init=False)

    def __post_init__(self) -> None:
        self.auth = TokenAuth(self.token)
        self.hub = LiveHub(self.pipeline, self.web.live_fps, self.web.live_max_width, self.web.live_quality)
        self.counts = CountSeries()
        self.pipeline.taps += [self.hub.tap, self.counts.observe]
        self.started_config = self.loaded.config  # what runs: a saved edit elsewhere needs a restart
        self.registry = make_registry(self)
        sinks = self.loaded.config.sinks
        snap_dir = sinks.snapshots.dir if sinks.snapshots is not None else None
        self.events = (
            EventStore(sinks.sqlite.path, snap_dir) if sinks.sqlite is not None and sinks.sqlite.alarms else None
        )
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="web-detect")
        self._waiting = 0

    @property
    def loaded(self) -> LoadedConfig:
        return self.pipeline.loaded

    @property
    def max_upload_bytes(self) -> int:
        return int(self.web.max_upload_mb * (1 << 20))

    async def detect(self, data: bytes, name: str) -> dict[str, Any]:
        """Decode (guarded) and detect on the worker thread; the ``predict --json`` record. Raises
        `BusyError` when ``web.detect_queue`` uploads already wait, `ImageReadError` for a bad picture.
        Runs on the event loop (the only place ``_waiting`` changes)."""
        from yolostream.cli.predict import prediction_record

        if self._waiting >= self.web.detect_queue:
            self.detect_stats.refused_busy += 1
            raise BusyError(f"{self._waiting} uploads are waiting for the detector; retry shortly")
        self._waiting += 1
        try:
            return await asyncio.wrap_future(self._pool.submit(self._detect, data, name, prediction_record))
        finally:
            self._waiting -= 1

    def _detect(self, data: bytes, name: str, record: Any) -> dict[str, Any]:
        image = decode_upload(data, self.web.max_pixels, name)
        t0 = time.perf_counter()
        det = self.pipeline.detector(image)[0]
        self.detect_stats.seconds += time.perf_counter() - t0
        self.detect_stats.requests += 1
        return record(name, 0, det)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
