"""`load()`: the one-call entry point from a model file to a ready `Detector`."""

from __future__ import annotations

import os
from typing import Any

import torch

from yolostream.detector import Detector, DetectorConfig, LetterboxMode
from yolostream.models.load import model_from_checkpoint
from yolostream.weights import read_checkpoint


def load(
    path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    imgsz: int = 640,
    *,
    conf: float = 0.25,
    iou: float = 0.7,
    max_det: int = 300,
    mode: LetterboxMode = "square",
    nms: bool = True,
    agnostic: bool = False,
    classes: tuple[int, ...] | list[int] | None = None,
    fold: bool = True,
    **detector_options: Any,
) -> Detector:
    """Load a model file and return a `Detector`.

    ``path``: an Ultralytics ``.pt`` checkpoint (read without executing any code from it) or a
    yolostream ``.safetensors`` file (`yolostream convert`). See `DetectorConfig` for the thresholds;
    ``nms=False`` selects the one-to-one head of YOLOv10/YOLO26 (no NMS). ``fold`` merges BatchNorm
    into the convolutions (exact up to float rounding, faster).
    """
    raw = read_checkpoint(path)
    model, spec = model_from_checkpoint(raw, fold_bn=fold)
    config = DetectorConfig(
        imgsz=imgsz,
        conf=conf,
        iou=iou,
        max_det=max_det,
        mode=mode,
        nms=nms,
        agnostic=agnostic,
        classes=tuple(classes) if classes is not None else None,
        **detector_options,
    )
    return Detector(model, spec, raw.names, config, device=device, source=os.fspath(path))
