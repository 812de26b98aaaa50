"""Arguments and helpers shared by several subcommands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

# soft_wrap: a message is one line however long its paths are (rich would break "corrupt.jpg" in two at the
# terminal width, and a pasted path would then be wrong); the terminal itself still folds it for the eye.
stderr = Console(stderr=True, soft_wrap=True)


MODEL_SUFFIXES = (".pt", ".safetensors", ".pt2")


def add_model_arguments(p: argparse.ArgumentParser, conf: float = 0.25, positional: bool = True) -> None:
    """MODEL (unless the command reads it from its own positional list) plus the detector settings every
    inference command takes."""
    if positional:
        p.add_argument("model", help="model file: Ultralytics .pt, yolostream .safetensors or .pt2 package")
    p.add_argument("--imgsz", type=int, default=640, help="input size (long side in --rect mode), default 640")
    p.add_argument("--conf", type=float, default=conf, help=f"keep detections with confidence > CONF (default {conf})")
    p.add_argument("--iou", type=float, default=0.7, help="NMS IoU threshold (default 0.7)")
    p.add_argument("--max-det", type=int, default=300, help="at most this many detections per image (default 300)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (default cpu)")


def model_or_demo(value: str | None) -> str:
    """The model a command was given, else the bundled demo model's path."""
    if value:
        return value
    from yolostream.assets import demo_model

    return str(demo_model())


def add_head_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--nms",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="YOLOv10/YOLO26: --nms (default) uses the one-to-many head + NMS as Ultralytics 8.4 does; "
        "--no-nms the one-to-one head's top-k, no NMS",
    )


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Progress]:
    """A progress bar on stderr (hidden when stderr is not a terminal and ``enabled`` is False)."""
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
    ]
    with Progress(*columns, console=stderr, disable=not enabled, transient=False) as progress:
        yield progress


def error_line(message: str) -> None:
    """One readable error line on stderr (the run goes on)."""
    print(f"error: {message}", file=sys.stderr, flush=True)
