"""The convolution unit every YOLO family is built from: Conv2d -> BatchNorm2d -> SiLU."""

from __future__ import annotations

import math

from torch import Tensor, nn


def same_padding(k: int, p: int | None = None) -> int:
    """Padding that keeps the spatial size at stride 1 (``k // 2``), unless given."""
    return k // 2 if p is None else p


class ConvBNAct(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d -> SiLU (or identity when ``act=False``).

    [B, c1, H, W] -> [B, c2, H / s, W / s]. The names ``conv``/``bn``/``act`` match the checkpoints' keys.
    After `yolostream.models.fold.fold_batchnorm`, ``conv`` carries a bias and ``bn`` is an identity.
    """

    def __init__(
        self, c1: int, c2: int, k: int = 1, s: int = 1, p: int | None = None, g: int = 1, act: bool = True
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, same_padding(k, p), groups=g, bias=False)
        # eps/momentum as the checkpoints were trained with (eps enters the folded weights).
        self.bn = nn.BatchNorm2d(c2, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU() if act else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


def dw_conv(c1: int, c2: int, k: int = 1, s: int = 1, act: bool = True) -> ConvBNAct:
    """Depth-wise `ConvBNAct`: groups = gcd(c1, c2) (= c1 when c1 == c2)."""
    return ConvBNAct(c1, c2, k, s, g=math.gcd(c1, c2), act=act)
