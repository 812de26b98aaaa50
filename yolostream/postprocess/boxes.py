"""Box format conversions, areas, pairwise IoU and clipping.

Formats: ``xyxy`` is ``[x1, y1, x2, y2]`` (top-left and bottom-right corners), ``xywh`` is
``[cx, cy, w, h]`` (centre, width, height). Every function works in whatever pixel frame its
inputs are in (network input or original image); none of them moves boxes between frames.
"""

from __future__ import annotations

import torch


def xywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """``[..., 4]`` centre/size boxes -> ``[..., 4]`` corner boxes, same dtype and frame."""
    cx, cy, w, h = boxes.unbind(-1)
    # Half sizes first, as the reference decoder does, so rounding matches it bit for bit.
    hw, hh = w / 2, h / 2
    return torch.stack((cx - hw, cy - hh, cx + hw, cy + hh), dim=-1)


def xyxy_to_xywh(boxes: torch.Tensor) -> torch.Tensor:
    """``[..., 4]`` corner boxes -> ``[..., 4]`` centre/size boxes, same dtype and frame."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), dim=-1)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Area of ``[..., 4]`` xyxy boxes -> ``[...]``; a box with x2 < x1 has negative area (not clamped)."""
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def _pairwise_iou(a: torch.Tensor, b: torch.Tensor, eps: float) -> torch.Tensor:
    """IoU of ``[..., N, 4]`` against ``[..., M, 4]`` xyxy boxes -> ``[..., N, M]``."""
    # One coordinate at a time: [..., N, M] planes stay contiguous (interleaved (x, y) pairs were ~3x
    # slower); the arithmetic per element is unchanged.
    ax1, ay1, ax2, ay2 = (t.unsqueeze(-1) for t in a.unbind(-1))
    bx1, by1, bx2, by2 = (t.unsqueeze(-2) for t in b.unbind(-1))
    w = (torch.minimum(ax2, bx2) - torch.maximum(ax1, bx1)).clamp(min=0)
    h = (torch.minimum(ay2, by2) - torch.maximum(ay1, by1)).clamp(min=0)
    inter = w * h
    # (area_a + area_b) - inter in this order: torchvision's NMS kernel rounds the same way, so an IoU
    # that sits exactly on a threshold compares the same here as there.
    union = box_area(a)[..., :, None] + box_area(b)[..., None, :] - inter
    if eps:
        union = union + eps
    return inter / union


def box_iou(a: torch.Tensor, b: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Pairwise IoU of xyxy boxes ``a`` [N, 4] and ``b`` [M, 4] -> [N, M], in their dtype.

    ``eps`` is added to the union. With ``eps=0`` (torchvision's convention) two zero-area boxes give
    NaN, which compares false against any threshold; Ultralytics' validator uses ``eps=1e-7``.
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[-1] != 4 or b.shape[-1] != 4:
        raise ValueError(f"box_iou needs [N,4] and [M,4], got {tuple(a.shape)} and {tuple(b.shape)}")
    return _pairwise_iou(a, b, eps)


def box_iou_batched(a: torch.Tensor, b: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Per-image pairwise IoU of xyxy boxes ``a`` [B, N, 4] and ``b`` [B, M, 4] -> [B, N, M]."""
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0] or a.shape[-1] != 4 or b.shape[-1] != 4:
        raise ValueError(f"box_iou_batched needs [B,N,4] and [B,M,4], got {tuple(a.shape)} and {tuple(b.shape)}")
    return _pairwise_iou(a, b, eps)


def clip_boxes(boxes: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Clip ``[..., 4]`` xyxy boxes to an image of ``shape = (height, width)``; returns a new tensor."""
    h, w = shape
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack((x1.clamp(0, w), y1.clamp(0, h), x2.clamp(0, w), y2.clamp(0, h)), dim=-1)
