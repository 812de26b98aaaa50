"""Accuracy next to speed: how far a configuration's outputs are from eager fp32 on the same input.

Three levels, coarse to fine:
- `candidate_deviation`: the compiled graph's fixed-size candidates (input pixels, scores after sigmoid);
- `output_deviation`: a raw network output [B, 4 + nc, A] (the baselines, which have no graph around them);
- `compare_detections`: the final detections, matched one to one: "unchanged" or the list of what changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from yolostream.detections import Detections
from yolostream.postprocess.boxes import box_iou
from yolostream.postprocess.candidates import Candidates

# Two detections are "the same" at IoU >= 0.9: a box moved by a pixel or two (what bf16 does) stays above it,
# a visibly different box does not (0.5, the mAP50 criterion, would accept a box shifted by a third of its size).
SAME_DETECTION_IOU = 0.9


def candidate_deviation(ref: Candidates, test: Candidates, top: int = 100) -> dict[str, float]:
    """Max deviations of ``test`` candidates [B, K] from ``ref`` (both from graphs with the same settings).

    score_dev: max |difference| of each image's scores sorted descending. Sorting makes it independent of
        how near-equal scores were ranked, and it never exceeds the largest per-anchor change (sorting is
        1-Lipschitz in the max norm), so it is a faithful lower bound of the true per-anchor deviation.
    box_dev_px: over the ``top`` best valid reference rows of each image, the distance (max |coordinate
        difference|, input pixels) to the nearest valid test box of the same class. Nearest, not same-rank:
        a swap of two near-tied anchors would otherwise read as a deviation of a whole box.
    unmatched: reference rows with no valid test box of their class at all (left out of box_dev_px).
    """
    if ref.scores.shape != test.scores.shape:
        raise ValueError(f"candidates differ in shape: {tuple(ref.scores.shape)} vs {tuple(test.scores.shape)}")
    rs = ref.scores.float().sort(dim=1, descending=True).values
    ts = test.scores.float().sort(dim=1, descending=True).values
    score_dev = float((rs - ts).abs().max()) if rs.numel() else 0.0
    box_dev, unmatched = 0.0, 0
    for i in range(ref.boxes.shape[0]):
        r_ok, t_ok = ref.valid[i], test.valid[i]
        r_boxes, r_cls = ref.boxes[i][r_ok][:top].float(), ref.classes[i][r_ok][:top]
        t_boxes, t_cls = test.boxes[i][t_ok].float(), test.classes[i][t_ok]
        if r_boxes.numel() == 0:
            continue
        dist = (r_boxes[:, None, :] - t_boxes[None, :, :]).abs().amax(-1)  # [n_ref, n_test]
        dist = torch.where(r_cls[:, None] == t_cls[None, :], dist, torch.full_like(dist, float("inf")))
        nearest = dist.amin(1) if dist.shape[1] else torch.full((dist.shape[0],), float("inf"))
        found = nearest.isfinite()
        unmatched += int((~found).sum())
        if found.any():
            box_dev = max(box_dev, float(nearest[found].max()))
    return {"score_dev": score_dev, "box_dev_px": box_dev, "unmatched": unmatched}


def output_deviation(ref: np.ndarray | torch.Tensor, test: np.ndarray | torch.Tensor) -> dict[str, float]:
    """Max |difference| of two raw outputs [B, 4 + nc, A], anchor by anchor: ``box_dev_px`` over the
    xywh rows (input pixels), ``score_dev`` over the class-score rows (after sigmoid)."""
    r = torch.as_tensor(np.asarray(ref) if not isinstance(ref, torch.Tensor) else ref).float().cpu()
    t = torch.as_tensor(np.asarray(test) if not isinstance(test, torch.Tensor) else test).float().cpu()
    if r.shape != t.shape or r.ndim != 3 or r.shape[1] < 5:
        raise ValueError(f"outputs must both be [B, 4 + nc, A], got {tuple(r.shape)} and {tuple(t.shape)}")
    diff = (r - t).abs()
    return {"score_dev": float(diff[:, 4:].max()), "box_dev_px": float(diff[:, :4].max())}


@dataclass
class DetectionDiff:
    """How ``test`` detections differ from ``ref`` (summed over images by `merge`).

    matched: detections found in both (same class, IoU >= ``SAME_DETECTION_IOU``, matched one to one in
    order of reference confidence); changes: the unmatched ones, ``missing`` (in ref only) or ``extra``.
    box_dev_px / conf_dev: the largest coordinate (original pixels) / confidence difference of a matched pair.
    """

    n_ref: int = 0
    n_test: int = 0
    matched: int = 0
    box_dev_px: float = 0.0
    conf_dev: float = 0.0
    changes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def unchanged(self) -> bool:
        return self.matched == self.n_ref == self.n_test

    def to_dict(self) -> dict[str, Any]:
        return {
            "unchanged": self.unchanged,
            "n_ref": self.n_ref,
            "n_test": self.n_test,
            "matched": self.matched,
            "box_dev_px": self.box_dev_px,
            "conf_dev": self.conf_dev,
            "changes": self.changes,
        }


def _row(kind: str, d: Detections, i: int, image: str) -> dict[str, Any]:
    box = [round(float(v), 2) for v in d.xyxy[i].tolist()]
    return {"image": image, "kind": kind, "cls": int(d.cls[i]), "conf": round(float(d.conf[i]), 5), "xyxy": box}


def compare_detections(
    ref: Detections, test: Detections, image: str = "", min_iou: float = SAME_DETECTION_IOU
) -> DetectionDiff:
    """Match ``test`` to ``ref`` detections of one image (greedy, highest reference confidence first)."""
    diff = DetectionDiff(n_ref=len(ref), n_test=len(test))
    iou = box_iou(ref.xyxy.float(), test.xyxy.float()) if len(ref) and len(test) else torch.zeros(len(ref), len(test))
    iou = torch.where(ref.cls[:, None] == test.cls[None, :], iou, torch.zeros_like(iou))
    taken = torch.zeros(len(test), dtype=torch.bool)
    for i in ref.conf.argsort(descending=True).tolist():
        candidates = torch.where(taken, torch.full_like(iou[i], -1.0), iou[i])
        j = int(candidates.argmax()) if len(test) else -1
        if j < 0 or not candidates[j] >= min_iou:  # `not >=`: a NaN IoU (zero-area boxes) never matches
            diff.changes.append(_row("missing", ref, i, image))
            continue
        taken[j] = True
        diff.matched += 1
        diff.box_dev_px = max(diff.box_dev_px, float((ref.xyxy[i] - test.xyxy[j]).abs().max()))
        diff.conf_dev = max(diff.conf_dev, abs(float(ref.conf[i]) - float(test.conf[j])))
    diff.changes += [_row("extra", test, j, image) for j in (~taken).nonzero().flatten().tolist()]
    return diff


def merge(diffs: Sequence[DetectionDiff]) -> DetectionDiff:
    """Several images' differences as one: counts summed, deviations maxed, changes concatenated."""
    out = DetectionDiff()
    for d in diffs:
        out.n_ref += d.n_ref
        out.n_test += d.n_test
        out.matched += d.matched
        out.box_dev_px = max(out.box_dev_px, d.box_dev_px)
        out.conf_dev = max(out.conf_dev, d.conf_dev)
        out.changes += d.changes
    return out


def max_deviation(items: Sequence[dict[str, float]]) -> dict[str, float]:
    """Key-wise maximum of several deviation dicts (e.g. one per check image)."""
    keys = {k for item in items for k in item}
    return {k: max(item.get(k, 0.0) for item in items) for k in sorted(keys)}
