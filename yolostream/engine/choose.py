"""`load(..., backend=..., dtype=...)`: the eager fp32 reference detector, then the runner of one backend or
of the ``auto`` choice around it. Kept apart from `yolostream.api` so the default path imports none of it."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from yolostream.detector import Detector, DetectorConfig
from yolostream.engine.backends import BACKENDS, PRECISIONS, build_runner, candidates
from yolostream.engine.buckets import Bucket, parse_buckets
from yolostream.errors import ConfigError

log = logging.getLogger("yolostream")


def default_mode(device: str | torch.device, dtype: str) -> str:
    """The Inductor compile mode when none is given: "aoti" for INT8 on the CPU, else "default" (torch.compile).

    Why: an INT8 engine serves only its buckets either way (no eager fallback), so AOTInductor takes no feature
    away, and it runs the same kernels without Dynamo's per-call guards and Python wrapper: yolov8n 640 network
    only, one run each: 0.89x the torch.compile time with every kernel capped at AVX2 (32.3 vs 36.2 ms),
    yolov8s 0.98x; `bench/results/*-int8-pt2.13.json`. fp32 and bf16 keep torch.compile and its eager fallback.
    """
    return "aoti" if torch.device(device).type == "cpu" and dtype == "int8" else "default"


def load_backend(
    model: Any,
    spec: Any,
    raw: Any,
    path: str | os.PathLike[str],
    device: str | torch.device,
    options: dict[str, Any],
    *,
    backend: str,
    dtype: str,
    mode: str | None,
    buckets: Sequence[str | Sequence[int]] | None,
    outside: str,
    cache_dir: str | os.PathLike[str] | None,
    threads: int | None,
    progress: bool,
    calib: Any,
    val: str | os.PathLike[str] | None = None,
    auto_budget_s: float = 2.0,
    inductor_options: dict[str, Any] | None = None,
) -> Detector:
    """A `Detector` served by ``backend`` in ``dtype`` (either may be "auto"); see `yolostream.load`."""
    if backend != "auto" and backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}: choose from {', '.join(BACKENDS)}, auto")
    if mode is not None and backend not in ("inductor", "auto"):
        raise ConfigError(f"compile={mode!r} applies to the inductor backend, not {backend!r}")
    if inductor_options and backend not in ("inductor", "auto"):
        raise ConfigError(f"inductor_options apply to the inductor backend, not {backend!r}")
    parsed = parse_buckets(buckets or [(1, options["imgsz"], options["imgsz"])])
    base = DetectorConfig(**{**options, "dtype": "fp32"})
    source = os.fspath(path)
    reference = Detector(model, spec, raw.names, base, device=device, source=source, arch=raw.arch)

    def make(b: str, d: str) -> Any:
        from yolostream.engine.progress import compile_progress

        holder = (
            reference if d in ("fp32", "int8") else Detector(model, spec, raw.names, replace(base, dtype=d), device)
        )
        with compile_progress(enabled=progress and b == "inductor", what=f"compiling ({b} {d})") as callback:
            return build_runner(
                holder,
                b,
                d,
                parsed,
                mode=mode or default_mode(device, d),
                outside=outside,
                threads=threads,
                cache_dir=os.fspath(cache_dir) if cache_dir is not None else None,
                progress=callback,
                calib=calib,
                inductor_options=inductor_options if b == "inductor" else None,
            )

    if backend == "auto" or dtype == "auto":
        _, chosen_dtype, runner = _auto(reference, make, backend, dtype, parsed, calib, val, auto_budget_s, threads)
    else:
        chosen_dtype, runner = dtype, make(backend, dtype)
    config = replace(base, dtype=chosen_dtype)
    return Detector(model, spec, raw.names, config, device=device, source=source, arch=raw.arch, runner=runner)


def _auto(
    reference: Detector,
    make: Any,
    backend: str,
    dtype: str,
    buckets: Sequence[Bucket],
    calib: Any,
    val: Any,
    budget: float,
    threads: int | None,
) -> tuple[str, str, Any]:
    from dataclasses import asdict

    from yolostream.engine.auto import cache_key, file_hash, select

    backends = BACKENDS if backend == "auto" else (backend,)
    dtypes = None if dtype == "auto" else (dtype,)
    pictures = _gate_pictures(calib)
    cands = [c for c in candidates(backends, dtypes) if c[1] != "int8" or pictures]
    if not cands:
        raise ConfigError(f"backend={backend!r} dtype={dtype!r}: nothing of that is available here")
    settings = {"graph": asdict(reference.graph_config), "imgsz": reference.config.imgsz, "mode": reference.config.mode}
    settings["val"] = os.fspath(val) if val is not None else None
    key = cache_key(file_hash(reference.source), buckets, settings, threads=threads)
    choice = select(
        cands,
        buckets,
        key,
        build=make,
        gate=lambda b, d, runner: _gate(reference, b, d, runner, pictures, val),
        timer=_time_one,
        budget_s=budget,
    )
    log.info(
        "auto backend: %s-%s (%s; %s; %s, %d threads, cpu flags %s)",
        choice.backend,
        choice.dtype,
        "from the cache" if choice.cached else f"measured {len(choice.trials)} candidates",
        choice.reason,
        key["cpu"],
        key["threads"],
        " ".join(key["cpu_flags"]) or "none",
    )
    return choice.backend, choice.dtype, choice.runner


def _gate_pictures(calib: Any) -> list[Any]:
    """Pictures the gate compares detections on: the calibration pictures, else none (int8 is then skipped and
    the float backends are checked on a deterministic noise frame)."""
    from yolostream.quant.calibration import calibration_files

    try:
        return [str(p) for p in calibration_files(calib)]
    except ConfigError:
        return []


def _gate(reference: Detector, backend: str, dtype: str, runner: Any, pictures: list[Any], val: Any) -> dict[str, Any]:
    from yolostream.quant.gate import accuracy_gate, validation_twin

    test = Detector(None, reference.spec, reference.names, reference.config, reference.device, runner=runner)
    if not pictures:
        import numpy as np

        size = reference.config.imgsz
        pictures = [np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)]
    network = getattr(runner, "network", None) or (runner.graph.model if dtype == "int8" else None)
    twins = None
    if val is not None and network is not None:
        twins = (validation_twin(reference, reference.model), validation_twin(reference, network), val)  # type: ignore[arg-type]
    return accuracy_gate(reference, test, pictures, val=twins).to_dict()


def _time_one(runner: Any, bucket: Bucket) -> float:
    """Seconds of one network-only call (the graph on a letterboxed batch) on a grey batch of the bucket."""
    with torch.inference_mode():
        x = torch.full((bucket.batch, 3, bucket.height, bucket.width), 114, dtype=torch.uint8)
        conf = torch.tensor(0.25)
        start = time.perf_counter()
        runner(x, conf)
        return time.perf_counter() - start


__all__ = ["PRECISIONS", "load_backend"]
