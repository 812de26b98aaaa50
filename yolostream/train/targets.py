"""Training labels in the form the loss works on: per-picture padded ground truth, and box-side targets.

A training batch carries its labels flat (``batch_idx``, ``cls``, ``bboxes``: one row per object, any order
of pictures); the assigner wants them per picture, ``[B, M, ...]``, padded to the most objects any picture
has. Built with a sort and a scatter: no Python loop over pictures or boxes.
"""

from __future__ import annotations

import torch
from torch import Tensor

from yolostream.postprocess.boxes import xywh_to_xyxy


def ground_truth(
    batch: dict[str, Tensor], b: int, imgsz: tuple[int, int], max_boxes: int | None = None, nc: int | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Flat labels -> ``labels [B, M]`` int64, ``boxes [B, M, 4]`` xyxy input pixels, ``mask [B, M]`` bool.

    ``batch_idx`` [N] is the picture of each object, ``cls`` [N] its class, ``bboxes`` [N, 4] its (cx, cy, w, h)
    normalised to the (H, W) = ``imgsz`` input. Objects keep their order within a picture. M is the most
    objects of one picture, or ``max_boxes`` when given: a fixed M keeps the shapes static for
    ``torch.compile`` (objects beyond it are dropped, so the caller picks it >= the batch's largest count).

    Without ``max_boxes`` (eager: M is read from the data anyway) picture indices outside [0, B) and, given
    ``nc``, classes outside [0, nc) raise ValueError instead of failing deep inside the loss.
    """
    idx = batch["batch_idx"].long().view(-1)
    cls = batch["cls"].view(-1)
    device = batch["bboxes"].device
    n = idx.shape[0]
    if max_boxes is None and n:
        lo, hi, cmin, cmax = torch.stack((idx.min(), idx.max(), cls.min().long(), cls.max().long())).tolist()
        if lo < 0 or hi >= b:
            raise ValueError(f"label batch_idx {lo if lo < 0 else hi} is outside the batch of {b} pictures")
        if nc is not None and (cmin < 0 or cmax >= nc):
            raise ValueError(f"label class {cmin if cmin < 0 else cmax} is outside the model's {nc} classes")
    # scatter_add rather than bincount: its output size does not depend on the data (compile-friendly).
    counts = torch.zeros(b, dtype=torch.long, device=device).scatter_add_(0, idx, torch.ones_like(idx))
    m = max_boxes if max_boxes is not None else (int(counts.max()) if n else 0)
    order = torch.sort(idx, stable=True).indices
    sidx = idx[order]
    slot = torch.arange(n, device=device) - (torch.cumsum(counts, 0) - counts)[sidx]
    slot = slot.clamp(max=m)  # overflow (only with max_boxes) lands in an extra column, cut off below
    h, w = imgsz
    scale = torch.tensor([w, h, w, h], dtype=torch.float32, device=device)
    labels = torch.zeros(b, m + 1, dtype=torch.long, device=device)
    boxes = torch.zeros(b, m + 1, 4, dtype=torch.float32, device=device)
    mask = torch.zeros(b, m + 1, dtype=torch.bool, device=device)
    labels[sidx, slot] = cls[order].long()
    boxes[sidx, slot] = xywh_to_xyxy(batch["bboxes"][order].float() * scale)
    mask[sidx, slot] = True
    return labels[:, :m], boxes[:, :m], mask[:, :m]


def ltrb_targets(points: Tensor, boxes: Tensor) -> Tensor:
    """Distances (left, top, right, bottom) from anchor centres [A, 2] to the sides of xyxy boxes [B, A, 4].

    Same frame as the inputs (the loss uses stride units); negative where the centre lies outside.
    """
    return torch.cat((points - boxes[..., :2], boxes[..., 2:] - points), -1)
