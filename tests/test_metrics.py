"""Validation metrics (Ultralytics-style mAP) and the YOLO dataset reader, on hand-computed cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from yolostream.errors import ConfigError
from yolostream.val.dataset import label_path, labels_to_xyxy, load_yolo_dataset, read_labels
from yolostream.val.metrics import (
    IOU_THRESHOLDS,
    DetectionMetrics,
    average_precision,
    match_predictions,
)

# One ulp-scale slack for sums of ~100 float64 products: the hand values are exact fractions.
TOL = 1e-12

# ------------------------------------------------------------------------------ match_predictions


@pytest.mark.parametrize(
    ("pred_cls", "gt_cls", "iou", "expected_tp_counts"),
    [
        # one prediction, IoU 0.62 with its gt: TP at 0.50, 0.55, 0.60 only
        ([0], [0], [[0.62]], [3]),
        # same overlap, other class: never a TP
        ([1], [0], [[0.62]], [0]),
        # IoU exactly 0.5: ">=" so TP at the first threshold
        ([0], [0], [[0.5]], [1]),
        # two predictions on one gt; the first (more confident) wins wherever both qualify, although
        # the second overlaps more (0.9 vs 0.7): pred 0 TP at 0.50..0.70 (5), pred 1 only where pred 0
        # no longer qualifies, 0.75..0.90 (4)
        ([0, 0], [0], [[0.7, 0.9]], [5, 4]),
        # Ultralytics' two-pass rule does not fall back to a second choice (issue #22583): pred 1
        # prefers gt 0 (0.8 > 0.7), loses it to pred 0, and stays a FP though gt 1 is free.
        ([0, 0], [0, 0], [[0.9, 0.8], [0.0, 0.7]], [9, 0]),
    ],
)
def test_match_predictions_hand_cases(pred_cls, gt_cls, iou, expected_tp_counts) -> None:
    tp = match_predictions(np.array(pred_cls), np.array(gt_cls), np.array(iou, dtype=np.float32))
    assert tp.shape == (len(pred_cls), 10) and tp.dtype == bool
    assert tp.sum(axis=1).tolist() == expected_tp_counts
    # a TP at a strict threshold is a TP at every looser one (for a lone prediction per gt)
    if len(pred_cls) == 1:
        assert tp[0].tolist() == sorted(tp[0].tolist(), reverse=True)


def test_match_predictions_no_gt_or_no_pred() -> None:
    assert match_predictions(np.zeros(3), np.zeros(0), np.zeros((0, 3), np.float32)).shape == (3, 10)
    assert match_predictions(np.zeros(0), np.zeros(2), np.zeros((2, 0), np.float32)).shape == (0, 10)


def test_iou_thresholds_are_float32_linspace() -> None:
    assert IOU_THRESHOLDS.dtype == np.float32 and len(IOU_THRESHOLDS) == 10
    assert IOU_THRESHOLDS[0] == 0.5 and IOU_THRESHOLDS[-1] == np.float32(0.95)


# ---------------------------------------------------------------------------- average_precision


@pytest.mark.parametrize(
    ("recall", "precision", "expected"),
    [
        # Perfect: envelope 1 up to recall 1, but the 101st sample (recall 1.0) lands on the closing
        # precision 0, so the trapezoid loses half a step: 1 - 0.01 / 2 = 0.995 (Ultralytics' known
        # "mAP50 = 0.995" for a perfect detector).
        ([1.0], [1.0], 0.995),
        # Half the objects found, precision 1: samples 0.00..0.49 are 1, 0.50 onwards 0 (the curve
        # drops at the last recall reached): 0.49 + 0.01 / 2 = 0.495 (the value Ultralytics'
        # maintainers quote for this case in issue #25852).
        ([0.5], [1.0], 0.495),
        # TP, FP, TP with 2 gt: recall .5 .5 1, precision 1 .5 2/3; envelope 1 up to recall .5, then
        # 2/3 up to 1. Samples: 0.00..0.49 -> 1 (50), 0.50..0.99 -> 2/3 (50), 1.00 -> 0:
        # 0.01 * (1/2 + 49 + 50 * 2/3 + 0) = 0.828333...
        ([0.5, 0.5, 1.0], [1.0, 0.5, 2 / 3], 0.01 * (0.5 + 49 + 100 / 3)),
        # FP first, then TP, 1 gt: recall 0 1, precision 0 .5 -> envelope 0.5 on [0, 1):
        # 0.01 * (0.5 / 2 + 99 * 0.5 + 0) = 0.4975 -- the false positive at higher confidence halves AP
        ([0.0, 1.0], [0.0, 0.5], 0.4975),
    ],
)
def test_average_precision_hand_cases(recall, precision, expected) -> None:
    assert average_precision(np.array(recall), np.array(precision)) == pytest.approx(expected, abs=TOL)


# ---------------------------------------------------------------------------- DetectionMetrics


def _box(x: float, y: float, w: float, h: float) -> list[float]:
    return [x, y, x + w, y + h]


GT_BOXES = np.array([_box(0, 0, 10, 10), _box(50, 50, 20, 10), _box(100, 0, 8, 8)], dtype=np.float32)
GT_CLS = np.array([0, 1, 0])


def test_perfect_predictions_score_0995() -> None:
    m = DetectionMetrics(names={0: "a", 1: "b"})
    for _ in range(3):  # three identical images
        m.update(GT_BOXES, np.array([0.9, 0.8, 0.7]), GT_CLS, GT_BOXES, GT_CLS)
    r = m.compute()
    # every class: recall reaches 1 at precision 1 -> 0.995 (see test_average_precision_hand_cases)
    assert r["map50"] == pytest.approx(0.995, abs=TOL)
    assert r["map50_95"] == pytest.approx(0.995, abs=TOL)
    assert r["per_class_map50_95"] == pytest.approx({0: 0.995, 1: 0.995}, abs=TOL)
    assert r["classes"] == [0, 1] and r["names"] == {0: "a", 1: "b"}
    assert r["n_images"] == 3 and r["n_instances"] == 9
    assert r["precision"] == pytest.approx(1.0) and r["recall"] == pytest.approx(1.0)


def test_loose_box_counts_only_at_low_thresholds() -> None:
    # gt 10x10; prediction 10x8.2 inside it: IoU = 82 / 100 = 0.82 -> TP at 0.50..0.80 (7 of 10)
    m = DetectionMetrics()
    m.update(np.array([_box(0, 0, 10, 8.2)]), np.array([0.9]), np.array([0]), GT_BOXES[:1], GT_CLS[:1])
    r = m.compute()
    assert r["map50"] == pytest.approx(0.995, abs=TOL)
    assert r["map50_95"] == pytest.approx(0.995 * 7 / 10, abs=TOL)
    assert r["map75"] == pytest.approx(0.995, abs=TOL)


def test_false_positive_ranked_first_lowers_ap() -> None:
    gt = GT_BOXES[:1]
    fp_box = _box(200, 200, 10, 10)
    # TP at 0.8 alone: 0.995. Add a FP at 0.9 (more confident): 0.4975 (hand case above).
    m = DetectionMetrics()
    m.update(np.array([fp_box, gt[0]]), np.array([0.9, 0.8]), np.array([0, 0]), gt, GT_CLS[:1])
    assert m.compute()["map50_95"] == pytest.approx(0.4975, abs=TOL)
    # The same FP ranked below the TP costs nothing: recall 1 is reached at precision 1.
    m = DetectionMetrics()
    m.update(np.array([fp_box, gt[0]]), np.array([0.7, 0.8]), np.array([0, 0]), gt, GT_CLS[:1])
    assert m.compute()["map50_95"] == pytest.approx(0.995, abs=TOL)


def test_ap_pools_images_before_ranking() -> None:
    # image 1: TP at 0.9; image 2: FP at 0.8 and its gt found at 0.7 -> over the dataset the ranking is
    # TP, FP, TP with 2 gt: 0.828333... (hand case above), not a per-image average.
    m = DetectionMetrics()
    gt = GT_BOXES[:1]
    m.update(gt, np.array([0.9]), np.array([0]), gt, GT_CLS[:1])
    m.update(np.array([_box(300, 300, 5, 5), gt[0]]), np.array([0.8, 0.7]), np.array([0, 0]), gt, GT_CLS[:1])
    assert m.compute()["map50_95"] == pytest.approx(0.01 * (0.5 + 49 + 100 / 3), abs=TOL)


def test_classes_without_gt_excluded_and_unfound_classes_count_zero() -> None:
    gt, gt_cls = GT_BOXES[:2], GT_CLS[:2]  # class 0 and class 1, one box each
    m = DetectionMetrics()
    # class 0 found perfectly; class 1 never predicted; class 5 predicted but never labelled
    m.update(np.array([gt[0], _box(0, 0, 4, 4)]), np.array([0.9, 0.95]), np.array([0, 5]), gt, gt_cls)
    r = m.compute()
    assert r["classes"] == [0, 1]  # class 5 has no ground truth: left out, its FP harms no class
    assert r["per_class_map50_95"] == pytest.approx({0: 0.995, 1: 0.0}, abs=TOL)
    assert r["map50_95"] == pytest.approx(0.995 / 2, abs=TOL)


def test_contested_gt_goes_to_the_more_confident_prediction() -> None:
    gt = GT_BOXES[:1]  # 10x10
    # p_hi (0.9) overlaps the gt with IoU 0.62 (10x6.2 inside it), p_lo (0.8) is an exact copy.
    # 0.50..0.60 (3 thresholds): both qualify, p_hi wins, p_lo is a FP ranked after it -> 0.995.
    # 0.65..0.95 (7): only p_lo qualifies -> FP (p_hi) then TP -> 0.4975 (hand case above).
    m = DetectionMetrics()
    m.update(np.array([_box(0, 0, 10, 6.2), gt[0]]), np.array([0.9, 0.8]), np.array([0, 0]), gt, GT_CLS[:1])
    r = m.compute()
    np.testing.assert_allclose(r["ap"][0], [0.995] * 3 + [0.4975] * 7, rtol=0, atol=TOL)
    assert r["map50_95"] == pytest.approx((3 * 0.995 + 7 * 0.4975) / 10, abs=TOL)


def test_torch_inputs_and_unsorted_predictions_same_as_numpy_sorted() -> None:
    preds = np.array([_box(0, 0, 10, 9), _box(1, 1, 10, 10), _box(50, 50, 20, 11)], dtype=np.float32)
    conf = np.array([0.3, 0.9, 0.6], dtype=np.float32)
    cls = np.array([0, 0, 1])
    a, b = DetectionMetrics(), DetectionMetrics()
    a.update(preds, conf, cls, GT_BOXES, GT_CLS)
    order = np.argsort(-conf)
    sorted_preds = [torch.from_numpy(x[order]) for x in (preds, conf, cls)]
    b.update(*sorted_preds, torch.from_numpy(GT_BOXES), torch.from_numpy(GT_CLS))
    ra, rb = a.compute(), b.compute()
    assert ra["map50_95"] == rb["map50_95"] and np.array_equal(ra["ap"], rb["ap"])


def test_empty_metrics_and_reset() -> None:
    m = DetectionMetrics()
    assert m.compute()["map50_95"] == 0.0
    m.update(GT_BOXES, np.ones(3), GT_CLS, GT_BOXES, GT_CLS)
    m.reset()
    assert m.compute()["n_images"] == 0


def test_update_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="2 pred boxes / 1 conf"):
        DetectionMetrics().update(GT_BOXES[:2], np.ones(1), np.zeros(2), GT_BOXES, GT_CLS)


# -------------------------------------------------------------------------------------- dataset


def test_shapes_dataset(fixtures: Path) -> None:
    ds = load_yolo_dataset(fixtures / "datasets" / "shapes" / "data.yaml")
    assert len(ds) == 60 and ds.n_boxes == 202  # as the fixtures README states
    assert ds.names == {0: "box", 1: "disc", 2: "triangle"}
    assert [p.name for p, _ in ds][:2] == ["0000.jpg", "0001.jpg"]  # sorted by path
    for image, labels in ds:
        assert image.is_file() and labels.dtype == np.float32 and labels.shape[1] == 5
        assert set(np.unique(labels[:, 0])) <= {0.0, 1.0, 2.0}


def test_label_path_swaps_last_images_folder() -> None:
    p = Path("/data/images/set/images/val/x.y.jpg")
    assert label_path(p) == Path("/data/images/set/labels/val/x.y.txt")


@pytest.mark.parametrize(
    ("size_hw", "pad_xy", "expected"),
    [
        # 200 wide x 100 high picture: centre (0.5, 0.5) -> (100, 50), size 0.2 x 0.4 -> 40 x 40
        ((100, 200), (0, 0), [80.0, 30.0, 120.0, 70.0]),
        # the same picture letterboxed at (left 16, top 8): shifted by the padding
        ((100, 200), (16, 8), [96.0, 38.0, 136.0, 78.0]),
    ],
)
def test_labels_to_xyxy(size_hw, pad_xy, expected) -> None:
    labels = np.array([[3, 0.5, 0.5, 0.2, 0.4]], dtype=np.float32)
    got = labels_to_xyxy(labels, size_hw, pad_xy)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, [expected], rtol=1e-6)  # float32 products of short decimals
    assert labels_to_xyxy(np.zeros((0, 5), np.float32), (10, 10)).shape == (0, 4)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2\n", r"x\.txt:2: expected 'cls cx cy w h'"),  # 4 values on line 2
        ("0 0.5 0.5 0.2 abc\n", r"x\.txt:1: label values must be numbers"),
        ("1.5 0.5 0.5 0.2 0.2\n", r"x\.txt:1: class must be a whole number"),
        ("-1 0.5 0.5 0.2 0.2\n", r"x\.txt:1: class must be a whole number"),
        ("3 0.5 0.5 0.2 0.2\n", r"x\.txt:1: class .*dataset has 3 classes"),  # ids 0..2 only
        ("0 0.5 0.5 1.2 0.2\n", r"x\.txt:1: coordinates must be normalised"),
        ("0 0.5 0.5 0.2 0.2 0.1\n", r"x\.txt:1: expected"),  # 5 coordinates: neither box nor polygon
    ],
)
def test_malformed_label_lines(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        read_labels(_write(tmp_path / "x.txt", text), n_classes=3)


def test_labels_polygon_duplicates_blank_lines_and_missing_file(tmp_path: Path) -> None:
    text = "\n2 0.1 0.2 0.5 0.2 0.3 0.6\n0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2\n"
    labels = read_labels(_write(tmp_path / "x.txt", text))
    # triangle (0.1,0.2) (0.5,0.2) (0.3,0.6): x 0.1..0.5, y 0.2..0.6 -> centre (0.3, 0.4), size 0.4 x 0.4;
    # the repeated box row is one object.
    np.testing.assert_allclose(labels, [[2, 0.3, 0.4, 0.4, 0.4], [0, 0.5, 0.5, 0.2, 0.2]], atol=1e-6)
    assert read_labels(tmp_path / "missing.txt").shape == (0, 5)


def _dataset(tmp_path: Path, yaml_text: str) -> Path:
    for name in ("a.jpg", "b.png", "c.jpg"):
        _write(tmp_path / "ds" / "images" / "val" / name, "")
    _write(tmp_path / "ds" / "labels" / "val" / "a.txt", "1 0.5 0.5 0.1 0.1\n")
    _write(tmp_path / "ds" / "images" / "val" / "notes.md", "")  # not an image: ignored
    return _write(tmp_path / "ds" / "data.yaml", yaml_text)


@pytest.mark.parametrize(
    ("yaml_text", "names"),
    [
        ("path: .\nval: images/val\nnames: [cat, dog]\n", {0: "cat", 1: "dog"}),  # names as a list
        ("val: images/val\nnames: {0: cat, 1: dog}\n", {0: "cat", 1: "dog"}),  # no path: yaml folder
        ("path: ds\nval: [images/val]\nnames: {1: dog, 0: cat}\n", {0: "cat", 1: "dog"}),  # list of entries
    ],
)
def test_dataset_yaml_forms(tmp_path: Path, yaml_text: str, names: dict[int, str]) -> None:
    if "path: ds" in yaml_text:  # `path` relative to the yaml's folder: put the yaml one level up
        _dataset(tmp_path, "")
        yaml_file = _write(tmp_path / "data.yaml", yaml_text)
    else:
        yaml_file = _dataset(tmp_path, yaml_text)
    ds = load_yolo_dataset(yaml_file)
    assert ds.names == names
    assert [p.name for p, _ in ds] == ["a.jpg", "b.png", "c.jpg"]
    assert [len(lb) for _, lb in ds] == [1, 0, 0]  # b and c have no label file: no objects


def test_dataset_txt_image_list(tmp_path: Path) -> None:
    yaml_file = _dataset(tmp_path, "path: .\nval: val.txt\nnames: [cat, dog]\n")
    _write(tmp_path / "ds" / "val.txt", "images/val/c.jpg\n./images/val/a.jpg\n")
    assert [p.name for p, _ in load_yolo_dataset(yaml_file)] == ["a.jpg", "c.jpg"]


@pytest.mark.parametrize(
    ("yaml_text", "match"),
    [
        ("val: images/val\n", "missing key 'names'"),
        ("names: [a]\n", "missing key 'val'"),
        ("val: images/nowhere\nnames: [a]\n", "'val' entry .*nowhere"),
        ("val: images/val\nnames: 3\n", "'names' must be a list or a mapping"),
        ("- just\n- a list\n", "must be a mapping"),
        ("val: images/val\nnames: [a]\n", r"a\.txt:1: class .*1 classes"),  # label class 1 of 1 class
    ],
)
def test_dataset_yaml_errors(tmp_path: Path, yaml_text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_yolo_dataset(_dataset(tmp_path, yaml_text))
