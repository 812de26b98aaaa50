"""How many camera streams this machine runs through the whole pipeline at a target frame rate.

For each resolution (1080p and 720p by default) a looping clip of moving shapes is generated at
--stream-fps, then trials play N copies of it as real-time camera streams through everything
`yolostream run` does: cross-stream batching, the detector, tracking, a zone and a line rule, the
SQLite sink with per-frame summaries. Each trial warms up for --warmup seconds, then measures for
--duration seconds: each stream's sustained result rate, latency from capture to result and from
capture to alarm stored (p50/p99), drops, process CPU (% of one core) and memory (RSS).

A trial holds the target when every stream keeps at least (1 - --tolerance) x --target-fps. Without
--streams, N doubles from 1 while trials hold, then bisects: the answer is the largest N that held.

  yolostream bench-pipeline model.pt --imgsz 320 --target-fps 15
  yolostream bench-pipeline model.pt --resolutions 720p --streams 1,2,4 --json bench.json
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from yolostream.errors import ConfigError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model",
        nargs="?",
        help="model file: Ultralytics .pt or yolostream .safetensors (default: the bundled demo model)",
    )
    p.add_argument("--imgsz", type=int, default=640, metavar="N", help="network input size (default 640)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, ... (default cpu)")
    p.add_argument(
        "--engine",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="compiled-engine option passed to yolostream.load, as the config's model.engine (repeatable; "
        "values read as YAML: --engine dtype=bf16 --engine buckets=[1,2,4])",
    )
    p.add_argument("--resolutions", default="1080p,720p", metavar="LIST", help="of 2160p 1080p 720p 480p 360p")
    p.add_argument("--stream-fps", type=float, default=15.0, metavar="FPS", help="rate of each stream (default 15)")
    p.add_argument("--target-fps", type=float, metavar="FPS", help="rate to hold per stream (default: --stream-fps)")
    p.add_argument("--tolerance", type=float, default=0.05, metavar="F", help="allowed shortfall (default 0.05)")
    p.add_argument("--streams", metavar="LIST", help="stream counts to try instead of the search, e.g. 1,2,4")
    p.add_argument("--max-streams", type=int, default=64, metavar="N", help="search limit (default 64)")
    p.add_argument("--duration", type=float, default=12.0, metavar="S", help="measured seconds per trial (12)")
    p.add_argument("--warmup", type=float, default=4.0, metavar="S", help="seconds before measuring (default 4)")
    p.add_argument("--max-batch", type=int, metavar="N", help="frames per call (default: engine buckets, else 8)")
    p.add_argument("--max-wait-ms", type=float, default=10.0, metavar="MS", help="batch wait (default 10)")
    p.add_argument("--clip-dir", metavar="DIR", help="keep the generated clips here (default: a temporary folder)")
    p.add_argument("--json", metavar="PATH", help="write settings, environment and every trial as JSON ('-': stdout)")


def run(args: argparse.Namespace) -> int:
    from yolostream.cli.common import model_or_demo

    args.model = model_or_demo(args.model)
    from rich.console import Console

    from yolostream.pipeline import assemble
    from yolostream.pipeline.bench import (
        RESOLUTIONS,
        BenchSettings,
        run_trial,
        search_streams,
        trial_config,
    )
    from yolostream.pipeline.synthetic import write_demo_clip

    resolutions = [r.strip() for r in args.resolutions.split(",") if r.strip()]
    unknown = [r for r in resolutions if r not in RESOLUTIONS]
    if unknown or not resolutions:
        raise ConfigError(f"--resolutions: unknown {unknown or resolutions}; choose from {list(RESOLUTIONS)}")
    counts = _counts(args.streams)
    settings = BenchSettings(
        model=str(args.model),
        imgsz=args.imgsz,
        device=args.device,
        stream_fps=args.stream_fps,
        target_fps=args.target_fps or args.stream_fps,
        tolerance=args.tolerance,
        duration_s=args.duration,
        warmup_s=args.warmup,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        engine=_engine_options(args.engine),
    )
    console = Console(stderr=args.json == "-")
    if not console.is_terminal:
        console.width = 170  # a log file or pipe: room for the whole table
    # Per-source state changes would flood the table; warnings (reconnects, errors) still show.
    logging.getLogger("yolostream.sources").setLevel(logging.WARNING)
    logging.getLogger("yolostream.pipeline").setLevel(logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="yolostream-clips-") as tmp:
        clip_dir = Path(args.clip_dir) if args.clip_dir else Path(tmp)
        probe = trial_config(clip_dir / "probe.mp4", 1, (640, 360), settings, clip_dir)
        detector = assemble.build_detector(probe)
        _warm(detector)
        largest: dict[str, int] = {}
        trials = []
        for res in resolutions:
            width, height = RESOLUTIONS[res]
            clip = clip_dir / f"bench-{res}-{settings.stream_fps:g}fps.mp4"
            if not clip.exists():
                console.print(f"generating {clip.name} ...")
                write_demo_clip(clip, width, height, round(settings.stream_fps), seconds=8.0)

            def trial(n: int, res: str = res, clip: Path = clip) -> Any:
                console.print(f"{res}: {n} stream(s) ...", end=" ")
                result = run_trial(detector, clip, res, n, settings)
                console.print(f"min {result.fps_min:.1f} fps, p99 {_ms(result.latency_p99_ms)} ms", end=" ")
                console.print("[green]holds[/]" if result.holds else "[red]does not hold[/]")
                return result

            largest[res], results = search_streams(trial, args.max_streams, counts)
            trials += results
    console.print(_table(trials, settings))
    for res, n in largest.items():
        console.print(f"[bold]{res}[/]: largest N holding {settings.target_fps:g} fps = [bold]{n}[/]")
    if args.json:
        report = {
            "settings": vars(settings) | {"engine": dict(settings.engine)},
            "environment": _environment(settings.device),
            "largest_streams": largest,
            "trials": [t.to_dict() for t in trials],
        }
        text = json.dumps(report, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    return 0


def _environment(device: str) -> dict[str, Any]:
    import torch

    from yolostream.bench.environment import environment

    return environment(torch.device(device), torch.get_num_threads())


def _engine_options(items: list[str]) -> tuple[tuple[str, Any], ...]:
    import yaml

    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--engine takes KEY=VALUE, got {item!r}")
        try:
            out.append((key.strip(), yaml.safe_load(value)))
        except yaml.YAMLError as e:
            raise ConfigError(f"--engine {item!r}: value is not valid YAML: {e}") from None
    return tuple(out)


def _counts(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        counts = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--streams must be a comma list of integers, got {text!r}") from None
    if not counts or min(counts) < 1:
        raise ConfigError(f"--streams must list counts >= 1, got {text!r}")
    return counts


def _warm(detector: Any) -> None:
    """First calls of each batch size pay one-off setup (kernels, allocations): not the pipeline's cost."""
    import numpy as np

    image = np.zeros((360, 640, 3), np.uint8)
    for n in (1, 2, 4):
        detector([image] * n)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _table(trials: list[Any], settings: Any) -> Any:
    from rich.table import Table

    table = Table(
        title=f"bench-pipeline: target {settings.target_fps:g} fps per stream, imgsz {settings.imgsz}, "
        f"{settings.device}, {settings.duration_s:g} s per trial",
        title_justify="left",
    )
    columns = (
        "res", "N", "holds", "fps min", "fps mean", "lat p50", "lat p99", "alarm p50", "alarm p99",
        "alarms", "drops %", "CPU %", "RSS MB", "batch", "batch ms",
    )  # fmt: skip
    for c in columns:
        table.add_column(c, justify="left" if c in ("res", "holds") else "right")
    for t in trials:
        table.add_row(
            t.resolution,
            str(t.streams),
            "yes" if t.holds else "no",
            f"{t.fps_min:.1f}",
            f"{t.fps_mean:.1f}",
            _ms(t.latency_p50_ms),
            _ms(t.latency_p99_ms),
            _ms(t.alarm_latency_p50_ms),
            _ms(t.alarm_latency_p99_ms),
            str(t.alarms),
            f"{t.drop_pct:.1f}",
            f"{t.cpu_pct:.0f}",
            f"{t.rss_mb:.0f}",
            f"{t.batch_mean:.1f}",
            f"{t.batch_ms:.0f}",
        )
    table.caption = "latencies in ms: capture -> result, capture -> alarm stored; CPU in % of one core"
    table.caption_justify = "left"
    return table
