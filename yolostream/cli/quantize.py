"""INT8 post-training quantization: calibrate on your pictures, check accuracy, write an AOTInductor package.

The network is quantized with PT2E and torchao's x86 Inductor quantizer (int8 weights per channel, uint8
activations per tensor), calibrated on the pictures of --calib (a folder, or files; pictures like the ones
the model will serve), with the head's output convolutions, the DFL and any attention block kept in float
(--keep-float; add "stem" to keep the first convolution too). The accuracy gate compares it with the float
model: mAP50-95 on --val must not drop by more than --max-map-drop, and the share of the float model's
detections found again on the calibration pictures must reach --min-match. Only then is the package
written (--force writes it anyway); `yolostream.load(OUT)` and every command taking MODEL serve it with no
compilation. Needs the int8 extra: pip install 'yolostream[int8]'.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="Ultralytics .pt or yolostream .safetensors file")
    p.add_argument("--calib", default=None, nargs="+", metavar="PATH", help="calibration pictures: folder(s) or files")
    p.add_argument("--val", default=None, metavar="DATA_YAML", help="validation set for the mAP50-95 gate")
    p.add_argument("--out", "-o", default=None, help="output package (default: MODEL with .int8.pt2)")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--buckets", nargs="+", default=None, metavar="BxHxW", help="default: 1xIMGSZxIMGSZ")
    p.add_argument("--no-nms", dest="nms", action="store_false", help="YOLOv10/YOLO26: bake the one-to-one head")
    p.add_argument(
        "--keep-float",
        default="head_outputs,attention",
        help="layer groups left in float, comma-separated: stem, head_outputs, attention ('' quantizes all; "
        "the DFL decode is always float)",
    )
    p.add_argument("--max-map-drop", type=float, default=0.01, help="largest mAP50-95 drop accepted (default 0.01)")
    p.add_argument("--min-match", type=float, default=0.9, help="smallest share of fp32 detections kept (default 0.9)")
    p.add_argument("--force", action="store_true", help="write the package even if the gate fails")
    p.add_argument("--check-only", action="store_true", help="run the gate, write nothing")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from yolostream.cli.common import stderr
    from yolostream.engine.progress import compile_progress
    from yolostream.quant.package import check_float_groups, quantize_model

    keep = check_float_groups([g.strip() for g in args.keep_float.split(",") if g.strip()])
    out = None if args.check_only else (args.out or str(Path(args.model).with_suffix(".int8.pt2")))
    with compile_progress(enabled=out is not None, what="compiling int8") as callback:
        report = quantize_model(
            args.model,
            args.calib,
            out=out,
            val=args.val,
            imgsz=args.imgsz,
            buckets=args.buckets,
            nms=args.nms,
            keep_float=keep,
            max_map_drop=args.max_map_drop,
            min_match=args.min_match,
            force=args.force,
            progress=callback,
        )
    g = report.gate
    colour = "green" if g.passed else "red"
    stderr.print(f"[{colour}]accuracy gate {'passed' if g.passed else 'FAILED'}: {g.reason}")
    if report.path is not None:
        stderr.print(f"wrote {report.path} ({sum(report.compile_s.values()):.0f}s)")
    elif out is not None:
        stderr.print("no package written (use --force to write it anyway)")
    doc = {"gate": g.to_dict(), "package": str(report.path) if report.path else None}
    doc.update(lowered_match_share=report.lowered_match_share, float_layers=report.float_layers)
    print(json.dumps(doc))
    return 0 if g.passed else 1
