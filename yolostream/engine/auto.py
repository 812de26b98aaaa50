"""``backend="auto"`` / ``dtype="auto"``: measure the candidates once per machine, keep the fastest that passes
the accuracy gate, cache the choice.

The cache key is everything the choice depends on: the CPU (make, generation, ISA flags), the thread count,
the versions of torch and of every runtime and quantizer, the model file's hash, the buckets and the graph
settings. A new key (another CPU, other threads, an upgraded library, another model) measures again; the same
key loads only the chosen backend. Timing interleaves the candidates (A B C A B C ...) so a neighbour's load on
a shared machine hits all of them alike, and takes medians per bucket. The building, gating and timing are
passed in, so tests can fake them.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import logging
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from yolostream.engine.buckets import Bucket
from yolostream.engine.runtime import cpu_flags, cpu_id, default_cache_dir, usable_cores

log = logging.getLogger("yolostream")
PACKAGES = ("torch", "yolostream", "openvino", "onnxruntime", "onnx", "onnxscript", "torchao", "nncf")
CACHE_FORMAT = 3  # 2: the key names the CPU generation and the thread count; 3: the precision tie-break
Candidate = tuple[str, str]  # (backend, dtype)
# Most precise first: a candidate this much slower than the fastest but more precise is chosen instead. 5%:
# the round-by-round quartiles of `yolostream bench --backends` on the 2-core VMs span about +-3-4%, and the
# choice is timed for seconds only.
PRECISION_RANK = {"fp32": 0, "fp16": 1, "bf16": 1, "int8": 2}
TIE = 0.05


def versions() -> dict[str, str | None]:
    """Installed versions of the packages a choice depends on (None: not installed)."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def file_hash(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a model file (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def cache_key(
    model_sha: str,
    buckets: Sequence[Bucket],
    settings: dict[str, Any],
    flags: Sequence[str] | None = None,
    libs: dict[str, str | None] | None = None,
    cpu: str | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """What the choice depends on, as a JSON-ready dict (its hash names the cache file). ``cpu`` (default
    `cpu_id`) and ``threads`` (default: the usable cores, what the runners get unless told) are part of it
    because the ranking moves with them: the same flags on another CPU generation, or OpenVINO's thread pool
    against OpenMP's at another thread count."""
    return {
        "format": CACHE_FORMAT,
        "cpu": cpu_id() if cpu is None else cpu,
        "threads": usable_cores() if threads is None else threads,
        "cpu_flags": sorted(cpu_flags() if flags is None else flags),
        "versions": versions() if libs is None else dict(libs),
        "model_sha256": model_sha,
        "buckets": [str(b) for b in buckets],
        "settings": settings,
    }


def cache_path(key: dict[str, Any], root: str | os.PathLike[str] | None = None) -> Path:
    """``~/.cache/yolostream/auto/<hash of key>.json`` (beside the Inductor cache)."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    base = Path(root) if root is not None else default_cache_dir().parent / "auto"
    return base / f"{digest}.json"


@dataclass
class Trial:
    """One candidate's outcome: per-bucket median latency (ms), the gate's verdict, or why it failed."""

    backend: str
    dtype: str
    latency_ms: dict[str, float] = field(default_factory=dict)
    gate: dict[str, Any] | None = None
    error: str | None = None

    @property
    def name(self) -> str:
        return f"{self.backend}-{self.dtype}"

    @property
    def score_ms(self) -> float:
        """Sum over buckets of the median latency: every bucket counts, none dominates by batch."""
        return sum(self.latency_ms.values()) if self.latency_ms else float("inf")

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.gate and self.gate.get("passed"))


@dataclass
class Choice:
    """The chosen candidate, its runner (None until built), every trial, and whether it came from the cache."""

    backend: str
    dtype: str
    runner: Any
    trials: list[Trial]
    cached: bool
    reason: str
    path: Path


Build = Callable[[str, str], Any]
Gate = Callable[[str, str, Any], dict[str, Any]]  # -> GateResult.to_dict()
Timer = Callable[[Any, Bucket], float]  # one call of the runner on the bucket's input -> seconds


def _time_interleaved(
    runners: dict[Candidate, Any],
    buckets: Sequence[Bucket],
    timer: Timer,
    budget_s: float,
    min_rounds: int = 5,
    max_rounds: int = 200,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[Candidate, dict[str, float]]:
    """Median ms per (candidate, bucket) over rounds of one call each, A B C A B C ..., until ``budget_s`` of
    wall time per candidate is spent (at least ``min_rounds``)."""
    samples: dict[Candidate, dict[Bucket, list[float]]] = {c: {b: [] for b in buckets} for c in runners}
    start = clock()
    for done in range(max_rounds):
        if done >= min_rounds and clock() - start >= budget_s * len(runners):
            break
        for cand, runner in runners.items():
            for bucket in buckets:
                samples[cand][bucket].append(timer(runner, bucket) * 1e3)
    return {c: {str(b): statistics.median(s) for b, s in per.items()} for c, per in samples.items()}


def select(
    candidates: Sequence[Candidate],
    buckets: Sequence[Bucket],
    key: dict[str, Any],
    *,
    build: Build,
    gate: Gate,
    timer: Timer,
    budget_s: float = 2.0,
    cache_root: str | os.PathLike[str] | None = None,
    fallback: Candidate = ("inductor", "fp32"),
    clock: Callable[[], float] = time.perf_counter,
    tie: float = TIE,
) -> Choice:
    """Choose among ``candidates`` (or read the choice cached under ``key``) and build the chosen runner.

    Measured: each candidate is built, gated (``gate`` returns `GateResult.to_dict()`), then the passing ones
    are timed together, interleaved, ``budget_s`` seconds each; the fastest wins, unless a more precise one is
    within ``tie`` of it (`_most_precise_of_the_fastest`). If none passes, ``fallback``.
    """
    path = cache_path(key, cache_root)
    cached = _read(path, key)
    if cached is not None and tuple(cached["choice"]) in set(map(tuple, candidates)):
        backend, dtype = cached["choice"]
        trials = [Trial(**t) for t in cached["trials"]]
        reason = f"measured {cached['date']}: {cached['reason']}"
        return Choice(backend, dtype, build(backend, dtype), trials, True, reason, path)
    trials = {c: Trial(*c) for c in candidates}
    runners: dict[Candidate, Any] = {}
    for cand in candidates:
        try:
            runner = build(*cand)
            trials[cand].gate = gate(cand[0], cand[1], runner)
        except Exception as e:  # a backend failing here is a trial result, not a failed load
            trials[cand].error = f"{type(e).__name__}: {e}"
            log.debug("auto: %s-%s failed: %s", *cand, trials[cand].error)
            continue
        if trials[cand].gate.get("passed"):
            runners[cand] = runner
    for cand, latency in _time_interleaved(runners, buckets, timer, budget_s, clock=clock).items():
        trials[cand].latency_ms = latency
    ranked = sorted((t for t in trials.values() if t.ok), key=lambda t: t.score_ms)
    best = _most_precise_of_the_fastest(ranked, tie) if ranked else trials.get(fallback, Trial(*fallback))
    reason = _reason(best, list(trials.values()), ranked, tie)
    _write(path, key, (best.backend, best.dtype), list(trials.values()), reason)
    runner = runners.get((best.backend, best.dtype))
    runners.clear()  # free the losers' compiled models before anything else is built
    if runner is None:
        runner = build(best.backend, best.dtype)
    return Choice(best.backend, best.dtype, runner, list(trials.values()), False, reason, path)


def _most_precise_of_the_fastest(ranked: list[Trial], tie: float) -> Trial:
    """Among the candidates within ``tie`` (a fraction) of the fastest, the most precise; the faster of equals.

    Why: a quantized model that passes the gate still loses a little accuracy, and a speed difference inside
    the timing's noise is no reason to pay it. Measured on a Zen 1 EPYC (no VNNI; yolov8s, round by round):
    Inductor INT8 0.97x Inductor fp32, quartiles 0.91-0.99, and OpenVINO INT8 0.96x its fp32 -- INT8 gains
    next to nothing there, while on AVX-512, AMX or a faster AVX2 EPYC it is 0.4-0.75x fp32, far outside it.
    """
    fastest = ranked[0].score_ms
    close = [t for t in ranked if t.score_ms <= fastest * (1 + tie)]
    return min(close, key=lambda t: (PRECISION_RANK.get(t.dtype, len(PRECISION_RANK)), t.score_ms))


def _reason(best: Trial, trials: list[Trial], ranked: list[Trial], tie: float) -> str:
    if not ranked:
        return f"no candidate passed the accuracy gate; falling back to {best.name}"
    parts = [f"{best.score_ms:.1f} ms"]
    others = [t for t in ranked if t is not best]
    if ranked[0] is not best:
        parts.append(f"kept over {ranked[0].name} {ranked[0].score_ms:.1f} ms: within {tie:.0%}, and less precise")
    elif others:
        parts.append(f"next {others[0].name} {others[0].score_ms:.1f} ms")
    rejected = [f"{t.name} ({t.error or (t.gate or {}).get('reason', '')})" for t in trials if not t.ok]
    if rejected:
        parts.append("rejected " + ", ".join(rejected))
    if best.gate:
        parts.append(f"gate: {best.gate.get('reason', '')}")
    return "; ".join(parts)


def _read(path: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if doc.get("key") == key else None  # a hash collision or a hand-edited file: measure again


def _write(path: Path, key: dict[str, Any], choice: Candidate, trials: list[Trial], reason: str) -> None:
    doc = {
        "key": key,
        "choice": list(choice),
        "reason": reason,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "trials": [asdict(t) for t in trials],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2))
    os.replace(tmp, path)  # a crash never leaves half a cache file
