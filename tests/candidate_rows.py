"""Comparing two `Candidates` row sets where near-equal scores may sort in either order."""

from __future__ import annotations

import torch

from yolostream.postprocess.candidates import Candidates


def rows_match(got: Candidates, want: Candidates, box_tol: float, score_tol: float) -> bool:
    """Whether both have the same number of valid rows and every valid row of ``got`` has a valid row of
    ``want`` with the same class, its box within ``box_tol`` px and its score within ``score_tol``."""
    if int(got.valid.sum()) != int(want.valid.sum()):
        return False

    def rows(c: Candidates) -> torch.Tensor:
        return torch.cat((c.boxes, c.scores[..., None], c.classes[..., None].float()), -1)[c.valid]

    tol = torch.tensor([box_tol] * 4 + [score_tol, 0.0])  # classes exact
    err = ((rows(got)[:, None] - rows(want)[None]).abs() - tol).amax(-1)  # [got rows, want rows]
    return bool((err <= 0).any(1).all())
