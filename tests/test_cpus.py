"""Usable CPUs under OpenMP thread binding, and other runtimes' worker threads spread over them.

With ``OMP_PROC_BIND`` set, libgomp pins the thread that loads it (the main thread, at ``import torch``) to one
core; every thread that thread creates inherits the pin. These tests run the affected code in subprocesses
with binding on and check the masks the kernel reports for every thread (``/proc/self/task``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from yolostream.cpus import BINDING_VARIABLES, _parse_list, binding_requested, spread_threads, usable_cpus

CPUS = sorted(os.sched_getaffinity(0))
needs_two = pytest.mark.skipif(len(CPUS) < 2, reason="binding to one core changes nothing on a 1-CPU machine")
BOUND = {**os.environ, "OMP_PROC_BIND": "close", "OMP_PLACES": "cores"}

# Prints the main thread's CPU count and each thread's CPUs (comma-separated, one token per thread).
THREADS_REPORT = """
import os
from yolostream.cpus import thread_masks
print('MAIN', len(os.sched_getaffinity(0)))
print('THREADS', ' '.join(','.join(map(str, sorted(m))) for m in thread_masks()))
"""


def run(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def line(out: str, key: str) -> str:
    return next(ln.split(" ", 1)[1] for ln in out.splitlines() if ln.startswith(key + " "))


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("0", {0}),
        ("0-3", {0, 1, 2, 3}),
        ("0-1,4,6-7\n", {0, 1, 4, 6, 7}),  # as /proc writes it, with the newline
        ("", set()),
    ],
)
def test_parse_cpu_list(text: str, cpus: set[int]) -> None:
    assert _parse_list(text) == cpus


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),
        ({"OMP_PROC_BIND": "false"}, False),  # binds nothing
        ({"OMP_PROC_BIND": "close"}, True),
        ({"OMP_PLACES": "cores"}, True),
        ({"GOMP_CPU_AFFINITY": "0-1"}, True),
        ({"KMP_AFFINITY": "granularity=fine,compact"}, True),
    ],
)
def test_binding_requested(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: bool) -> None:
    for v in BINDING_VARIABLES:
        monkeypatch.delenv(v, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert binding_requested() is expected


@needs_two
def test_usable_cores_are_the_process_mask_not_the_pinned_main_thread() -> None:
    out = run(
        "import yolostream, torch, os\n"
        "from yolostream.engine.runtime import usable_cores\n"
        "print('MAIN', len(os.sched_getaffinity(0)))\n"
        "print('USABLE', usable_cores())\n",
        BOUND,
    ).stdout
    assert line(out, "MAIN") == "1", "the premise: binding pins the main thread when torch loads"
    assert int(line(out, "USABLE")) == len(CPUS)


@needs_two
def test_torch_imported_first_warns_then_recovers_from_the_openmp_workers() -> None:
    proc = run(
        "import torch, logging\n"
        "logging.basicConfig()\n"
        "import yolostream\n"
        "from yolostream.engine.runtime import usable_cores\n"
        "print('BEFORE', usable_cores())\n"
        f"torch.set_num_threads({len(CPUS)})\n"
        "torch.ones(512, 512) @ torch.ones(512, 512)\n"  # starts OpenMP's workers, each pinned to its own place
        "print('AFTER', usable_cores())\n",
        BOUND,
    )
    assert line(proc.stdout, "BEFORE") == "1"
    assert "pinned the main thread to one core before yolostream was imported" in proc.stderr
    assert int(line(proc.stdout, "AFTER")) == len(CPUS)


@needs_two
def test_spread_threads_lets_new_threads_use_every_cpu_and_restores_the_caller() -> None:
    seen: dict[str, set[int]] = {}

    def pinned_caller() -> None:
        os.sched_setaffinity(0, {CPUS[0]})  # this helper thread only, as OpenMP binding pins the main thread
        with spread_threads():
            child = threading.Thread(target=lambda: seen.setdefault("child", os.sched_getaffinity(0)))
            child.start()
            child.join()
        seen["caller after"] = os.sched_getaffinity(0)
        plain = threading.Thread(target=lambda: seen.setdefault("child outside", os.sched_getaffinity(0)))
        plain.start()
        plain.join()

    t = threading.Thread(target=pinned_caller)
    t.start()
    t.join()
    assert seen["child"] == set(usable_cpus()) == set(CPUS)
    assert seen["caller after"] == {CPUS[0]}
    assert seen["child outside"] == {CPUS[0]}  # what a runtime's pool would have got without it


@needs_two
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_external_runtime_threads_span_every_cpu_under_binding(fixtures: Path, backend: str) -> None:
    pytest.importorskip("openvino" if backend == "openvino" else "onnxruntime")
    model = fixtures / "checkpoints" / "yolov8n-random.pt"
    out = run(
        f"import yolostream\ndet = yolostream.load({str(model)!r}, imgsz=64, backend={backend!r})\n" + THREADS_REPORT,
        BOUND,
    ).stdout
    masks = [_parse_list(m) for m in line(out, "THREADS").split()]
    assert line(out, "MAIN") == "1", "the premise: the main thread is pinned"
    # Without the spread every thread holds one core (the main thread's, or an OpenMP worker's place: checked
    # by hand with `spread_threads` replaced by a no-op); with it the runtime's pool threads hold them all.
    assert sum(m == set(CPUS) for m in masks) >= 1, masks
