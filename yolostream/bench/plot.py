"""PNG summary of a bench document (needs matplotlib: ``pip install 'yolostream[bench]'``).

Three panels, configurations grouped by batch size: end-to-end latency, network-only latency (with the
baselines), network throughput. Bars are medians, whiskers reach p99. Drawn on a bare `Figure` with the Agg
canvas, so no pyplot state or global backend is touched.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

PANELS = (
    ("e2e", "p50", "end to end (uint8 frame -> detections), ms"),
    ("network", "p50", "network only, ms"),
    ("throughput", "network", "network throughput, images/s"),
)


def _value(result: dict[str, Any], section: str, key: str) -> tuple[float | None, float | None]:
    """(bar height, whisker top) for one result; the whisker only for latencies."""
    block = result.get(section) or {}
    value = block.get(key)
    return value, block.get("p99") if section != "throughput" else None


def plot(doc: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Draw ``doc`` to ``path`` (PNG); returns the path."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch
    except ImportError as e:  # optional dependency
        raise ImportError("--plot needs matplotlib: pip install 'yolostream[bench]'") from e

    ok = [r for r in doc["results"] if not r.get("error")]
    names = list(dict.fromkeys(r["name"] for r in ok))
    batches = list(dict.fromkeys(r["batch"] for r in ok))
    fig = Figure(figsize=(4 + 1.2 * len(names) * len(batches), 9), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(PANELS), 1)
    width = 0.8 / max(len(names), 1)
    env = doc["environment"]
    fig.suptitle(
        f"{doc['model']} {doc['settings']['imgsz']}px on {env['device_name']} "
        f"(torch {env['torch']}, {env['threads']} threads, {env['date'][:10]})",
        fontsize=10,
    )
    for ax, (section, key, label) in zip(axes, PANELS, strict=True):
        for i, name in enumerate(names):
            xs, heights, errs = [], [], []
            for j, batch in enumerate(batches):
                r = next((r for r in ok if r["name"] == name and r["batch"] == batch), None)
                value, top = _value(r, section, key) if r is not None else (None, None)
                if value is None:
                    continue
                xs.append(j + (i - (len(names) - 1) / 2) * width)
                heights.append(value)
                errs.append(max(top - value, 0.0) if top is not None else 0.0)
            if xs:
                whiskers = [[0.0] * len(errs), errs] if any(errs) else None
                # One colour per configuration in every panel (a panel may lack some, e.g. baselines in e2e).
                bars = ax.bar(xs, heights, width, yerr=whiskers, capsize=3, color=f"C{i % 10}", label=name)
                ax.bar_label(bars, fmt="%.3g", fontsize=7, label_type="center")
        ax.set_title(label, fontsize=9, loc="left")
        ax.set_xticks(range(len(batches)), [f"batch {b}" for b in batches])
        ax.set_xlim(-0.5, len(batches) - 0.5)
        ax.grid(axis="y", alpha=0.3)
    handles = [Patch(color=f"C{i % 10}", label=name) for i, name in enumerate(names)]
    fig.legend(handles=handles, loc="outside lower center", fontsize=8, ncols=min(len(names), 5))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
