"""Scoring detections on the demo video against its ground truth: parts found, false boxes.

Per frame, predictions are taken in decreasing confidence; each is matched to the unmatched ground-truth
box of its class with the highest IoU, if that IoU is at least ``iou`` (greedy, as detection benchmarks
match). Ground-truth boxes of parts mostly outside the frame (``visible < min_visible``: entering or
leaving) are *ignored*: not counted as parts to find, and a prediction on one (matched by IoU, or lying
at least half inside it, as benchmarks treat ignore regions) is neither right nor false.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["score_video"]


def _overlaps(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IoU, and intersection over the area of ``a``, of boxes a [N, 4] with b [M, 4] (xyxy): [N, M] each."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    iou = inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)
    return iou, inter / np.maximum(area_a[:, None], 1e-9)


def score_video(
    truth: Mapping[str, Any],
    predictions: Sequence[np.ndarray],
    iou: float = 0.5,
    min_visible: float = 0.5,
) -> dict[str, Any]:
    """Score per-frame predictions against ``truth`` (the ground truth `make_video` returns or writes).

    Args:
        predictions: one float array [N, 6] per frame, rows ``x1 y1 x2 y2 conf cls`` in frame pixels.
        iou: least IoU of a match.
        min_visible: ground-truth boxes less visible than this are ignored (see the module doc).

    Returns:
        ``parts`` (ground-truth boxes to find), ``found``, ``recall``, ``predictions`` (not on ignored
        boxes), ``false`` (matching no part), ``false_rate`` (false / predictions), and ``per_class``
        (``parts``, ``found``, ``recall`` per class name).
    """
    frames = truth["frames"]
    if len(predictions) != len(frames):
        raise ValueError(f"{len(predictions)} frames of predictions for a video of {len(frames)} frames")
    names = list(truth["names"])
    parts = found = n_pred = false = 0
    per_class = {n: [0, 0] for n in names}
    for gt_rows, pred in zip(frames, predictions, strict=True):
        gt = np.asarray(gt_rows, dtype=np.float64).reshape(-1, 7)
        pred = np.asarray(pred, dtype=np.float64).reshape(-1, 6)
        pred = pred[np.argsort(-pred[:, 4], kind="stable")]
        counted = gt[:, 6] >= min_visible
        if len(pred) and len(gt):
            overlaps, inside = _overlaps(pred[:, :4], gt[:, 2:6])
        else:
            overlaps = inside = np.zeros((len(pred), len(gt)))
        taken = np.zeros(len(gt), dtype=bool)
        for i, row in enumerate(pred):
            same = gt[:, 1] == row[5]
            cand = np.where(~taken & same & (overlaps[i] >= iou))[0]
            if len(cand) == 0:
                if not (same & ~counted & (inside[i] >= 0.5)).any():  # else: on a part mostly out of frame
                    n_pred += 1
                    false += 1
                continue
            j = cand[np.argmax(overlaps[i, cand])]
            taken[j] = True
            n_pred += bool(counted[j])
        parts += int(counted.sum())
        found += int((taken & counted).sum())
        for c, hit in zip(gt[counted, 1].astype(int), taken[counted], strict=True):
            per_class[names[c]][0] += 1
            per_class[names[c]][1] += int(hit)
    return {
        "parts": parts,
        "found": found,
        "recall": found / parts if parts else 1.0,
        "predictions": n_pred,
        "false": false,
        "false_rate": false / n_pred if n_pred else 0.0,
        "per_class": {n: {"parts": p, "found": f, "recall": f / p if p else 1.0} for n, (p, f) in per_class.items()},
        "settings": {"iou": iou, "min_visible": min_visible},
    }
