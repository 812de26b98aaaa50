"""The live terminal table of `yolostream run` (rich), and a one-line log summary where there is no terminal."""

from __future__ import annotations

import logging
from typing import Any

from yolostream.pipeline.app import PipelineSnapshot

log = logging.getLogger("yolostream.pipeline")

_STATE_STYLE = {"running": "green", "connecting": "yellow", "stalled": "red", "reconnecting": "red", "failed": "red"}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def stream_table(snap: PipelineSnapshot, title: str = "yolostream") -> Any:
    """A rich ``Table``: one row per stream, the batch and sink figures in the caption."""
    from rich.table import Table

    table = Table(title=f"{title}  up {snap.uptime_s:.0f} s", title_justify="left", expand=False)
    for name, justify in (
        ("stream", "left"),
        ("state", "left"),
        ("fps", "right"),
        ("frames", "right"),
        ("lat p50 ms", "right"),
        ("lat p99 ms", "right"),
        ("drops", "right"),
        ("reconn", "right"),
        ("dec err", "right"),
        ("alarms", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for s in snap.streams:
        style = _STATE_STYLE.get(s.state, "")
        table.add_row(
            s.stream,
            f"[{style}]{s.state}[/]" if style else s.state,
            f"{s.fps:.1f}",
            str(s.frames),
            _ms(s.latency_p50_ms),
            _ms(s.latency_p99_ms),
            str(s.drops),
            str(s.reconnects),
            str(s.decode_errors),
            str(s.alarms),
        )
    table.caption = summary_line(snap, streams=False)
    table.caption_justify = "left"
    return table


def summary_line(snap: PipelineSnapshot, streams: bool = True) -> str:
    """One line: batches, sinks and (optionally) each stream's fps / p99 / alarms, for logs."""
    b = snap.batches
    mean_batch = b.frames / b.calls if b.calls else 0.0
    infer_ms = 1000 * b.infer_s / b.calls if b.calls else 0.0
    parts = [f"batches {b.calls} (mean {mean_batch:.1f} frames, infer {infer_ms:.0f} ms)"]
    queue = snap.sinks.get("queue", {})
    parts.append(f"alarms written {queue.get('alarms_written', 0)}")
    pending = {k: v["pending"] for k, v in snap.sinks.items() if v.get("pending")}
    if pending:
        parts.append("outbox pending " + ", ".join(f"{k} {v}" for k, v in pending.items()))
    if snap.inference_errors:
        parts.append(f"inference errors {snap.inference_errors}")
    if streams:
        parts += [
            f"{s.stream}: {s.state} {s.fps:.1f} fps p99 {_ms(s.latency_p99_ms)} ms drops {s.drops} alarms {s.alarms}"
            for s in snap.streams
        ]
    return " | ".join(parts)
