"""Inference-time re-parameterisation: fold BatchNorm into the preceding conv, merge RepVGG branches.

Both are exact in real arithmetic; done in float64 so the only error left is the final float32 rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from yolostream.models.conv import ConvBNAct
from yolostream.models.v10_blocks import RepVGGDW


@torch.no_grad()
def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A conv with bias computing ``bn(conv(x))`` in eval mode: w' = w * g / s, b' = beta + (b - mean) * g / s,
    with s = sqrt(running_var + eps)."""
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=True,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    fused.weight.copy_((conv.weight.double() * scale.view(-1, 1, 1, 1)).to(conv.weight.dtype))
    fused.bias.copy_((bn.bias.double() + (bias - bn.running_mean.double()) * scale).to(conv.weight.dtype))
    return fused.requires_grad_(False)


@torch.no_grad()
def _merge_repvgg(m: RepVGGDW) -> ConvBNAct:
    """One depth-wise 7x7 conv + SiLU equal to ``silu(conv7(x) + conv3(x))`` (both already folded)."""
    big, small = m.conv.conv, m.conv1.conv
    pad = (big.kernel_size[0] - small.kernel_size[0]) // 2
    merged = ConvBNAct(big.in_channels, big.out_channels, big.kernel_size[0], 1, big.padding[0], g=big.groups)
    merged.conv = nn.Conv2d(
        big.in_channels, big.out_channels, big.kernel_size, 1, big.padding, groups=big.groups, bias=True
    ).to(big.weight)
    merged.conv.weight.copy_(big.weight + F.pad(small.weight, [pad] * 4))
    merged.conv.bias.copy_(big.bias + small.bias)
    merged.bn = nn.Identity()
    return merged.requires_grad_(False)


def fold(model: nn.Module) -> nn.Module:
    """Fold every ConvBNAct's BatchNorm and merge every RepVGGDW, in place; returns ``model``.

    Only valid for inference (eval-mode statistics); the model's keys change, so load weights first.
    """
    for m in model.modules():
        if isinstance(m, ConvBNAct) and isinstance(m.bn, nn.BatchNorm2d):
            m.conv = fold_conv_bn(m.conv, m.bn)
            m.bn = nn.Identity()
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, RepVGGDW):
                setattr(parent, name, _merge_repvgg(child))
    return model
