"""Latency statistics and ratios, from raw samples in nanoseconds (no timing here, only arithmetic)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

PERCENTILES = (50, 90, 99)


@dataclass(frozen=True)
class LatencyStats:
    """Summary of ``n`` latency samples, every figure in milliseconds.

    Percentiles interpolate linearly between order statistics (numpy's default); ``std`` is the sample
    standard deviation (n - 1 in the denominator; 0 for a single sample), the jitter figure the bench reports.
    """

    n: int
    mean: float
    std: float
    min: float
    p50: float
    p90: float
    p99: float
    max: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def summarize(samples_ns: Sequence[int] | np.ndarray) -> LatencyStats:
    """`LatencyStats` (ms) of per-call latencies in nanoseconds. Raises ValueError on no samples."""
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    if ms.ndim != 1 or ms.size == 0:
        raise ValueError(f"need a non-empty 1-D sequence of samples, got shape {ms.shape}")
    p50, p90, p99 = (float(v) for v in np.percentile(ms, PERCENTILES))
    std = float(ms.std(ddof=1)) if ms.size > 1 else 0.0
    return LatencyStats(int(ms.size), float(ms.mean()), std, float(ms.min()), p50, p90, p99, float(ms.max()))


def throughput_from_latency(samples_ns: Sequence[int] | np.ndarray, images_per_call: int) -> float:
    """Images per second when calls run back to back: images x calls / total time.

    On the CPU every call is synchronous, so the latency loop already is a throughput run.
    """
    total_s = float(np.sum(np.asarray(samples_ns, dtype=np.float64))) / 1e9
    if total_s <= 0:
        raise ValueError("samples add up to no time: cannot compute a throughput")
    return images_per_call * len(samples_ns) / total_s


def ratio(value: float | None, reference: float | None) -> float | None:
    """``value / reference``, or None where either is missing or the reference is 0 (no meaningful ratio)."""
    if value is None or reference is None or reference == 0 or math.isnan(value) or math.isnan(reference):
        return None
    return value / reference


def flatten(figures: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a nested dict as ``{"e2e.p50": 12.3, ...}`` (bools and non-numbers left out)."""
    out: dict[str, float] = {}
    for key, value in figures.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def ratios(figures: Mapping[str, Any], reference: Mapping[str, Any]) -> dict[str, float | None]:
    """Every numeric figure of ``figures`` divided by the same figure of ``reference`` (dotted keys).

    Keys the reference lacks map to None: a figure with no counterpart has no ratio, not a made-up one.
    """
    ref = flatten(reference)
    return {key: ratio(value, ref.get(key)) for key, value in flatten(figures).items()}
