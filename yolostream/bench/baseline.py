"""ONNX Runtime and OpenVINO measured beside the torch engines, network only, on the same float input.

The model is exported to ONNX once per batch size (static shapes, like the compiled buckets). The runtimes
take float32 [B, 3, H, W] in [0, 1] and return the raw output [B, 4 + nc, A]: no uint8 normalisation and no
candidate selection, so their "network" time does a little less work than the torch graph's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from yolostream.bench import accuracy, measure, memory
from yolostream.bench.detector_run import Picture
from yolostream.bench.stats import summarize, throughput_from_latency
from yolostream.detector import Detector
from yolostream.engine import baselines
from yolostream.errors import ConfigError

RUNNERS = {"onnxruntime": baselines.OnnxRuntimeRunner, "openvino": baselines.OpenVINORunner}


def baseline_specs(names: Sequence[str], dtypes: Sequence[str]) -> list[tuple[str, str]]:
    """(runtime, precision) pairs to run: each runtime in fp32; OpenVINO also in bf16 when bf16 is benched
    and the CPU has it natively (elsewhere OpenVINO refuses it rather than emulate)."""
    missing = [n for n in names if not RUNNERS[n].available()]
    if names and not baselines.export_available():
        missing.insert(0, "onnx export (onnx, onnxscript)")
    if missing:
        raise ConfigError(
            f"baseline runtime not installed: {', '.join(missing)}: pip install 'yolostream[onnx,openvino]'"
        )
    specs = [(n, "fp32") for n in names]
    if "openvino" in names and "bf16" in dtypes and baselines.OpenVINORunner.native_bf16():
        specs.append(("openvino", "bf16"))
    return specs


@contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Hold these loggers at WARNING: the exporter logs every optimisation pass at INFO, which the command
    line shows, burying the bench's own progress."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(max(lg.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _float_input(detector: Detector, pictures: Sequence[Any], batch: int) -> tuple[np.ndarray, torch.Tensor]:
    """The letterboxed pictures as float32 [batch, 3, H, W] in [0, 1] (cycled to fill the batch), divided by
    255 as the torch graph does, and the eager fp32 network's raw output on it."""
    images = detector.preprocess([pictures[i % len(pictures)] for i in range(batch)]).images
    x = images.to(torch.float32) / 255
    with torch.inference_mode():
        y = detector.model(x, detector.graph_config.one2one)  # type: ignore[misc]
    return x.cpu().numpy(), y.float().cpu()


def measure_baselines(
    reference: Detector,
    specs: Sequence[tuple[str, str]],
    batch: int,
    frames: Sequence[np.ndarray],
    pictures: Sequence[Picture],
    *,
    iters: int,
    warmup: int,
    threads: int,
    workdir: Path,
) -> list[dict[str, Any]]:
    """One result per spec at ``batch``; ``reference`` is the eager fp32 CPU detector (its model is exported)."""
    if not specs:
        return []
    size = reference.config.imgsz
    results = [
        {"kind": "baseline", "name": f"{r}-{p}", "mode": r, "dtype": p, "batch": batch, "error": None} for r, p in specs
    ]
    start = time.perf_counter()
    try:
        with _quiet("onnxscript", "onnx_ir", "torch.onnx"):
            onnx = baselines.export_onnx(
                reference.model,  # type: ignore[arg-type]
                workdir / f"b{batch}x{size}.onnx",
                (size, size),
                batch,
                one2one=reference.graph_config.one2one,
            )
    except Exception as e:  # no file for the runtimes: each reports it, the torch figures stay
        for result in results:
            result["error"] = f"ONNX export failed: {type(e).__name__}: {e}"
        return results
    export_s = time.perf_counter() - start
    x, _ = _float_input(reference, list(frames), batch)
    checks = [_float_input(reference, [pic], batch) for _, pic in pictures]
    for result, (runtime, precision) in zip(results, specs, strict=True):
        result["export_s"] = export_s
        try:
            result.update(_measure_one(runtime, precision, onnx, x, checks, iters, warmup, threads))
        except Exception as e:  # one runtime failing must not lose the others' figures
            result["error"] = f"{type(e).__name__}: {e}"
    return results


def _measure_one(
    runtime: str,
    precision: str,
    onnx: Path,
    x: np.ndarray,
    checks: Sequence[tuple[np.ndarray, torch.Tensor]],
    iters: int,
    warmup: int,
    threads: int,
) -> dict[str, Any]:
    before = memory.rss_mib()
    reset = memory.reset_peak_rss()
    start = time.perf_counter()
    kwargs = {"precision": precision} if runtime == "openvino" else {}
    runner = RUNNERS[runtime](onnx, threads=threads, **kwargs)
    compile_s = time.perf_counter() - start
    load_peak = memory.peak_rss_mib()
    measure.warm_up(lambda: runner(x), warmup)
    reset = memory.reset_peak_rss() and reset
    samples = measure.time_calls(lambda: runner(x), iters)
    peak = memory.peak_rss_mib()
    devs = [accuracy.output_deviation(y, runner(xc)) for xc, y in checks]
    return {
        "runtime": {"name": runtime, "version": runner.version, "precision": precision, "threads": runner.threads},
        "compile_s": compile_s,
        "load_s": compile_s,
        "e2e": None,
        "network": summarize(samples).to_dict(),
        "throughput": {"network": throughput_from_latency(samples, x.shape[0])},
        "memory": {"peak_mib": peak, "load_peak_mib": load_peak, "peak_reset": reset, "rss_before_mib": before},
        "gpu": None,
        "accuracy": {"network": accuracy.max_deviation(devs), "detections": None},
    }
