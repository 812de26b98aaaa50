"""`run_suite`: every configuration of a `BenchConfig` measured in one process, ratios to eager fp32 added."""

from __future__ import annotations

import gc
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from yolostream.bench import memory
from yolostream.bench.baseline import baseline_specs, measure_baselines
from yolostream.bench.config import REFERENCE, BenchConfig, config_name
from yolostream.bench.detector_run import Picture, Reference, check_accuracy, measure_detector, reference
from yolostream.bench.engines import Loaded, load_config
from yolostream.bench.environment import environment
from yolostream.bench.inputs import timing_frames
from yolostream.bench.stats import flatten, ratios
from yolostream.engine.runtime import set_threads

SCHEMA = 1
# Figures with a ratio to eager fp32: the times, throughputs, memory and launch counts (counts of samples,
# accuracy and flags have none).
RATIO_KEYS = ("compile_s", "load_s", "e2e", "network", "throughput", "memory.peak_mib", "gpu.launches")
Log = Callable[[str], None]


def ratio_figures(result: dict[str, Any]) -> dict[str, float]:
    """The figures of a result that get a ratio to the reference, as dotted keys."""
    flat = flatten({k: v for k, v in result.items() if v is not None})
    keep = {k: v for k, v in flat.items() if k.startswith(RATIO_KEYS) and not k.endswith((".n", ".peak_reset"))}
    return keep


def add_ratios(results: list[dict[str, Any]]) -> None:
    """Give every result ``ratios``: each figure over eager fp32's at the same batch (None where absent)."""
    refs = {r["batch"]: r for r in results if (r.get("mode"), r.get("dtype")) == REFERENCE and not r.get("error")}
    for r in results:
        ref = refs.get(r["batch"])
        r["ratios"] = ratios(ratio_figures(r), ratio_figures(ref)) if ref is not None and not r.get("error") else {}


def comparisons(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each torch configuration's network-only p50 latency and throughput over each baseline's, per batch."""
    out = []
    ok = [r for r in results if not r.get("error")]
    for base in (r for r in ok if r["kind"] == "baseline"):
        for r in (r for r in ok if r["kind"] == "torch" and r["batch"] == base["batch"]):
            out.append(
                {
                    "batch": r["batch"],
                    "config": r["name"],
                    "baseline": base["name"],
                    "network_p50_ratio": r["network"]["p50"] / base["network"]["p50"],
                    "network_throughput_ratio": r["throughput"]["network"] / base["throughput"]["network"],
                }
            )
    return out


def _pictures(config: BenchConfig, frames: Sequence[Any]) -> list[Picture]:
    if config.check_images:
        return [(Path(p).name, p) for p in config.check_images]
    return [("frame", frames[0])]


def _release() -> None:
    """Forget the previous configuration's compiled code. Dynamo hangs its cache entries on the code object of
    ``InferenceGraph.forward``, shared by every detector: without a reset they pile up across configurations
    (each new graph instance compiles a new entry) until the per-code-object recompile limit stops one."""
    gc.collect()
    torch._dynamo.reset()
    gc.collect()


def _measure(
    config: BenchConfig, mode: str, dtype: str, batch: int, ref: Reference | None, common: dict[str, Any], log: Log
) -> tuple[dict[str, Any], Loaded | None]:
    name = config_name(mode, dtype)
    result: dict[str, Any] = {"kind": "torch", "name": name, "mode": mode, "dtype": dtype, "batch": batch}
    device = torch.device(config.device)
    log(f"{name} batch {batch}: {'loading' if mode == 'eager' else 'compiling'}")
    before = memory.rss_mib() if device.type != "cuda" else None
    reset = memory.reset_peak(device)
    loaded = load_config(config.model, mode, dtype, batch, **common)
    result.update(compile_s=loaded.compile_s, load_s=loaded.load_s, load_peak_mib=memory.peak_mib(device))
    if loaded.cold_start is not None:
        result["cold_start"] = loaded.cold_start
    log(f"{name} batch {batch}: timing {config.iters} calls")
    frames = timing_frames(batch, config.imgsz, config.frame, config.seed)
    result.update(measure_detector(loaded.detector, frames, config.iters, config.warmup))
    # Process-wide on the CPU: libraries and what earlier configurations left in the allocator count too.
    result["memory"].update(load_peak_mib=result.pop("load_peak_mib"), load_peak_reset=reset, rss_before_mib=before)
    if ref is not None:
        result["accuracy"] = check_accuracy(loaded.detector, ref, _pictures(config, frames))
    result["error"] = None
    return result, loaded


def _checks(config: BenchConfig, common: dict[str, Any], log: Log) -> list[dict[str, Any]]:
    """Detections of each check model in every (mode, dtype) at batch 1 against its own eager fp32."""
    out = []
    frames = timing_frames(1, config.imgsz, config.frame, config.seed)
    pictures = _pictures(config, frames)
    for model in config.check_models:
        log(f"accuracy check {Path(model).name}")
        ref_detector = load_config(model, *REFERENCE, 1, **common).detector
        ref = reference(ref_detector, pictures)
        for mode, dtype in config.grid()[1:]:
            row: dict[str, Any] = {"model": Path(model).name, "name": config_name(mode, dtype), "error": None}
            try:
                detector = load_config(model, mode, dtype, 1, **common, cold=False).detector
                row.update(check_accuracy(detector, ref, pictures))
                del detector
            except Exception as e:  # one failing configuration must not lose the others' checks
                row["error"] = f"{type(e).__name__}: {e}"
            out.append(row)
            _release()
        del ref_detector
    return out


def run_suite(config: BenchConfig, log: Log = lambda message: None, progress: bool = False) -> dict[str, Any]:
    """Measure every configuration of ``config``; the JSON-ready document `report` prints and writes.

    Per batch: eager fp32 first (the reference of every ratio and accuracy figure), then each (mode, dtype),
    then the baselines. A configuration that fails is recorded with its ``error`` and the run goes on.
    """
    config.validate()
    specs = baseline_specs(config.baselines, config.dtypes)
    threads = set_threads(config.threads) if config.device.startswith("cpu") else torch.get_num_threads()
    env = environment(torch.device(config.device), threads)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="yolostream-bench-") as tmp:
        common = dict(device=config.device, imgsz=config.imgsz, threads=threads, workdir=Path(tmp), progress=progress)
        for batch in config.batches:
            ref_result, ref_loaded = _measure(config, *REFERENCE, batch, None, common, log)
            frames = timing_frames(batch, config.imgsz, config.frame, config.seed)
            pictures = _pictures(config, frames)
            ref = reference(ref_loaded.detector, pictures)  # type: ignore[union-attr]
            ref_result["accuracy"] = check_accuracy(ref_loaded.detector, ref, pictures)  # type: ignore[union-attr]
            results.append(ref_result)
            for mode, dtype in config.grid()[1:]:
                try:
                    result, loaded = _measure(config, mode, dtype, batch, ref, common, log)
                    del loaded
                except Exception as e:  # recorded, and the next configuration runs
                    result = {"kind": "torch", "name": config_name(mode, dtype), "mode": mode, "dtype": dtype}
                    result.update(batch=batch, error=f"{type(e).__name__}: {e}")
                    log(f"{result['name']} batch {batch} failed: {result['error']}")
                results.append(result)
                _release()
            if specs:
                log(f"baselines batch {batch}: exporting ONNX, timing {', '.join(f'{r}-{p}' for r, p in specs)}")
                results += measure_baselines(
                    ref_loaded.detector,  # type: ignore[union-attr]
                    specs,
                    batch,
                    frames,
                    pictures,
                    iters=config.iters,
                    warmup=config.warmup,
                    threads=threads,
                    workdir=Path(tmp),
                )
            del ref_loaded
            _release()
        checks = _checks(config, common, log)
    add_ratios(results)
    return {
        "schema": SCHEMA,
        "model": Path(config.model).name,
        "settings": {
            "device": config.device,
            "imgsz": config.imgsz,
            "batches": list(config.batches),
            "modes": list(config.modes),
            "dtypes": list(config.dtypes),
            "baselines": list(config.baselines),
            "iters": config.iters,
            "warmup": config.warmup,
            "frame": config.frame or f"noise {config.imgsz}x{config.imgsz} seed {config.seed}",
            "check_images": [Path(p).name for p in config.check_images] or ["frame"],
        },
        "environment": env,
        "results": results,
        "comparisons": comparisons(results),
        "checks": checks,
    }
