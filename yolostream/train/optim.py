"""Optimiser with the weight-decay split, and the learning-rate / momentum schedule with warm-up."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

OptimizerName = Literal["sgd", "adamw", "auto"]


def param_groups(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter], list[nn.Parameter]]:
    """(weights with decay, normalisation weights, biases): decay only on conv/linear weights, since
    shrinking BatchNorm scales or biases towards 0 only fights the normalisation."""
    decay, norm, bias = [], [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            if name == "bias":
                bias.append(p)
            elif isinstance(module, nn.modules.batchnorm._NormBase | nn.LayerNorm | nn.GroupNorm):
                norm.append(p)
            else:
                decay.append(p)
    return decay, norm, bias


def resolve_optimizer(
    name: OptimizerName, lr0: float, momentum: float, nc: int, iterations: int
) -> tuple[str, float, float]:
    """``auto``: AdamW for short runs (fast to converge, its lr scaled down as classes grow), SGD with the
    given lr for long ones (better final accuracy). Returns (name, lr0, momentum)."""
    if name != "auto":
        return name, lr0, momentum
    if iterations > 10000:
        return "sgd", 0.01, 0.9
    return "adamw", round(0.002 * 5 / (4 + nc), 6), 0.9


def make_optimizer(
    model: nn.Module, name: str, lr0: float, momentum: float, weight_decay: float
) -> torch.optim.Optimizer:
    """Three parameter groups (see `param_groups`), group 0 decayed. ``momentum`` is AdamW's beta1."""
    decay, norm, bias = param_groups(model)
    if name == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(norm, lr=lr0, momentum=momentum, nesterov=True)
    elif name == "adamw":
        opt = torch.optim.AdamW(norm, lr=lr0, betas=(momentum, 0.999), weight_decay=0.0)
    else:
        raise ValueError(f"optimizer must be sgd, adamw or auto, got {name!r}")
    opt.add_param_group({"params": decay, "weight_decay": weight_decay})
    opt.add_param_group({"params": bias, "weight_decay": 0.0})
    # Order as built: [norm, decay, bias]; warm-up treats the bias group apart.
    return opt


@dataclass(frozen=True)
class Schedule:
    """Per-iteration learning rate and momentum.

    After warm-up: ``lr = lr0 * f(epoch)`` with ``f`` linear from 1 to ``lrf`` over the epochs, or cosine.
    Warm-up (the first ``warmup_iters`` iterations): every group's lr rises linearly from 0 (the bias group
    from ``warmup_bias_lr``) to its scheduled value, and momentum from ``warmup_momentum`` to ``momentum``;
    the large early gradients of a fresh head then cannot blow the weights up.
    """

    lr0: float
    lrf: float
    epochs: int
    momentum: float
    warmup_iters: int
    warmup_momentum: float = 0.8
    warmup_bias_lr: float = 0.0
    cosine: bool = False

    def factor(self, epoch: int) -> float:
        x = epoch / max(self.epochs, 1)
        if self.cosine:
            return ((1 - math.cos(x * math.pi)) / 2) * (self.lrf - 1) + 1
        return (1 - x) * (1.0 - self.lrf) + self.lrf

    def apply(self, opt: torch.optim.Optimizer, iteration: int, epoch: int, adam: bool) -> None:
        """Set each group's lr (and momentum / beta1) for global ``iteration`` within ``epoch``."""
        target = self.lr0 * self.factor(epoch)
        warm = iteration < self.warmup_iters
        t = iteration / max(self.warmup_iters, 1)
        for j, group in enumerate(opt.param_groups):
            start = self.warmup_bias_lr if j == 2 else 0.0
            group["lr"] = start + t * (target - start) if warm else target
            m = self.warmup_momentum + t * (self.momentum - self.warmup_momentum) if warm else self.momentum
            if adam:
                group["betas"] = (m, group["betas"][1])
            else:
                group["momentum"] = m
