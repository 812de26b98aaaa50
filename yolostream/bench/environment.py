"""What a result depends on, recorded next to it: versions, device, CPU, threads, date, machine load."""

from __future__ import annotations

import datetime
import os
import platform
import re
from typing import Any

import numpy as np
import torch

from yolostream.engine.runtime import cpu_flags, cpu_id, cpuinfo, usable_cores


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    return cpuinfo().get("model name") or platform.processor() or "unknown"


def environment(device: torch.device, threads: int) -> dict[str, Any]:
    """A JSON-ready description of the machine and software the bench ran on."""
    import yolostream

    env: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "yolostream": yolostream.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "cpu_model": cpu_model(),
        # The model name is often just "AMD EPYC" on a VM; family/model tell one generation from the next.
        "cpu_id": cpu_id(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_flags": cpu_flags(),
        # Set, these cap the kernels' ISA below the CPU's (cpu_flags already follows them).
        "isa_limits": {k: os.environ[k] for k in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY") if k in os.environ},
        "usable_cores": usable_cores(),
        "threads": threads,
        # A busy machine ruins CPU figures (OpenMP threads spin against other processes): keep the evidence.
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(
            device_name=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            compute_capability=f"{props.major}.{props.minor}",
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
        )
    else:
        env["device_name"] = env["cpu_model"]
    return env


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")


def device_tag(env: dict[str, Any]) -> str:
    """Short device name for file names: ``cpu-avx512`` (the ISA the kernels use) or ``cuda-h100``."""
    if str(env.get("device", "cpu")).startswith("cuda"):
        words = [w for w in str(env.get("device_name", "gpu")).split() if w.upper() != "NVIDIA"]
        return f"cuda-{_slug(words[0]) if words else 'gpu'}"
    return f"cpu-{_slug(str(env.get('cpu_capability', 'default')))}"


def results_name(model: str, env: dict[str, Any], dtypes: list[str], batches: list[int] | None = None) -> str:
    """``bench-<model>-<device>-<dtypes>[-b<batches>]-pt<major.minor>``, e.g.
    ``bench-yolov8n-random-cpu-avx512-fp32-bf16-pt2.13``; batch sizes are named unless batch 1 alone, so
    runs split by batch (one command per batch group on a time-limited GPU) do not overwrite each other."""
    major_minor = ".".join(str(env.get("torch", "0.0")).split("+")[0].split(".")[:2])
    batch = [] if not batches or list(batches) == [1] else ["b" + "-".join(str(b) for b in batches)]
    return "-".join(["bench", _slug(model), device_tag(env), *dtypes, *batch, f"pt{major_minor}"])
