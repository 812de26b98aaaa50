"""Detection head: per-level box and class branches, and the decoding of their outputs to boxes."""

from __future__ import annotations

import copy
from typing import NamedTuple

import torch
from torch import Tensor, nn

from yolostream.models.conv import ConvBNAct, dw_conv


class HeadOutput(NamedTuple):
    """Raw outputs of one head branch, all anchors of all levels concatenated (A = sum of H_i * W_i).

    boxes: [B, 4 * reg_max, A] box-distribution logits (reg_max 1: the four distances themselves).
    scores: [B, nc, A] class logits (before sigmoid).
    """

    boxes: Tensor
    scores: Tensor


class DFL(nn.Module):
    """Distribution focal decode: expected value of a softmax over ``reg_max`` bins, per box side.

    [B, 4 * reg_max, A] -> [B, 4, A] distances in stride units. The bin values are the checkpoint's
    fixed 1x1 conv weight (0, 1, ..., reg_max - 1).
    """

    def __init__(self, reg_max: int = 16) -> None:
        super().__init__()
        self.conv = nn.Conv2d(reg_max, 1, 1, bias=False).requires_grad_(False)
        self.conv.weight.data[:] = torch.arange(reg_max, dtype=torch.float32).view(1, reg_max, 1, 1)
        self.reg_max = reg_max

    def forward(self, x: Tensor) -> Tensor:
        b, _, a = x.shape
        prob = x.view(b, 4, self.reg_max, a).transpose(2, 1).softmax(1)  # [B, reg_max, 4, A]
        return self.conv(prob).view(b, 4, a)


def make_anchors(shapes: list[tuple[int, int]], strides: list[float], like: Tensor) -> tuple[Tensor, Tensor]:
    """Anchor centres and their strides for feature maps of the given (H, W).

    Returns points [A, 2] as (x, y) cell centres in *feature-map* units (``i + 0.5``) and strides [A, 1].
    A function of the shapes only: under torch.compile with static shapes it folds into constants.
    """
    points, stride_col = [], []
    for (h, w), s in zip(shapes, strides, strict=True):
        sx = torch.arange(w, device=like.device, dtype=like.dtype) + 0.5
        sy = torch.arange(h, device=like.device, dtype=like.dtype) + 0.5
        gy, gx = torch.meshgrid(sy, sx, indexing="ij")
        points.append(torch.stack((gx, gy), -1).view(-1, 2))
        stride_col.append(torch.full((h * w, 1), s, device=like.device, dtype=like.dtype))
    return torch.cat(points), torch.cat(stride_col)


def distances_to_xywh(dist: Tensor, points: Tensor, strides: Tensor) -> Tensor:
    """[B, 4, A] distances (left, top, right, bottom; stride units) -> [B, 4, A] (cx, cy, w, h) in input pixels."""
    lt, rb = dist.chunk(2, dim=1)
    anchor = points.t().unsqueeze(0)  # [1, 2, A]
    x1y1 = anchor - lt
    x2y2 = anchor + rb
    return torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), dim=1) * strides.t().unsqueeze(0)


def _box_branch(c_in: int, c_mid: int, reg_max: int) -> nn.Sequential:
    return nn.Sequential(ConvBNAct(c_in, c_mid, 3), ConvBNAct(c_mid, c_mid, 3), nn.Conv2d(c_mid, 4 * reg_max, 1))


def _cls_branch(c_in: int, c_mid: int, nc: int, depthwise: bool) -> nn.Sequential:
    if not depthwise:  # YOLOv5u / YOLOv8: two full 3x3 convs
        return nn.Sequential(ConvBNAct(c_in, c_mid, 3), ConvBNAct(c_mid, c_mid, 3), nn.Conv2d(c_mid, nc, 1))
    # YOLOv10 / YOLO11 / YOLO26: depth-wise 3x3 + point-wise 1x1, twice
    return nn.Sequential(
        nn.Sequential(dw_conv(c_in, c_in, 3), ConvBNAct(c_in, c_mid, 1)),
        nn.Sequential(dw_conv(c_mid, c_mid, 3), ConvBNAct(c_mid, c_mid, 1)),
        nn.Conv2d(c_mid, nc, 1),
    )


class DetectHead(nn.Module):
    """Anchor-free detection head over the pyramid levels (strides 8, 16, 32 for P3, P4, P5).

    ``cv2`` are the box branches, ``cv3`` the class branches (checkpoint names). End-to-end (dual) heads
    (YOLOv10, YOLO26) carry a second, one-to-one copy ``one2one_cv2``/``one2one_cv3`` trained to need no NMS.
    """

    def __init__(
        self,
        nc: int,
        ch: tuple[int, ...],
        strides: tuple[float, ...] = (8.0, 16.0, 32.0),
        reg_max: int = 16,
        depthwise_cls: bool = True,
        end2end: bool = False,
    ) -> None:
        super().__init__()
        self.nc, self.reg_max, self.end2end = nc, reg_max, end2end
        self.strides = tuple(float(s) for s in strides)
        c2 = max(16, ch[0] // 4, reg_max * 4)
        c3 = max(ch[0], min(nc, 100))
        self.cv2 = nn.ModuleList(_box_branch(c, c2, reg_max) for c in ch)
        self.cv3 = nn.ModuleList(_cls_branch(c, c3, nc, depthwise_cls) for c in ch)
        self.dfl = DFL(reg_max) if reg_max > 1 else nn.Identity()
        if end2end:
            self.one2one_cv2 = copy.deepcopy(self.cv2)
            self.one2one_cv3 = copy.deepcopy(self.cv3)

    def branch(self, feats: list[Tensor], one2one: bool = False) -> HeadOutput:
        """Raw outputs of the one-to-many (default) or one-to-one branch for features [B, C_i, H_i, W_i]."""
        box_convs = self.one2one_cv2 if one2one else self.cv2
        cls_convs = self.one2one_cv3 if one2one else self.cv3
        b = feats[0].shape[0]
        boxes = torch.cat([m(f).view(b, 4 * self.reg_max, -1) for m, f in zip(box_convs, feats, strict=True)], 2)
        scores = torch.cat([m(f).view(b, self.nc, -1) for m, f in zip(cls_convs, feats, strict=True)], 2)
        return HeadOutput(boxes, scores)

    def decode(self, out: HeadOutput, shapes: list[tuple[int, int]]) -> Tensor:
        """[B, 4 + nc, A]: (cx, cy, w, h) in input pixels, then class probabilities (sigmoid)."""
        points, strides = make_anchors(shapes, list(self.strides), out.boxes)
        xywh = distances_to_xywh(self.dfl(out.boxes), points, strides)
        return torch.cat((xywh, out.scores.sigmoid()), 1)
