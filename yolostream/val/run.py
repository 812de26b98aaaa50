"""`validate()`: mAP of a detector on a YOLO-format dataset, computed as Ultralytics' ``val()`` does.

What reproduces Ultralytics 8.4 (checked on the fixtures' shapes dataset):
- preprocessing: load-time resize to the long side ``imgsz``, then a letterbox without upscaling into
  the rect batch shape (`yolostream.preprocess.val_letterbox`);
- postprocessing: conf 0.001, NMS IoU 0.7, max 300 per image, *multi-label* candidates (an anchor may
  yield one box per class above conf); dual-head models use the one-to-many head + NMS by default;
- matching in the network-input frame: predictions as NMS leaves them (not mapped back, not clipped),
  ground truth drawn into the same letterboxed frame.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from yolostream.detector import Batch, Detector
from yolostream.postprocess.nms import nms_keep
from yolostream.preprocess.inputs import read_image
from yolostream.preprocess.val_letterbox import apply_val_letterbox, plan_val_letterbox, rect_batch_shape
from yolostream.val.dataset import labels_to_xyxy, load_yolo_dataset
from yolostream.val.metrics import DetectionMetrics


def _batches(hws: list[tuple[int, int]], batch: int, rect: bool) -> list[list[int]]:
    """Image indices per batch. Rect validation sorts by aspect ratio first so a batch shares a shape."""
    order = sorted(range(len(hws)), key=lambda i: hws[i][0] / hws[i][1]) if rect and batch > 1 else range(len(hws))
    order = list(order)
    return [order[i : i + batch] for i in range(0, len(order), batch)]


@torch.inference_mode()
def validate(
    detector: Detector,
    data_yaml: str | os.PathLike[str],
    *,
    imgsz: int = 640,
    conf: float = 0.001,
    iou: float = 0.7,
    max_det: int = 300,
    batch: int = 1,
    rect: bool = True,
    split: str = "val",
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Evaluate ``detector`` on the ``split`` images of a YOLO dataset.

    Returns `DetectionMetrics.compute()`'s dict (``map50_95``, ``map50``, per class, ...) plus
    ``names`` of every class and the settings used. ``progress(done, total)`` is called per batch.
    """
    ds = load_yolo_dataset(data_yaml, split=split)
    det = detector.with_config(conf=conf, iou=iou, max_det=max_det, multi_label=True)
    metrics = DetectionMetrics(det.names)
    images = [read_image(path) for path, _ in ds]
    hws = [(int(im.shape[1]), int(im.shape[2])) for im in images]
    stride = 32
    groups = _batches(hws, batch, rect)
    for n, idx in enumerate(groups):
        shape = rect_batch_shape([hws[i] for i in idx], imgsz, stride) if rect else None
        plans = [plan_val_letterbox(hws[i], imgsz, rect=rect, stride=stride, batch_shape=shape) for i in idx]
        x = torch.stack([apply_val_letterbox(images[i], p) for i, p in zip(idx, plans, strict=True)])
        cands = det.infer(Batch(x.to(det.device), [p.letterbox for p in plans]))
        keep = nms_keep(cands, iou, max_det=max_det)
        for row, (i, plan) in enumerate(zip(idx, plans, strict=True)):
            k = keep[row]
            labels = ds[i][1]
            gt = labels_to_xyxy(labels, plan.loaded_hw, plan.pad_xy)
            metrics.update(
                cands.boxes[row][k].cpu(),
                cands.scores[row][k].cpu(),
                cands.classes[row][k].cpu(),
                gt,
                labels[:, 0].astype(np.int64),
            )
        if progress is not None:
            progress(n + 1, len(groups))
    result = metrics.compute()
    result.update(
        dataset=str(data_yaml),
        split=split,
        n_boxes=ds.n_boxes,
        settings={"imgsz": imgsz, "conf": conf, "iou": iou, "max_det": max_det, "batch": batch, "rect": rect},
        all_names=dict(ds.names),
    )
    return result
