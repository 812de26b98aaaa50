"""Boxes, candidate selection and NMS: hand cases, a reference greedy NMS, and Ultralytics' outputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import yolostream.postprocess.nms as nms_module
from yolostream.postprocess.boxes import (
    box_area,
    box_iou,
    box_iou_batched,
    clip_boxes,
    xywh_to_xyxy,
    xyxy_to_xywh,
)
from yolostream.postprocess.candidates import Candidates, select_candidates, topk_one_to_one
from yolostream.postprocess.nms import gather_kept, nms_keep

T = torch.tensor


# ---------------------------------------------------------------------------------------------- boxes


@pytest.mark.parametrize(
    ("xywh", "xyxy"),
    [
        ([5.0, 5.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]),  # centred square
        ([2.0, 3.0, 4.0, 2.0], [0.0, 2.0, 4.0, 4.0]),  # wide box: half width 2, half height 1
        ([1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]),  # zero-size box collapses to a point
    ],
)
def test_xywh_xyxy_round_trip(xywh: list[float], xyxy: list[float]) -> None:
    assert torch.equal(xywh_to_xyxy(T(xywh)), T(xyxy))
    assert torch.equal(xyxy_to_xywh(T(xyxy)), T(xywh))


def test_box_area_keeps_batch_shape() -> None:
    boxes = T([[[0.0, 0.0, 2.0, 3.0], [1.0, 1.0, 1.0, 5.0]]])  # 2x3 box; zero-width box
    assert torch.equal(box_area(boxes), T([[6.0, 0.0]]))


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([0, 0, 2, 2], [0, 0, 2, 2], 1.0),  # identical boxes
        ([0, 0, 2, 2], [1, 0, 3, 2], 2 / 6),  # half overlap: inter 2, union 4 + 4 - 2 = 6
        ([0, 0, 4, 4], [1, 1, 3, 3], 4 / 16),  # b inside a: inter = area(b) 4, union = area(a) 16
        ([0, 0, 3, 1], [1, 0, 4, 1], 0.5),  # inter 2, union 3 + 3 - 2 = 4
        ([0, 0, 1, 1], [1, 0, 2, 1], 0.0),  # touching edges: zero-width intersection
        ([0, 0, 1, 1], [5, 5, 6, 6], 0.0),  # far apart
    ],
)
def test_box_iou_hand_cases(a: list[int], b: list[int], expected: float) -> None:
    got = box_iou(T([a], dtype=torch.float32), T([b], dtype=torch.float32))
    assert got.shape == (1, 1)
    # float32 division of small integers: within one ulp of the exact fraction.
    assert got.item() == pytest.approx(expected, rel=1e-6, abs=0)


def test_box_iou_zero_area_boxes_nan_unless_eps() -> None:
    point = T([[1.0, 1.0, 1.0, 1.0]])
    assert math.isnan(box_iou(point, point).item())  # 0 / 0, as torchvision: never > a threshold
    assert box_iou(point, point, eps=1e-7).item() == 0.0  # the validator's eps makes it 0


def test_box_iou_matrix_shape_and_batched_agrees() -> None:
    g = torch.Generator().manual_seed(0)
    a = _random_boxes(g, 2, 5)
    b = _random_boxes(g, 2, 7)
    batched = box_iou_batched(a, b)
    assert batched.shape == (2, 5, 7)
    for i in range(2):
        assert torch.equal(batched[i], box_iou(a[i], b[i]))


@pytest.mark.parametrize(
    ("fn", "a", "b"),
    [
        (box_iou, torch.zeros(3, 4), torch.zeros(2, 3)),  # second argument is not [M, 4]
        (box_iou, torch.zeros(1, 3, 4), torch.zeros(2, 4)),  # batched input to the 2-D function
        (box_iou_batched, torch.zeros(2, 3, 4), torch.zeros(3, 3, 4)),  # batch sizes differ
    ],
)
def test_box_iou_rejects_bad_shapes(fn, a: torch.Tensor, b: torch.Tensor) -> None:
    with pytest.raises(ValueError, match=r"needs \[(B,)?N,4\]"):
        fn(a, b)


def test_clip_boxes_to_height_width() -> None:
    boxes = T([[-5.0, -1.0, 50.0, 20.0], [3.0, 4.0, 5.0, 6.0]])
    # (h, w) = (10, 40): x clamps to [0, 40], y to [0, 10]; the second box is inside already.
    assert torch.equal(clip_boxes(boxes, (10, 40)), T([[0.0, 0.0, 40.0, 10.0], [3.0, 4.0, 5.0, 6.0]]))


# ----------------------------------------------------------------------------------- candidates


def _boxes_for(n: int, b: int = 1) -> torch.Tensor:
    """Anchor i gets box [i, i, i+1, i+1] so a selected box tells which anchor it came from."""
    i = torch.arange(n, dtype=torch.float32)
    return torch.stack((i, i, i + 1, i + 1), -1).expand(b, n, 4)


def test_select_candidates_strictly_greater_sorted_and_padded() -> None:
    scores = T([[[0.1, 0.5], [0.25, 0.2], [0.9, 0.3], [0.05, 0.26]]])  # 4 anchors, 2 classes
    c = select_candidates(_boxes_for(4), scores, conf=0.25)
    # best per anchor: 0.5 (cls 1), 0.25 (cls 0: equal to conf, not above), 0.9 (cls 0), 0.26 (cls 1)
    assert c.boxes.shape == (1, 4, 4)  # K = min(30000, A) = 4: fixed, padded with invalid rows
    assert c.valid[0].tolist() == [True, True, True, False]
    assert c.scores[0, :3].tolist() == pytest.approx([0.9, 0.5, 0.26])
    assert c.classes[0, :3].tolist() == [0, 1, 1]
    assert c.boxes[0, :3, 0].tolist() == [2.0, 0.0, 3.0]  # anchors 2, 0, 3
    assert c.classes.dtype == torch.int64


def test_select_candidates_cap_keeps_highest() -> None:
    scores = T([[0.3], [0.8], [0.6], [0.7], [0.2]]).unsqueeze(0)  # 5 anchors, 1 class
    c = select_candidates(_boxes_for(5), scores, conf=0.1, max_candidates=3)
    assert c.scores.shape == (1, 3)  # K = min(3, 5)
    assert c.scores[0].tolist() == pytest.approx([0.8, 0.7, 0.6])  # anchors 1, 3, 2
    assert c.boxes[0, :, 0].tolist() == [1.0, 3.0, 2.0]


def test_select_candidates_multi_label_one_row_per_pair() -> None:
    scores = T([[[0.9, 0.6], [0.1, 0.3]]])  # 2 anchors, 2 classes
    c = select_candidates(_boxes_for(2), scores, conf=0.25, multi_label=True)
    assert c.scores.shape == (1, 4)  # K = A * C = 4
    # pairs above 0.25: (a0, c0) 0.9, (a0, c1) 0.6, (a1, c1) 0.3; (a1, c0) 0.1 is padding
    assert c.valid[0].tolist() == [True, True, True, False]
    assert c.classes[0, :3].tolist() == [0, 1, 1]
    assert c.boxes[0, :3, 0].tolist() == [0.0, 0.0, 1.0]


@pytest.mark.parametrize(
    ("classes", "multi_label", "expected_valid_scores"),
    [
        ([1], False, [0.6]),  # anchor 0's best is class 0 (dropped, not re-labelled); anchor 1 is class 1
        ([0], False, [0.9]),
        (T([0, 1]), False, [0.9, 0.6]),  # a tensor works as well as a list
        ([1], True, [0.8, 0.6]),  # multi-label: every class-1 pair above conf
    ],
)
def test_select_candidates_class_filter(
    classes: list[int] | torch.Tensor, multi_label: bool, expected_valid_scores: list[float]
) -> None:
    scores = T([[[0.9, 0.8], [0.1, 0.6]]])
    c = select_candidates(_boxes_for(2), scores, conf=0.25, multi_label=multi_label, classes=classes)
    assert c.scores[c.valid].tolist() == pytest.approx(expected_valid_scores)


def test_select_candidates_batched_images_independent() -> None:
    g = torch.Generator().manual_seed(1)
    boxes, scores = _random_boxes(g, 3, 50), torch.rand(3, 50, 4, generator=g)
    together = select_candidates(boxes, scores, conf=0.5, max_candidates=20)
    for i in range(3):
        alone = select_candidates(boxes[i : i + 1], scores[i : i + 1], conf=0.5, max_candidates=20)
        for x, y in zip(together, alone, strict=True):
            assert torch.equal(x[i], y[0])


def test_topk_one_to_one_hand_case() -> None:
    # 4 anchors, 2 classes, max_det 2.
    scores = T([[[0.9, 0.85], [0.1, 0.2], [0.3, 0.8], [0.5, 0.4]]])
    c = topk_one_to_one(_boxes_for(4), scores, max_det=2, conf=0.1)
    # Stage 1: anchors by best score: a0 (0.9), a2 (0.8) [a3 0.5, a1 0.2 out].
    # Stage 2: pairs of those anchors: (a0,c0) 0.9, (a0,c1) 0.85, (a2,c1) 0.8, (a2,c0) 0.3 -> top 2:
    # anchor 0 twice, once per class.
    assert c.scores[0].tolist() == pytest.approx([0.9, 0.85])
    assert c.classes[0].tolist() == [0, 1]
    assert c.boxes[0, :, 0].tolist() == [0.0, 0.0]
    assert c.valid[0].tolist() == [True, True]
    # conf only flags rows (0.85 is not above 0.86); shapes stay fixed.
    assert topk_one_to_one(_boxes_for(4), scores, max_det=2, conf=0.86).valid[0].tolist() == [True, False]
    # agnostic: one row per anchor with its best class.
    ag = topk_one_to_one(_boxes_for(4), scores, max_det=2, conf=0.1, agnostic=True)
    assert ag.classes[0].tolist() == [0, 1] and ag.boxes[0, :, 0].tolist() == [0.0, 2.0]
    # class filter before the top-k: class 1 only -> (a0 0.85), (a2 0.8), not fewer rows.
    only1 = topk_one_to_one(_boxes_for(4), scores, max_det=2, conf=0.1, classes=[1])
    assert only1.scores[0].tolist() == pytest.approx([0.85, 0.8])
    assert only1.boxes[0, :, 0].tolist() == [0.0, 2.0]


def test_candidate_selectors_compile_fullgraph() -> None:
    """No graph break (no .item(), no data-dependent branch): dynamo traces each in one graph."""
    g = torch.Generator().manual_seed(2)
    boxes, scores = _random_boxes(g, 2, 64), torch.rand(2, 64, 3, generator=g)
    for fn, args in (
        (select_candidates, (boxes, scores, 0.3, 40, False, [0, 2])),
        (select_candidates, (boxes, scores, 0.3, 100, True)),
        (topk_one_to_one, (boxes, scores, 10, 0.3)),
    ):
        compiled = torch.compile(fn, backend="eager", fullgraph=True, dynamic=False)
        for x, y in zip(compiled(*args), fn(*args), strict=True):
            assert torch.equal(x, y)


# ------------------------------------------------------------------------------------------- NMS


def _random_boxes(g: torch.Generator, b: int, n: int, size: float = 100.0) -> torch.Tensor:
    xy = torch.rand(b, n, 2, generator=g) * size
    wh = torch.rand(b, n, 2, generator=g) * size / 3 + 1
    return torch.cat((xy, xy + wh), -1)


def reference_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    classes: torch.Tensor,
    valid: torch.Tensor,
    thr: float,
    agnostic: bool,
    max_det: int,
    offset: float = 7680.0,
) -> list[int]:
    """Textbook greedy NMS of one image, as torchvision's CPU kernel: indices kept, best first."""
    b = boxes if agnostic else boxes + classes.float().unsqueeze(-1) * offset
    areas = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    order = [i for i in scores.argsort(descending=True).tolist() if valid[i]]
    suppressed = torch.zeros(len(scores), dtype=torch.bool)
    keep: list[int] = []
    for i in order:
        if suppressed[i]:
            continue
        keep.append(i)
        if len(keep) == max_det:
            break
        w = (torch.minimum(b[i, 2], b[:, 2]) - torch.maximum(b[i, 0], b[:, 0])).clamp(min=0)
        h = (torch.minimum(b[i, 3], b[:, 3]) - torch.maximum(b[i, 1], b[:, 1])).clamp(min=0)
        inter = w * h
        iou = inter / (areas[i] + areas - inter)
        suppressed |= iou.double() > thr  # the kernel compares the float IoU with a double threshold
    return keep


def _kept(keep: torch.Tensor, scores: torch.Tensor) -> list[int]:
    idx = keep.nonzero().squeeze(1)
    return idx[scores[idx].argsort(descending=True)].tolist()


def _cand(boxes: list[list[float]], scores: list[float], classes=None, valid=None) -> Candidates:
    n = len(scores)
    return Candidates(
        T([boxes], dtype=torch.float32),
        T([scores]),
        T([classes if classes is not None else [0] * n], dtype=torch.int64),
        T([valid if valid is not None else [True] * n]),
    )


A, B_, C_ = [0.0, 0.0, 3.0, 1.0], [1.0, 0.0, 4.0, 1.0], [2.0, 0.0, 5.0, 1.0]  # IoU(A,B)=IoU(B,C)=0.5


@pytest.mark.parametrize(
    ("boxes", "scores", "classes", "valid", "thr", "agnostic", "max_det", "kept"),
    [
        # IoU exactly 0.5 (inter 2 / union 4) at threshold 0.5: not strictly greater, both kept.
        ([A, B_], [0.9, 0.8], None, None, 0.5, False, 300, [0, 1]),
        # same pair at 0.49: the lower score is suppressed.
        ([A, B_], [0.9, 0.8], None, None, 0.49, False, 300, [0]),
        # chain A-B-C (IoU(A,C) = 1/5): A suppresses B, so B cannot suppress C; C survives.
        ([A, B_, C_], [0.9, 0.8, 0.7], None, None, 0.49, False, 300, [0, 2]),
        # order is by score, not by position: B is best and suppresses both neighbours.
        ([A, B_, C_], [0.8, 0.9, 0.7], None, None, 0.49, False, 300, [1]),
        # identical boxes of different classes: class offset keeps both...
        ([A, A], [0.9, 0.8], [0, 1], None, 0.5, False, 300, [0, 1]),
        # ...unless agnostic.
        ([A, A], [0.9, 0.8], [0, 1], None, 0.5, True, 300, [0]),
        # an invalid row neither survives nor suppresses, even with the best score.
        ([A, A, C_], [0.99, 0.8, 0.7], None, [False, True, True], 0.5, False, 300, [1, 2]),
        # max_det keeps the best-scored survivors: B then D (A, C suppressed by B; D is far away).
        ([A, B_, C_, [9.0, 9.0, 10.0, 10.0]], [0.8, 0.9, 0.7, 0.6], None, None, 0.49, False, 1, [1]),
        ([A, B_, C_, [9.0, 9.0, 10.0, 10.0]], [0.8, 0.9, 0.7, 0.6], None, None, 0.49, False, 2, [1, 3]),
        # zero-area box: IoU is 0/0 = NaN, which never suppresses.
        ([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]], [0.9, 0.8], None, None, 0.1, False, 300, [0, 1]),
    ],
)
def test_nms_hand_cases(boxes, scores, classes, valid, thr, agnostic, max_det, kept) -> None:
    c = _cand(boxes, scores, classes, valid)
    keep = nms_keep(c, thr, agnostic=agnostic, max_det=max_det)
    assert keep.shape == (1, len(scores)) and keep.dtype == torch.bool
    assert _kept(keep[0], c.scores[0]) == kept


def test_nms_empty_and_zero_max_det() -> None:
    empty = Candidates(
        torch.zeros(2, 0, 4), torch.zeros(2, 0), torch.zeros(2, 0, dtype=torch.int64), torch.zeros(2, 0).bool()
    )
    assert nms_keep(empty, 0.5).shape == (2, 0)
    assert not nms_keep(_cand([A], [0.9]), 0.5, max_det=0).any()


def _clustered(g: torch.Generator, b: int, k: int, n_cls: int, spread: float) -> Candidates:
    """Boxes jittered around a few centres (so IoUs straddle the thresholds), distinct scores."""
    centres = torch.rand(b, 6, 2, generator=g) * 200
    pick = torch.randint(0, 6, (b, k), generator=g)
    xy = centres.gather(1, pick.unsqueeze(-1).expand(-1, -1, 2)) + torch.randn(b, k, 2, generator=g) * spread
    wh = 20 + torch.rand(b, k, 2, generator=g) * 20
    boxes = torch.cat((xy, xy + wh), -1)
    # A random permutation of distinct values: no exact score ties, whose order NMS leaves unspecified.
    scores = torch.stack([(torch.randperm(k, generator=g) + 1).float() / (k + 1) for _ in range(b)])
    classes = torch.randint(0, n_cls, (b, k), generator=g)
    valid = torch.rand(b, k, generator=g) > 0.15
    return Candidates(boxes, scores, classes, valid)


@pytest.mark.parametrize("seed", range(12))
def test_nms_matches_reference_greedy(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    c = _clustered(g, b=3, k=150, n_cls=3, spread=4.0 + seed)
    thr = [0.3, 0.45, 0.5, 0.6, 0.7][seed % 5]
    max_det = [300, 20][seed % 2]
    for agnostic in (False, True):
        # A small block size forces many blocks, so suppression across blocks is exercised too.
        for block in (16, 512):
            keep = nms_keep(c, thr, agnostic=agnostic, max_det=max_det, block_size=block)
            for i in range(3):
                expected = reference_nms(c.boxes[i], c.scores[i], c.classes[i], c.valid[i], thr, agnostic, max_det)
                assert _kept(keep[i], c.scores[i]) == expected, (seed, agnostic, block, i)


def test_nms_large_k_bounded_memory_and_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """K = 8400 (every anchor of a 640 input): the IoU tiles stay block-sized and the answer exact."""
    largest: list[int] = [0]
    real = nms_module.box_iou_batched

    def spy(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        out = real(a, b)
        largest[0] = max(largest[0], out.numel())
        return out

    monkeypatch.setattr(nms_module, "box_iou_batched", spy)
    g = torch.Generator().manual_seed(7)
    b, k, block, max_det = 2, 8400, 256, 300
    xy = torch.rand(b, k, 2, generator=g) * 600
    boxes = torch.cat((xy, xy + 5 + torch.rand(b, k, 2, generator=g) * 80), -1)
    scores = torch.stack([(torch.randperm(k, generator=g) + 1).float() / (k + 1) for _ in range(b)])
    c = Candidates(boxes, scores, torch.randint(0, 80, (b, k), generator=g), torch.ones(b, k, dtype=torch.bool))
    for agnostic in (False, True):
        keep = nms_keep(c, 0.5, agnostic=agnostic, max_det=max_det, block_size=block)
        for i in range(b):
            expected = reference_nms(c.boxes[i], c.scores[i], c.classes[i], c.valid[i], 0.5, agnostic, max_det)
            assert _kept(keep[i], c.scores[i]) == expected
    # Largest IoU tile: B x block x max(block, max_det + 1), never B x K x K (141M entries).
    assert 0 < largest[0] <= b * block * max(block, max_det + 1)


def test_gather_kept_splits_per_image_best_first() -> None:
    c = Candidates(
        T([[A, [9.0, 9, 10, 10], B_], [A, B_, C_]]),
        T([[0.5, 0.9, 0.7], [0.6, 0.8, 0.4]]),
        T([[0, 1, 0], [2, 2, 2]]),
        T([[True, True, True], [True, True, True]]),
    )
    keep = T([[True, True, False], [False, True, True]])
    (b0, s0, c0), (b1, s1, c1) = gather_kept(c, keep)
    assert s0.tolist() == pytest.approx([0.9, 0.5]) and c0.tolist() == [1, 0]
    assert torch.equal(b0, T([[9.0, 9, 10, 10], A]))
    assert s1.tolist() == pytest.approx([0.8, 0.4]) and c1.tolist() == [2, 2]
    assert torch.equal(b1, T([B_, C_]))


# -------------------------------------------------------------------- parity with Ultralytics' outputs


def _unletterbox(boxes: torch.Tensor, orig_hw: tuple[int, int], size: int = 640) -> torch.Tensor:
    """Network-input (square letterbox) pixels -> original pixels, with the letterbox's rounding."""
    h, w = orig_hw
    gain = min(size / h, size / w)
    pad_x = round((size - w * gain) / 2 - 0.1)
    pad_y = round((size - h * gain) / 2 - 0.1)
    out = (boxes - T([pad_x, pad_y, pad_x, pad_y], dtype=boxes.dtype)) / gain
    return clip_boxes(out, orig_hw)


def _load_reference(fixtures, model: str, key: str) -> tuple[dict, np.ndarray, tuple[int, int]]:
    raw = dict(np.load(fixtures / "reference" / f"{model}.raw.npz"))
    det = json.loads((fixtures / "reference" / f"{model}.detections.json").read_text())["detections"][key]
    rows = np.asarray(det["xyxy_conf_cls"], dtype=np.float64).reshape(-1, 6)
    return raw, rows, tuple(det["orig_shape"])


def _assert_same_detections(boxes, scores, classes, rows: np.ndarray) -> None:
    assert len(scores) == len(rows)
    # Boxes: float32 rounding at ~1000 px (one ulp is 6e-5) plus the reference's own float path;
    # observed 2e-4 px, so 1e-3 px still catches any real difference (a wrong pad is >= 1 px).
    np.testing.assert_allclose(boxes.numpy(), rows[:, :4], rtol=0, atol=1e-3)
    # Scores: the raw dump and the prediction run agree to ~1e-6 (observed), far below any threshold.
    np.testing.assert_allclose(scores.numpy(), rows[:, 4], rtol=0, atol=1e-5)
    assert classes.tolist() == rows[:, 5].astype(int).tolist()


@pytest.mark.parametrize("conf", [0.25, 0.05])
def test_nms_reproduces_ultralytics_predict(fixtures, conf: float) -> None:
    """yolo11n-shapes: the stored decoded output through our NMS == Ultralytics' final detections."""
    raw, rows, orig = _load_reference(fixtures, "yolo11n-shapes", f"scene_1280x720.jpg|rect=False|conf={conf}")
    y = torch.from_numpy(raw["y"]).transpose(1, 2)  # [1, 8400, 4 + nc]: xywh, then sigmoid scores
    c = select_candidates(xywh_to_xyxy(y[..., :4]), y[..., 4:], conf=conf)
    boxes, scores, classes = gather_kept(c, nms_keep(c, 0.7))[0]
    _assert_same_detections(_unletterbox(boxes, orig), scores, classes, rows)


def _anchors(size: int = 640, strides: tuple[int, ...] = (8, 16, 32)) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell centres [A, 2] in grid units and the stride [A, 1] of each, finest level first."""
    points, stride = [], []
    for s in strides:
        n = size // s
        ys, xs = torch.meshgrid(torch.arange(n) + 0.5, torch.arange(n) + 0.5, indexing="ij")
        points.append(torch.stack((xs.flatten(), ys.flatten()), -1))
        stride.append(torch.full((n * n, 1), float(s)))
    return torch.cat(points), torch.cat(stride)


@pytest.mark.parametrize("conf", [0.25, 0.05])
def test_topk_one_to_one_reproduces_ultralytics_nms_free(fixtures, conf: float) -> None:
    """yolo26n-shapes one-to-one head (nms=False): our top-k == Ultralytics' final detections."""
    raw, rows, orig = _load_reference(fixtures, "yolo26n-shapes", f"scene_1280x720.jpg|rect=False|conf={conf}|nms_free")
    points, stride = _anchors()
    dist = torch.from_numpy(raw["one2one_boxes"])[0].T  # [A, 4] left, top, right, bottom (grid units)
    boxes = (torch.cat((points - dist[:, :2], points + dist[:, 2:]), -1) * stride).unsqueeze(0)
    scores = torch.from_numpy(raw["one2one_scores"]).transpose(1, 2).sigmoid()
    c = topk_one_to_one(boxes, scores, max_det=300, conf=conf)
    v = c.valid[0]
    _assert_same_detections(_unletterbox(c.boxes[0][v], orig), c.scores[0][v], c.classes[0][v], rows)
