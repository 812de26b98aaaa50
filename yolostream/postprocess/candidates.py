"""First, fixed-size stage of postprocessing: pick the candidate detections of every image.

Both selectors return tensors whose shapes depend only on the input shapes and the arguments, never
on the data (no ``.item()``, no boolean indexing), so they can sit inside a ``torch.compile``d
``fullgraph`` callable next to the model. Rows that did not pass are kept and flagged ``valid=False``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch


class Candidates(NamedTuple):
    """Per-image candidate detections, fixed K rows per image, sorted by score, highest first.

    Attributes:
        boxes: [B, K, 4] xyxy, in the network-input pixel frame (letterboxed image).
        scores: [B, K] class confidence after sigmoid.
        classes: [B, K] int64 class index.
        valid: [B, K] bool; False rows are padding (score not above ``conf``, filtered class) and
            sort after every valid row.
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    classes: torch.Tensor
    valid: torch.Tensor


def _in_classes(classes: torch.Tensor, keep: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """Bool, shaped like ``classes``: True where the class id is one of ``keep``."""
    wanted = torch.as_tensor(keep, dtype=torch.int64, device=classes.device).reshape(-1)
    return (classes.unsqueeze(-1) == wanted).any(-1)


def _check(boxes_xyxy: torch.Tensor, scores: torch.Tensor) -> None:
    if boxes_xyxy.ndim != 3 or boxes_xyxy.shape[-1] != 4:
        raise ValueError(f"boxes_xyxy must be [B, A, 4], got {tuple(boxes_xyxy.shape)}")
    if scores.ndim != 3 or scores.shape[:2] != boxes_xyxy.shape[:2]:
        raise ValueError(f"scores must be [B, A={boxes_xyxy.shape[1]}, C], got {tuple(scores.shape)}")


def _top(
    key: torch.Tensor, score: torch.Tensor, valid: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Indices [B, k] of the k highest ``key`` rows, with their score and valid flag."""
    # Invalid rows get -inf so every valid row sorts ahead of them; the scores returned stay the
    # real ones (padding rows keep whatever score they had).
    ranked = torch.where(valid, key, torch.full_like(key, float("-inf")))
    idx = ranked.topk(k, dim=1, sorted=True).indices
    return idx, score.gather(1, idx), valid.gather(1, idx)


def select_candidates(
    boxes_xyxy: torch.Tensor,
    scores: torch.Tensor,
    conf: float = 0.25,
    max_candidates: int = 30000,
    multi_label: bool = False,
    classes: Sequence[int] | torch.Tensor | None = None,
) -> Candidates:
    """Candidates for NMS, as Ultralytics' ``non_max_suppression`` picks them before suppressing.

    Args:
        boxes_xyxy: [B, A, 4] xyxy boxes of every anchor, network-input pixels.
        scores: [B, A, C] class scores after sigmoid.
        conf: a row is valid when its score is strictly greater than ``conf``.
        max_candidates: keep at most this many rows per image, the highest scores
            (Ultralytics' ``max_nms``).
        multi_label: False: one row per anchor with its best class (argmax) and that score.
            True: one row per (anchor, class) pair, so an anchor may appear once per class.
        classes: keep only these class ids (applied after choosing the anchor's class, before
            the ``max_candidates`` cap); None keeps all.

    Returns:
        `Candidates` with K = min(max_candidates, A) rows (A*C instead of A with ``multi_label``),
        sorted by score, highest first, valid rows first.
    """
    _check(boxes_xyxy, scores)
    if not multi_label:
        best, cls = scores.max(dim=-1)
        return select_best(boxes_xyxy, best, cls, conf, max_candidates, classes)
    b, a, c = scores.shape
    flat = scores.reshape(b, a * c)
    cls = torch.arange(c, device=scores.device).repeat(a).expand(b, a * c)
    valid = flat > conf
    if classes is not None:
        valid = valid & _in_classes(cls, classes)
    idx, top_scores, top_valid = _top(flat, flat, valid, min(max_candidates, a * c))
    anchor = torch.div(idx, c, rounding_mode="floor")
    top_cls = cls.gather(1, idx)
    top_boxes = boxes_xyxy.gather(1, anchor.unsqueeze(-1).expand(-1, -1, 4))
    return Candidates(top_boxes, top_scores, top_cls, top_valid)


def select_best(
    boxes_xyxy: torch.Tensor,
    best: torch.Tensor,
    cls: torch.Tensor,
    conf: float | torch.Tensor = 0.25,
    max_candidates: int = 30000,
    classes: Sequence[int] | torch.Tensor | None = None,
) -> Candidates:
    """`select_candidates` (one row per anchor) from each anchor's best score already taken.

    Args:
        boxes_xyxy: [B, A, 4] xyxy boxes, network-input pixels.
        best: [B, A] the anchor's best class score (after sigmoid); cls: [B, A] int64 that class.
        conf, max_candidates, classes: as in `select_candidates`.

    Returns:
        `Candidates` with K = min(max_candidates, A) rows, sorted by score, valid rows first.
    """
    if boxes_xyxy.ndim != 3 or boxes_xyxy.shape[-1] != 4 or not (best.shape == cls.shape == boxes_xyxy.shape[:2]):
        raise ValueError(
            f"need boxes [B, A, 4] with best and cls [B, A], got {tuple(boxes_xyxy.shape)}, "
            f"{tuple(best.shape)}, {tuple(cls.shape)}"
        )
    valid = best > conf
    if classes is not None:
        valid = valid & _in_classes(cls, classes)
    anchor, top_scores, top_valid = _top(best, best, valid, min(max_candidates, best.shape[1]))
    top_boxes = boxes_xyxy.gather(1, anchor.unsqueeze(-1).expand(-1, -1, 4))
    return Candidates(top_boxes, top_scores, cls.gather(1, anchor), top_valid)


def topk_one_to_one(
    boxes_xyxy: torch.Tensor,
    scores: torch.Tensor,
    max_det: int = 300,
    conf: float = 0.25,
    classes: Sequence[int] | torch.Tensor | None = None,
    agnostic: bool = False,
) -> Candidates:
    """NMS-free selection for end-to-end heads (YOLOv10, YOLO26 with ``nms=False``).

    Ultralytics' rule: take the ``max_det`` anchors with the highest best-class score, then the
    ``max_det`` highest (anchor, class) scores among those anchors, so an anchor may appear with
    several classes. No suppression follows; the one-to-one head is trained not to duplicate.

    Args:
        boxes_xyxy: [B, A, 4] xyxy boxes of the one-to-one head, network-input pixels.
        scores: [B, A, C] one-to-one class scores after sigmoid.
        max_det: rows kept per image, K = min(max_det, A).
        conf: rows with score <= conf are flagged invalid (they stay in place; they already sort last).
        classes: keep only these class ids. The filter acts on the scores before the top-k, so
            ``max_det`` counts only wanted classes (the fixed behaviour of Ultralytics 8.4, where a
            late filter could return fewer rows than asked).
        agnostic: one row per anchor with its best class (Ultralytics' ``agnostic_nms`` for
            end-to-end heads) instead of (anchor, class) pairs.

    Returns:
        `Candidates` with K rows per image, sorted by score, highest first.
    """
    _check(boxes_xyxy, scores)
    b, a, c = scores.shape
    k = min(max_det, a)
    if classes is not None:
        wanted = _in_classes(torch.arange(c, device=scores.device), classes)
        # Unwanted classes can never be picked: -1 is below every sigmoid score.
        scores = torch.where(wanted, scores, torch.full_like(scores, -1.0))
    best, best_cls = scores.max(dim=-1)
    top_best, anchor = best.topk(k, dim=1, sorted=True)
    if agnostic:
        top_scores, top_cls = top_best, best_cls.gather(1, anchor)
    else:
        sub = scores.gather(1, anchor.unsqueeze(-1).expand(-1, -1, c)).reshape(b, k * c)
        top_scores, pair = sub.topk(k, dim=1, sorted=True)
        anchor = anchor.gather(1, torch.div(pair, c, rounding_mode="floor"))
        top_cls = pair % c
    top_boxes = boxes_xyxy.gather(1, anchor.unsqueeze(-1).expand(-1, -1, 4))
    return Candidates(top_boxes, top_scores, top_cls, top_scores > conf)
