"""How many camera streams the whole pipeline sustains here: trials of N looped streams, and a search on N.

A trial plays N copies of a generated clip (`synthetic.write_demo_clip`) as real-time looping sources,
their starts staggered over one frame period like independent cameras, through the full pipeline of
`yolostream run`: cross-stream batching, the detector, tracking, a zone rule and a line rule, and the
SQLite sink with per-frame summaries. After a warm-up, figures are taken over ``duration_s``: each
stream's sustained result rate, latency capture -> result and capture -> alarm stored, drops, process
CPU time and memory. A trial *holds* a target rate when every stream's rate is at least
``(1 - tolerance) * target``.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from yolostream.pipeline.app import Pipeline
from yolostream.pipeline.config import config_from_data
from yolostream.pipeline.metrics import percentile_ms

RESOLUTIONS = {
    "2160p": (3840, 2160),
    "1080p": (1920, 1080),
    "720p": (1280, 720),
    "480p": (854, 480),
    "360p": (640, 360),
}


@dataclass(frozen=True)
class BenchSettings:
    """``stream_fps``: the clip's rate and the pace of each source; ``target_fps``: the rate to hold."""

    model: str
    imgsz: int = 640
    device: str = "cpu"
    stream_fps: float = 15.0
    target_fps: float = 15.0
    tolerance: float = 0.05
    duration_s: float = 12.0
    warmup_s: float = 4.0
    max_batch: int | None = None
    max_wait_ms: float = 10.0
    engine: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class TrialResult:
    """Figures of one trial; latencies in ms (None without samples), CPU in % of one core."""

    resolution: str
    streams: int
    holds: bool
    fps_min: float
    fps_mean: float
    fps_per_stream: list[float]
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    alarm_latency_p50_ms: float | None
    alarm_latency_p99_ms: float | None
    alarms: int
    frames: int
    drops: int
    drop_pct: float
    cpu_pct: float
    rss_mb: float
    peak_rss_mb: float
    batch_mean: float
    batch_ms: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def trial_config(clip: Path, n: int, size: tuple[int, int], s: BenchSettings, out_dir: Path) -> Any:
    """The pipeline config of one trial (a `LoadedConfig`)."""
    w, h = size
    data = {
        "model": {"path": s.model, "imgsz": s.imgsz, "device": s.device, "engine": dict(s.engine)},
        "sources": [
            {"name": f"cam{i:02d}", "uri": str(clip), "loop": True, "realtime": True, "queue_size": 2} for i in range(n)
        ],
        # On the synthetic scene: the box enters the right third once per period and crosses the middle twice.
        "zones": {"bay": [[w * 2 / 3, h / 2], [w, h / 2], [w, h], [w * 2 / 3, h]]},
        "lines": {"gate": [[w / 2, h / 2], [w / 2, h]]},
        "rules": [
            {"name": "bay", "kind": "presence", "zone": "bay", "min_conf": 0.4, "cooldown_s": 1.0},
            {"name": "gate", "kind": "line_cross", "line": "gate", "min_conf": 0.4},
        ],
        "tracking": {"frame_rate": s.stream_fps},
        "batcher": {"max_batch": s.max_batch, "max_wait_ms": s.max_wait_ms},
        "sinks": {"state_dir": str(out_dir / "state"), "sqlite": {"path": str(out_dir / f"trial-{n}.db")}},
        "server": {"metrics": False},
    }
    return config_from_data(data, source="<bench>")


def _rss_mb() -> float:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return float("nan")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_trial(detector: Any, clip: Path, resolution: str, n: int, s: BenchSettings) -> TrialResult:
    """One trial of ``n`` streams of ``clip``; see the module docstring."""
    size = RESOLUTIONS[resolution]
    with tempfile.TemporaryDirectory(prefix="yolostream-bench-") as tmp:
        loaded = trial_config(clip, n, size, s, Path(tmp))
        pipeline = Pipeline(loaded, detector=detector, metrics_window_s=s.duration_s + s.warmup_s + 5)
        try:
            pipeline.start(stagger_s=1.0 / s.stream_fps / n)
            pipeline.wait(s.warmup_s)
            before = pipeline.snapshot()
            calls0, frames0, busy0 = before.batches.calls, before.batches.frames, _busy_s(before.batches)
            pipeline.metrics.reset()
            cpu0, t0 = time.process_time(), time.monotonic()
            pipeline.wait(s.duration_s)
            elapsed = time.monotonic() - t0
            cpu = time.process_time() - cpu0
            after = pipeline.snapshot()
            lat = pipeline.metrics.pooled()
            alat = pipeline.metrics.pooled(alarms=True)
            rss = _rss_mb()
        finally:
            pipeline.close(sink_timeout=2.0)
    fps = [st.frames / elapsed for st in after.streams]
    frames = sum(st.frames for st in after.streams)
    drops = sum(a.drops - b.drops for a, b in zip(after.streams, before.streams, strict=True))
    calls = after.batches.calls - calls0
    return TrialResult(
        resolution=resolution,
        streams=n,
        holds=min(fps) >= (1 - s.tolerance) * s.target_fps,
        fps_min=min(fps),
        fps_mean=float(np.mean(fps)),
        fps_per_stream=[round(f, 2) for f in fps],
        latency_p50_ms=percentile_ms(lat, 50),
        latency_p99_ms=percentile_ms(lat, 99),
        alarm_latency_p50_ms=percentile_ms(alat, 50),
        alarm_latency_p99_ms=percentile_ms(alat, 99),
        alarms=sum(st.alarms for st in after.streams),
        frames=frames,
        drops=drops,
        drop_pct=100.0 * drops / max(1, drops + frames),
        cpu_pct=100.0 * cpu / elapsed,
        rss_mb=rss,
        peak_rss_mb=_peak_rss_mb(),
        batch_mean=(after.batches.frames - frames0) / calls if calls else 0.0,
        batch_ms=1000.0 * (_busy_s(after.batches) - busy0) / calls if calls else 0.0,
    )


def _busy_s(b: Any) -> float:
    return b.preprocess_s + b.infer_s + b.postprocess_s


def search_streams(
    trial: Callable[[int], TrialResult], max_streams: int = 64, counts: list[int] | None = None
) -> tuple[int, list[TrialResult]]:
    """The largest N whose trial holds, and every trial run. ``counts`` given: exactly those trials.

    Otherwise N doubles from 1 while trials hold, then a bisection between the last N that held and
    the first that did not (assumes more streams never hold better, true up to measurement noise).
    """
    results: list[TrialResult] = []

    def holds(n: int) -> bool:
        results.append(trial(n))
        return results[-1].holds

    if counts:
        for n in counts:
            holds(n)
        return max((r.streams for r in results if r.holds), default=0), results
    good, bad, n = 0, None, 1
    while n <= max_streams:
        if holds(n):
            good, n = n, n * 2
        else:
            bad = n
            break
    if bad is None:
        return good, results
    while bad - good > 1:
        mid = (good + bad) // 2
        if holds(mid):
            good = mid
        else:
            bad = mid
    return good, results
