"""Task-aligned assignment (TOOD, Feng et al., ICCV 2021): which anchors learn which ground-truth box.

For every ground-truth box g and anchor a the alignment metric is ``t = s^alpha * u^beta``: ``s`` the
predicted probability of g's class at a, ``u`` the CIoU (clamped at 0) of a's predicted box with g. An anchor
is a candidate of g when its centre lies inside g; each g keeps its ``topk`` candidates of highest t. An
anchor kept by several boxes goes to the box, among all boxes containing it, that its prediction overlaps
most (the first on a tie). The one-to-one variant then keeps, per box, only its ``topk2`` best remaining
anchors (1: one anchor per object, what an NMS-free head learns). The soft class target of a positive is
t normalised per box, ``t / max_t * max_u`` over that box's positives: the best-aligned anchor of a box
aims at that box's best IoU.

Small objects: a box narrower or shorter than the finest stride may hold no anchor centre at all and would
never be learned; for the "centre inside" test only, such a side is widened about the box centre to
``min_size`` (the finest stride). This is the small-target-aware assignment (STAL) Ultralytics 8.4 describes
for YOLO26; the reference batch has no box under 24 px, so the fixtures do not check it (a hand case does).

Cost: only the top-k selection looks at every (picture, box, anchor) triple; everything after it works on
the K = M x topk selected slots per picture, so the result comes as fixed-size lists (static shapes).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from yolostream.models.head import make_anchors
from yolostream.train.ciou import ciou


class Assignment(NamedTuple):
    """The positives of each picture as K = M x topk slots (no picture has more), ``mask`` marking the used ones.

    anchor [B, K] int64 anchor index; gt [B, K] int64 index of the assigned box in the padded list; label
    [B, K] its class; box [B, K, 4] the box (xyxy, frame of the inputs); weight [B, K] the soft class target
    (0 on unused slots); mask [B, K] bool. An anchor appears in at most one used slot.
    """

    anchor: Tensor
    gt: Tensor
    label: Tensor
    box: Tensor
    weight: Tensor
    mask: Tensor

    def dense(self, a: int) -> tuple[Tensor, Tensor, Tensor]:
        """Per anchor: fg [B, A] bool, gt index [B, A] int64 (0 off fg), weight [B, A]."""
        b = self.anchor.shape[0]
        idx = torch.where(self.mask, self.anchor, a)  # unused slots write to a spare column, cut off below
        fg = torch.zeros(b, a + 1, dtype=torch.bool, device=idx.device).scatter_(1, idx, True)[:, :a]
        gt = torch.zeros(b, a + 1, dtype=torch.long, device=idx.device).scatter_(1, idx, self.gt)[:, :a]
        weight = torch.zeros(b, a + 1, dtype=self.weight.dtype, device=idx.device).scatter_(1, idx, self.weight)
        return fg, gt, weight[:, :a]


def widen(boxes: Tensor, min_size: float) -> Tensor:
    """[..., 4] xyxy boxes with every side shorter than ``min_size`` widened to it, about the box centre."""
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2
    half = (boxes[..., 2:] - boxes[..., :2]).clamp(min=min_size) / 2
    return torch.cat((centre - half, centre + half), -1)


def inside(points: Tensor, boxes: Tensor, eps: float = 1e-9) -> Tensor:
    """Points [..., 2] (x, y) strictly inside xyxy boxes [..., 4] (broadcast) -> bool [...]."""
    x, y = points.unbind(-1)
    x1, y1, x2, y2 = boxes.unbind(-1)
    return (x - x1 > eps) & (y - y1 > eps) & (x2 - x > eps) & (y2 - y > eps)


def inside_grid(levels: list[tuple[int, int, float]], boxes: Tensor, eps: float = 1e-9) -> Tensor:
    """Which anchor centres lie strictly inside each xyxy box [B, M, 4]: bool [B, M, A].

    The anchors are the cell centres ((i + 0.5) * stride, pixels) of the (H, W, stride) levels, in
    `make_anchors`' order. The test is separable (inside in x and inside in y), so it is done per column
    and per row and joined by one outer AND, instead of four comparisons over all B x M x A triples; the
    centres and differences are the same floats as in `inside`, so are the answers.
    """
    x1, y1, x2, y2 = (t.unsqueeze(-1) for t in boxes.unbind(-1))  # [B, M, 1]
    out = []
    for h, w, s in levels:
        xs = (torch.arange(w, device=boxes.device, dtype=boxes.dtype) + 0.5) * s
        ys = (torch.arange(h, device=boxes.device, dtype=boxes.dtype) + 0.5) * s
        in_x = (xs - x1 > eps) & (x2 - xs > eps)  # [B, M, W]
        in_y = (ys - y1 > eps) & (y2 - ys > eps)  # [B, M, H]
        out.append((in_y.unsqueeze(-1) & in_x.unsqueeze(-2)).flatten(-2))
    return torch.cat(out, -1)


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

    def _metric(self, logit: Tensor, iou: Tensor) -> Tensor:
        return logit.float().sigmoid().pow(self.alpha) * iou.pow(self.beta)

    @torch.no_grad()
    def __call__(
        self,
        pd_logits: Tensor,
        pd_boxes: Tensor,
        levels: list[tuple[int, int, float]],
        gt_labels: Tensor,
        gt_boxes: Tensor,
        gt_mask: Tensor,
    ) -> Assignment:
        """Assign ground truth to anchors.

        pd_logits [B, A, nc] class logits (a view of the head's [B, nc, A] is fine); pd_boxes [B, A, 4]
        predicted xyxy in input pixels; levels: (H, W, stride) of each feature map, whose cell centres are
        the A anchors (`make_anchors` order); gt_labels [B, M] int64; gt_boxes [B, M, 4] xyxy input pixels;
        gt_mask [B, M] bool (False on padding). M may be 0.
        """
        b, a, _ = pd_logits.shape
        m, k = gt_boxes.shape[1], min(self.topk, a)
        if m == 0:  # no ground truth in the whole batch: no positives, empty lists
            e = torch.zeros(b, 0, dtype=torch.long, device=pd_logits.device)
            return Assignment(e, e, e, gt_boxes.new_zeros(b, 0, 4), pd_boxes.new_zeros(b, 0), e.bool())
        cand = gt_boxes if self.min_size is None else widen(gt_boxes, self.min_size)
        # Padding becomes a box no centre is inside (cheaper than masking the [B, M, A] result).
        cand = torch.where(gt_mask.unsqueeze(-1), cand, -1.0)
        valid = inside_grid(levels, cand)  # [B, M, A]
        top = self._candidate_metric(valid, pd_logits, pd_boxes, gt_labels, gt_boxes).topk(k, dim=-1)
        anchor = top.indices.reshape(b, m * k)  # slot (g, j): the j-th best anchor of box g
        listed = valid.gather(-1, top.indices).reshape(b, m * k)  # fewer than k candidates: the rest are not
        iou_all, met_all = self._against_all_boxes(anchor, levels, cand, pd_logits, pd_boxes, gt_labels, gt_boxes)
        gt, pos = self._one_box_per_anchor(anchor, listed, iou_all, a, k)
        metric = met_all.gather(-1, gt.unsqueeze(-1)).squeeze(-1)  # [B, K]
        overlap = iou_all.gather(-1, gt.unsqueeze(-1)).squeeze(-1)
        pos, weight = self._normalise(pos, gt, metric, overlap, m)
        box = gt_boxes.gather(1, gt.unsqueeze(-1).expand(-1, -1, 4))
        return Assignment(anchor, gt, gt_labels.gather(1, gt), box, weight, pos)

    def _against_all_boxes(
        self,
        anchor: Tensor,
        levels: list[tuple[int, int, float]],
        cand: Tensor,
        pd_logits: Tensor,
        pd_boxes: Tensor,
        gt_labels: Tensor,
        gt_boxes: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """CIoU and metric of every listed anchor [B, K] with every box of its picture: [B, K, M] each.

        A contested anchor may go to a box that did not list it (the one its prediction overlaps most among
        all boxes holding its centre), so the slots are scored against all M boxes, not only their own.
        """
        m, k = gt_boxes.shape[1], anchor.shape[1]
        points, stride = make_anchors([(h, w) for h, w, _ in levels], [s for _, _, s in levels], pd_boxes)
        pts = (points * stride)[anchor].unsqueeze(2)  # [B, K, 1, 2] pixels
        pred = pd_boxes.gather(1, anchor.unsqueeze(-1).expand(-1, -1, 4)).unsqueeze(2)  # [B, K, 1, 4]
        inside_all = inside(pts, cand.unsqueeze(1))
        iou = torch.where(inside_all, ciou(gt_boxes.unsqueeze(1), pred).clamp(min=0), 0.0)
        logit = pd_logits.gather(1, anchor.unsqueeze(-1).expand(-1, -1, pd_logits.shape[-1]))  # [B, K, nc]
        logit = logit.gather(2, gt_labels.unsqueeze(1).expand(-1, k, m))  # [B, K, M]
        return iou, torch.where(inside_all, self._metric(logit, iou), 0.0)

    @staticmethod
    def _one_box_per_anchor(anchor: Tensor, listed: Tensor, iou_all: Tensor, a: int, k: int) -> tuple[Tensor, Tensor]:
        """(box of each slot [B, K], slot kept [B, K]): contested anchors go to their best-overlapping box
        (the first on a tie) and only the first slot listing an anchor is kept."""
        b, slots = anchor.shape
        owner = torch.arange(slots // k, device=anchor.device).repeat_interleave(k).expand(b, -1)
        slot = torch.arange(slots, device=anchor.device).expand(b, -1)
        count = torch.zeros(b, a, dtype=torch.long, device=anchor.device).scatter_add_(1, anchor, listed.long())
        gt = torch.where(count.gather(1, anchor) > 1, iou_all.argmax(-1), owner)
        first = torch.full((b, a), slots, dtype=torch.long, device=anchor.device)
        first = first.scatter_reduce_(1, anchor, torch.where(listed, slot, slots), "amin")
        return gt, listed & (first.gather(1, anchor) == slot)

    def _normalise(self, pos: Tensor, gt: Tensor, metric: Tensor, overlap: Tensor, m: int) -> tuple[Tensor, Tensor]:
        """Top-k2 per box, then soft targets t / max_t * max_u per box: (kept [B, K], weight [B, K])."""
        member = pos.unsqueeze(1) & (gt.unsqueeze(1) == torch.arange(m, device=gt.device).view(1, m, 1))  # [B, M, K]
        if self.topk2 < self.topk:
            rank = torch.where(member, metric.unsqueeze(1), -1.0).topk(min(self.topk2, pos.shape[1]), dim=-1).indices
            member &= torch.zeros_like(member).scatter_(-1, rank, True)
            pos = member.any(1)
        best_metric = torch.where(member, metric.unsqueeze(1), 0.0).amax(-1)  # [B, M]
        best_overlap = torch.where(member, overlap.unsqueeze(1), 0.0).amax(-1)
        scale = best_overlap / (best_metric + self.eps)
        return pos, torch.where(pos, metric * scale.gather(1, gt), 0.0)

    def _candidate_metric(
        self, valid: Tensor, pd_logits: Tensor, pd_boxes: Tensor, gt_labels: Tensor, gt_boxes: Tensor
    ) -> Tensor:
        """Alignment metric of every (picture, box, anchor) candidate, 0 elsewhere: [B, M, A].

        Eagerly only the candidate pairs are computed (a few % of B x M x A); compiled, all pairs then
        masked, which keeps the shapes static and fuses into one kernel. The same values either way.
        """
        if torch.compiler.is_compiling():
            m, a = valid.shape[1:]
            logit = pd_logits.transpose(1, 2).gather(1, gt_labels.unsqueeze(-1).expand(-1, m, a))
            iou = ciou(gt_boxes.unsqueeze(2), pd_boxes.unsqueeze(1)).clamp(min=0)
            return torch.where(valid, self._metric(logit, iou), 0.0)
        bi, mi, ai = valid.nonzero(as_tuple=True)
        iou = ciou(gt_boxes[bi, mi], pd_boxes[bi, ai]).clamp(min=0)
        metric = self._metric(pd_logits[bi, ai, gt_labels[bi, mi]], iou)
        return torch.zeros(valid.shape, dtype=metric.dtype, device=metric.device).index_put_((bi, mi, ai), metric)
