"""GPU-only figures: kernel launches per forward (torch.profiler) and GPU utilisation while running.

Both import their tools when called (the profiler's CUDA support, pynvml or the ``nvidia-smi`` command), so
this module imports and its pure parts (event counting, output parsing, the sampler) test on a CPU machine.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch

# Host-side API calls that start work on the GPU. Triton kernels go through the driver API (cuLaunchKernel),
# cuDNN/cuBLAS and ATen through the runtime API; a CUDA graph replay is one cudaGraphLaunch for all its kernels.
KERNEL_LAUNCH_CALLS = frozenset({"cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx"})
GRAPH_LAUNCH_CALLS = frozenset({"cudaGraphLaunch", "cuGraphLaunch"})


@dataclass(frozen=True)
class LaunchCount:
    """What one forward asks of the GPU.

    launches: host-side launch calls (kernel launches + graph launches): the per-call CPU overhead that
        CUDA graphs remove.
    graph_launches: of those, CUDA graph replays.
    kernels: kernels that ran on the GPU (a replayed graph still runs all of its kernels).
    copies: memcpy/memset operations on the GPU.
    """

    launches: int
    graph_launches: int
    kernels: int
    copies: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def classify_events(events: Iterable[tuple[str, bool]]) -> LaunchCount:
    """Count profiler events given as ``(name, on_gpu)`` pairs (``on_gpu``: the event ran on the device)."""
    launches = graphs = kernels = copies = 0
    for name, on_gpu in events:
        if on_gpu:
            if name.startswith(("Memcpy", "Memset")):
                copies += 1
            else:
                kernels += 1
        elif name in GRAPH_LAUNCH_CALLS:
            graphs += 1
            launches += 1
        elif name in KERNEL_LAUNCH_CALLS:
            launches += 1
    return LaunchCount(launches, graphs, kernels, copies)


def count_launches(fn: Callable[[], object], device: torch.device) -> LaunchCount:
    """Profile one call of ``fn`` (already warmed up) on a CUDA ``device`` and count its launches."""
    if device.type != "cuda":
        raise ValueError(f"kernel launches are counted on a CUDA device, not {device}")
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize(device)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize(device)
    return classify_events((e.name, e.device_type == DeviceType.CUDA) for e in prof.events())


def parse_smi_utilization(text: str) -> float | None:
    """GPU utilisation (percent) from ``nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits``
    output for one GPU (``"87\\n"``); None when the driver reports it unsupported or the text is not a number."""
    first = text.strip().splitlines()[0].strip() if text.strip() else ""
    try:
        return float(first)
    except ValueError:  # "[N/A]", "[Not Supported]", an error message
        return None


def _gpu_id(device: torch.device) -> str:
    """The device's UUID as NVML/nvidia-smi spell it: indexes differ when CUDA_VISIBLE_DEVICES reorders GPUs."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    return f"GPU-{uuid}" if uuid is not None else str(index)


def utilization_reader(device: torch.device) -> Callable[[], float | None] | None:
    """A function returning the GPU's current utilisation in percent, through pynvml when installed, else
    ``nvidia-smi``; None when neither is available (the bench then reports no utilisation)."""
    gpu = _gpu_id(device)
    try:
        import pynvml  # optional: pip install nvidia-ml-py
    except ImportError:
        pynvml = None
    if pynvml is not None:
        try:
            pynvml.nvmlInit()
            handle = (
                pynvml.nvmlDeviceGetHandleByUUID(gpu)
                if gpu.startswith("GPU-")
                else pynvml.nvmlDeviceGetHandleByIndex(int(gpu))
            )
            return lambda: float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except Exception:  # NVML errors are their own hierarchy; fall back to nvidia-smi
            pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    command = [smi, f"--id={gpu}", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]

    def read() -> float | None:
        done = subprocess.run(command, capture_output=True, text=True, timeout=5, check=False)
        return parse_smi_utilization(done.stdout) if done.returncode == 0 else None

    return read


class UtilizationSampler:
    """Samples ``read()`` every ``interval_s`` on a background thread while the ``with`` block runs.

    NVML's utilisation is the share of the last sample period (1/6 s to 1 s, by GPU) in which at least
    one kernel was running: it shows a GPU starved by host overhead, not how full each SM is.
    """

    def __init__(self, read: Callable[[], float | None], interval_s: float = 0.1) -> None:
        self.read = read
        self.interval_s = interval_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gpu-utilization", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            value = self.read()
            if value is not None:
                self.samples.append(value)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> UtilizationSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, Any] | None:
        """Mean / min / max percent and the sample count; None when nothing was sampled."""
        if not self.samples:
            return None
        return {
            "mean": sum(self.samples) / len(self.samples),
            "min": min(self.samples),
            "max": max(self.samples),
            "samples": len(self.samples),
        }
