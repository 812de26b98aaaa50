"""`backend="auto"`: the choice among candidates, its accuracy gate, its cache and when it is measured again.

Building, gating and timing are injected fakes here (deterministic; no compiler): what is tested is the
selection logic and the cache, which the real `load(..., backend="auto")` wires to the real backends.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from yolostream.engine.auto import cache_key, cache_path, select
from yolostream.engine.buckets import Bucket

BUCKETS = (Bucket(1, 320, 320), Bucket(4, 320, 320))
CANDIDATES = [("inductor", "fp32"), ("inductor", "int8"), ("openvino", "fp32"), ("onnxruntime", "fp32")]
# Fake per-call latency (ms) of each candidate at batch 1; batch 4 takes 3x that. inductor-int8 is the fastest
# but fails the gate, so openvino-fp32 must win.
LATENCY_MS = {
    ("inductor", "fp32"): 30.0,
    ("inductor", "int8"): 10.0,
    ("openvino", "fp32"): 20.0,
    ("onnxruntime", "fp32"): 25.0,
}
FAILS_GATE = {("inductor", "int8")}


class Fakes:
    """Records what `select` builds and times; each runner is its (backend, dtype) pair."""

    def __init__(self, broken: set | None = None, fails_gate: set | None = None) -> None:
        self.built: list[tuple[str, str]] = []
        self.timed: list[tuple[str, str]] = []
        self.broken = broken or set()
        self.fails_gate = FAILS_GATE if fails_gate is None else fails_gate

    def build(self, backend: str, dtype: str) -> tuple[str, str]:
        if (backend, dtype) in self.broken:
            raise RuntimeError("cannot load it here")
        self.built.append((backend, dtype))
        return (backend, dtype)

    def gate(self, backend: str, dtype: str, runner: object) -> dict:
        passed = (backend, dtype) not in self.fails_gate
        return {"passed": passed, "reason": "12/12 kept" if passed else "only 3/12 reference detections kept"}

    def timer(self, runner: tuple[str, str], bucket: Bucket) -> float:
        self.timed.append(runner)
        return LATENCY_MS[runner] * (3 if bucket.batch == 4 else 1) / 1e3


ZEN1 = "AuthenticAMD family 23 model 1 stepping 2"


def _key(flags=("avx2",), torch_version="2.13.0", cpu=ZEN1, threads=2):
    libs = {"torch": torch_version}
    return cache_key("abc123", BUCKETS, {"imgsz": 320}, flags=list(flags), libs=libs, cpu=cpu, threads=threads)


def _select(fakes, key, tmp_path, **kw):
    return select(
        CANDIDATES,
        BUCKETS,
        key,
        build=fakes.build,
        gate=fakes.gate,
        timer=fakes.timer,
        budget_s=0.0,
        cache_root=tmp_path,
        **kw,
    )


def test_fastest_passing_candidate_wins_and_is_cached(tmp_path):
    fakes = Fakes()
    choice = _select(fakes, _key(), tmp_path)
    assert (choice.backend, choice.dtype) == ("openvino", "fp32")  # int8 is faster but failed the gate
    assert choice.runner == ("openvino", "fp32") and not choice.cached
    trials = {t.name: t for t in choice.trials}
    assert trials["openvino-fp32"].latency_ms == {"1x320x320": 20.0, "4x320x320": 60.0}
    assert trials["inductor-int8"].latency_ms == {}  # a rejected candidate is not timed
    assert "inductor-int8" in choice.reason and "3/12" in choice.reason  # the log line says why
    doc = json.loads(cache_path(_key(), tmp_path).read_text())
    assert doc["choice"] == ["openvino", "fp32"] and doc["key"]["cpu_flags"] == ["avx2"]


@pytest.mark.parametrize(
    ("int8_ms", "chosen"),
    [
        (19.2, ("openvino", "fp32")),  # int8 4% faster: inside the 5% tie, the more precise fp32 is kept
        (17.0, ("inductor", "int8")),  # int8 15% faster: a real gain, int8 wins
    ],
    ids=["within-tie", "clear-gain"],
)
def test_more_precise_candidate_wins_a_near_tie(tmp_path, monkeypatch, int8_ms, chosen):
    monkeypatch.setitem(LATENCY_MS, ("inductor", "int8"), int8_ms)
    choice = _select(Fakes(fails_gate=set()), _key(), tmp_path)
    assert (choice.backend, choice.dtype) == chosen
    if chosen == ("openvino", "fp32"):
        assert "kept over inductor-int8" in choice.reason and "within 5%" in choice.reason
    else:
        assert "next openvino-fp32" in choice.reason


def test_timing_interleaves_candidates(tmp_path):
    fakes = Fakes()
    _select(fakes, _key(), tmp_path)
    passing = [c for c in CANDIDATES if c not in FAILS_GATE]
    # Each round times every passing candidate on both buckets before the next round starts: A A B B C C, A A ...
    per_round = [c for c in passing for _ in BUCKETS]
    assert fakes.timed[: 2 * len(per_round)] == per_round * 2
    assert len(fakes.timed) == 5 * len(per_round)  # budget 0: the minimum of 5 rounds


def test_cached_choice_builds_only_the_winner(tmp_path):
    _select(Fakes(), _key(), tmp_path)
    again = Fakes()
    choice = _select(again, _key(), tmp_path)
    assert choice.cached and (choice.backend, choice.dtype) == ("openvino", "fp32")
    assert again.built == [("openvino", "fp32")] and again.timed == []  # nothing measured a second time


@pytest.mark.parametrize(
    "changed",
    [
        {"flags": ("avx2", "avx512f", "amx_bf16")},  # another CPU
        {"torch_version": "2.14.0"},  # another library version
        {"cpu": "AuthenticAMD family 23 model 49 stepping 0"},  # same flags, another generation (Zen 2)
        {"threads": 8},  # the same machine served with more threads
    ],
    ids=["cpu-flags", "versions", "cpu-generation", "threads"],
)
def test_new_cpu_threads_or_versions_measure_again(tmp_path, changed):
    _select(Fakes(), _key(), tmp_path)
    fakes = Fakes()
    choice = _select(fakes, _key(**changed), tmp_path)
    assert not choice.cached
    assert set(fakes.built) == set(CANDIDATES)  # every candidate built and gated again
    assert cache_path(_key(**changed), tmp_path) != cache_path(_key(), tmp_path)


def test_cache_file_with_another_key_is_not_trusted(tmp_path):
    _select(Fakes(), _key(), tmp_path)
    path = cache_path(_key(), tmp_path)
    doc = json.loads(path.read_text())
    doc["key"]["model_sha256"] = "edited"  # e.g. a file copied from another machine under the same name
    path.write_text(json.dumps(doc))
    assert not _select(Fakes(), _key(), tmp_path).cached


def test_a_failing_backend_is_recorded_not_fatal(tmp_path):
    fakes = Fakes(broken={("openvino", "fp32")})
    choice = _select(fakes, _key(), tmp_path)
    assert (choice.backend, choice.dtype) == ("onnxruntime", "fp32")  # the next fastest that passes
    failed = {t.name: t.error for t in choice.trials}["openvino-fp32"]
    assert failed == "RuntimeError: cannot load it here"


def test_nothing_passes_falls_back_to_inductor_fp32(tmp_path):
    fakes = Fakes(fails_gate=set(CANDIDATES))
    choice = _select(fakes, _key(), tmp_path)
    assert (choice.backend, choice.dtype) == ("inductor", "fp32")
    assert fakes.built.count(("inductor", "fp32")) == 2  # its gated copy was dropped, the fallback rebuilt
    assert "no candidate passed" in choice.reason


def test_default_key_names_this_machine():
    import torch

    from yolostream.engine.runtime import cpu_flags, cpu_id, usable_cores

    key = cache_key("abc123", BUCKETS, {"imgsz": 320})
    assert key["cpu_flags"] == sorted(cpu_flags())
    assert key["cpu"] == cpu_id() and key["threads"] == usable_cores()
    assert key["versions"]["torch"] == torch.__version__
    assert key["buckets"] == ["1x320x320", "4x320x320"]


INTEL_CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Processor
stepping\t: 8
flags\t\t: fpu avx2 amx_tile

processor\t: 1
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 106
stepping\t: 6
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (INTEL_CPUINFO, "GenuineIntel family 6 model 143 stepping 8"),  # the first block; "model name" is not "model"
        ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 23\n", "AuthenticAMD family 23 model ? stepping ?"),
        ("processor\t: 0\nCPU implementer\t: 0x41\n", "unknown"),  # no x86 fields (e.g. an Arm board)
        (None, "unknown"),  # no /proc/cpuinfo
    ],
    ids=["intel", "partial", "no-x86-fields", "missing"],
)
def test_cpu_id_names_the_generation(tmp_path, text: str | None, expected: str) -> None:
    from yolostream.engine.runtime import cpu_id

    path = tmp_path / "cpuinfo"
    if text is not None:
        path.write_text(text)
    assert cpu_id(path) == expected


ALL_FLAGS = {
    "avx2", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_tile", "amx_int8"
}  # fmt: skip


@pytest.mark.parametrize(
    ("env", "allowed"),
    [
        ({}, ALL_FLAGS),  # no cap: the CPU's flags
        ({"ONEDNN_MAX_CPU_ISA": "ALL"}, ALL_FLAGS),
        # oneDNN capped at AVX2: no AVX-512, no VNNI of either width, no AMX (no native int8 dot, no native bf16).
        ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, {"avx2"}),
        ({"ONEDNN_MAX_CPU_ISA": "AVX2_VNNI"}, {"avx2", "avx_vnni"}),
        ({"ONEDNN_MAX_CPU_ISA": "avx512_core_vnni"}, {"avx2", "avx512f", "avx512_vnni"}),  # case-insensitive
        ({"ATEN_CPU_CAPABILITY": "avx2"}, {"avx2", "avx_vnni"}),
        ({"ATEN_CPU_CAPABILITY": "default"}, set()),
    ],
)
def test_cpu_flags_follow_isa_limits(monkeypatch, env: dict[str, str], allowed: set[str]) -> None:
    """An ISA cap in the environment removes what the kernels may not use from the flags that the int8 / bf16
    choices and the auto cache key read (here: the cap's flags intersected with this CPU's)."""
    from yolostream.engine import runtime

    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    full = set(runtime.cpu_flags())
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert set(runtime.cpu_flags()) == full & allowed
    assert runtime.native_int8_dot() == bool(full & allowed & {"avx512_vnni", "avx_vnni", "amx_int8"})
    assert runtime.native_bf16() == bool(full & allowed & {"avx512_bf16", "amx_bf16"})


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino not installed (extra 'openvino')")
def test_openvino_bf16_follows_isa_limits(monkeypatch) -> None:
    """OpenVINO's plugin reads the CPU's own flags, but its oneDNN obeys ``ONEDNN_MAX_CPU_ISA``: capped at AVX2 on
    a bf16 CPU it asked for bf16 kernels the cap forbids, and the INT8 model failed to compile ("Supported
    primitive descriptors list is empty ... Softmax"). Under the cap the bf16 answer (the INT8 float-remainder
    hint, the bf16 row) is no; without one it is the plugin's own."""
    from yolostream.engine import baselines, openvino_backend, runtime

    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    import openvino

    plugin = "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    assert openvino_backend.native_bf16() == (plugin and runtime.native_bf16())
    assert baselines.OpenVINORunner.native_bf16() == openvino_backend.native_bf16()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not openvino_backend.native_bf16() and not baselines.OpenVINORunner.native_bf16()
