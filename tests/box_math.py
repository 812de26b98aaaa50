"""Box geometry in plain Python floats, for hand-computed expectations in the training-loss tests."""

from __future__ import annotations

import math


def ciou_by_hand(a: list[float], b: list[float]) -> float:
    """CIoU of two xyxy boxes by the paper's formula (Zheng et al. 2020), without stabilising eps terms."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    wa, ha, wb, hb = a[2] - a[0], a[3] - a[1], b[2] - b[0], b[3] - b[1]
    iou = iw * ih / (wa * ha + wb * hb - iw * ih)
    rho2 = ((a[0] + a[2] - b[0] - b[2]) ** 2 + (a[1] + a[3] - b[1] - b[3]) ** 2) / 4
    c2 = (max(a[2], b[2]) - min(a[0], b[0])) ** 2 + (max(a[3], b[3]) - min(a[1], b[1])) ** 2
    v = 4 / math.pi**2 * (math.atan(wb / hb) - math.atan(wa / ha)) ** 2
    alpha = v / (v - iou + 1) if v else 0.0
    return iou - rho2 / c2 - alpha * v
