"""Load the detector of one bench configuration: eager, torch.compile'd, or an AOT package exported here."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yolostream.api import load
from yolostream.detector import Detector
from yolostream.engine.buckets import Bucket


@dataclass
class Loaded:
    """A ready detector and what getting it ready cost.

    compile_s: compilation apart from steady state: the compiled runner's warm-up (its first calls per
        bucket, compilation included) or the AOT export; None for eager.
    load_s: wall time from the call to a ready detector (checkpoint read + compile; for a package: its load).
    cold_start: AOT packages only: load and first result in a fresh process (see `yolostream.bench.coldstart`).
    """

    detector: Detector
    compile_s: float | None
    load_s: float
    cold_start: dict[str, Any] | None = None


def load_config(
    model: str,
    mode: str,
    dtype: str,
    batch: int,
    *,
    device: str,
    imgsz: int,
    threads: int,
    workdir: Path,
    progress: bool = False,
    cold: bool = True,
) -> Loaded:
    """The detector of ``mode`` x ``dtype`` serving batches of ``batch`` images of imgsz x imgsz.

    ``cold``: for an AOT package, also time its load in a fresh process (`cold_start`).
    """
    start = time.perf_counter()
    if mode == "eager":
        detector = load(model, device=device, imgsz=imgsz, dtype=dtype)
        return Loaded(detector, None, time.perf_counter() - start)
    if mode == "aoti":
        return _load_package(
            model, dtype, batch, device=device, imgsz=imgsz, threads=threads, workdir=workdir, cold=cold
        )
    detector = load(
        model,
        device=device,
        imgsz=imgsz,
        dtype=dtype,
        compile=mode,
        buckets=[(batch, imgsz, imgsz)],
        threads=threads,
        progress=progress,
    )
    load_s = time.perf_counter() - start
    return Loaded(detector, detector.runner.report.total, load_s)  # type: ignore[attr-defined]


def _load_package(
    model: str, dtype: str, batch: int, *, device: str, imgsz: int, threads: int, workdir: Path, cold: bool
) -> Loaded:
    from yolostream.engine.aot import export_package

    path = workdir / f"{Path(model).stem}-{dtype}-b{batch}x{imgsz}.pt2"
    eager = load(model, device=device, imgsz=imgsz, dtype=dtype)
    seconds = export_package(eager, [Bucket(batch, imgsz, imgsz)], path)
    del eager
    start = time.perf_counter()
    detector = load(path, device=device, threads=threads)
    load_s = time.perf_counter() - start
    fresh = cold_start(path, device=device, threads=threads, imgsz=imgsz, batch=batch) if cold else None
    return Loaded(detector, sum(seconds.values()), load_s, fresh)


def cold_start(
    package: Path, *, device: str, threads: int, imgsz: int, batch: int, timeout_s: float = 600
) -> dict[str, Any]:
    """Load ``package`` and run one frame in a fresh Python process; its timings plus ``process_s``, the
    whole process from spawn to exit. A failure comes back as ``{"error": ...}``, not an exception."""
    command = [sys.executable, "-m", "yolostream.bench.coldstart", str(package), "--device", device]
    command += ["--threads", str(threads), "--imgsz", str(imgsz), "--batch", str(batch)]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"no result within {timeout_s:.0f}s"}
    process_s = time.perf_counter() - start
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {done.returncode}: {tail}"}
    return {**json.loads(lines[-1]), "process_s": process_s}
