"""The per-anchor loss terms that are not geometry: soft-target BCE over all logits, distribution focal loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class _SparseSoftBCE(torch.autograd.Function):
    """sum(BCE(x, t)) over dense logits x whose soft targets t are zero except at a few listed entries.

    BCE(x, t) = softplus(x) - x * t, so the sum is ``sum(softplus(x)) - sum_listed(x * t)`` and the gradient
    ``sigmoid(x) - t``: one dense pass forward and one backward, the targets applied in place. Autograd's
    own version of the same sum also builds, and adds, a dense zero gradient for the listed gather.
    """

    @staticmethod
    def forward(ctx, logits: Tensor, bi: Tensor, ci: Tensor, ai: Tensor, target: Tensor) -> Tensor:
        ctx.save_for_backward(logits, bi, ci, ai, target)
        return F.softplus(logits).sum() - (logits[bi, ci, ai] * target).sum()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        logits, bi, ci, ai, target = ctx.saved_tensors
        g = logits.sigmoid().index_put_((bi, ci, ai), -target, accumulate=True)
        return g.mul_(grad), None, None, None, None


def sparse_soft_bce(logits: Tensor, bi: Tensor, ci: Tensor, ai: Tensor, target: Tensor) -> Tensor:
    """Summed BCE-with-logits of ``logits`` [B, C, A] against soft targets that are ``target`` at
    ``logits[bi, ci, ai]`` (index tensors of one shape) and 0 elsewhere; repeated positions add their targets
    (so a zero target anywhere is harmless). Gradient for ``logits`` only.
    """
    return _SparseSoftBCE.apply(logits, bi, ci, ai, target)


def dfl_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Distribution focal loss (GFL, Li et al. 2020), mean over the four sides: [..., 4, R], [..., 4] -> [...].

    A target distance t in [0, R - 1) is the two-bin distribution (floor(t), floor(t) + 1) with weights
    (floor(t) + 1 - t, t - floor(t)); the loss is its cross-entropy against softmax(logits).
    """
    logp = logits.log_softmax(-1)
    left = target.floor().long()
    w_left = left + 1 - target
    lp = logp.gather(-1, left.unsqueeze(-1)).squeeze(-1)
    rp = logp.gather(-1, (left + 1).unsqueeze(-1)).squeeze(-1)
    return -(lp * w_left + rp * (1 - w_left)).mean(-1)
