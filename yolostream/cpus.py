"""The CPUs this process may use, and spreading a runtime's worker threads over them.

OpenMP thread binding (``OMP_PROC_BIND``, ``OMP_PLACES``, ``GOMP_CPU_AFFINITY``, as CPU tuning guides
recommend) makes libgomp pin the thread that loads it to its first place: once torch is imported, the main
thread may run on one core only. ``os.sched_getaffinity(0)`` then reports that core, and every thread the main
thread creates inherits it: a thread count taken from it is 1, and OpenVINO's and ONNX Runtime's worker pools
share one core (2 cores, 2 threads asked for: OpenVINO 1.6-1.75x slower on yolov8n, ONNX Runtime 3.4x on a
small convolution stack). So the mask is read here, when
yolostream is imported (`yolostream/__init__` imports this module before anything imports torch), and joined
with the masks every thread of the process has now (libgomp's own workers hold the other places).

No torch import here, on purpose.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

log = logging.getLogger("yolostream")

# Variables with which an OpenMP runtime pins threads (GNU: OMP_PROC_BIND / OMP_PLACES / GOMP_CPU_AFFINITY,
# Intel: KMP_AFFINITY). OMP_PROC_BIND=false binds nothing.
BINDING_VARIABLES = ("OMP_PROC_BIND", "OMP_PLACES", "GOMP_CPU_AFFINITY", "KMP_AFFINITY")


def _own_mask() -> frozenset[int]:
    """The calling thread's affinity (all CPUs' count where the platform has no affinity call)."""
    if hasattr(os, "sched_getaffinity"):
        return frozenset(os.sched_getaffinity(0))
    return frozenset(range(os.cpu_count() or 1))


_AT_IMPORT = _own_mask()
_TORCH_FIRST = "torch" in sys.modules  # then libgomp may have pinned this thread before the read above


def _parse_list(text: str) -> set[int]:
    """'0-3,8,10-11' (a kernel CPU list) -> {0, 1, 2, 3, 8, 10, 11}."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if part:
            lo, _, hi = part.partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def thread_masks() -> list[set[int]]:
    """The affinity of each thread of this process (Linux ``/proc``; empty elsewhere)."""
    masks: list[set[int]] = []
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return masks
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("Cpus_allowed_list:"):
                        masks.append(_parse_list(line.split(":", 1)[1]))
                        break
        except (OSError, ValueError):  # the thread ended meanwhile
            continue
    return masks


def binding_requested() -> bool:
    """Whether the environment asks the OpenMP runtime to pin its threads."""
    return any(os.environ.get(v, "").strip().lower() not in ("", "false") for v in BINDING_VARIABLES)


def usable_cpus() -> frozenset[int]:
    """CPUs this process may run on: its mask when yolostream was imported, joined with every thread's now.

    Under taskset or a container's cpuset these are the CPUs given, not the machine's; under OpenMP binding,
    not the one core the main thread was pinned to.
    """
    return frozenset(_AT_IMPORT | _own_mask() | set().union(*thread_masks()))


def warn_if_pinned_early() -> None:
    """Log once when binding is on and torch was imported first, so the mask read here may be the pinned one."""
    global _TORCH_FIRST
    if _TORCH_FIRST and binding_requested() and len(usable_cpus()) == 1 and (os.cpu_count() or 1) > 1:
        log.warning(
            "OpenMP thread binding (%s) pinned the main thread to one core before yolostream was imported: "
            "yolostream sees one usable core. Import yolostream before torch, or pass threads=N.",
            ", ".join(v for v in BINDING_VARIABLES if v in os.environ),
        )
    _TORCH_FIRST = False


@contextlib.contextmanager
def spread_threads() -> Iterator[None]:
    """Run the block with the calling thread allowed on every usable CPU, then restore its own mask.

    For building another runtime (OpenVINO, ONNX Runtime): the worker threads it starts inherit the calling
    thread's mask, which OpenMP binding may have narrowed to one core. A no-op where the mask already covers
    them or the platform has no affinity call.
    """
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    own, wide = _own_mask(), usable_cpus()
    if wide <= own:
        yield
        return
    try:
        os.sched_setaffinity(0, wide)
    except OSError as e:  # e.g. a cpuset changed under the process: build where we are
        log.debug("could not widen the thread's CPU mask to %s: %s", sorted(wide), e)
        yield
        return
    try:
        yield
    finally:
        os.sched_setaffinity(0, own)
