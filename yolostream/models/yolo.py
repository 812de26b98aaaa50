"""The YOLO detector as composition: backbone (P3, P4, P5) -> PAN neck -> detection head.

All five supported families share this topology; `yolostream.models.families` fills it with each
family's blocks at a given scale.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from yolostream.models.head import DetectHead, HeadOutput


class Features(NamedTuple):
    """Pyramid features: P3 at stride 8, P4 at 16, P5 at 32."""

    p3: Tensor
    p4: Tensor
    p5: Tensor


class Backbone(nn.Module):
    """Stem and four stride-2 stages, then SPPF and an optional attention block on P5."""

    def __init__(
        self,
        stem: nn.Module,
        stages: list[tuple[nn.Module, nn.Module]],
        sppf: nn.Module,
        attn: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.stem = stem
        self.down = nn.ModuleList(d for d, _ in stages)
        self.blocks = nn.ModuleList(b for _, b in stages)
        self.sppf = sppf
        self.attn = attn if attn is not None else nn.Identity()

    def forward(self, x: Tensor) -> Features:
        x = self.stem(x)  # /2
        x = self.blocks[0](self.down[0](x))  # /4
        p3 = self.blocks[1](self.down[1](x))  # /8
        p4 = self.blocks[2](self.down[2](p3))  # /16
        p5 = self.blocks[3](self.down[3](p4))  # /32
        return Features(p3, p4, self.attn(self.sppf(p5)))


class PANNeck(nn.Module):
    """Top-down then bottom-up feature fusion (FPN + PAN).

    ``lateral5``/``lateral4`` are YOLOv5's 1x1 reductions before upsampling (identity elsewhere); their
    outputs are also what the bottom-up path concatenates with.
    """

    def __init__(
        self,
        top_down4: nn.Module,
        top_down3: nn.Module,
        down3: nn.Module,
        bottom_up4: nn.Module,
        down4: nn.Module,
        bottom_up5: nn.Module,
        lateral5: nn.Module | None = None,
        lateral4: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.lateral5 = lateral5 if lateral5 is not None else nn.Identity()
        self.top_down4 = top_down4
        self.lateral4 = lateral4 if lateral4 is not None else nn.Identity()
        self.top_down3 = top_down3
        self.down3 = down3
        self.bottom_up4 = bottom_up4
        self.down4 = down4
        self.bottom_up5 = bottom_up5

    def forward(self, f: Features) -> Features:
        up = lambda t: F.interpolate(t, scale_factor=2.0, mode="nearest")  # noqa: E731
        l5 = self.lateral5(f.p5)  # /32
        t4 = self.lateral4(self.top_down4(torch.cat((up(l5), f.p4), 1)))  # /16
        o3 = self.top_down3(torch.cat((up(t4), f.p3), 1))  # /8, output P3
        o4 = self.bottom_up4(torch.cat((self.down3(o3), t4), 1))  # /16, output P4
        o5 = self.bottom_up5(torch.cat((self.down4(o4), l5), 1))  # /32, output P5
        return Features(o3, o4, o5)


class YOLO(nn.Module):
    """Backbone -> neck -> head. `forward` returns the decoded output of the chosen head branch.

    Input [B, 3, H, W] float RGB in [0, 1], H and W multiples of 32.
    Output [B, 4 + nc, A]: (cx, cy, w, h) in input pixels, then class probabilities; A = H*W/64 + H*W/256 + H*W/1024.
    """

    def __init__(self, backbone: Backbone, neck: PANNeck, head: DetectHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.head = head

    @property
    def strides(self) -> tuple[float, ...]:
        return self.head.strides

    @property
    def reg_max(self) -> int:
        return self.head.reg_max

    def features(self, x: Tensor) -> list[Tensor]:
        return list(self.neck(self.backbone(x)))

    def levels(self, x: Tensor, one2one: bool = False) -> list[HeadOutput]:
        """Raw head outputs of one branch per level, as maps [B, C, H_i, W_i] (P3, P4, P5)."""
        return self.head.levels(self.features(x), one2one)

    def raw(self, x: Tensor, one2one: bool = False) -> tuple[HeadOutput, list[tuple[int, int]]]:
        """Raw head outputs of one branch and the feature-map shapes they came from."""
        feats = self.features(x)
        return self.head.branch(feats, one2one), [(f.shape[2], f.shape[3]) for f in feats]

    def forward(self, x: Tensor, one2one: bool = False) -> Tensor:
        out, shapes = self.raw(x, one2one)
        return self.head.decode(out, shapes)
