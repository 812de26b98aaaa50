"""Compile a model ahead of time into an AOTInductor package (.pt2) that `yolostream.load()` and every
command taking MODEL serve with no compilation at all (start-up in well under a second).

One model is compiled per bucket (BATCHxHEIGHTxWIDTH of the network input); inputs are fitted to the
smallest bucket that holds them. A package is tied to the torch build, the CPU instruction set (or GPU
model), the device type, the buckets and the settings baked in here (--dtype, --no-nms, --imgsz/--rect
only choose which inputs the buckets must hold); export again after changing any of them.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model", nargs="?", help="Ultralytics .pt or yolostream .safetensors file (default: the bundled demo model)"
    )
    p.add_argument("--format", choices=["aoti"], default="aoti", help="package format (aoti: AOTInductor .pt2)")
    p.add_argument(
        "--buckets",
        nargs="+",
        default=None,
        metavar="BxHxW",
        help="input shapes to compile, e.g. 1x640x640 8x640x640 4x384x640 (default: 1xIMGSZxIMGSZ)",
    )
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32")
    p.add_argument("--no-nms", dest="nms", action="store_false", help="YOLOv10/YOLO26: bake the one-to-one head")
    p.add_argument("--device", default="cpu")
    p.add_argument("-o", "--output", help="output .pt2 path (default: MODEL with .pt2 suffix)")


def run(args: argparse.Namespace) -> int:
    from yolostream.cli.common import model_or_demo

    args.model = model_or_demo(args.model)
    import time
    from pathlib import Path

    from yolostream.api import load
    from yolostream.engine.aot import export_package
    from yolostream.engine.buckets import parse_buckets
    from yolostream.engine.progress import compile_progress

    output = Path(args.output) if args.output else Path(args.model).with_suffix(".pt2")
    if output.suffix != ".pt2":
        raise SystemExit(f"error: the output must end in .pt2, got {output}")
    detector = load(args.model, device=args.device, imgsz=args.imgsz, dtype=args.dtype, nms=args.nms)
    buckets = parse_buckets(args.buckets or [(1, args.imgsz, args.imgsz)])
    start = time.perf_counter()
    with compile_progress(what="AOT compiling") as callback:
        seconds = export_package(detector, buckets, output, progress=callback)
    size = output.stat().st_size / 1e6
    per_bucket = ", ".join(f"{b} {s:.0f}s" for b, s in seconds.items())
    print(f"wrote {output} ({size:.1f} MB) in {time.perf_counter() - start:.0f}s: {per_bucket}")
    return 0
