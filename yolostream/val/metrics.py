"""Detection mAP the way Ultralytics' ``val()`` reports it (mAP50, mAP50-95, P and R).

The recipe, learnt from Ultralytics' issues and docs and written here independently:

1. Per image, for each IoU threshold 0.50, 0.55, ..., 0.95, match predictions to ground truth of the
   same class with IoU >= threshold: every prediction picks its highest-IoU ground truth; a ground
   truth picked by several predictions goes to the highest-confidence one; the others are false
   positives (they do not fall back to their second choice). This is COCO's tie-break as
   Ultralytics implements it (two passes of "unique", by prediction then by ground truth), and it
   is not a maximum matching.
2. Over the dataset, per class with ground truth: sort predictions by confidence, accumulate TP/FP,
   recall = TP / n_gt, precision = TP / (TP + FP); AP = area under the precision envelope sampled
   at 101 recall points, integrated with the trapezoid rule. The curve ends with precision 0 at the
   last recall reached (then at recall 1), so recall never reached adds no area; a perfect
   detector scores 0.995, not 1, because the 101st sample (recall 1.0) lands on that final 0.
3. mAP = mean over classes that have ground truth (a class never labelled is left out; a labelled
   class never predicted counts as AP 0). P and R are taken at the confidence that maximises the
   mean-over-classes F1 curve (smoothed), as Ultralytics prints them.

What Ultralytics 8.4 feeds it, checked against ``reference/shapes-val.json`` (yolo11n-shapes equal to
every printed digit): NMS with ``multi_label=True`` (unlike predict), conf 0.001, IoU 0.7, max_det 300,
the one-to-many head for dual-head models; predictions as NMS leaves them, in network-input pixels
(not scaled back, not clipped), ground truth mapped into that same letterboxed frame
(`yolostream.val.dataset.labels_to_xyxy` with the letterboxed size and padding). Matching in
original-image pixels instead moves mAP50-95 by ~1e-3, through boxes clipped at the border.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from yolostream.postprocess.boxes import box_iou

# float32 thresholds, as Ultralytics builds them with torch.linspace: an IoU that lands exactly on a
# threshold compares the same way here.
IOU_THRESHOLDS = torch.linspace(0.5, 0.95, 10).numpy()

_EPS = 1e-16  # keeps recall finite for n_gt = 0 and F1 finite for P = R = 0 (Ultralytics' value)
_IOU_EPS = 1e-7  # added to the union by Ultralytics' validator IoU; it moves borderline matches


def _as_tensor(x: np.ndarray | torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to(device="cpu", dtype=dtype)
    return torch.as_tensor(np.asarray(x)).to(dtype)


def match_predictions(
    pred_cls: np.ndarray, gt_cls: np.ndarray, iou: np.ndarray, thresholds: np.ndarray = IOU_THRESHOLDS
) -> np.ndarray:
    """True-positive table of one image.

    Args:
        pred_cls: [P] class of each prediction, predictions sorted by confidence, highest first
            (the order decides which prediction wins a contested ground truth).
        gt_cls: [G] class of each ground truth box.
        iou: [G, P] float32 IoU of every ground truth with every prediction.
        thresholds: [T] IoU thresholds.

    Returns:
        [P, T] bool: prediction p is a true positive at threshold t.
    """
    g, p = iou.shape
    t = len(thresholds)
    if g == 0 or p == 0:
        return np.zeros((p, t), dtype=bool)
    same = gt_cls.reshape(g, 1) == pred_cls.reshape(1, p)
    ok = (iou * same)[None] >= np.asarray(thresholds, dtype=iou.dtype).reshape(t, 1, 1)  # [T, G, P]
    has = ok.any(axis=1)  # [T, P]
    best_gt = np.where(ok, iou[None], -1.0).argmax(axis=1)  # [T, P] each prediction's choice
    picked = has[:, None, :] & (best_gt[:, None, :] == np.arange(g).reshape(1, g, 1))  # [T, G, P]
    winner = picked.argmax(axis=2)  # [T, G] first (most confident) prediction that chose each gt
    won = np.take_along_axis(winner, best_gt, axis=1) == np.arange(p).reshape(1, p)
    return (has & won).T


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """AP of one class at one IoU threshold from its cumulative [N] recall and precision curves."""
    last = recall[-1:] if len(recall) else np.ones(1)
    mrec = np.concatenate(([0.0], recall, last, [1.0]))
    mpre = np.concatenate(([1.0], precision, [0.0, 0.0]))
    envelope = np.flip(np.maximum.accumulate(np.flip(mpre)))
    x = np.linspace(0.0, 1.0, 101)
    # np.interp on the repeated recall point takes the right-hand (zero) value at that recall.
    return float(np.trapezoid(np.interp(x, mrec, envelope), x))


def _smooth(y: np.ndarray, fraction: float) -> np.ndarray:
    """Box filter over ``fraction`` of the curve's length, edges padded with the end values."""
    width = round(len(y) * fraction * 2) // 2 + 1
    pad = width // 2
    padded = np.concatenate((np.full(pad, y[0]), y, np.full(pad, y[-1])))
    return np.convolve(padded, np.ones(width) / width, mode="valid")


def ap_per_class(
    tp: np.ndarray, conf: np.ndarray, pred_cls: np.ndarray, target_cls: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-class AP over the dataset.

    Args:
        tp: [N, T] bool true-positive table of every prediction of every image.
        conf: [N] confidence; pred_cls: [N] class; target_cls: [M] class of every ground truth box.

    Returns:
        ``classes`` [nc] classes with ground truth (sorted), ``ap`` [nc, T], and ``precision``,
        ``recall``, ``f1`` [nc] at the confidence that maximises the smoothed mean F1.
    """
    order = np.argsort(-conf)
    tp, conf, pred_cls = tp[order], conf[order], pred_cls[order]
    classes, n_gt = np.unique(target_cls, return_counts=True)
    n_thr = tp.shape[1]
    grid = np.linspace(0.0, 1.0, 1000)  # confidence axis of the P and R curves
    ap = np.zeros((len(classes), n_thr))
    p_curve = np.zeros((len(classes), len(grid)))
    r_curve = np.zeros((len(classes), len(grid)))
    for ci, (cls, n_l) in enumerate(zip(classes, n_gt, strict=True)):
        mine = pred_cls == cls
        if not mine.any():
            continue
        tpc = tp[mine].cumsum(axis=0)
        fpc = (1 - tp[mine]).cumsum(axis=0)
        recall = tpc / (n_l + _EPS)
        precision = tpc / (tpc + fpc)
        # Confidence decreases along the list; interp needs increasing x, hence the negations.
        r_curve[ci] = np.interp(-grid, -conf[mine], recall[:, 0], left=0)
        p_curve[ci] = np.interp(-grid, -conf[mine], precision[:, 0], left=1)
        for j in range(n_thr):
            ap[ci, j] = average_precision(recall[:, j], precision[:, j])
    f1_curve = 2 * p_curve * r_curve / (p_curve + r_curve + _EPS)
    best = int(_smooth(f1_curve.mean(axis=0), 0.1).argmax()) if len(classes) else 0
    return {
        "classes": classes.astype(np.int64),
        "ap": ap,
        "precision": p_curve[:, best],
        "recall": r_curve[:, best],
        "f1": f1_curve[:, best],
    }


class DetectionMetrics:
    """Accumulates one image at a time, then computes Ultralytics-style detection metrics.

    Boxes of predictions and ground truth must share one pixel frame; to reproduce Ultralytics use
    its network-input frame (see the module docstring). The IoU is float32 like its validator's.
    """

    def __init__(
        self,
        names: Mapping[int, str] | None = None,
        iou_thresholds: np.ndarray = IOU_THRESHOLDS,
    ) -> None:
        self.names = dict(names or {})
        self.iou_thresholds = np.asarray(iou_thresholds, dtype=np.float32)
        self._tp: list[np.ndarray] = []
        self._conf: list[np.ndarray] = []
        self._pred_cls: list[np.ndarray] = []
        self._target_cls: list[np.ndarray] = []

    def reset(self) -> None:
        """Forget every image seen so far."""
        for stats in (self._tp, self._conf, self._pred_cls, self._target_cls):
            stats.clear()

    def update(
        self,
        pred_xyxy: np.ndarray | torch.Tensor,
        pred_conf: np.ndarray | torch.Tensor,
        pred_cls: np.ndarray | torch.Tensor,
        gt_xyxy: np.ndarray | torch.Tensor,
        gt_cls: np.ndarray | torch.Tensor,
    ) -> None:
        """Add one image: predictions xyxy [P, 4], conf [P], cls [P]; ground truth xyxy [G, 4], cls [G]."""
        pb = _as_tensor(pred_xyxy, torch.float32).reshape(-1, 4)
        pc = _as_tensor(pred_conf, torch.float32).reshape(-1)
        pk = _as_tensor(pred_cls, torch.int64).reshape(-1)
        gb = _as_tensor(gt_xyxy, torch.float32).reshape(-1, 4)
        gk = _as_tensor(gt_cls, torch.int64).reshape(-1)
        if not (pb.shape[0] == pc.shape[0] == pk.shape[0]) or gb.shape[0] != gk.shape[0]:
            raise ValueError(
                f"update() got {pb.shape[0]} pred boxes / {pc.shape[0]} conf / {pk.shape[0]} cls and "
                f"{gb.shape[0]} gt boxes / {gk.shape[0]} gt cls"
            )
        # Most confident first: the matcher gives a contested ground truth to the earliest prediction.
        order = pc.argsort(descending=True, stable=True)
        pb, pc, pk = pb[order], pc[order], pk[order]
        iou = box_iou(gb, pb, eps=_IOU_EPS).numpy()
        self._tp.append(match_predictions(pk.numpy(), gk.numpy(), iou, self.iou_thresholds))
        self._conf.append(pc.numpy())
        self._pred_cls.append(pk.numpy())
        self._target_cls.append(gk.numpy())

    def compute(self) -> dict[str, Any]:
        """Metrics over every image added.

        Returns:
            ``map50_95``, ``map50``, ``map75``, ``precision``, ``recall`` (floats, means over classes
            with ground truth); ``per_class_map50_95`` and ``per_class_map50`` (class id -> AP);
            ``classes`` (ids with ground truth); ``ap`` [nc, T]; ``n_images``; ``n_instances``.
        """
        n_thr = len(self.iou_thresholds)
        tp = np.concatenate(self._tp) if self._tp else np.zeros((0, n_thr), dtype=bool)
        conf = np.concatenate(self._conf) if self._conf else np.zeros(0, np.float32)
        pred_cls = np.concatenate(self._pred_cls) if self._pred_cls else np.zeros(0, np.int64)
        target_cls = np.concatenate(self._target_cls) if self._target_cls else np.zeros(0, np.int64)
        res = ap_per_class(tp, conf, pred_cls, target_cls)
        ap, classes = res["ap"], res["classes"]
        has_any = len(classes) > 0
        i75 = int(np.argmin(np.abs(self.iou_thresholds - 0.75)))
        return {
            "map50_95": float(ap.mean()) if has_any else 0.0,
            "map50": float(ap[:, 0].mean()) if has_any else 0.0,
            "map75": float(ap[:, i75].mean()) if has_any else 0.0,
            "precision": float(res["precision"].mean()) if has_any else 0.0,
            "recall": float(res["recall"].mean()) if has_any else 0.0,
            "per_class_map50_95": {int(c): float(a) for c, a in zip(classes, ap.mean(axis=1), strict=True)},
            "per_class_map50": {int(c): float(a) for c, a in zip(classes, ap[:, 0], strict=True)},
            "classes": [int(c) for c in classes],
            "names": {int(c): self.names.get(int(c), str(int(c))) for c in classes},
            "ap": ap,
            "n_images": len(self._target_cls),
            "n_instances": len(target_cls),
        }
