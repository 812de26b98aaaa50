"""Second stage of postprocessing: exact greedy NMS over fixed-size `Candidates`, batched over images.

The result is the one ``torchvision.ops.nms`` gives on class-offset boxes (Ultralytics' recipe):
walk the boxes by descending score, keep a box unless a box kept before it overlaps it with
IoU > threshold (strictly). Instead of a Python step per box, the sorted candidates are cut into
blocks. Each block is first suppressed by every box already kept, then solved on its own by a
fixed-point iteration (see `_greedy_within_block`). Kept boxes go into a buffer of at most
``max_det`` per image: a box kept after the first ``max_det`` would be dropped by the final
truncation anyway, and it can only suppress boxes ranked even lower, so nothing after that point can
change the answer and the image is finished. Memory is O(B * block * (block + max_det)), whatever K.
"""

from __future__ import annotations

import numpy as np
import torch

from yolostream.postprocess.boxes import box_iou_batched
from yolostream.postprocess.candidates import Candidates


def _float32_below(threshold: float) -> float:
    """Largest float32 <= ``threshold``.

    torchvision compares the float32 IoU against the threshold as a double; for a float32 ``iou``,
    ``iou > threshold`` (in doubles) is the same as ``iou > _float32_below(threshold)`` in float32,
    whereas letting torch round the threshold to the nearest float32 can round it up past an IoU
    that torchvision would suppress.
    """
    t = np.float32(threshold)
    if float(t) > threshold:
        t = np.nextafter(t, np.float32(-np.inf))
    return float(t)


def _greedy_within_block(overlap: torch.Tensor, cand: torch.Tensor, earlier: torch.Tensor) -> torch.Tensor:
    """Greedy NMS inside one block of boxes already sorted by score.

    Args:
        overlap: [B, N, N] bool, ``overlap[b, j, i]`` = IoU(j, i) > threshold.
        cand: [B, N] bool, boxes still in the running (valid and not suppressed by earlier blocks).
        earlier: [>=N, >=N] bool, strictly upper triangular (``earlier[j, i]`` = j before i); made once per
            call of `nms_keep`, not per block.

    Returns:
        [B, N] bool kept. Greedy NMS is the unique fixed point of
        ``keep[i] = cand[i] and not any(keep[j] and overlap[j, i] for j < i)``. Iterating that map
        from ``keep = cand`` fixes one more leading entry per round (entry i only reads entries
        before it), so it reaches the greedy answer in at most N rounds, and in practice in as many
        rounds as the longest chain of "a suppresses b, which would have suppressed c" (a handful).
    """
    n = cand.shape[1]
    # As a 0/1 float matrix, "any kept j overlapping i" is one batched vector-matrix product per round
    # (a BLAS call), several times cheaper than the bool and/any over [B, N, N] it replaces. Sums of at
    # most N ones are exact in float32.
    weights = (overlap & earlier[:n, :n]).float()
    keep = cand
    for _ in range(n + 1):
        suppressed = torch.bmm(keep.float().unsqueeze(1), weights).squeeze(1) > 0
        new = cand & ~suppressed
        if torch.equal(new, keep):
            break
        keep = new
    return keep


def nms_keep(
    c: Candidates,
    iou_threshold: float = 0.7,
    *,
    agnostic: bool = False,
    max_det: int = 300,
    class_offset: float = 7680.0,
    block_size: int = 256,
) -> torch.Tensor:
    """Which candidates survive greedy NMS, per image.

    Args:
        c: candidates of B images, K rows each (any order; rows are visited by descending score).
        iou_threshold: a box is suppressed by a kept box when their IoU is strictly greater.
        agnostic: False: boxes of different classes never suppress each other, done as Ultralytics
            does by shifting every box by ``class * class_offset`` pixels before computing IoU (the
            shift changes float32 rounding of the IoU slightly, and this reproduces it).
        max_det: keep at most this many boxes per image, the highest scores.
        class_offset: the per-class shift (Ultralytics' ``max_wh``); larger than any image side.
        block_size: boxes handled per step; bounds memory, does not change the result.

    Returns:
        [B, K] bool, True for kept rows, in the row order of ``c``. Rows with ``valid=False`` are
        never kept and never suppress. Scores are compared in float32 (fp16/bf16 inputs are upcast).
    """
    boxes = c.boxes.float()
    if boxes.ndim != 3 or boxes.shape[-1] != 4:
        raise ValueError(f"candidate boxes must be [B, K, 4], got {tuple(boxes.shape)}")
    b, k, _ = boxes.shape
    device = boxes.device
    keep_out = torch.zeros(b, k, dtype=torch.bool, device=device)
    if k == 0 or max_det <= 0:
        return keep_out
    if not agnostic:
        boxes = boxes + c.classes.to(torch.float32).unsqueeze(-1) * class_offset

    scores = c.scores.float()
    ranked = torch.where(c.valid, scores, torch.full_like(scores, float("-inf")))
    order = ranked.argsort(dim=1, descending=True, stable=True)
    boxes = boxes.gather(1, order.unsqueeze(-1).expand(-1, -1, 4))
    valid = c.valid.gather(1, order)
    thr = torch.tensor(_float32_below(iou_threshold), dtype=torch.float32, device=device)

    # Kept-box buffer: max_det slots plus one spill slot that non-kept rows are scattered into.
    kept_boxes = torch.zeros(b, max_det + 1, 4, dtype=torch.float32, device=device)
    kept_used = torch.zeros(b, max_det + 1, dtype=torch.bool, device=device)
    n_kept = torch.zeros(b, 1, dtype=torch.int64, device=device)
    keep_sorted = torch.zeros(b, k, dtype=torch.bool, device=device)
    spill = torch.full((b, 1), max_det, dtype=torch.int64, device=device)

    size = min(block_size, k)
    earlier = torch.ones(size, size, dtype=torch.bool, device=device).triu(diagonal=1)
    for start in range(0, k, block_size):
        stop = min(start + block_size, k)
        # One host sync per block: stop once every image is full or out of valid rows.
        if not bool((valid[:, start:].any(dim=1) & (n_kept[:, 0] < max_det)).any()):
            break
        blk = boxes[:, start:stop]
        cand = valid[:, start:stop]
        used = int(n_kept.max())  # only filled slots can suppress (same sync as the check above)
        if used:
            by_kept = (box_iou_batched(kept_boxes[:, :used], blk) > thr) & kept_used[:, :used].unsqueeze(-1)
            cand = cand & ~by_kept.any(dim=1)
        keep = _greedy_within_block(box_iou_batched(blk, blk) > thr, cand, earlier)

        rank = n_kept + keep.long().cumsum(dim=1)  # 1-based slot of each kept row
        keep = keep & (rank <= max_det)
        slot = torch.where(keep, rank - 1, spill)
        kept_boxes.scatter_(1, slot.unsqueeze(-1).expand(-1, -1, 4), blk)
        kept_used.scatter_(1, slot, keep)
        kept_used[:, max_det] = False
        n_kept = n_kept + keep.long().sum(dim=1, keepdim=True)
        keep_sorted[:, start:stop] = keep

    return keep_out.scatter_(1, order, keep_sorted)


def gather_kept(c: Candidates, keep: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Split kept rows per image: ``[(boxes [n, 4], scores [n], classes [n] int64), ...]``.

    Rows are sorted by score, highest first; boxes are the un-shifted xyxy boxes of ``c``. This is
    the only step with a per-image loop, since each image keeps a different number of rows.
    """
    out = []
    for i in range(keep.shape[0]):
        idx = keep[i].nonzero().squeeze(1)
        idx = idx[c.scores[i, idx].argsort(descending=True, stable=True)]
        out.append((c.boxes[i, idx], c.scores[i, idx], c.classes[i, idx]))
    return out
