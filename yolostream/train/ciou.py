"""Complete-IoU (CIoU) of box pairs, the overlap measure of the assigner and of the box loss.

CIoU (Zheng et al., "Distance-IoU Loss", AAAI 2020) = IoU - rho^2 / c^2 - alpha * v, with rho the distance
between the centres, c the diagonal of the smallest box enclosing both, v = 4 / pi^2 * (atan(w_b / h_b) -
atan(w_a / h_a))^2 the aspect-ratio term and alpha = v / (1 - IoU + v) its trade-off weight.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

# Stabilisers as the reference criterion uses them (their size shows in the 1e-4 loss parity): added to
# every height, to the union, to the squared enclosing diagonal, and inside alpha's denominator.
EPS = 1e-7


def ciou(a: Tensor, b: Tensor, eps: float = EPS) -> Tensor:
    """CIoU of ``a`` and ``b``, xyxy boxes ``[..., 4]`` broadcast against each other -> ``[...]``.

    Any frame (pixels or stride units): only the ``eps`` terms are not scale-free. ``alpha`` is a weight held
    constant in the gradient: so the reference's gradient norms agree to ~1e-7 (8e-5 with its gradient).
    """
    ax1, ay1, ax2, ay2 = a.unbind(-1)
    bx1, by1, bx2, by2 = b.unbind(-1)
    wa, ha = ax2 - ax1, ay2 - ay1 + eps
    wb, hb = bx2 - bx1, by2 - by1 + eps
    inter = (torch.minimum(ax2, bx2) - torch.maximum(ax1, bx1)).clamp(min=0) * (
        torch.minimum(ay2, by2) - torch.maximum(ay1, by1)
    ).clamp(min=0)
    union = wa * ha + wb * hb - inter + eps
    iou = inter / union
    cw = torch.maximum(ax2, bx2) - torch.minimum(ax1, bx1)
    ch = torch.maximum(ay2, by2) - torch.minimum(ay1, by1)
    c2 = cw.pow(2) + ch.pow(2) + eps
    rho2 = ((bx1 + bx2 - ax1 - ax2).pow(2) + (by1 + by2 - ay1 - ay2).pow(2)) / 4
    v = (4 / math.pi**2) * (torch.atan(wb / hb) - torch.atan(wa / ha)).pow(2)
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)
