"""Measure one loaded `Detector`: end-to-end and network-only latency, throughput, memory, GPU figures,
and its accuracy against the eager fp32 reference."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from yolostream.bench import accuracy, gpu, measure, memory
from yolostream.bench.stats import summarize, throughput_from_latency
from yolostream.detections import Detections
from yolostream.detector import Detector
from yolostream.engine.runtime import settle_gc
from yolostream.postprocess.candidates import Candidates

# The GPU throughput run lasts at least this long (NVML averages utilisation over periods of up to 1 s) and
# makes at least this many calls.
MIN_THROUGHPUT_RUN_S = 3.0
MIN_THROUGHPUT_CALLS = 50

Picture = tuple[str, Any]  # (name, anything `Detector` takes: a path, an HWC uint8 array)


def measure_detector(detector: Detector, frames: Sequence[np.ndarray], iters: int, warmup: int) -> dict[str, Any]:
    """Figures of ``detector`` on ``frames`` (one batch).

    e2e: ``detector(frames)``, uint8 HWC frames in, `Detections` out (letterbox, graph, NMS, boxes back to
        the frame). network: the graph alone on the letterboxed batch (normalisation, network, decoding and
        candidate selection: the unit the engines compile), no pre- or postprocessing.
    """
    device = detector.device
    sync = measure.device_sync(device)
    frames = list(frames)
    batch = detector.preprocess(frames)
    calls = {"e2e": lambda: detector(frames), "network": lambda: detector.infer(batch)}
    for fn in calls.values():
        measure.warm_up(fn, warmup, sync)
    settle_gc()  # as `yolostream run` does before serving: no multi-ms collector pauses in the samples
    reset = memory.reset_peak(device)
    samples = {name: measure.time_calls(fn, iters, sync) for name, fn in calls.items()}
    out: dict[str, Any] = {name: summarize(s).to_dict() for name, s in samples.items()}
    out["memory"] = {"peak_mib": memory.peak_mib(device), "peak_reset": reset}
    n = len(frames)
    if device.type != "cuda":
        out["throughput"] = {name: throughput_from_latency(s, n) for name, s in samples.items()}
        out["gpu"] = None
        return out
    out["throughput"], utilization = {}, {}
    read = gpu.utilization_reader(device)
    for name, fn in calls.items():
        p50_s = max(out[name]["p50"] / 1e3, 1e-6)
        count = max(MIN_THROUGHPUT_CALLS, math.ceil(MIN_THROUGHPUT_RUN_S / p50_s))
        if read is None:
            out["throughput"][name] = measure.time_throughput(fn, count, n, sync)
            continue
        with gpu.UtilizationSampler(read) as sampler:
            out["throughput"][name] = measure.time_throughput(fn, count, n, sync)
        utilization[name] = sampler.summary()
    out["gpu"] = {
        "launches": {name: gpu.count_launches(fn, device).to_dict() for name, fn in calls.items()},
        "utilization": utilization or None,
    }
    return out


@dataclass
class Reference:
    """Eager fp32 outputs on the check pictures, what every configuration is compared with."""

    names: list[str]
    candidates: list[Candidates]
    detections: list[Detections]


def _outputs(detector: Detector, picture: Any) -> tuple[Candidates, Detections]:
    batch = detector.preprocess([picture])
    raw = detector.infer(batch)
    return Candidates(*(t[:1].cpu() for t in raw)), detector.postprocess(raw, batch.plans)[0]


def reference(detector: Detector, pictures: Sequence[Picture]) -> Reference:
    """Run the eager fp32 ``detector`` on each picture (batch 1)."""
    outs = [_outputs(detector, pic) for _, pic in pictures]
    return Reference([name for name, _ in pictures], [c for c, _ in outs], [d for _, d in outs])


def check_accuracy(detector: Detector, ref: Reference, pictures: Sequence[Picture]) -> dict[str, Any]:
    """Deviation of ``detector``'s candidates and detections from ``ref`` on the same pictures.

    ``network``: `accuracy.candidate_deviation`, max over pictures; ``detections``: `accuracy.compare_detections`,
    summed over pictures (``unchanged`` only if every picture's detections are).
    """
    devs, diffs = [], []
    for (name, pic), ref_cands, ref_dets in zip(pictures, ref.candidates, ref.detections, strict=True):
        cands, dets = _outputs(detector, pic)
        devs.append(accuracy.candidate_deviation(ref_cands, cands))
        diffs.append(accuracy.compare_detections(ref_dets, dets, image=name))
    return {"network": accuracy.max_deviation(devs), "detections": accuracy.merge(diffs).to_dict()}
