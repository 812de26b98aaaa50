"""Training speed on this machine: images/s of full training steps at each setting, measured in one run.

Settings are the product of --imgsz, --modes (eager, compiled) and --dtype (fp32, bf16), plus NCHW
vs NHWC (channels_last) with --layouts. Steps are interleaved across settings, the median counts, and
the ratio to the first setting of the same size is printed. bf16 pays only on CPUs with native bf16
(AVX512-BF16/AMX); the CPU's flags are printed and saved with the figures.
"""

from __future__ import annotations

import argparse
import itertools
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="yolo11n", help="family+scale to time (random weights; default yolo11n)")
    p.add_argument("--imgsz", default="320,640", help="comma-separated sizes (default 320,640)")
    p.add_argument("--modes", default="eager,compiled", help="eager and/or compiled (default both)")
    p.add_argument("--dtype", default="fp32,bf16", help="fp32 and/or bf16 (default both)")
    p.add_argument("--layouts", default="nhwc", help="nhwc and/or nchw (default nhwc)")
    p.add_argument("--batch", type=int, default=8, help="pictures per step (default 8)")
    p.add_argument("--iters", type=int, default=5, help="timed steps per setting (default 5)")
    p.add_argument("--warmup", type=int, default=2, help="untimed first steps (compile) per setting (default 2)")
    p.add_argument("--threads", type=int, help="CPU threads (default: the usable cores; 1 on a busy machine)")
    p.add_argument("--json", metavar="PATH", help="write the results (with the environment) as JSON")


def run(args: argparse.Namespace) -> int:
    import torch
    from rich.table import Table

    from yolostream.bench.environment import environment
    from yolostream.cli.common import stderr
    from yolostream.engine.runtime import usable_cores
    from yolostream.train.bench import Setting, run_bench

    split = lambda s: [v.strip() for v in s.split(",") if v.strip()]  # noqa: E731
    settings = [
        Setting(int(size), mode == "compiled", dtype, layout == "nhwc")
        for size, mode, dtype, layout in itertools.product(
            split(args.imgsz), split(args.modes), split(args.dtype), split(args.layouts)
        )
    ]
    threads = args.threads or usable_cores()
    torch.set_num_threads(threads)
    env = environment(torch.device("cpu"), threads)
    rows = []
    for size in sorted({s.imgsz for s in settings}):
        part = run_bench(args.model, [s for s in settings if s.imgsz == size], args.batch, args.iters, args.warmup)
        base = part[0]["images_per_s"]
        for r in part:
            r["speedup"] = r["images_per_s"] / base
        rows += part
    table = Table(
        title=f"training steps, {args.model}, batch {args.batch} ({env['cpu_capability']}, {threads} threads)"
    )
    for col in ("setting", "images/s", "vs first", "step s", "warm-up s"):
        table.add_column(col, justify="left" if col == "setting" else "right")
    for r in rows:
        table.add_row(
            str(r["setting"]),
            f"{r['images_per_s']:.2f}",
            f"{r['speedup']:.2f}",
            f"{r['step_s']:.3f}",
            f"{r['warmup_s']:.1f}",
        )
    stderr.print(table)
    stderr.print(f"cpu flags: {' '.join(env['cpu_flags'])}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "model": args.model, "batch": args.batch, "results": rows}, f, indent=1)
    return 0
