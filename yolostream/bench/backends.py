"""`yolostream bench --backends`: every backend x precision behind the same `Detector`, timed side by side.

All configurations are loaded first, then timed in interleaved rounds (A B C ... A B C ...), each round a
few calls of each, so that a neighbour's load on a shared machine falls on all of them alike; the figures
are medians over every round, and the ratios also round by round (`paired_ratio`). Network only = the graph
on a letterboxed batch (normalisation, network, candidate selection: the part a backend swaps); end to end =
BGR frame in, `Detections` out. Accuracy is the final detections against eager fp32 on the check pictures.
The environment names the CPU's ISA flags.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yolostream.api import load
from yolostream.bench import measure
from yolostream.bench.detector_run import Picture, check_accuracy, reference
from yolostream.bench.environment import environment, results_name
from yolostream.bench.inputs import timing_frames
from yolostream.bench.stats import summarize
from yolostream.detector import Detector
from yolostream.engine.backends import BACKENDS, PRECISIONS, backend_available
from yolostream.engine.runtime import set_threads, settle_gc
from yolostream.errors import ConfigError

SCHEMA = 1
# Inductor settings `bench` can put beside the default compile, to show what each buys on this ISA.
VARIANTS: dict[str, dict[str, Any]] = {
    "cpp_wrapper": {"options": {"cpp_wrapper": True}},  # the CPU default (`engine.compiled.CPU_OPTIONS`)
    "python-wrapper": {"options": {"cpp_wrapper": False}},
    "max-autotune": {"mode": "max-autotune"},
    "no-freezing": {"options": {"freezing": False}},
    "aot": {"mode": "aoti"},  # AOTInductor-compiled at load, served in process (no Dynamo guards per call)
}
Log = Callable[[str], None]


@dataclass(frozen=True)
class Config:
    """One row: a backend, a precision and (Inductor only) a tuning variant of `VARIANTS`."""

    backend: str
    dtype: str
    variant: str = ""

    @property
    def name(self) -> str:
        return f"{self.backend}-{self.dtype}" + (f"+{self.variant}" if self.variant else "")


def parse_backends(text: Sequence[str], dtypes: Sequence[str] | None = None) -> list[Config]:
    """``all`` / ``inductor,openvino`` / ``inductor-int8`` / ``inductor-fp32+cpp_wrapper`` -> configurations
    available here (``all`` and bare names expand to every precision this machine runs)."""
    out: list[Config] = []
    for item in text:
        name, _, variant = item.partition("+")
        if variant and variant not in VARIANTS:
            raise ConfigError(f"unknown variant {variant!r}: choose from {', '.join(VARIANTS)}")
        backend, _, dtype = name.partition("-")
        names = BACKENDS if backend == "all" else (backend,)
        for b in names:
            if b not in PRECISIONS:
                raise ConfigError(f"unknown backend {b!r}: choose from {', '.join(BACKENDS)}, all")
            if variant and b != "inductor":
                raise ConfigError(f"variant {variant!r} applies to inductor only")
            for d in [dtype] if dtype else [d for d in PRECISIONS[b] if dtypes is None or d in dtypes]:
                if d not in PRECISIONS[b]:
                    raise ConfigError(f"backend {b!r} runs {', '.join(PRECISIONS[b])}, not {d!r}")
                if backend_available(b, d) and Config(b, d, variant) not in out:
                    out.append(Config(b, d, variant))
    return out


@dataclass
class _Row:
    config: Config
    detector: Detector | None = None
    build_s: float | None = None
    error: str | None = None
    samples: dict[str, list[int]] = field(default_factory=lambda: {"network": [], "e2e": []})
    # Each round's median (ns), kept apart for the paired ratios (`paired_ratio`).
    rounds: dict[str, list[float]] = field(default_factory=lambda: {"network": [], "e2e": []})


def _build(row: _Row, model: str, imgsz: int, batch: int, threads: int, calib: Any) -> None:
    c = row.config
    start = time.perf_counter()
    if c.backend == "eager":
        row.detector = load(model, imgsz=imgsz)
    elif c.variant:
        # Through `load` like every other row, so an int8 variant is quantized and calibrated the same way.
        opts = VARIANTS[c.variant]
        row.detector = load(
            model, imgsz=imgsz, backend="inductor", dtype=c.dtype, compile=opts.get("mode", "default"),
            buckets=[(batch, imgsz, imgsz)], threads=threads, calib=calib, inductor_options=opts.get("options"),
        )  # fmt: skip
    else:
        row.detector = load(
            model, imgsz=imgsz, backend=c.backend, dtype=c.dtype, buckets=[(batch, imgsz, imgsz)], threads=threads,
            calib=calib,
        )  # fmt: skip
    row.build_s = time.perf_counter() - start


def run_backends(
    model: str,
    configs: Sequence[Config],
    *,
    imgsz: int = 640,
    batch: int = 1,
    rounds: int = 10,
    calls: int = 10,
    warmup: int = 5,
    threads: int | None = None,
    calib: Any = None,
    pictures: Sequence[Picture] = (),
    frame: str | None = None,
    note: str = "",
    time_eager: bool = True,
    log: Log = lambda message: None,
) -> dict[str, Any]:
    """Build every configuration (plus eager fp32, the reference), time them interleaved: ``rounds`` x
    ``calls`` calls each of network-only and end to end; the JSON-ready document `print_backends` shows.
    ``time_eager=False``: eager fp32 is still the accuracy reference but is not timed (it is the slowest by far)."""
    threads = set_threads(threads)
    env = environment(__import__("torch").device("cpu"), threads)
    rows = [_Row(Config("eager", "fp32")), *(_Row(c) for c in configs)]
    for row in rows:
        log(f"{row.config.name}: building")
        try:
            _build(row, model, imgsz, batch, threads, calib)
        except Exception as e:  # recorded; the others still run
            row.error = f"{type(e).__name__}: {e}"
            log(f"{row.config.name} failed: {row.error}")
    frames = timing_frames(batch, imgsz, frame, seed=0)
    live = [r for r in rows if r.detector is not None and (time_eager or r.config.backend != "eager")]
    calls_of = {}
    for r in live:
        d = r.detector
        letterboxed = d.preprocess(frames)  # type: ignore[union-attr]
        calls_of[r.config] = {"network": lambda d=d, b=letterboxed: d.infer(b), "e2e": lambda d=d: d(frames, bgr=True)}
        for fn in calls_of[r.config].values():
            measure.warm_up(fn, warmup)
    settle_gc()
    log(f"timing {len(live)} configurations: {rounds} interleaved rounds of {calls} calls")
    for _ in range(rounds):
        for r in live:
            for kind, fn in calls_of[r.config].items():
                samples = measure.time_calls(fn, calls)
                r.samples[kind] += samples
                r.rounds[kind].append(statistics.median(samples))
    pics = list(pictures) or [("frame", frames[0])]
    ref = reference(rows[0].detector, pics) if rows[0].detector is not None else None
    results = []
    for r in rows:
        item: dict[str, Any] = {"name": r.config.name, "backend": r.config.backend, "dtype": r.config.dtype}
        item.update(variant=r.config.variant or None, build_s=r.build_s, error=r.error)
        if r.config.dtype == "int8" and r.detector is not None:
            # What the INT8 graph leaves in float runs in this precision (bf16 where the CPU has it natively).
            item["float_parts"] = getattr(r.detector.runner, "float_parts", None)
        if r.detector is not None and r.samples["network"]:
            item.update({k: summarize(s).to_dict() for k, s in r.samples.items()})
            item["round_p50_ms"] = {k: [v / 1e6 for v in vs] for k, vs in r.rounds.items()}
            if ref is not None:
                item["accuracy"] = check_accuracy(r.detector, ref, pics)
        results.append(item)
    _add_ratios(results)
    settings = {"imgsz": imgsz, "batch": batch, "rounds": rounds, "calls": calls, "warmup": warmup}
    settings.update(frame=frame or f"noise {imgsz}x{imgsz} seed 0", check_images=[n for n, _ in pics])
    from yolostream.engine.auto import versions

    env["versions"] = versions()  # every runtime and quantizer, not only torch
    return {"schema": SCHEMA, "kind": "backends", "model": Path(model).name, "settings": settings,
            "environment": env, "note": note, "results": results}  # fmt: skip


def paired_ratio(ours: Sequence[float], theirs: Sequence[float]) -> dict[str, float] | None:
    """Median and quartiles over rounds of ``ours[i] / theirs[i]`` (each a round's median latency).

    Why: this VM's speed drifts by 10-50% within a minute, so two configurations' medians over a whole run mix
    fast and slow minutes in different proportions (one yolov8n fp32 run on Zen 1: ratio of medians 1.20x,
    minima 1.03x). Within a round the two run seconds apart, on nearly the same machine: the round-by-round
    ratio cancels drift slower than a round, and its quartiles say how far to trust the median.
    """
    ratios = [a / b for a, b in zip(ours, theirs, strict=True) if b > 0]
    if not ratios:
        return None
    q25, _, q75 = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else ratios * 3
    return {"median": statistics.median(ratios), "q25": q25, "q75": q75, "rounds": len(ratios)}


def _add_ratios(results: list[dict[str, Any]]) -> None:
    """Network and e2e p50 over eager fp32's, Inductor fp32's and OpenVINO's in the same precision; the same
    round by round (``paired``, `paired_ratio`) where both rows have their rounds."""
    ok = {r["name"]: r for r in results if not r.get("error") and "network" in r}
    for r in results:
        if r.get("error") or "network" not in r:
            continue
        refs = {
            "eager": ok.get("eager-fp32"),
            "inductor": ok.get("inductor-fp32"),
            "openvino": ok.get(f"openvino-{r['dtype']}"),
        }
        r["ratios"] = {
            f"{kind}_vs_{name}": (r[kind]["p50"] / ref[kind]["p50"]) if ref else None
            for name, ref in refs.items() for kind in ("network", "e2e")
        }  # fmt: skip
        rounds = r.get("round_p50_ms") or {}
        r["paired"] = {
            f"{kind}_vs_{name}": paired_ratio(rounds[kind], ref["round_p50_ms"][kind])
            if ref and kind in rounds and kind in (ref.get("round_p50_ms") or {}) else None
            for name, ref in refs.items() for kind in ("network", "e2e")
        }  # fmt: skip


def _paired_cell(p: dict[str, float] | None) -> str:
    """``0.98x (0.93-1.04)``: the median round-by-round ratio and its quartiles."""
    return "-" if p is None else f"{p['median']:.2f}x ({p['q25']:.2f}-{p['q75']:.2f})"


def results_stem(doc: dict[str, Any]) -> str:
    """``bench-<model>-cpu-<isa>-backends[-b<batch>]-pt<major.minor>``."""
    batch = doc["settings"]["batch"]
    return results_name(Path(doc["model"]).stem, doc["environment"], ["backends"], [batch])


def print_backends(doc: dict[str, Any], console: Any) -> None:
    """The table: one row per configuration, latencies with their ratios, build time, detections."""
    from rich.table import Table

    env, s = doc["environment"], doc["settings"]
    limits = " ".join(f"{k}={v}" for k, v in env.get("isa_limits", {}).items())
    title = (
        f"backends: {doc['model']} {s['imgsz']}x{s['imgsz']} batch {s['batch']} on {env['cpu_model']} "
        f"({env.get('cpu_id', 'cpu id not recorded')}; {env['cpu_capability']}; "
        f"flags {' '.join(env['cpu_flags']) or 'none'}{'; ' + limits if limits else ''}), "
        f"torch {env['torch']}, "
        f"{env['threads']} threads, {s['rounds']}x{s['calls']} interleaved calls"
    )
    table = Table(title=title, title_justify="left")
    for col in (
        "config",
        "build s",
        "net p50 ms",
        "vs eager",
        "vs inductor-fp32",
        "vs openvino",
        "paired vs openvino",
        "e2e p50 ms",
        "e2e vs inductor",
        "detections",
    ):
        table.add_column(col, justify="left" if col in ("config", "detections") else "right")
    for r in doc["results"]:
        if r.get("error"):
            table.add_row(r["name"], "-", f"[red]failed: {r['error'][:120]}")
            continue
        if "network" not in r:
            table.add_row(r["name"], f"{r['build_s']:.0f}", "not timed (accuracy reference)")
            continue
        q = r["ratios"]
        fmt = lambda v: "-" if v is None else f"{v:.2f}x"  # noqa: E731
        det = (r.get("accuracy") or {}).get("detections")
        verdict = (
            "-"
            if det is None
            else (
                f"same ({det['n_ref']})"
                if det["unchanged"]
                else f"{det['matched']}/{det['n_ref']} match, {det['n_test']} found"
            )
        )
        table.add_row(
            r["name"], f"{r['build_s']:.0f}", f"{r['network']['p50']:.1f}", fmt(q["network_vs_eager"]),
            fmt(q["network_vs_inductor"]), fmt(q["network_vs_openvino"]),
            _paired_cell((r.get("paired") or {}).get("network_vs_openvino")), f"{r['e2e']['p50']:.1f}",
            fmt(q["e2e_vs_inductor"]), verdict,
        )  # fmt: skip
    console.print(table)
    if doc.get("note"):
        console.print(f"note: {doc['note']}")
