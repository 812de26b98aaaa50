"""Detection training loss: task-aligned assignment, BCE class loss, CIoU box loss, DFL (or L1) side loss.

The contract the trainer uses::

    criterion = build_loss(model, spec)                 # DetectionLoss, or E2ELoss for dual heads
    outputs = train_outputs(model, img)                 # img float [B, 3, H, W] in [0, 1], model in train()
    total, items = criterion(outputs, batch, (H, W))    # batch: see `yolostream.train.targets.ground_truth`
    total.backward()

``total`` = (box + cls + dfl, each times its gain) x B, the scale Ultralytics reports and optimises (so the
learning rates people use carry over); ``items`` [3] are the gained terms, detached. Each term is a sum over
positive anchors weighted by their soft class target, divided by the sum of all soft targets (at least 1).

Reproduces the criterion of Ultralytics 8.4.190 on the reference batch (``tests/test_train_loss.py``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from yolostream.models.head import HeadOutput, make_anchors
from yolostream.models.spec import ArchSpec
from yolostream.models.yolo import YOLO
from yolostream.train.assigner import Assignment, TaskAlignedAssigner
from yolostream.train.ciou import ciou
from yolostream.train.targets import ground_truth, ltrb_targets
from yolostream.train.terms import dfl_loss, sparse_soft_bce

DEFAULT_HYP: dict[str, float] = {"box": 7.5, "cls": 0.5, "dfl": 1.5}
Branch = tuple[HeadOutput, list[tuple[int, int]]]
Outputs = dict[str, Branch]


def train_outputs(model: YOLO, img: Tensor) -> Outputs:
    """Raw outputs of every head branch from one forward pass, with the feature-map shapes (H_i, W_i).

    ``{"one2many": (HeadOutput, shapes)}``, plus ``"one2one"`` for end-to-end heads. The one-to-one branch
    reads *detached* features: its loss trains that branch only; backbone and neck learn from the
    one-to-many loss (the reference gradient norms of YOLOv10 and YOLO26 match only this way).
    """
    feats = model.features(img)
    shapes = [(f.shape[2], f.shape[3]) for f in feats]
    out = {"one2many": (model.head.branch(feats), shapes)}
    if model.head.end2end:
        out["one2one"] = (model.head.branch([f.detach() for f in feats], one2one=True), shapes)
    return out


class DetectionLoss:
    """Loss of one head branch (``branch`` picks it from `train_outputs`'s dict).

    ``reg_max`` 1 (YOLO26, a head without a distribution) replaces DFL with an L1 loss on the four side
    distances normalised by the input width/height (the fixtures' ``l1_loss``; its gain is ``hyp["dfl"]``).
    ``topk``/``topk2``: see `TaskAlignedAssigner` (its small-box widening uses the finest stride).

    torch.compile: with ``max_boxes`` (the ground truth padded to a fixed M, >= the most labels of any
    picture) the whole loss, forward and backward, traces with ``fullgraph=True``; without it M is read from
    the data and the graph breaks there.
    """

    def __init__(
        self,
        nc: int,
        reg_max: int,
        strides: tuple[float, ...],
        hyp: dict[str, float] | None = None,
        topk: int = 10,
        topk2: int | None = None,
        branch: str = "one2many",
        max_boxes: int | None = None,
    ) -> None:
        self.nc, self.reg_max, self.strides, self.branch = nc, reg_max, tuple(float(s) for s in strides), branch
        self.hyp = {**DEFAULT_HYP, **{k: float(v) for k, v in (hyp or {}).items() if k in DEFAULT_HYP}}
        self.max_boxes = max_boxes
        self.assigner = TaskAlignedAssigner(nc, topk=topk, topk2=topk2, min_size=min(self.strides))

    def __call__(
        self, outputs: Outputs | Branch, batch: dict[str, Tensor], imgsz: tuple[int, int]
    ) -> tuple[Tensor, Tensor]:
        """(total scalar with grad, items [3] detached); ``imgsz`` = (H, W) of the input pictures."""
        out, shapes = outputs[self.branch] if isinstance(outputs, dict) else outputs
        # fp32 whatever autocast made of the network: sums over thousands of anchors, log-sigmoids, atan.
        with torch.autocast(out.boxes.device.type, enabled=False):
            return self._loss(out.boxes.float(), out.scores.float(), shapes, batch, imgsz)

    def _decode(self, dist: Tensor, points: Tensor) -> tuple[Tensor, Tensor]:
        """[..., 4 * reg_max] with anchor centres [..., 2] -> (side distances, xyxy boxes) [..., 4], stride units."""
        if self.reg_max > 1:
            bins = torch.arange(self.reg_max, dtype=dist.dtype, device=dist.device)
            ltrb = dist.unflatten(-1, (4, self.reg_max)).softmax(-1).matmul(bins)
        else:
            ltrb = dist
        lt, rb = ltrb.chunk(2, -1)
        return ltrb, torch.cat((points - lt, points + rb), -1)

    def _decode_all(self, dist: Tensor, points: Tensor) -> Tensor:
        """Every anchor's box from the head's own layout: [B, 4R, A] -> xyxy [B, A, 4], stride units.

        Softmax over the bins in place (dim 2 of [B, 4, R, A]) rather than after a transpose: no copy of
        the whole tensor (2.6x faster at 640 px).
        """
        b, _, a = dist.shape
        if self.reg_max > 1:
            bins = torch.arange(self.reg_max, dtype=dist.dtype, device=dist.device)
            dist = torch.matmul(bins, dist.view(b, 4, self.reg_max, a).softmax(2))  # [B, 4, A]
        lt, rb = dist.transpose(1, 2).chunk(2, -1)
        return torch.cat((points - lt, points + rb), -1)

    def _loss(
        self,
        dist: Tensor,
        logits: Tensor,
        shapes: list[tuple[int, int]],
        batch: dict[str, Tensor],
        imgsz: tuple[int, int],
    ) -> tuple[Tensor, Tensor]:
        """dist [B, 4R, A] and logits [B, nc, A], the head's own layouts."""
        b = logits.shape[0]
        points, stride = make_anchors(shapes, list(self.strides), dist)  # [A, 2] stride units, [A, 1] pixels
        labels, gt_boxes, gt_mask = ground_truth(batch, b, imgsz, self.max_boxes, self.nc)
        with torch.no_grad():  # the assigner sees every anchor's box, in pixels, without gradient
            pred = self._decode_all(dist, points) * stride
            levels = [(h, w, s) for (h, w), s in zip(shapes, self.strides, strict=True)]
            asg = self.assigner(logits.transpose(1, 2), pred, levels, labels, gt_boxes, gt_mask)
        weight_sum = asg.weight.sum().clamp(min=1)
        bi = torch.arange(b, device=logits.device).unsqueeze(1).expand_as(asg.anchor)
        cls = sparse_soft_bce(logits, bi, asg.label, asg.anchor, asg.weight) / weight_sum
        box, side = self._box_terms(dist, points, stride, asg, weight_sum, imgsz)
        items = torch.stack((box * self.hyp["box"], cls * self.hyp["cls"], side * self.hyp["dfl"]))
        return items.sum() * b, items.detach()

    def _box_terms(
        self, dist: Tensor, points: Tensor, stride: Tensor, asg: Assignment, weight_sum: Tensor, imgsz: tuple[int, int]
    ) -> tuple[Tensor, Tensor]:
        """(CIoU loss, DFL or L1 loss): sums over the positives weighted by their soft targets, / ``weight_sum``.

        Only the K listed slots per picture are decoded with gradient (K = M x topk, not A).
        """
        s = stride[asg.anchor]  # [B, K, 1]
        anchor = points[asg.anchor]  # [B, K, 2] stride units
        dist_k = dist.gather(2, asg.anchor.unsqueeze(1).expand(-1, dist.shape[1], -1)).transpose(1, 2)  # [B, K, 4R]
        ltrb, pred = self._decode(dist_k, anchor)
        target = asg.box / s  # stride units
        # Unused slots become the same unit box on both sides: finite, zero loss, zero gradient.
        unit = torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=pred.dtype, device=pred.device)
        used = asg.mask.unsqueeze(-1)
        iou = ciou(torch.where(used, pred, unit), torch.where(used, target, unit))
        box = ((1 - iou) * asg.weight).sum() / weight_sum
        t_ltrb = ltrb_targets(anchor, target)
        if self.reg_max > 1:
            # Bins span [0, reg_max - 1]; a target's right-hand bin must exist, hence the 0.01 margin.
            t_ltrb = t_ltrb.clamp(0, self.reg_max - 1 - 0.01)
            per_slot = dfl_loss(dist_k.unflatten(-1, (4, self.reg_max)), t_ltrb)
        else:
            h, w = imgsz
            scale = s / torch.tensor([w, h, w, h], dtype=dist.dtype, device=dist.device)  # [B, K, 4]
            per_slot = ((ltrb - t_ltrb) * scale).abs().mean(-1)
        side = (torch.where(asg.mask, per_slot, 0.0) * asg.weight).sum() / weight_sum
        return box, side


class E2ELoss:
    """Dual-head loss (YOLOv10, YOLO26): one-to-many (top-k 10) and one-to-one (top-k 7, then 1 per object).

    total = o2m * total_one2many + o2o * total_one2one; ``items`` are the one-to-one head's (the head that
    serves NMS-free inference). The weights start at o2m 0.8 / o2o 0.2, the reference's first update; call
    `update(epoch, epochs)` at the start of each epoch: o2m then falls linearly to 0.1 at the last epoch and
    o2o = 1 - o2m. The dense one-to-many signal shapes the shared features early, the one-to-one head takes
    over late (the idea of YOLO26's progressive loss balancing; the end point and the linear shape are ours,
    the fixtures fix only the first update).
    """

    O2M_START, O2M_END = 0.8, 0.1

    def __init__(
        self,
        nc: int,
        reg_max: int,
        strides: tuple[float, ...],
        hyp: dict[str, float] | None = None,
        max_boxes: int | None = None,
    ) -> None:
        self.one2many = DetectionLoss(nc, reg_max, strides, hyp, topk=10, branch="one2many", max_boxes=max_boxes)
        self.one2one = DetectionLoss(nc, reg_max, strides, hyp, topk=7, topk2=1, branch="one2one", max_boxes=max_boxes)
        self.hyp = self.one2many.hyp
        self.update(0, 1)

    def update(self, epoch: int, epochs: int) -> None:
        """Weights for ``epoch`` (0-based) of ``epochs``: o2m 0.8 at epoch 0, 0.1 at the last, linear between."""
        frac = max(1.0 - epoch / max(epochs - 1, 1), 0.0)
        self.o2m = self.O2M_END + (self.O2M_START - self.O2M_END) * frac
        self.o2o = 1.0 - self.o2m

    def heads(
        self, outputs: Outputs, batch: dict[str, Tensor], imgsz: tuple[int, int]
    ) -> dict[str, tuple[Tensor, Tensor]]:
        """Each head's own (total, items), unweighted."""
        return {"one2many": self.one2many(outputs, batch, imgsz), "one2one": self.one2one(outputs, batch, imgsz)}

    def __call__(self, outputs: Outputs, batch: dict[str, Tensor], imgsz: tuple[int, int]) -> tuple[Tensor, Tensor]:
        h = self.heads(outputs, batch, imgsz)
        return self.o2m * h["one2many"][0] + self.o2o * h["one2one"][0], h["one2one"][1]


def build_loss(
    model: YOLO, spec: ArchSpec | None = None, hyp: dict[str, Any] | None = None, max_boxes: int | None = None
) -> DetectionLoss | E2ELoss:
    """The criterion of ``model``'s head: `E2ELoss` for end-to-end (dual) heads, else `DetectionLoss`.

    ``hyp`` may be a whole training config: only its ``box``/``cls``/``dfl`` gains are read.
    """
    head = model.head
    if spec is not None and (spec.nc, spec.reg_max, spec.end2end) != (head.nc, head.reg_max, head.end2end):
        raise ValueError(f"spec ({spec.nc} classes, reg_max {spec.reg_max}) does not describe this model's head")
    if head.end2end:
        return E2ELoss(head.nc, head.reg_max, head.strides, hyp, max_boxes)
    return DetectionLoss(head.nc, head.reg_max, head.strides, hyp, max_boxes=max_boxes)
