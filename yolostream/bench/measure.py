"""Timing loops: explicit warm-up (never timed), per-call latency, back-to-back throughput.

Every loop reads ``time.perf_counter_ns`` (monotonic, integer ns, no float rounding over long runs). On CUDA
a call returns once its kernels are queued, so ``sync`` (``torch.cuda.synchronize``) runs before the clock
is read again: without it a latency loop would measure launch cost, not the work.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

import torch

Clock = Callable[[], int]
Sync = Callable[[], None]


def no_sync() -> None:
    """The CPU's synchronisation: nothing to wait for."""


def device_sync(device: torch.device) -> Sync:
    """A function waiting until ``device`` has finished its queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return no_sync


def warm_up(fn: Callable[[], object], calls: int, sync: Sync = no_sync) -> None:
    """Call ``fn`` ``calls`` times, untimed: first-call costs (allocator growth, oneDNN primitive creation,
    CUDA-graph recording, lazy module init) stay out of the steady-state figures."""
    if calls < 0:
        raise ValueError(f"warm-up calls must be >= 0, got {calls}")
    for _ in range(calls):
        fn()
    sync()


def time_calls(
    fn: Callable[[], object], iters: int, sync: Sync = no_sync, clock: Clock = time.perf_counter_ns
) -> list[int]:
    """Latency of ``iters`` calls of ``fn``, one sample per call in nanoseconds (synchronised after each).

    A garbage collection runs before the loop (not inside it), so a collection of earlier garbage does not
    land in the samples; collections the calls themselves cause are part of their cost and stay in.
    """
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    gc.collect()
    samples: list[int] = []
    for _ in range(iters):
        start = clock()
        fn()
        sync()
        samples.append(clock() - start)
    return samples


def time_throughput(
    fn: Callable[[], object],
    iters: int,
    images_per_call: int,
    sync: Sync = no_sync,
    clock: Clock = time.perf_counter_ns,
) -> float:
    """Images per second over ``iters`` back-to-back calls, synchronised once at the end.

    On a GPU this lets the host queue call n + 1 while call n runs, which is how a serving loop keeps the GPU
    busy; the per-call latency loop cannot show that overlap.
    """
    if iters < 1 or images_per_call < 1:
        raise ValueError(f"iters and images_per_call must be >= 1, got {iters} and {images_per_call}")
    gc.collect()
    sync()
    start = clock()
    for _ in range(iters):
        fn()
    sync()
    elapsed = clock() - start
    if elapsed <= 0:
        raise ValueError("the clock did not advance: cannot compute a throughput")
    return images_per_call * iters * 1e9 / elapsed


def time_once(fn: Callable[[], object], sync: Sync = no_sync, clock: Clock = time.perf_counter_ns) -> float:
    """Seconds one call of ``fn`` takes (load, compile, export), synchronised."""
    start = clock()
    fn()
    sync()
    return (clock() - start) / 1e9
