"""ByteTrack: IoU, assignment, Kalman filter and `StreamTracker` on synthetic box sequences."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from yolostream.detections import Detections
from yolostream.errors import ConfigError
from yolostream.pipeline.frames import Frame, FrameResult
from yolostream.pipeline.tracking import (
    BoxKalman,
    StreamTracker,
    Trackers,
    assign,
    iou_matrix,
    xyah_to_xyxy,
    xyxy_to_xyah,
)

HAVE_SCIPY = importlib.util.find_spec("scipy") is not None


def dets(boxes: list[list[float]], conf: list[float] | None = None, cls: list[int] | None = None) -> Detections:
    n = len(boxes)
    return Detections(
        xyxy=torch.tensor(boxes, dtype=torch.float32).reshape(n, 4),
        conf=torch.tensor(conf if conf is not None else [0.9] * n, dtype=torch.float32),
        cls=torch.tensor(cls if cls is not None else [0] * n, dtype=torch.int64),
        names={0: "person", 1: "car"},
        image_shape=(480, 640),
    )


def box_at(x: float, y: float = 100.0, w: float = 40.0, h: float = 80.0) -> list[float]:
    return [x, y, x + w, y + h]


def ids_by_x(out: Detections) -> dict[int, int]:
    """Track id of each output row, keyed by the row's rounded x1 (rows are told apart by position)."""
    return {round(float(b[0])): int(t) for b, t in zip(out.xyxy, out.tracker_id, strict=True)}


@pytest.mark.parametrize(
    ("a", "b", "want"),
    [
        ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),  # identical
        ([0, 0, 10, 10], [5, 0, 15, 10], 50 / 150),  # half overlap: inter 50, union 100 + 100 - 50
        ([0, 0, 10, 10], [10, 0, 20, 10], 0.0),  # touching edges: zero-area intersection
        ([0, 0, 10, 10], [2, 2, 4, 4], 4 / 100),  # contained: inter = small area 4, union = big area 100
        ([0, 0, 0, 0], [0, 0, 0, 0], 0.0),  # degenerate boxes: union 0 -> defined as 0, not NaN
    ],
)
def test_iou_matrix(a: list[float], b: list[float], want: float) -> None:
    got = iou_matrix(np.array([a], dtype=np.float64), np.array([b], dtype=np.float64))
    assert got.shape == (1, 1)
    assert got[0, 0] == pytest.approx(want, abs=1e-12)  # float64 of small integers: exact up to rounding


# Greedy takes the cheapest pair first; Hungarian minimises the total.
ASSIGN_CASES = [
    # (cost, max_cost, hungarian pairs, greedy pairs)
    ([[0.1, 0.9], [0.9, 0.2]], 0.5, [(0, 0), (1, 1)], [(0, 0), (1, 1)]),  # diagonal: both agree
    ([[0.1, 0.2], [0.15, 0.9]], 0.95, [(0, 1), (1, 0)], [(0, 0), (1, 1)]),  # totals 0.35 vs greedy 1.0
    ([[0.1, 0.2], [0.15, 0.9]], 0.5, [(0, 1), (1, 0)], [(0, 0)]),  # gate: greedy leaves row 1 unmatched
    ([[0.6, 0.7]], 0.5, [], []),  # everything gated
    ([[0.3], [0.2], [0.4]], 0.5, [(1, 0)], [(1, 0)]),  # more rows than columns
]


@pytest.mark.parametrize(("cost", "max_cost", "hungarian", "greedy"), ASSIGN_CASES)
def test_assign_greedy(cost, max_cost, hungarian, greedy) -> None:
    assert assign(np.array(cost), max_cost, exact=False) == greedy


@pytest.mark.skipif(not HAVE_SCIPY, reason="scipy not installed (the greedy path is tested above)")
@pytest.mark.parametrize(("cost", "max_cost", "hungarian", "greedy"), ASSIGN_CASES)
def test_assign_hungarian(cost, max_cost, hungarian, greedy) -> None:
    assert sorted(assign(np.array(cost), max_cost, exact=True)) == hungarian


def test_assign_empty() -> None:
    assert assign(np.zeros((0, 3)), 0.5) == []


def test_xyah_round_trip() -> None:
    boxes = np.array([[10.0, 20.0, 50.0, 100.0], [0.0, 0.0, 3.0, 1.0]])
    np.testing.assert_allclose(xyxy_to_xyah(boxes)[0], [30.0, 60.0, 0.5, 80.0])  # w 40 / h 80
    np.testing.assert_allclose(xyah_to_xyxy(xyxy_to_xyah(boxes)), boxes, atol=1e-9)  # float64 round-off


def test_kalman_learns_constant_velocity() -> None:
    kf = BoxKalman()
    z = np.array([[100.0, 200.0, 0.5, 80.0]])
    mean, cov = kf.initiate(z)
    for step in range(1, 30):
        mean, cov = kf.predict(mean, cov)
        mean, cov = kf.update(mean, cov, z + np.array([[5.0 * step, -2.0 * step, 0.0, 0.0]]))
    mean, _ = kf.predict(mean, cov)
    # Noise-free measurements: after 29 updates the velocity estimate has converged well below a pixel.
    np.testing.assert_allclose(mean[0, 4:6], [5.0, -2.0], atol=0.1)
    np.testing.assert_allclose(mean[0, :2], [100 + 5 * 30, 200 - 2 * 30], atol=0.5)
    assert np.all(np.linalg.eigvalsh(cov[0]) > 0)  # covariance stays positive definite


def test_moving_box_keeps_id_and_new_object_gets_new_id() -> None:
    tracker = StreamTracker()
    for f in range(20):
        boxes = [box_at(10 + 8 * f)]  # 8 px/frame: IoU with the last frame ~0.67 even without prediction
        if f >= 5:
            boxes.append(box_at(500 - 6 * (f - 5), y=300))
        out = tracker.update(dets(boxes))
        ids = out.tracker_id.tolist()
        if f < 5:
            assert ids == [1]
        elif f == 5:
            assert ids == [1]  # a new object is reported from its second detection
        else:
            assert ids_by_x(out) == {10 + 8 * f: 1, 500 - 6 * (f - 5): 2}


def test_fast_box_is_followed_through_its_predicted_motion() -> None:
    # Speeds up to 30 px/frame on a 40 px wide box: consecutive boxes overlap by IoU 10/70 ~ 0.14, below
    # the first association's gate (cost 1 - 0.14 * 0.9 > 0.8). Only the Kalman prediction keeps the match.
    tracker, x = StreamTracker(), 0.0
    for f in range(40):
        x += min(2.0 * f, 30.0)
        assert tracker.update(dets([box_at(x)])).tracker_id.tolist() == [1], f"frame {f}"


def test_first_frame_confirms_every_confident_detection() -> None:
    out = StreamTracker().update(dets([box_at(0), box_at(200), box_at(400)], conf=[0.9, 0.5, 0.3]))
    # 0.3 < new_track_thresh (0.25 + 0.1): starts no track. Rows keep their order.
    assert out.tracker_id.tolist() == [1, 2]
    assert out.xyxy[:, 0].tolist() == [0.0, 200.0]


def test_one_frame_false_positive_never_gets_an_id() -> None:
    tracker = StreamTracker()
    tracker.update(dets([box_at(0)]))
    out = tracker.update(dets([box_at(0), box_at(300)]))  # blip at x=300 for one frame
    assert out.tracker_id.tolist() == [1]
    out = tracker.update(dets([box_at(0), box_at(450)]))  # another object elsewhere: again unconfirmed
    assert out.tracker_id.tolist() == [1]
    out = tracker.update(dets([box_at(0), box_at(450)]))
    assert ids_by_x(out) == {0: 1, 450: 2}  # IDs stay contiguous: the blip never took one


@pytest.mark.parametrize(
    ("gap", "lost_buffer", "frame_rate", "same_id"),
    [
        (10, 30, 30, True),  # 10 missed frames < 30: found again
        (31, 30, 30, False),  # 31 missed frames > 30: forgotten, new ID
        (31, 30, 60, True),  # at 60 fps the buffer is 60 frames
        (0, 0, 30, True),  # no gap at all
    ],
)
def test_lost_track_is_found_again_within_buffer(gap: int, lost_buffer: int, frame_rate: int, same_id: bool) -> None:
    tracker = StreamTracker(frame_rate=frame_rate, lost_buffer=lost_buffer)
    for _ in range(5):
        tracker.update(dets([box_at(100)]))
    for _ in range(gap):
        assert len(tracker.update(dets([]))) == 0
    tracker.update(dets([box_at(100)]))
    out = tracker.update(dets([box_at(100)]))  # second frame: a new track would be confirmed by now
    assert out.tracker_id.tolist() == ([1] if same_id else [2])


def test_low_confidence_detection_extends_but_never_starts_a_track() -> None:
    tracker = StreamTracker()
    tracker.update(dets([box_at(100)], conf=[0.9]))
    out = tracker.update(dets([box_at(104)], conf=[0.15]))  # occluded: low score, same place
    assert out.tracker_id.tolist() == [1]
    assert out.conf.tolist() == pytest.approx([0.15])  # the row is passed through unchanged
    for _ in range(3):
        out = tracker.update(dets([box_at(104), box_at(400)], conf=[0.9, 0.2]))
        assert ids_by_x(out) == {104: 1}  # the low-score object at x=400 never gets a track


def test_output_boxes_are_the_detected_ones_in_input_order() -> None:
    tracker = StreamTracker()
    tracker.update(dets([box_at(0), box_at(300)], conf=[0.9, 0.8]))
    d = dets([box_at(2), box_at(302)], conf=[0.7, 0.95])
    out = tracker.update(d)
    assert torch.equal(out.xyxy, d.xyxy) and torch.equal(out.conf, d.conf)
    assert out.tracker_id.tolist() == [1, 2]


def test_empty_frames_and_reset() -> None:
    tracker = StreamTracker()
    out = tracker.update(Detections.empty())
    assert len(out) == 0 and out.tracker_id is not None and out.tracker_id.dtype == torch.int64
    tracker.update(dets([box_at(0)]))
    tracker.reset()
    assert tracker.update(dets([box_at(0)])).tracker_id.tolist() == [1]


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"frame_rate": 0}, "frame_rate"),
        ({"track_thresh": 1.5}, "track_thresh"),
        ({"match_thresh": 0}, "match_thresh"),
        ({"lost_buffer": -1}, "lost_buffer"),
        ({"track_thresh": 0.2, "low_thresh": 0.3}, "low_thresh"),
    ],
)
def test_invalid_settings(kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        StreamTracker(**kwargs)


def test_trackers_keep_streams_apart() -> None:
    trackers = Trackers()
    trackers.update("cam1", dets([box_at(0)]))
    trackers.update("cam1", dets([box_at(200)]))  # second object on cam1 (unconfirmed yet)
    trackers.update("cam1", dets([box_at(0), box_at(200)]))
    frame = Frame("cam2", 0, 1.0, np.zeros((480, 640, 3), dtype=np.uint8))
    res = trackers.process(FrameResult(frame, dets([box_at(200)]), 1.1))
    assert res.detections.tracker_id.tolist() == [1]  # cam2 counts its own IDs from 1
    assert res.frame is frame
    out = trackers.update("cam1", dets([box_at(0), box_at(200)]))
    assert ids_by_x(out) == {0: 1, 200: 2}
    trackers.reset("cam1")
    assert trackers.update("cam1", dets([box_at(200)])).tracker_id.tolist() == [1]
