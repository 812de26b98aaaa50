"""Task-aligned assignment (TOOD, Feng et al., ICCV 2021): which anchors learn which ground-truth box.

For every ground-truth box g and anchor a the alignment metric is ``t = s^alpha * u^beta``: ``s`` the
predicted probability of g's class at a, ``u`` the CIoU (clamped at 0) of a's predicted box with g. An anchor
is a candidate of g when its centre lies inside g; each g keeps its ``topk`` candidates of highest t. An
anchor kept by several boxes goes to the one its prediction overlaps most. The one-to-one variant then
keeps, per box, only its ``topk2`` best anchors (1: one anchor per object, what an NMS-free head learns).
The soft class target of a positive anchor is t normalised per box: ``t / max_t * max_u`` over that box's
positives, so the best-aligned anchor of a box aims at that box's best IoU.

Small objects: a box narrower or shorter than the finest stride may hold no anchor centre at all and would
never be learned; for the "centre inside" test only, such a side is widened about the box centre to
``min_size`` (the finest stride). This is the small-target-aware assignment (STAL) Ultralytics 8.4 describes
for YOLO26; the reference batch has no box under 24 px, so the fixtures do not check it (a hand case does).

Everything is batched: ``[B, M, A]`` tensors over images, (padded) boxes and anchors, no Python loop.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from yolostream.train.ciou import ciou


class Assignment(NamedTuple):
    """What the loss needs per anchor.

    boxes: [B, A, 4] xyxy, the assigned ground-truth box (same frame as the inputs; meaningless where not fg).
    scores: [B, A, nc] soft class targets (0 except the assigned class of positive anchors).
    fg: [B, A] bool, positive anchors. gt_index: [B, A] int64, index of the assigned box in the padded list.
    """

    boxes: Tensor
    scores: Tensor
    fg: Tensor
    gt_index: Tensor


def widen(boxes: Tensor, min_size: float) -> Tensor:
    """[..., 4] xyxy boxes with every side shorter than ``min_size`` widened to it, about the box centre."""
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2
    half = (boxes[..., 2:] - boxes[..., :2]).clamp(min=min_size) / 2
    return torch.cat((centre - half, centre + half), -1)


def anchors_inside(anchors: Tensor, gt_boxes: Tensor, eps: float = 1e-9) -> Tensor:
    """[A, 2] anchor centres (x, y) and [B, M, 4] xyxy boxes -> [B, M, A] bool, centre strictly inside."""
    x, y = anchors[:, 0], anchors[:, 1]
    x1, y1, x2, y2 = (t.unsqueeze(-1) for t in gt_boxes.unbind(-1))  # [B, M, 1] each
    margin = torch.minimum(torch.minimum(x - x1, y - y1), torch.minimum(x2 - x, y2 - y))
    return margin > eps


def topk_mask(metric: Tensor, k: int) -> Tensor:
    """[..., A] -> [..., A] bool, True at the ``k`` largest entries of each row (k clipped to A)."""
    k = min(k, metric.shape[-1])
    idx = metric.topk(k, dim=-1, largest=True).indices
    return torch.zeros_like(metric, dtype=torch.bool).scatter_(-1, idx, True)


class TaskAlignedAssigner:
    """Task-aligned assigner: ``topk`` candidates per box, then ``topk2`` per box after conflicts (None: topk).

    ``min_size`` (pixels, None: off): sides shorter than this are widened for the candidate test.
    """

    def __init__(
        self,
        nc: int,
        topk: int = 10,
        topk2: int | None = None,
        alpha: float = 0.5,
        beta: float = 6.0,
        min_size: float | None = 8.0,
        eps: float = 1e-9,
    ) -> None:
        self.nc, self.topk, self.alpha, self.beta, self.min_size, self.eps = nc, topk, alpha, beta, min_size, eps
        self.topk2 = topk if topk2 is None else topk2

    @torch.no_grad()
    def __call__(
        self,
        pd_scores: Tensor,
        pd_boxes: Tensor,
        anchors: Tensor,
        gt_labels: Tensor,
        gt_boxes: Tensor,
        gt_mask: Tensor,
    ) -> Assignment:
        """Assign ground truth to anchors.

        pd_scores [B, A, nc] class probabilities (after sigmoid); pd_boxes [B, A, 4] predicted xyxy; anchors
        [A, 2] centres (x, y); gt_labels [B, M] int64; gt_boxes [B, M, 4] xyxy; gt_mask [B, M] bool (False on
        padding). Boxes and anchors in one frame (input pixels). M may be 0.
        """
        b, a, _ = pd_scores.shape
        m = gt_boxes.shape[1]
        if m == 0:
            zeros = torch.zeros_like(pd_boxes)
            fg = torch.zeros(b, a, dtype=torch.bool, device=pd_scores.device)
            return Assignment(
                zeros, torch.zeros_like(pd_scores), fg, torch.zeros(b, a, dtype=torch.long, device=fg.device)
            )

        candidates = gt_boxes if self.min_size is None else widen(gt_boxes, self.min_size)
        valid = anchors_inside(anchors, candidates) & gt_mask.unsqueeze(-1)  # [B, M, A]
        # Score of each box's own class at every anchor: [B, nc, A] gathered by label -> [B, M, A].
        cls_score = pd_scores.transpose(1, 2).gather(1, gt_labels.unsqueeze(-1).expand(b, m, a))
        overlaps = ciou(gt_boxes.unsqueeze(2), pd_boxes.unsqueeze(1)).clamp(min=0)  # [B, M, A]
        overlaps = torch.where(valid, overlaps, 0.0)
        metric = torch.where(valid, cls_score.pow(self.alpha) * overlaps.pow(self.beta), 0.0)

        pos = topk_mask(metric, self.topk) & valid  # [B, M, A]
        pos = self._resolve_conflicts(pos, overlaps)
        if self.topk2 < self.topk:
            pos = topk_mask(metric * pos, self.topk2) & pos
        return self._targets(pos, metric, overlaps, gt_labels, gt_boxes)

    @staticmethod
    def _resolve_conflicts(pos: Tensor, overlaps: Tensor) -> Tensor:
        """An anchor positive for several boxes keeps only the box its prediction overlaps most."""
        multi = pos.sum(1, keepdim=True) > 1  # [B, 1, A]
        best = torch.zeros_like(pos).scatter_(1, overlaps.argmax(1, keepdim=True), True)
        return torch.where(multi, best, pos)

    def _targets(
        self, pos: Tensor, metric: Tensor, overlaps: Tensor, gt_labels: Tensor, gt_boxes: Tensor
    ) -> Assignment:
        fg = pos.any(1)  # [B, A]
        gt_index = pos.to(torch.uint8).argmax(1)  # [B, A]
        boxes = gt_boxes.gather(1, gt_index.unsqueeze(-1).expand(-1, -1, 4))  # [B, A, 4]
        labels = gt_labels.gather(1, gt_index)  # [B, A]
        metric = metric * pos
        best_metric = metric.amax(-1, keepdim=True)  # [B, M, 1]
        best_overlap = (overlaps * pos).amax(-1, keepdim=True)
        norm = (metric * best_overlap / (best_metric + self.eps)).amax(1)  # [B, A]
        onehot = torch.nn.functional.one_hot(labels, self.nc).to(metric.dtype)
        scores = onehot * (norm * fg).unsqueeze(-1)
        return Assignment(boxes, scores, fg, gt_index)
