"""Validate a model on a YOLO-format dataset: mAP50-95 and mAP50 computed as Ultralytics' `val` does
(conf 0.001, IoU 0.7, rect batches, multi-label NMS, COCO-style 101-point AP), plus per-class AP.

DATA is a data.yaml with `path`, `val` (folder, list or .txt of images) and `names`; labels live in
`labels/` beside `images/` as `cls cx cy w h` (normalised) per line.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="[MODEL] DATA",
        help="model file (default: the bundled demo model), dataset data.yaml",
    )
    p.add_argument("--imgsz", type=int, default=640, help="long side of the input (default 640)")
    p.add_argument("--conf", type=float, default=0.001, help="confidence threshold (default 0.001)")
    p.add_argument("--iou", type=float, default=0.7, help="NMS IoU threshold (default 0.7)")
    p.add_argument("--max-det", type=int, default=300)
    p.add_argument("--batch", type=int, default=1, help="images per forward pass (default 1)")
    p.add_argument("--split", default="val", help="dataset split key in data.yaml (default val)")
    p.add_argument("--square", action="store_true", help="square IMGSZ inputs instead of rect batch shapes")
    p.add_argument("--no-nms", dest="nms", action="store_false", help="YOLOv10/YOLO26: one-to-one head, no NMS")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", metavar="PATH", help="also write the metrics as JSON")


def run(args: argparse.Namespace) -> int:
    from yolostream.cli.common import model_or_demo

    if len(args.inputs) > 2:
        raise SystemExit("yolostream val: error: expected [MODEL] DATA")
    args.model, args.data = (model_or_demo(None), args.inputs[0]) if len(args.inputs) == 1 else args.inputs
    from rich.table import Table

    from yolostream.api import load
    from yolostream.cli.common import progress_bar, stderr
    from yolostream.val.run import validate

    detector = load(args.model, device=args.device, imgsz=args.imgsz, nms=args.nms)
    with progress_bar() as progress:
        task = progress.add_task("val", total=None, status="")
        result = validate(
            detector,
            args.data,
            imgsz=args.imgsz,
            conf=args.conf,
            iou=args.iou,
            max_det=args.max_det,
            batch=args.batch,
            rect=not args.square,
            split=args.split,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    table = Table(title=f"{args.model} on {args.data} ({result['n_images']} images, {result['n_instances']} boxes)")
    for col in ("class", "mAP50-95", "mAP50"):
        table.add_column(col, justify="right" if col != "class" else "left")
    table.add_row("all", f"{result['map50_95']:.4f}", f"{result['map50']:.4f}", style="bold")
    for c in result["classes"]:
        table.add_row(
            result["names"][c], f"{result['per_class_map50_95'][c]:.4f}", f"{result['per_class_map50'][c]:.4f}"
        )
    stderr.print(table)
    if args.json:
        keep = {k: v for k, v in result.items() if k != "ap"}
        with open(args.json, "w") as f:
            json.dump(keep, f, indent=2, default=str)
    print(json.dumps({"map50_95": result["map50_95"], "map50": result["map50"]}))
    return 0
