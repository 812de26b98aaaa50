"""`yolostream bench` measurement: statistics, timing loops (fake clocks), memory, GPU helpers (fake events).

No test asserts a time: a loaded CI machine must not turn a test red.
"""

from __future__ import annotations

import math
import mmap
import sys
import threading
from typing import Any

import numpy as np
import pytest
import torch

from yolostream.bench import gpu, measure, memory
from yolostream.bench.inputs import noise_frames
from yolostream.bench.stats import flatten, ratio, ratios, summarize, throughput_from_latency

MS = 1_000_000  # ns per ms


# ---------------------------------------------------------------------------------------------- stats


def test_summarize_hand_computed() -> None:
    s = summarize([1 * MS, 2 * MS, 3 * MS, 4 * MS])
    assert (s.n, s.min, s.max, s.mean) == (4, 1.0, 4.0, 2.5)
    # Linear interpolation over the sorted samples at position q/100 * (n - 1) = q * 0.03:
    assert s.p50 == pytest.approx(2.5)  # position 1.5: halfway between 2 and 3
    assert s.p90 == pytest.approx(3.7)  # position 2.7: 3 + 0.7 * (4 - 3)
    assert s.p99 == pytest.approx(3.97)  # position 2.97
    # Sample std: squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5, over n - 1 = 3.
    assert s.std == pytest.approx(math.sqrt(5 / 3))


def test_summarize_single_sample_has_no_spread() -> None:
    s = summarize([7 * MS])
    assert (s.std, s.p50, s.p99, s.max) == (0.0, 7.0, 7.0, 7.0)


@pytest.mark.parametrize("bad", [[], [[1, 2], [3, 4]]])  # empty; 2-D
def test_summarize_rejects(bad: Any) -> None:
    with pytest.raises(ValueError, match="non-empty 1-D"):
        summarize(bad)


def test_throughput_from_latency() -> None:
    # 2 calls of 4 images in 10 + 30 ms: 8 images in 0.04 s.
    assert throughput_from_latency([10 * MS, 30 * MS], 4) == pytest.approx(200.0)
    with pytest.raises(ValueError, match="no time"):
        throughput_from_latency([0, 0], 1)


@pytest.mark.parametrize(
    ("value", "reference", "expected"),
    [
        (2.0, 4.0, 0.5),  # plain quotient
        (None, 1.0, None),  # figure missing (e.g. no e2e for a baseline)
        (1.0, None, None),  # reference missing
        (1.0, 0.0, None),  # zero reference: no meaningful ratio
        (float("nan"), 1.0, None),  # NaN never becomes a ratio
    ],
)
def test_ratio(value: float | None, reference: float | None, expected: float | None) -> None:
    assert ratio(value, reference) == expected


def test_ratios_of_nested_figures() -> None:
    figures = {"e2e": {"p50": 3.0, "ok": True}, "compile_s": 10.0, "extra": 1.0}
    reference = {"e2e": {"p50": 6.0}, "compile_s": None}
    assert flatten(figures) == {"e2e.p50": 3.0, "compile_s": 10.0, "extra": 1.0}  # the bool is not a figure
    assert ratios(figures, reference) == {"e2e.p50": 0.5, "compile_s": None, "extra": None}


# ---------------------------------------------------------------------------------------------- measure


class FakeClock:
    """A clock that only moves when the timed function runs: each call advances it by the next duration."""

    def __init__(self, durations_ns: list[int]) -> None:
        self.now = 0
        self.durations = list(durations_ns)
        self.calls = 0

    def __call__(self) -> int:
        return self.now

    def work(self) -> None:
        self.now += self.durations[self.calls % len(self.durations)]
        self.calls += 1


def test_time_calls_one_synchronised_sample_per_call() -> None:
    clock, syncs = FakeClock([5 * MS, 7 * MS, 6 * MS]), []
    samples = measure.time_calls(clock.work, 3, sync=lambda: syncs.append(clock.calls), clock=clock)
    assert samples == [5 * MS, 7 * MS, 6 * MS]
    assert syncs == [1, 2, 3]  # synchronised after every call, before the clock is read


def test_time_throughput_synchronises_only_around_the_loop() -> None:
    clock, syncs = FakeClock([10 * MS]), []
    ips = measure.time_throughput(clock.work, 3, 2, sync=lambda: syncs.append(clock.calls), clock=clock)
    assert ips == pytest.approx(200.0)  # 3 calls x 2 images in 30 ms
    assert syncs == [0, 3]  # once before the first call, once after the last


def test_warm_up_calls_untimed() -> None:
    clock = FakeClock([MS])
    measure.warm_up(clock.work, 4)
    assert clock.calls == 4


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: measure.time_calls(lambda: None, 0), "iters"),
        (lambda: measure.time_throughput(lambda: None, 1, 0), "images_per_call"),
        (lambda: measure.warm_up(lambda: None, -1), "warm-up"),
    ],
)
def test_measure_rejects_bad_counts(call: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------------------------------------- memory


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("VmPeak:\t  300 kB\nVmHWM:\t  223700 kB\n", "VmHWM", 223700),  # the kernel's layout
        ("VmHWMx:\t 5 kB\n", "VmHWM", None),  # another key that only starts alike
        ("Name:\tpython\n", "VmRSS", None),  # absent
    ],
)
def test_parse_status(text: str, key: str, expected: int | None) -> None:
    assert memory.parse_status_kib(text, key) == expected


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_peak_rss_sees_a_fresh_allocation() -> None:
    memory.reset_peak_rss()
    before = memory.peak_rss_mib()
    # 64 MiB of fresh anonymous pages, every one touched. Not a numpy array: once a library has raised malloc's
    # mmap threshold, a large array may come from heap pages a previous test left resident, which the RSS
    # does not count again (seen after other tests in the same process: +36 MiB for 64).
    block = mmap.mmap(-1, 64 * 2**20)
    np.frombuffer(block, dtype=np.uint8)[:: mmap.PAGESIZE] = 1
    after = memory.peak_rss_mib()
    assert before is not None and after is not None
    assert after - before >= 60  # 64 MiB, less slack for the page tables and the allocator's own pages
    block.close()


# ---------------------------------------------------------------------------------------------- gpu


def test_classify_profiler_events() -> None:
    events = [
        ("aten::conv2d", False),  # an operator: no launch by itself
        ("cudaLaunchKernel", False),  # runtime-API launch (ATen, cuDNN)
        ("cuLaunchKernel", False),  # driver-API launch (Triton)
        ("cudaGraphLaunch", False),  # a CUDA graph replay: one launch
        ("triton_poi_fused_0", True),  # kernels on the GPU
        ("void cudnn::conv_kernel<...>", True),
        ("Memcpy HtoD (Pageable -> Device)", True),  # copies are not kernels
        ("Memset (Device)", True),
        ("cudaMemcpyAsync", False),  # a copy call, not a kernel launch
    ]
    assert gpu.classify_events(events) == gpu.LaunchCount(launches=3, graph_launches=1, kernels=2, copies=2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("87\n", 87.0),  # one GPU, nounits
        ("12\n34\n", 12.0),  # several lines: the first (the bench asks for one GPU by id)
        ("[N/A]\n", None),  # unsupported on this GPU
        ("", None),  # no output
    ],
)
def test_parse_smi_utilization(text: str, expected: float | None) -> None:
    assert gpu.parse_smi_utilization(text) == expected


def test_utilization_sampler_skips_missing_readings() -> None:
    readings, calls, done = [None, 40.0, None, 60.0], [], threading.Event()

    def read() -> float | None:
        value = readings[len(calls)] if len(calls) < len(readings) else None  # then nothing more
        calls.append(value)
        if len(calls) >= len(readings):
            done.set()
        return value

    with gpu.UtilizationSampler(read, interval_s=0.0) as sampler:
        assert done.wait(10)
    # None readings (the driver had no figure) are dropped: mean of 40 and 60.
    assert sampler.summary() == {"mean": 50.0, "min": 40.0, "max": 60.0, "samples": 2}


def test_utilization_sampler_with_no_samples() -> None:
    assert gpu.UtilizationSampler(lambda: None).summary() is None


def test_count_launches_needs_cuda() -> None:
    with pytest.raises(ValueError, match="CUDA"):
        gpu.count_launches(lambda: None, torch.device("cpu"))


class FakeDetector:
    """Stands in for a `Detector` on a CUDA device: counts its calls, computes nothing."""

    def __init__(self) -> None:
        self.device = torch.device("cuda")
        self.calls = {"e2e": 0, "network": 0}

    def preprocess(self, frames: list[np.ndarray]) -> str:
        return "batch"

    def __call__(self, frames: list[np.ndarray]) -> None:
        self.calls["e2e"] += 1

    def infer(self, batch: str) -> None:
        self.calls["network"] += 1


def test_measure_detector_gpu_branch(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CUDA-only figures are assembled as documented (CUDA calls replaced: this runs on any machine)."""
    from yolostream.bench import detector_run

    counts = gpu.LaunchCount(launches=1, graph_launches=1, kernels=40, copies=2)
    monkeypatch.setattr(measure, "device_sync", lambda device: measure.no_sync)
    monkeypatch.setattr(memory, "reset_peak", lambda device: True)
    monkeypatch.setattr(memory, "peak_mib", lambda device: 123.0)
    monkeypatch.setattr(gpu, "utilization_reader", lambda device: lambda: 90.0)
    monkeypatch.setattr(gpu, "count_launches", lambda fn, device: counts)
    monkeypatch.setattr(detector_run, "MIN_THROUGHPUT_RUN_S", 0.0)  # no minimum duration: MIN_THROUGHPUT_CALLS
    det = FakeDetector()
    out = detector_run.measure_detector(det, noise_frames(2, 8, 8), iters=3, warmup=2)  # type: ignore[arg-type]
    assert (out["e2e"]["n"], out["network"]["n"]) == (3, 3)
    assert out["memory"] == {"peak_mib": 123.0, "peak_reset": True}
    assert set(out["throughput"]) == {"e2e", "network"} and all(v > 0 for v in out["throughput"].values())
    # Each callable: 2 warm-up + 3 timed + the throughput run's calls (the profiler is faked: no call).
    assert det.calls == {k: 2 + 3 + detector_run.MIN_THROUGHPUT_CALLS for k in ("e2e", "network")}
    assert out["gpu"]["launches"] == {"e2e": counts.to_dict(), "network": counts.to_dict()}
    for summary in out["gpu"]["utilization"].values():
        assert summary is None or summary["mean"] == 90.0  # a very short run may end before the first sample
