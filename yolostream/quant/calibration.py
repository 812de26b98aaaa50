"""Calibration pictures: a folder (or files) the user gives, letterboxed to each bucket as the detector would."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from yolostream.engine.buckets import Bucket
from yolostream.errors import ConfigError
from yolostream.preprocess import apply_letterbox, plan_letterbox, read_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# Observers see the activations' range; past a few dozen pictures it stops moving for these models, while
# every picture costs an eager forward (fake-quant) at calibration time.
MAX_PICTURES = 64
CalibSource = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


def default_calibration() -> Path | None:
    """The repository's example pictures (``examples/images``) when running from a checkout, else None."""
    here = Path(__file__).resolve().parents[2] / "examples" / "images"
    return here if here.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in here.iterdir()) else None


def calibration_files(source: CalibSource | None) -> list[Path]:
    """Picture files of ``source`` (a folder, one file or a list of files), sorted, at most `MAX_PICTURES`.

    None: `default_calibration`. Raises `ConfigError` when there is nothing to calibrate on.
    """
    if source is None:
        source = default_calibration()
        if source is None:
            raise ConfigError("INT8 needs calibration pictures: pass calib=FOLDER (pictures like the ones served)")
    items = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    files: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            files += sorted(p for p in item.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_file():
            files.append(item)
        else:
            raise ConfigError(f"calibration source {item}: no such file or folder")
    if not files:
        raise ConfigError(f"no pictures ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(map(str, items))}")
    return files[:MAX_PICTURES]


def calibration_batches(files: Sequence[Path], bucket: Bucket) -> list[torch.Tensor]:
    """uint8 [bucket.batch, 3, H, W] batches: each picture letterboxed (square, grey 114) to the bucket's size,
    as the serving path letterboxes it; the last batch is filled up by cycling from the first picture."""
    images = [
        apply_letterbox(im, plan_letterbox(im.shape[1:], (bucket.height, bucket.width)))
        for im in map(read_image, files)
    ]
    n = -(-len(images) // bucket.batch) * bucket.batch
    images = [images[i % len(images)] for i in range(n)]
    return [torch.stack(images[i : i + bucket.batch]) for i in range(0, n, bucket.batch)]
