"""CSP building blocks shared by the families: Bottleneck, C3/C3k, C2f/C3k2, SPPF."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from yolostream.models.conv import ConvBNAct


class Bottleneck(nn.Module):
    """Two convs with an optional residual: [B, c1, H, W] -> [B, c2, H, W]; hidden width ``c2 * e``."""

    def __init__(
        self,
        c1: int,
        c2: int,
        shortcut: bool = True,
        g: int = 1,
        k: tuple[int, int] = (3, 3),
        e: float = 0.5,
    ) -> None:
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = ConvBNAct(c1, c_, k[0], 1)
        self.cv2 = ConvBNAct(c_, c2, k[1], 1, g=g)
        self.add = shortcut and c1 == c2

    def forward(self, x: Tensor) -> Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C3(nn.Module):
    """CSP block with three convs (YOLOv5): two parallel 1x1 paths, one through ``n`` bottlenecks."""

    def __init__(
        self,
        c1: int,
        c2: int,
        n: int = 1,
        shortcut: bool = True,
        g: int = 1,
        e: float = 0.5,
        k: tuple[int, int] = (1, 3),
    ) -> None:
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = ConvBNAct(c1, c_, 1, 1)
        self.cv2 = ConvBNAct(c1, c_, 1, 1)
        self.cv3 = ConvBNAct(2 * c_, c2, 1)
        self.m = nn.Sequential(*(Bottleneck(c_, c_, shortcut, g, k=k, e=1.0) for _ in range(n)))

    def forward(self, x: Tensor) -> Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


def c3k(c1: int, c2: int, n: int = 2, shortcut: bool = True, g: int = 1) -> C3:
    """C3 with 3x3 kernels in both bottleneck convs (the inner block of C3k2 at larger scales)."""
    return C3(c1, c2, n, shortcut, g, e=0.5, k=(3, 3))


class C2f(nn.Module):
    """CSP block with a split and every inner block's output concatenated (YOLOv8; base of C3k2/C2fCIB).

    [B, c1, H, W] -> cv1 -> two halves of width ``c = c2 * e``; the second feeds a chain of ``n`` inner blocks;
    the halves and each inner output (``(2 + n) * c`` channels) -> cv2 -> [B, c2, H, W].
    ``inner(c)`` builds one inner block c -> c; the default is YOLOv8's 3x3-3x3 bottleneck.
    """

    def __init__(
        self,
        c1: int,
        c2: int,
        n: int = 1,
        shortcut: bool = False,
        g: int = 1,
        e: float = 0.5,
        inner: Callable[[int], nn.Module] | None = None,
    ) -> None:
        super().__init__()
        c = int(c2 * e)
        self.c = c
        self.cv1 = ConvBNAct(c1, 2 * c, 1, 1)
        self.cv2 = ConvBNAct((2 + n) * c, c2, 1)
        make = inner or (lambda c: Bottleneck(c, c, shortcut, g, k=(3, 3), e=1.0))
        self.m = nn.ModuleList(make(c) for _ in range(n))

    def forward(self, x: Tensor) -> Tensor:
        # cv1's whole output goes into the concat rather than its two halves (the same channels in the same
        # order). Under INT8 the concat's inputs are then all quantized convolutions, so it runs on int8 with
        # one shared scale -- the one cv2's input had, so the arithmetic is unchanged -- instead of gathering
        # float halves and re-quantizing them: yolov8n INT8 network 0.90x (640, AVX-512, 2 threads).
        y = self.cv1(x)
        h = y[:, self.c :]
        outs = [y]
        for m in self.m:
            h = m(h)
            outs.append(h)
        return self.cv2(torch.cat(outs, 1))


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: ``n`` chained max-pools of size k, all outputs concatenated.

    [B, c1, H, W] -> [B, c2, H, W]. With ``shortcut`` (YOLO26) the first conv has no activation and the
    input is added back when c1 == c2.
    """

    def __init__(self, c1: int, c2: int, k: int = 5, n: int = 3, shortcut: bool = False) -> None:
        super().__init__()
        c_ = c1 // 2
        self.cv1 = ConvBNAct(c1, c_, 1, 1, act=not shortcut)
        self.cv2 = ConvBNAct(c_ * (n + 1), c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)
        self.n = n
        self.add = shortcut and c1 == c2

    def forward(self, x: Tensor) -> Tensor:
        y = [self.cv1(x)]
        for _ in range(self.n):
            y.append(self.m(y[-1]))
        out = self.cv2(torch.cat(y, 1))
        return out + x if self.add else out


def c3k2(
    c1: int,
    c2: int,
    n: int = 1,
    use_c3k: bool = False,
    e: float = 0.5,
    attn: bool = False,
    g: int = 1,
    shortcut: bool = True,
) -> C2f:
    """C2f whose inner blocks are a 3x3 bottleneck (hidden c/2), a C3k, or (YOLO26 ``attn``) a bottleneck
    followed by position-sensitive attention."""
    from yolostream.models.attention import PSABlock

    def inner(c: int) -> nn.Module:
        if attn:
            return nn.Sequential(Bottleneck(c, c, shortcut, g), PSABlock(c, attn_ratio=0.5, num_heads=max(c // 64, 1)))
        if use_c3k:
            return c3k(c, c, 2, shortcut, g)
        return Bottleneck(c, c, shortcut, g)

    return C2f(c1, c2, n, shortcut, g, e, inner=inner)
