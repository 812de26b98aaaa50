"""Detection head: per-level box and class branches, and the decoding of their outputs to boxes."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from yolostream.models.conv import ConvBNAct, dw_conv
from yolostream.postprocess.boxes import xywh_to_xyxy


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


def distances_to_xywh(dist: Tensor, points: Tensor, strides: Tensor, dim: int = 1) -> Tensor:
    """Distances (left, top, right, bottom; stride units) -> (cx, cy, w, h) in input pixels.

    ``dim=1``: [B, 4, A] -> [B, 4, A] (channel-major, the raw head layout). ``dim=-1``: [B, A, 4] -> [B, A, 4]
    (anchor-major). The same arithmetic either way, so both give the same numbers.
    """
    lt, rb = dist.chunk(2, dim=dim)
    anchor, stride = (points.t(), strides.t()) if dim == 1 else (points, strides)
    x1y1 = anchor.unsqueeze(0) - lt
    x2y2 = anchor.unsqueeze(0) + rb
    return torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), dim=dim) * stride.unsqueeze(0)


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

    def levels(self, feats: list[Tensor], one2one: bool = False) -> list[HeadOutput]:
        """Raw outputs of one branch per level, as maps: boxes [B, 4 * reg_max, H_i, W_i], scores [B, nc, H_i, W_i]."""
        box_convs = self.one2one_cv2 if one2one else self.cv2
        cls_convs = self.one2one_cv3 if one2one else self.cv3
        return [HeadOutput(mb(f), mc(f)) for mb, mc, f in zip(box_convs, cls_convs, feats, strict=True)]

    def branch(self, feats: list[Tensor], one2one: bool = False) -> HeadOutput:
        """Raw outputs of the one-to-many (default) or one-to-one branch for features [B, C_i, H_i, W_i]."""
        return join_levels(self.levels(feats, one2one))

    def decode(self, out: HeadOutput, shapes: list[tuple[int, int]]) -> Tensor:
        """[B, 4 + nc, A]: (cx, cy, w, h) in input pixels, then class probabilities (sigmoid)."""
        return decode(out, shapes, self.strides, self.dfl)


def join_levels(levels: list[HeadOutput]) -> HeadOutput:
    """Per-level maps [B, C, H_i, W_i] -> one `HeadOutput` [B, C, A], levels concatenated in order."""
    b = levels[0].boxes.shape[0]
    boxes = torch.cat([lv.boxes.reshape(b, lv.boxes.shape[1], -1) for lv in levels], 2)
    return HeadOutput(boxes, torch.cat([lv.scores.reshape(b, lv.scores.shape[1], -1) for lv in levels], 2))


def decode(out: HeadOutput, shapes: list[tuple[int, int]], strides: tuple[float, ...], dfl: nn.Module) -> Tensor:
    """Raw outputs [B, *, A] of feature maps of the given (H, W) -> [B, 4 + nc, A]: (cx, cy, w, h) in input
    pixels, then class probabilities (sigmoid). ``dfl``: the head's `DFL` (identity when reg_max is 1)."""
    points, stride_col = make_anchors(shapes, list(strides), out.boxes)
    xywh = distances_to_xywh(dfl(out.boxes), points, stride_col)
    return torch.cat((xywh, out.scores.sigmoid()), 1)


class BestPerAnchor(NamedTuple):
    """Every anchor's box and best class, anchor-major (A = sum of H_i * W_i, levels in order).

    boxes: [B, A, 4] float32 xyxy in input pixels. scores: [B, A] float32 sigmoid of the best class logit.
    classes: [B, A] int64 index of that class.
    """

    boxes: Tensor
    scores: Tensor
    classes: Tensor


def _expected_bin(logits: Tensor) -> Tensor:
    """[..., reg_max] bin logits -> [...] expected bin index under their softmax (what `DFL` computes).

    Both sums read the logits through their own exp (sum of exp(z + log bin), log 0 = -inf, over sum of
    exp(z)), never through one shared exp(z): on the CPU Inductor stores any reused value holding an exp,
    and it stored that one transposed with a scalar exp per logit (yolov8n P3: 2.1 ms of a ~75 ms fp32 call;
    this form, one vectorised pass over the contiguous bins: 0.5 ms). exp(z + log b) and b * exp(z) differ
    by float32 rounding only (~1e-7 relative).
    """
    z = logits - logits.amax(-1, keepdim=True)
    log_bins = torch.arange(logits.shape[-1], device=logits.device, dtype=logits.dtype).log()  # log 0 = -inf
    return (z + log_bins).exp().sum(-1) / z.exp().sum(-1)


def _max_first(s: Tensor) -> tuple[Tensor, Tensor]:
    """[..., nc] -> the max [...] and the first index holding it [...] int64, as ``s.max(-1)``.

    The index is the smallest (float) class number equal to the max: a vectorised min, where Inductor's
    argmax ran element by element (0.33 vs 0.70 ms for P3 of 80 classes). Float indices are exact below
    2**24 classes. A NaN row matches no class; its index is clamped to nc - 1 (its score fails any conf).
    """
    best = s.amax(-1, keepdim=True)
    nc = s.shape[-1]
    index = torch.arange(nc, device=s.device, dtype=torch.float32)
    first = torch.where(s == best, index, float(nc)).amin(-1)
    return best.squeeze(-1), first.clamp_max(nc - 1).long()


def decode_best(
    levels: list[HeadOutput],
    strides: tuple[float, ...],
    reg_max: int,
    expected_bin: Callable[[Tensor], Tensor] = _expected_bin,
) -> BestPerAnchor:
    """Per-level raw maps (`DetectHead.levels`) -> `BestPerAnchor`, in float32 whatever the maps' dtype.

    The same numbers as `DetectHead.decode` followed by a max over classes, computed where they are cheap:
    per level (no [B, 4 + nc, A] concat), the best class found on the logits, and the sigmoid taken of
    that logit only, not of all nc * A. Sigmoid is monotonic, so the score is the same value; the class can
    differ only where two classes' sigmoids round to the same float (in float32: both logits above ~16.6,
    where the reference keeps the lower index and this the higher logit). Under bf16 autocast the maps are
    bf16 and everything here float32, so scores keep float32 resolution (bf16's sigmoid saturates at ~5.5).
    ``expected_bin``: the DFL reduction, [B, HW, 4, reg_max] -> [B, HW, 4] (benchmarks swap in other forms).
    """
    shapes = [(lv.boxes.shape[2], lv.boxes.shape[3]) for lv in levels]
    points, stride_col = make_anchors(shapes, list(strides), levels[0].boxes.new_empty(0, dtype=torch.float32))
    b = levels[0].boxes.shape[0]
    dists, logits, classes = [], [], []
    for lv in levels:
        d = lv.boxes.permute(0, 2, 3, 1).reshape(b, -1, 4, reg_max).float()  # [B, HW, 4, reg_max]
        dists.append(expected_bin(d) if reg_max > 1 else d.squeeze(3))  # [B, HW, 4]
        best, cls = _max_first(lv.scores.permute(0, 2, 3, 1).reshape(b, -1, lv.scores.shape[1]))
        logits.append(best)
        classes.append(cls)
    xywh = distances_to_xywh(torch.cat(dists, 1), points, stride_col, dim=-1)
    return BestPerAnchor(xywh_to_xyxy(xywh), torch.cat(logits, 1).float().sigmoid(), torch.cat(classes, 1))
