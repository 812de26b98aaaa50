"""`yolostream` command line: one subcommand per job, each in its own module, imported on use."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# name -> (module, one-line help). Modules define `add_arguments(parser)` and `run(args) -> int`.
COMMANDS = {
    "predict": ("yolostream.cli.predict", "detect objects in images, folders, globs and video files"),
    "val": ("yolostream.cli.val", "mAP50-95 / mAP50 on a YOLO-format dataset, as Ultralytics computes them"),
    "convert": ("yolostream.cli.convert", "convert an Ultralytics .pt checkpoint to yolostream's .safetensors"),
    "export": ("yolostream.cli.export", "ahead-of-time compile a model into an AOTInductor package (.pt2)"),
    "quantize": ("yolostream.cli.quantize", "INT8 post-training quantization with an accuracy gate, into a .pt2"),
    "bench": ("yolostream.cli.bench", "benchmark eager vs compiled (and ONNX Runtime / OpenVINO) in one run"),
    "train": ("yolostream.cli.train", "train or fine-tune a detector on a YOLO-format dataset (no Ultralytics code)"),
    "bench-train": ("yolostream.cli.bench_train", "training speed: images/s eager vs compiled, fp32 vs bf16"),
    "demo": ("yolostream.cli.demo", "generate the demo conveyor scene: a video with ground truth, a dataset"),
    "run": ("yolostream.cli.run", "run the multi-camera pipeline described by a YAML config"),
    "serve": ("yolostream.cli.serve", "run the pipeline with the web dashboard and HTTP API"),
    "bench-pipeline": ("yolostream.cli.bench_pipeline", "how many looped camera streams this machine sustains"),
}

EPILOG = """examples:
  yolostream predict model.pt photo.jpg --save-dir runs/predict
  yolostream predict model.pt 'frames/*.jpg' video.mp4 --json - > detections.jsonl
  yolostream val model.pt data.yaml
  yolostream train data.yaml --model yolo11n --epochs 30 --imgsz 320
  yolostream demo runs/demo
  yolostream convert model.pt model.safetensors
  yolostream export model.pt --format aoti --buckets 1x640x640 -o model.pt2
  yolostream bench model.pt --modes eager,default --dtype fp32,bf16
  yolostream run examples/pipeline.yaml
  yolostream serve examples/pipeline.yaml

Models are the .pt files Ultralytics trains (YOLOv5u, YOLOv8, YOLO11, YOLOv10, YOLO26, detection),
read without running any code from them, or files made by `yolostream convert` / `yolostream export`.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="yolostream",
        description="Real-time YOLO object detection: clean-room models, compiled inference, camera pipelines.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        mod = importlib.import_module(module)
        p = sub.add_parser(
            name,
            help=help_text,
            description=(mod.__doc__ or help_text).strip(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        mod.add_arguments(p)
        p.set_defaults(_module=mod)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from yolostream.errors import YolostreamError

    try:
        return int(args._module.run(args) or 0)
    except YolostreamError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
