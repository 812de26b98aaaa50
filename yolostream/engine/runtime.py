"""Process-level settings the engine applies when it is created (never on import): threads and caches."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import torch

from yolostream.cpus import usable_cpus, warn_if_pinned_early

log = logging.getLogger("yolostream.engine")


def usable_cores() -> int:
    """Cores this process may run on (`yolostream.cpus.usable_cpus`), not the machine's count: in a container or
    under taskset, more threads than cores makes OpenMP's barriers spin against each other (several times
    slower); under OpenMP binding, not the one core the main thread was pinned to."""
    warn_if_pinned_early()
    return len(usable_cpus())


def set_threads(threads: int | None) -> int:
    """Intra-op threads = ``threads`` or the usable cores. Returns the number set.

    A change of thread count after compiling invalidates the compiled graphs' guards, so this runs
    before warm-up and the engine keeps it fixed.
    """
    n = threads or usable_cores()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/yolostream/inductor`` (``~/.cache/...`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "yolostream" / "inductor"


def use_cache_dir(path: str | os.PathLike[str] | None) -> Path:
    """Point Inductor's persistent caches (FX graph, AOTAutograd, autotuning, compiled kernels) at ``path``.

    An explicit ``TORCHINDUCTOR_CACHE_DIR`` set by the user wins when no path is given. Inductor reads the
    variable when it first needs the directory, so this must run before the first compile.
    """
    if path is None and os.environ.get("TORCHINDUCTOR_CACHE_DIR"):
        return Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])
    target = Path(path) if path is not None else default_cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(target)
    return target


_WANTED_FLAGS = (
    "avx2", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_tile", "amx_int8"
)  # fmt: skip
_AVX512 = {"avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni"}
_AMX = {"amx_bf16", "amx_tile", "amx_int8"}
# What oneDNN may not use under each ``ONEDNN_MAX_CPU_ISA`` value (its ISA names, upper case); values not
# listed (ALL, the AMX levels, unknown ones) take nothing away.
_ONEDNN_CAPS: dict[str, set[str]] = {
    "SSE41": {"avx2", "avx_vnni"} | _AVX512 | _AMX,
    "AVX": {"avx2", "avx_vnni"} | _AVX512 | _AMX,
    "AVX2": {"avx_vnni"} | _AVX512 | _AMX,
    "AVX2_VNNI": _AVX512 | _AMX,
    "AVX2_VNNI_2": _AVX512 | _AMX,
    "AVX512_CORE": {"avx_vnni", "avx512_vnni", "avx512_bf16", "avx512_fp16"} | _AMX,
    "AVX512_CORE_VNNI": {"avx_vnni", "avx512_bf16", "avx512_fp16"} | _AMX,
    "AVX512_CORE_BF16": {"avx_vnni", "avx512_fp16"} | _AMX,
    "AVX512_CORE_FP16": _AMX,
    "AVX10_1_512": _AMX,
}
# The same for ATen's and Inductor's vector code (``ATEN_CPU_CAPABILITY``).
_ATEN_CAPS: dict[str, set[str]] = {"default": set(_WANTED_FLAGS), "avx2": _AVX512 | _AMX}


def cpuinfo(path: str | os.PathLike[str] = "/proc/cpuinfo") -> dict[str, str]:
    """The first processor's fields in /proc/cpuinfo (``flags``, ``model name``, ``cpu family`` ...); empty where
    there is no such file. One block is enough: a VM's cores are alike."""
    fields: dict[str, str] = {}
    try:
        with open(path) as f:
            for line in f:
                if not line.strip():
                    if fields:
                        break
                    continue
                name, _, value = line.partition(":")
                fields.setdefault(name.strip(), value.strip())
    except OSError:
        return {}
    return fields


def cpu_flags() -> list[str]:
    """The vector/matrix ISA flags that kernels may use here: this CPU's (/proc/cpuinfo), minus what
    ``ONEDNN_MAX_CPU_ISA`` or ``ATEN_CPU_CAPABILITY`` forbid (e.g. ``ONEDNN_MAX_CPU_ISA=AVX2`` on an AVX-512
    CPU: oneDNN then has no VNNI and no native bf16, and the INT8 and dtype choices must follow it)."""
    flags = cpuinfo().get("flags", "").split()
    capped = _ONEDNN_CAPS.get(os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper(), set())
    capped |= _ATEN_CAPS.get(os.environ.get("ATEN_CPU_CAPABILITY", "").lower(), set())
    return [flag for flag in _WANTED_FLAGS if flag in flags and flag not in capped]


def cpu_id(path: str | os.PathLike[str] = "/proc/cpuinfo") -> str:
    """The CPU's make and generation, e.g. ``AuthenticAMD family 23 model 1 stepping 2`` (Zen 1), from
    /proc/cpuinfo; ``unknown`` elsewhere. Cloud VMs often name every host "AMD EPYC", and two hosts with the
    same ISA flags rank the backends differently (Inductor INT8 against fp32: 0.97x on a Zen 1 EPYC, 0.62-0.75x
    on the faster AVX2 EPYC of an earlier session), so timing-based choices are keyed by this too."""
    info = cpuinfo(path)
    names = ("vendor_id", "cpu family", "model", "stepping")
    if not any(info.get(n) for n in names):
        return "unknown"
    vendor, family, model, stepping = (info.get(n) or "?" for n in names)
    return f"{vendor} family {family} model {model} stepping {stepping}"


def native_int8_dot() -> bool:
    """True when this CPU has an int8 dot-product instruction (VNNI or AMX) that accumulates u8 x s8 products in
    int32; without it oneDNN pairs them in a saturating int16 first (`yolostream.quant.pt2e`)."""
    flags = cpu_flags()
    return any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


def native_bf16() -> bool:
    """True when this CPU computes bf16 natively (AVX512-BF16 or AMX); without it bf16 is emulated and slower."""
    flags = cpu_flags()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def settle_gc() -> None:
    """Collect once, then freeze every object alive now (``gc.freeze``) before serving.

    Importing torch and loading a model leaves ~500k objects the cyclic collector tracks; an older-generation
    collection walks them all, a pause of several milliseconds at a random frame. Frozen objects are never
    scanned again, so collections during serving only look at what serving creates. Called by the pipeline
    after warm-up and by the benchmark before timing (for every configuration alike).
    """
    import gc

    gc.collect()
    gc.freeze()


@contextlib.contextmanager
def quiet_loggers(*names: str, level: int = logging.ERROR) -> Iterator[None]:
    """Hold these loggers at ``level`` or above for a while: the ONNX exporter logs every pass, torchao one
    warning per CUDA library a CPU build cannot load; none of that is news to the user."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(max(lg.getEffectiveLevel(), level))
    try:
        yield
    finally:
        for lg, old in zip(loggers, levels, strict=True):
            lg.setLevel(old)
