"""Train or fine-tune a detector on a YOLO-format dataset, with no Ultralytics code involved.

MODEL is a checkpoint to fine-tune (an Ultralytics .pt or a yolostream .safetensors; a different class
count rebuilds the class branch and keeps the rest) or a family+scale name to train from scratch:
yolov5nu..yolov5xu, yolov8n..yolov8x, yolov10n, yolo11n..yolo11x, yolo26n..yolo26x.

Writes to --out: best.safetensors and last.safetensors (serve them with `yolostream predict`/`run` or
`yolostream.load`), results.csv and results.png (losses and mAP per epoch), and last.state.pt, from which
--resume continues a run that was interrupted (even by kill -9) as if it had never stopped.

Licence note: a model fine-tuned from Ultralytics' pretrained weights stays, in Ultralytics' view, under
their licence (AGPL-3.0); a model trained from scratch with yolostream is yours.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="dataset data.yaml (train and val splits, names)")
    p.add_argument(
        "--model",
        help="checkpoint to fine-tune, or a family+scale such as yolo11n to train from scratch "
        "(default: fine-tune the bundled demo model)",
    )
    p.add_argument("--epochs", type=int, default=50, help="epochs (default 50)")
    p.add_argument("--imgsz", type=int, default=640, help="training picture side, multiple of 32 (default 640)")
    p.add_argument("--batch", type=int, default=16, help="pictures per step (default 16)")
    p.add_argument(
        "--nbs", type=int, default=64, help="nominal batch: gradients accumulate to it per optimiser step (default 64)"
    )
    p.add_argument("--lr0", type=float, default=0.01, help="initial learning rate for sgd/adamw (default 0.01)")
    p.add_argument("--lrf", type=float, default=0.01, help="final learning rate as a fraction of lr0 (default 0.01)")
    p.add_argument("--cosine", action="store_true", help="cosine learning-rate decay instead of linear")
    p.add_argument(
        "--optimizer",
        choices=["sgd", "adamw", "auto"],
        default="auto",
        help="auto (default): AdamW with a class-scaled lr for short runs, SGD for long ones",
    )
    p.add_argument("--warmup-epochs", type=float, default=3.0, help="lr/momentum warm-up epochs (default 3)")
    p.add_argument("--close-mosaic", type=int, default=10, help="last N epochs without mosaic (default 10)")
    p.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32", help="bf16: CPU with native bf16 / GPU")
    p.add_argument("--compile", action="store_true", help="torch.compile the training forward")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (default cpu)")
    p.add_argument("--workers", type=int, default=2, help="data loader processes (default 2)")
    p.add_argument("--seed", type=int, default=0, help="random seed: same seed, same run (default 0)")
    p.add_argument("--val-every", type=int, default=1, help="validate every K epochs (default 1; always at the end)")
    p.add_argument("--mosaic", type=float, default=None, help="mosaic probability (default 1.0)")
    p.add_argument("--cache", action="store_true", help="keep decoded training pictures in memory (faster mosaic)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last.state.pt")
    p.add_argument("--out", default="runs/train", help="output folder (default runs/train)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from yolostream.cli.common import model_or_demo, stderr
    from yolostream.train.config import TrainConfig
    from yolostream.train.trainer import train

    args.model = model_or_demo(args.model)
    aug = {} if args.mosaic is None else {"mosaic": args.mosaic}
    cfg = TrainConfig(
        data=args.data,
        model=args.model,
        out=args.out,
        epochs=args.epochs,
        imgsz=args.imgsz,
        batch=args.batch,
        nbs=args.nbs,
        optimizer=args.optimizer,
        lr0=args.lr0,
        lrf=args.lrf,
        cosine=args.cosine,
        warmup_epochs=args.warmup_epochs,
        close_mosaic=args.close_mosaic,
        device=args.device,
        workers=args.workers,
        seed=args.seed,
        dtype=args.dtype,
        compile=args.compile,
        val_every=args.val_every,
        cache=args.cache,
        aug=aug,
    )
    result = train(cfg, resume=args.resume, progress=not args.quiet)
    summary = {"best": str(result.best), "last": str(result.last), "epochs": result.epochs}
    summary.update({k: result.metrics[k] for k in ("map50", "map50_95") if k in result.metrics})
    stderr.print(f"[bold]done[/bold]: {json.dumps(summary)}")
    return 0
