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
import torch.nn.functional as F
from torch import Tensor

from yolostream.models.head import HeadOutput, make_anchors
from yolostream.models.spec import ArchSpec
from yolostream.models.yolo import YOLO
from yolostream.train.assigner import Assignment, TaskAlignedAssigner
from yolostream.train.ciou import ciou
from yolostream.train.targets import ground_truth, ltrb_targets

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


def dfl_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Distribution focal loss (GFL, Li et al. 2020), mean over the four sides: [..., 4, R], [..., 4] -> [...].

    A target distance t in bins [0, R - 1) is the two-bin distribution (floor(t), floor(t) + 1) with weights
    (floor(t) + 1 - t, t - floor(t)); the loss is its cross-entropy against softmax(logits).
    """
    logp = logits.log_softmax(-1)
    left = target.floor().long()
    w_left = left + 1 - target
    lp = logp.gather(-1, left.unsqueeze(-1)).squeeze(-1)
    rp = logp.gather(-1, (left + 1).unsqueeze(-1)).squeeze(-1)
    return -(lp * w_left + rp * (1 - w_left)).mean(-1)


class DetectionLoss:
    """Loss of one head branch (``branch`` picks it from `train_outputs`'s dict).

    ``reg_max`` 1 (YOLO26, a head without a distribution) replaces DFL with an L1 loss on the four side
    distances normalised by the input width/height (the fixtures' ``l1_loss``; its gain is ``hyp["dfl"]``).
    ``topk``/``topk2``: see `TaskAlignedAssigner`. ``max_boxes`` pads the ground truth to a fixed size
    (static shapes for ``torch.compile``).
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
        """[B, A, 4 * reg_max] -> (side distances [B, A, 4], boxes xyxy [B, A, 4]), stride units."""
        b, a, _ = dist.shape
        if self.reg_max > 1:
            bins = torch.arange(self.reg_max, dtype=dist.dtype, device=dist.device)
            ltrb = dist.view(b, a, 4, self.reg_max).softmax(-1).matmul(bins)
        else:
            ltrb = dist
        lt, rb = ltrb.chunk(2, -1)
        return ltrb, torch.cat((points - lt, points + rb), -1)

    def _loss(
        self,
        dist: Tensor,
        logits: Tensor,
        shapes: list[tuple[int, int]],
        batch: dict[str, Tensor],
        imgsz: tuple[int, int],
    ) -> tuple[Tensor, Tensor]:
        b = logits.shape[0]
        dist, logits = dist.transpose(1, 2), logits.transpose(1, 2)  # [B, A, 4R], [B, A, nc]
        points, stride = make_anchors(shapes, list(self.strides), dist)  # [A, 2] stride units, [A, 1] pixels
        ltrb, pred = self._decode(dist, points)
        labels, gt_boxes, gt_mask = ground_truth(batch, b, imgsz, self.max_boxes)
        # The assigner sees probabilities and pixel boxes, without gradient.
        asg = self.assigner(
            logits.detach().sigmoid(), pred.detach() * stride, points * stride, labels, gt_boxes, gt_mask
        )
        score_sum = asg.scores.sum().clamp(min=1)
        cls = F.binary_cross_entropy_with_logits(logits, asg.scores, reduction="sum") / score_sum
        box, side = self._box_terms(dist, ltrb, pred, points, stride, asg, score_sum, imgsz)
        items = torch.stack((box * self.hyp["box"], cls * self.hyp["cls"], side * self.hyp["dfl"]))
        return items.sum() * b, items.detach()

    def _box_terms(
        self,
        dist: Tensor,
        ltrb: Tensor,
        pred: Tensor,
        points: Tensor,
        stride: Tensor,
        asg: Assignment,
        score_sum: Tensor,
        imgsz: tuple[int, int],
    ) -> tuple[Tensor, Tensor]:
        """(CIoU loss, DFL or L1 loss) over the positive anchors, as masked sums (no data-dependent shapes)."""
        fg = asg.fg.unsqueeze(-1)  # [B, A, 1]
        weight = asg.scores.sum(-1)  # [B, A], 0 off the positives
        target = asg.boxes / stride  # stride units
        # Off the positives both sides become the same unit box: a finite, zero-loss, zero-gradient filler.
        unit = torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=pred.dtype, device=pred.device)
        iou = ciou(torch.where(fg, pred, unit), torch.where(fg, target, unit))
        box = ((1 - iou) * weight).sum() / score_sum
        t_ltrb = ltrb_targets(points, target)
        if self.reg_max > 1:
            # Bins span [0, reg_max - 1]; the right bin of a target must exist, hence the 0.01 margin.
            t_ltrb = t_ltrb.clamp(0, self.reg_max - 1 - 0.01)
            per_anchor = dfl_loss(dist.view(*dist.shape[:2], 4, self.reg_max), t_ltrb)
        else:
            h, w = imgsz
            scale = stride / torch.tensor([w, h, w, h], dtype=dist.dtype, device=dist.device)  # [A, 4]
            per_anchor = ((ltrb - t_ltrb) * scale).abs().mean(-1)
        side = (torch.where(asg.fg, per_anchor, 0.0) * weight).sum() / score_sum
        return box, side


class E2ELoss:
    """Dual-head loss (YOLOv10, YOLO26): one-to-many (top-k 10) and one-to-one (top-k 7, then 1 per object).

    total = o2m * total_one2many + o2o * total_one2one; ``items`` are the one-to-one head's (the head that
    serves NMS-free inference). `update` moves the weights over training: the one-to-many weight starts at
    0.8 and falls linearly to 0.1 at the last epoch, o2o = 1 - o2m (YOLO26's progressive loss balance: the
    dense one-to-many signal shapes the features early, the one-to-one head takes over late).
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
