"""YOLOv10's efficiency blocks: spatial-channel decoupled downsampling and compact inverted blocks."""

from __future__ import annotations

from torch import Tensor, nn

from yolostream.models.blocks import C2f
from yolostream.models.conv import ConvBNAct


class SCDown(nn.Module):
    """1x1 conv to c2, then a depth-wise k x k conv with stride s: [B, c1, H, W] -> [B, c2, H/s, W/s]."""

    def __init__(self, c1: int, c2: int, k: int = 3, s: int = 2) -> None:
        super().__init__()
        self.cv1 = ConvBNAct(c1, c2, 1, 1)
        self.cv2 = ConvBNAct(c2, c2, k, s, g=c2, act=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.cv2(self.cv1(x))


class RepVGGDW(nn.Module):
    """Depth-wise 7x7 + 3x3 branches summed, then SiLU: [B, dim, H, W] -> same.

    `yolostream.models.fold` replaces it by one 7x7 conv + SiLU at load (the branches are linear).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = ConvBNAct(dim, dim, 7, 1, 3, g=dim, act=False)
        self.conv1 = ConvBNAct(dim, dim, 3, 1, 1, g=dim, act=False)
        self.act = nn.SiLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.conv(x) + self.conv1(x))


class CIB(nn.Module):
    """Compact inverted block: dw 3x3, 1x1 up to 2c_, dw (7x7 RepVGG if ``lk``, else 3x3), 1x1 down, dw 3x3."""

    def __init__(self, c1: int, c2: int, shortcut: bool = True, e: float = 0.5, lk: bool = False) -> None:
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = nn.Sequential(
            ConvBNAct(c1, c1, 3, g=c1),
            ConvBNAct(c1, 2 * c_, 1),
            RepVGGDW(2 * c_) if lk else ConvBNAct(2 * c_, 2 * c_, 3, g=2 * c_),
            ConvBNAct(2 * c_, c2, 1),
            ConvBNAct(c2, c2, 3, g=c2),
        )
        self.add = shortcut and c1 == c2

    def forward(self, x: Tensor) -> Tensor:
        return x + self.cv1(x) if self.add else self.cv1(x)


def c2f_cib(c1: int, c2: int, n: int = 1, shortcut: bool = False, lk: bool = False, e: float = 0.5) -> C2f:
    """C2f whose inner blocks are CIBs (YOLOv10's deeper stages)."""
    return C2f(c1, c2, n, shortcut, e=e, inner=lambda c: CIB(c, c, shortcut, e=1.0, lk=lk))
