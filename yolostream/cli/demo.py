"""The demo: a generated conveyor scene run through the whole pipeline with the bundled model, scored.

`yolostream demo` (no flags) generates the video (unless it is already in OUT), copies the demo pipeline
config beside it (OUT/demo.yaml), runs it with the bundled demo model -- detection, tracking, the counting
line and the reject tray's dwell rule, SQLite + JSON Lines + an annotated recording -- and prints what it
found against the scene's ground truth: parts counted at the line, dwell alarms, share of parts detected
and of false boxes. Needs no model file and no network. --generate / --video-only / --dataset-only only
write the scene.

A top view of a conveyor belt carrying four kinds of parts (bolt, nut, gear, bracket) past a counting
line; now and then a pusher shoves one into the reject tray beside the belt, where it stays longer (an
alarm) or shorter (no alarm) than the dwell time before dropping out. Everything is drawn (no download)
and seeded: the same seed gives the same files.

Writes, under OUT (default runs/demo):
  conveyor.mp4    the video (H.264); demo.yaml (the pipeline config) runs on it
  pipeline/       what the run wrote: yolostream.db, alarms.jsonl, video/ (annotated), summary.json
  conveyor.json   its ground truth: every box of every frame, every line crossing, zone entry/exit, dwell
  dataset/        YOLO-format stills (images/, labels/, data.yaml) for `yolostream train` and `val`
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x384, got {text!r}") from e
    if w < 64 or h < 48 or w % 2 or h % 2:
        raise argparse.ArgumentTypeError(f"size must be even and at least 64x48, got {text!r}")
    return w, h


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", nargs="?", type=Path, default=Path("runs/demo"), help="output folder (default runs/demo)")
    p.add_argument("--seed", type=int, default=0, help="scene seed (default 0)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--generate", action="store_true", help="only write the video and the dataset (no run)")
    what.add_argument("--video-only", action="store_true", help="only the video and its ground truth")
    what.add_argument("--dataset-only", action="store_true", help="only the dataset")
    p.add_argument("--model", help="run the demo with this model file instead of the bundled one")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    v = p.add_argument_group("video")
    v.add_argument("--seconds", type=float, default=20.0, help="video length (default 20)")
    v.add_argument("--fps", type=int, default=15, help="frame rate (default 15)")
    v.add_argument("--size", type=_size, default=(640, 384), metavar="WxH", help="frame size (default 640x384)")
    v.add_argument("--dwell", type=float, default=2.0, metavar="S", help="dwell time of the reject zone (default 2)")
    d = p.add_argument_group("dataset")
    d.add_argument("--train", type=int, default=500, metavar="N", help="training stills (default 500)")
    d.add_argument("--val", type=int, default=100, metavar="N", help="validation stills (default 100)")
    d.add_argument("--imgsz", type=int, default=640, help="long side of the stills (default 640)")


def run(args: argparse.Namespace) -> int:
    from yolostream.demo import make_dataset, make_video

    out: Path = args.out
    if not (args.generate or args.video_only or args.dataset_only):
        return _run_demo(args)
    if not args.dataset_only:
        truth = make_video(out / "conveyor.mp4", args.seconds, args.fps, args.size, args.seed, args.dwell)
        s = truth["summary"]
        print(
            f"video: {out / 'conveyor.mp4'} ({truth['width']}x{truth['height']}, {truth['n_frames']} frames at "
            f"{truth['fps']} fps) with ground truth {out / 'conveyor.json'}: {s['parts_seen']} parts, "
            f"{s['line_in']} line crossings, {s['zone_visits']} reject-zone visits, {s['dwell_alarms']} dwell alarms"
        )
    if not args.video_only:
        summary = make_dataset(out / "dataset", args.train, args.val, args.imgsz, args.seed)
        print(f"dataset: {summary['data_yaml']} {json.dumps(summary['splits'])} in {summary['seconds']} s")
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from yolostream.cli.common import stderr
    from yolostream.demo.run import run_demo

    if (args.fps, args.size, args.dwell) != (15, (640, 384), 2.0):
        raise SystemExit("yolostream demo: error: --fps/--size/--dwell change the scene; use them with --video-only")
    s = run_demo(args.out, seconds=args.seconds, seed=args.seed, model=args.model, progress=not args.quiet)
    ok = lambda good: "[green]ok[/green]" if good else "[red]off[/red]"  # noqa: E731
    stderr.print(f"[bold]demo[/bold]: {s['frames_processed']}/{s['frames']} frames in {s['seconds']} s, {s['model']}")
    counted, truth = s["parts_counted"], s["parts_counted_truth"]
    stderr.print(f"  parts counted at the line: {counted} (ground truth {truth}) {ok(counted == truth)}")
    alarms, truth = s["dwell_alarms"], s["dwell_alarms_truth"]
    stderr.print(f"  dwell alarms in the reject tray: {alarms} (ground truth {truth}) {ok(alarms == truth)}")
    stderr.print(
        f"  parts detected: {s['recall']:.1%} of {s['parts']} at IoU 0.5, false boxes {s['false_rate']:.1%} "
        f"{ok(s['recall'] >= 0.95 and s['false_rate'] <= 0.02)}"
    )
    stderr.print(f"  annotated video: {s['annotated_video']}")
    stderr.print(f"  alarms: {s['alarms_jsonl']}  database: {s['database']}  summary: {args.out / 'summary.json'}")
    stderr.print(
        f"  next: [bold]yolostream serve {s['config']}[/bold] (dashboard; pip install 'yolostream\\[web]' first), "
        f"yolostream run {s['config']}, yolostream predict IMAGE_OR_VIDEO"
    )
    return 0
