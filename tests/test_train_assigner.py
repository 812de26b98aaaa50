"""The loss's parts by hand: task-aligned assignment on a 2x2 grid, CIoU, DFL targets, padded ground truth.

Assigner cases: centres inside/outside (strict), top-k and the normalised soft targets, equal metrics,
an anchor shared by two boxes, ties, top-k then top-k2 (the one-to-one head), small boxes widened to the
stride, padding and empty batches, and the compiled (dense) path against the eager (sparse) one.
"""

from __future__ import annotations

import math

import pytest
import torch
from box_math import ciou_by_hand

from yolostream.train.assigner import TaskAlignedAssigner
from yolostream.train.ciou import ciou
from yolostream.train.targets import ground_truth
from yolostream.train.terms import dfl_loss

# One 2x2 level at stride 8: anchors 0 (4, 4), 1 (12, 4), 2 (4, 12), 3 (12, 12), pixels.
LEVELS = [(2, 2, 8.0)]
FULL = [0.0, 0.0, 16.0, 16.0]


def _assign(gt, pred, probs, labels=None, mask=None, nc=2, **kw):
    """gt [M, 4], pred [4, 4] (one per anchor), probs [4, nc] -> (fg [4], gt index [4], weight [4])."""
    gt = torch.tensor(gt, dtype=torch.float32).view(1, -1, 4)
    m = gt.shape[1]
    labels = torch.tensor(labels if labels is not None else [0] * m, dtype=torch.long).view(1, m)
    mask = torch.tensor(mask if mask is not None else [True] * m, dtype=torch.bool).view(1, m)
    logits = torch.logit(torch.tensor(probs, dtype=torch.float64)).float().view(1, 4, nc)
    pred = torch.tensor(pred, dtype=torch.float32).view(1, 4, 4)
    asg = TaskAlignedAssigner(nc, **kw)(logits, pred, LEVELS, labels, gt, mask)
    fg, idx, weight = asg.dense(4)
    return fg[0].tolist(), idx[0].tolist(), weight[0].tolist()


def test_assigner_centre_inside_only():
    # [0, 0, 10, 10] holds only anchor 0's centre; the prediction there is the box itself: weight = IoU 1.
    fg, idx, w = _assign([[0, 0, 10, 10]], [[0, 0, 10, 10]] * 4, [[0.5, 0.5]] * 4)
    assert fg == [True, False, False, False] and idx[0] == 0
    assert w[0] == pytest.approx(1.0, abs=1e-6)  # CIoU's eps terms move it by ~1e-7


def test_assigner_centre_on_the_edge_is_outside():
    # [4, 4, 20, 20]: anchor 0 sits on its corner, 1 and 2 on its edges; only anchor 3 is strictly inside.
    fg, _, _ = _assign([[4, 4, 20, 20]], [[4, 4, 20, 20]] * 4, [[0.5, 0.5]] * 4)
    assert fg == [False, False, False, True]


def test_assigner_topk_and_normalised_soft_targets():
    # All four centres inside; every prediction the same half box, CIoU u < 1 with the truth. The metric
    # sqrt(p) * u^6 ranks by p: top-2 keeps anchors 0 and 2; soft target = t / max_t * max_u = sqrt(p / 0.9) * u.
    half = [0.0, 0.0, 16.0, 8.0]
    u = ciou_by_hand(FULL, half)
    fg, _, w = _assign([FULL], [half] * 4, [[0.9, 0.5], [0.1, 0.5], [0.4, 0.5], [0.3, 0.5]], topk=2)
    assert fg == [True, False, True, False]
    assert w[0] == pytest.approx(u, rel=1e-5) and w[2] == pytest.approx(math.sqrt(0.4 / 0.9) * u, rel=1e-5)
    assert w[1] == w[3] == 0.0


def test_assigner_equal_metrics_are_all_kept():
    fg, _, w = _assign([FULL], [FULL] * 4, [[0.6, 0.5]] * 4, topk=4)
    assert fg == [True] * 4 and w == pytest.approx([1.0] * 4, abs=1e-6)


def test_assigner_shared_anchor_goes_to_the_box_it_overlaps_most():
    # Anchor 1 lies in both boxes. Its prediction is box 1 exactly (IoU 1) but box 1's class is nearly
    # impossible there, so box 0's metric is higher; the overlap decides, not the metric.
    small = [8.0, 0.0, 16.0, 8.0]
    probs = [[0.5, 0.5], [0.99, 1e-12], [0.5, 0.5], [0.5, 0.5]]
    fg, idx, _ = _assign([FULL, small], [FULL, small, FULL, FULL], probs, labels=[0, 1], topk=4)
    assert fg == [True] * 4 and idx == [0, 1, 0, 0]


def test_assigner_tie_goes_to_the_first_box():
    fg, idx, _ = _assign([FULL, FULL], [FULL] * 4, [[0.5, 0.5]] * 4, labels=[0, 0], topk=4)
    assert fg == [True] * 4 and idx == [0, 0, 0, 0]


def test_assigner_topk_then_topk2():
    # Box 0's best anchor (1) is taken by box 1, which overlaps it fully. With top-k 2 then top-k2 1, box 0
    # falls back to its second anchor (0); with a plain top-1 it has nothing left.
    small = [8.0, 0.0, 16.0, 8.0]
    quarter, far = [0.0, 0.0, 8.0, 8.0], [0.0, 8.0, 4.0, 12.0]  # CIoU with FULL: 0.1875 and < 0 (clamped)
    preds = [quarter, small, far, far]
    probs = [[0.5, 0.5], [0.9, 0.5], [0.5, 0.5], [0.5, 0.5]]
    fg, idx, _ = _assign([FULL, small], preds, probs, labels=[0, 1], topk=2, topk2=1)
    assert fg == [True, True, False, False] and idx[:2] == [0, 1]
    fg, idx, _ = _assign([FULL, small], preds, probs, labels=[0, 1], topk=1)
    assert fg == [False, True, False, False] and idx[1] == 1


@pytest.mark.parametrize(("min_size", "expected"), [(8.0, [True, False, False, False]), (None, [False] * 4)])
def test_assigner_small_box_is_widened_to_the_stride(min_size, expected):
    # A 2x2 px box between the centres: widened about its centre (6, 6) to 8x8 px it holds anchor 0.
    fg, _, _ = _assign([[5, 5, 7, 7]], [[5, 5, 7, 7]] * 4, [[0.5, 0.5]] * 4, min_size=min_size)
    assert fg == expected


def test_assigner_ignores_padding_and_empty_batches():
    fg, _, _ = _assign([FULL], [FULL] * 4, [[0.5, 0.5]] * 4, mask=[False])
    assert fg == [False] * 4
    fg, _, _ = _assign(torch.zeros(0, 4).tolist(), [FULL] * 4, [[0.5, 0.5]] * 4)
    assert fg == [False] * 4


def test_assigner_dense_path_equals_sparse_path(monkeypatch):
    # Compiled code takes the dense candidate path; both must give the same assignment.
    torch.manual_seed(0)
    levels = [(8, 8, 8.0), (4, 4, 16.0), (2, 2, 32.0)]
    a = 84
    xy = torch.rand(2, 5, 2) * 48
    gt = torch.cat((xy, xy + 4 + torch.rand(2, 5, 2) * 30), -1)
    pxy = torch.rand(2, a, 2) * 48
    pred = torch.cat((pxy, pxy + torch.rand(2, a, 2) * 30), -1)
    args = (torch.randn(2, a, 3), pred, levels, torch.randint(0, 3, (2, 5)), gt, torch.rand(2, 5) > 0.2)
    sparse = TaskAlignedAssigner(3)(*args).dense(a)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    dense = TaskAlignedAssigner(3)(*args).dense(a)
    assert sparse[0].any() and all(torch.equal(s, d) for s, d in zip(sparse, dense, strict=True))


# --- CIoU and DFL ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([0, 0, 4, 4], [0, 0, 4, 4], 1.0),  # identical
        ([0, 0, 4, 4], [1, 1, 3, 3], 0.25),  # concentric, same shape: IoU 4/16, no distance or aspect term
        ([0, 0, 2, 2], [4, 0, 6, 2], -0.4),  # apart: IoU 0, centre distance^2 16 over enclosing diagonal^2 40
        ([0, 0, 2, 1], [0, 0, 1, 2], None),  # crossed aspect ratios: the full formula, by hand
    ],
)
def test_ciou_by_hand(a, b, expected):
    expected = ciou_by_hand(a, b) if expected is None else expected
    got = float(ciou(torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32)))
    assert got == pytest.approx(expected, abs=1e-6)  # eps 1e-7 in heights, union and diagonal


def test_dfl_two_bin_targets():
    r = 16
    uniform = torch.zeros(1, 4, r)
    assert float(dfl_loss(uniform, torch.tensor([[3.3, 0.0, 7.5, 14.9]]))) == pytest.approx(math.log(r), rel=1e-6)
    # Target 3.3 = bins 3 and 4 weighted 0.7 and 0.3: at exactly that distribution the loss is its entropy
    # and at its minimum (zero gradient).
    p = torch.full((r,), 1e-12)
    p[3], p[4] = 0.7, 0.3
    logits = p.log().expand(1, 4, r).clone().requires_grad_(True)
    loss = dfl_loss(logits, torch.full((1, 4), 3.3))
    loss.sum().backward()
    assert float(loss.detach()) == pytest.approx(-(0.7 * math.log(0.7) + 0.3 * math.log(0.3)), rel=1e-5)
    assert float(logits.grad.abs().max()) < 1e-6
    # An integer target puts all its weight on one bin.
    assert float(dfl_loss(logits.detach(), torch.full((1, 4), 4.0))) == pytest.approx(-math.log(0.3), rel=1e-5)


def test_ground_truth_padding_and_frames():
    # Labels listed out of picture order; picture 1 has none. (H, W) = (32, 64): x scales by 64, y by 32.
    batch = {
        "batch_idx": torch.tensor([2.0, 0.0, 2.0]),
        "cls": torch.tensor([1.0, 0.0, 2.0]),
        "bboxes": torch.tensor([[0.5, 0.5, 0.5, 0.5], [0.25, 0.25, 0.5, 0.5], [0.75, 0.5, 0.25, 1.0]]),
    }
    labels, boxes, mask = ground_truth(batch, 3, (32, 64))
    assert mask.tolist() == [[True, False], [False, False], [True, True]]
    assert labels[2].tolist() == [1, 2] and labels[0, 0] == 0  # order within a picture kept
    assert boxes[0, 0].tolist() == [0.0, 0.0, 32.0, 16.0]
    assert boxes[2, 1].tolist() == [40.0, 0.0, 56.0, 32.0]
    assert ground_truth(batch, 3, (32, 64), max_boxes=5)[2].sum() == 3  # fixed padding keeps every box


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("cls", [0.0, 3.0, 1.0], "class 3 is outside the model's 3 classes"),
        ("cls", [0.0, -1.0, 1.0], "class -1"),
        ("batch_idx", [2.0, 0.0, 3.0], "batch_idx 3 is outside the batch of 3 pictures"),
    ],
)
def test_ground_truth_rejects_labels_out_of_range(field, value, message):
    batch = {"batch_idx": torch.tensor([2.0, 0.0, 2.0]), "cls": torch.tensor([1.0, 0.0, 2.0])}
    batch["bboxes"] = torch.full((3, 4), 0.5)
    batch[field] = torch.tensor(value)
    with pytest.raises(ValueError, match=message):
        ground_truth(batch, 3, (32, 64), nc=3)
