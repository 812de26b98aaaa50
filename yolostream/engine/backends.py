"""Inference backends behind one `Detector`: which exist, which precisions each runs here, and building one.

Every backend swaps only the network (or the whole compiled graph, for Inductor); the torch preprocessing,
candidate selection, NMS and mapping back to pixels stay the same, so detections and the API are identical.

| backend | precisions | how |
|---|---|---|
| ``inductor`` | fp32, bf16 (native only worth it), int8 | `CompiledRunner` over the graph; int8: PT2E + x86 quantizer |
| ``openvino`` | fp32, bf16 (native only), int8 | exported program converted, CPU plugin; int8: NNCF |
| ``onnxruntime`` | fp32 | static ONNX per bucket, CPU execution provider |
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from yolostream.engine.buckets import Bucket
from yolostream.engine.runtime import native_bf16
from yolostream.errors import ConfigError

BACKENDS: tuple[str, ...] = ("inductor", "openvino", "onnxruntime")
PRECISIONS: dict[str, tuple[str, ...]] = {
    "inductor": ("fp32", "bf16", "int8"),
    "openvino": ("fp32", "bf16", "int8"),
    "onnxruntime": ("fp32",),
}


def backend_available(backend: str, dtype: str = "fp32") -> bool:
    """Whether ``backend`` can run ``dtype`` on this machine with what is installed."""
    if backend not in PRECISIONS:
        raise ConfigError(f"unknown backend {backend!r}: choose from {', '.join(BACKENDS)} or auto")
    if dtype not in PRECISIONS[backend]:
        return False
    if dtype == "bf16" and not native_bf16():
        return False  # emulated bf16 is several times slower than fp32: never a candidate
    if backend == "inductor":
        from yolostream.quant import pt2e

        return dtype != "int8" or pt2e.available()
    module = importlib.import_module(f"yolostream.engine.{backend}_backend")
    return bool(module.available(dtype))


def candidates(backends: Sequence[str] = BACKENDS, dtypes: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """The (backend, dtype) pairs available here, in the order of ``backends`` then each one's precisions."""
    return [
        (b, d) for b in backends for d in PRECISIONS[b] if (dtypes is None or d in dtypes) and backend_available(b, d)
    ]


def build_runner(
    detector: Any,
    backend: str,
    dtype: str,
    buckets: Sequence[Bucket],
    *,
    mode: str = "default",
    outside: str = "error",
    threads: int | None = None,
    cache_dir: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    calib: Any = None,
    inductor_options: Mapping[str, Any] | None = None,
) -> Any:
    """The runner serving ``detector``'s graph through ``backend`` in ``dtype`` for ``buckets``.

    ``detector`` is an eager fp32 CPU `Detector` for every dtype but the Inductor bf16 one (its graph carries
    the autocast); ``calib``: calibration pictures (a folder or files) for int8; ``inductor_options``: Inductor
    settings patched in while compiling (e.g. ``{"cpp_wrapper": True}``; inductor backend only).
    """
    if backend not in PRECISIONS:
        raise ConfigError(f"unknown backend {backend!r}: choose from {', '.join(BACKENDS)} or auto")
    if dtype not in PRECISIONS[backend]:
        raise ConfigError(f"backend {backend!r} runs {', '.join(PRECISIONS[backend])}, not {dtype!r}")
    if backend != "inductor" and detector.device.type != "cpu":
        raise ConfigError(f"the {backend} backend runs on the CPU; use backend='inductor' on {detector.device}")
    if inductor_options and backend != "inductor":
        raise ConfigError(f"inductor_options apply to the inductor backend, not {backend!r}")
    calibration = _calibration(calib, buckets) if dtype == "int8" else None
    if backend == "inductor":
        return _inductor(
            detector, dtype, buckets, mode, outside, threads, cache_dir, progress, calibration, inductor_options
        )
    from yolostream.engine.external import ExternalRunner
    from yolostream.graph import InferenceGraph

    module = importlib.import_module(f"yolostream.engine.{backend}_backend")
    one2one = detector.graph_config.one2one
    kwargs = {"calibration": calibration} if backend == "openvino" else {}
    network, seconds, version = module.build_sessions(
        detector.model, buckets, one2one=one2one, precision=dtype, threads=threads, **kwargs
    )
    runner = ExternalRunner(
        network,
        InferenceGraph(network, detector.graph_config),  # type: ignore[arg-type]
        backend=backend,
        dtype=dtype,
        fallback=detector.graph,
        outside=outside,  # type: ignore[arg-type]
        build_s=seconds,
        versions={backend: version},
    )
    if dtype == "int8":  # only OpenVINO runs int8 here; its float remainder follows the same rule as Inductor's
        runner.float_parts = "bf16" if module.native_bf16() else "fp32"
    return runner


def _calibration(calib: Any, buckets: Sequence[Bucket]) -> dict[Bucket, list[Any]]:
    from yolostream.quant.calibration import calibration_batches, calibration_files

    files = calibration_files(calib)
    return {b: calibration_batches(files, b) for b in buckets}


def _inductor(
    detector: Any,
    dtype: str,
    buckets: Sequence[Bucket],
    mode: str,
    outside: str,
    threads: int | None,
    cache_dir: str | None,
    progress: Callable[[str, int, int], None] | None,
    calibration: dict[Bucket, list[Any]] | None,
    inductor_options: Mapping[str, Any] | None = None,
) -> Any:
    from yolostream.engine.compiled import CompiledRunner
    from yolostream.graph import InferenceGraph

    graph = detector.graph
    float_parts = None
    if dtype == "int8":
        from yolostream.quant.pt2e import quantize_network

        if outside != "error":
            raise ConfigError("INT8 graphs exist only for the buckets: outside='eager' is not supported with int8")
        network = quantize_network(detector.model, calibration or {}, one2one=detector.graph_config.one2one)
        float_parts = int8_float_parts(detector.device)
        config = replace(detector.graph_config, amp=float_parts)
        graph = InferenceGraph(network, config)  # type: ignore[arg-type]
        from yolostream.quant.bias_pass import with_bias_pass

        # bf16 parts: the int8 convolutions' biases as fp32 constants, not widened from bf16 on every call.
        inductor_options = with_bias_pass(float_parts, inductor_options)
    if mode == "aoti":
        from yolostream.engine.aot import compile_aot

        if outside != "error":
            raise ConfigError("compile='aoti' serves only its buckets: outside='eager' is not supported")
        runner: Any = compile_aot(
            detector,
            buckets,
            graph=graph,  # the INT8 graph, else the detector's own (for bf16 it carries the autocast)
            threads=threads,
            cache_dir=cache_dir,
            progress=progress,
            inductor_options=dict(inductor_options or {}),
        )
        if dtype == "int8":
            runner.network = graph.model  # what the accuracy gate's mAP check runs eagerly
    else:
        runner = CompiledRunner(
            graph,
            buckets,
            mode,
            outside=outside,
            threads=threads,
            cache_dir=cache_dir,
            progress=progress,  # type: ignore[arg-type]
            inductor_options=dict(inductor_options or {}),
        )
    runner.dtype = dtype
    runner.float_parts = float_parts or "fp32"
    return runner


def int8_float_parts(device: Any) -> str | None:
    """Precision of what an INT8 graph leaves in float (kept layers, the q/dq and elementwise work between the
    int8 convolutions): "bf16" on a CPU with native bf16 (torchao's int8-mixed-bf16 recipe: autocast around
    the converted graph, which Inductor lowers to int8 convolutions with bf16 outputs), else None (fp32).

    Measured on yolov8n 640 (AVX-512 + AMX, 2 threads, `bench/int8_variants.py`): 0.93x the network time of
    fp32 float parts; yolo11n-shapes mAP50-95 +0.0007 (quantized stem) / +0.003 (float stem) against them.
    """
    import torch

    return "bf16" if torch.device(device).type == "cpu" and native_bf16() else None
