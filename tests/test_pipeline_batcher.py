"""Cross-stream batching: newest frame per stream, max_batch and fairness, no waiting on a silent stream,
lossless sources, end of input; and with the real shapes model, two frame sizes in one call, each result
routed back to its own stream."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from media import Scene, Shape, ground_truth, write_mp4

from yolostream.api import load
from yolostream.detections import Detections
from yolostream.pipeline.batcher import DEFAULT_MAX_BATCH, Batcher, engine_max_batch
from yolostream.pipeline.frames import Frame
from yolostream.pipeline.sources import Source, VideoFileSource


class PushSource(Source):
    """A source the test feeds by hand (no decoder): `push` offers one frame, `end` finishes it."""

    def __init__(self, name: str, lossless: bool = False, queue_size: int = 4) -> None:
        super().__init__(name, queue_size=queue_size, lossless=lossless)
        self.pushed = 0

    def _run(self) -> None:
        self._stop.wait()

    def push(self, height: int = 8, width: int = 8) -> None:
        value = self.pushed % 256
        self.pushed += 1
        self._offer(lambda: np.full((height, width, 3), value, np.uint8))

    def end(self) -> None:
        self.stop()


class _Plans(list):
    """What `FakeDetector.preprocess` returns: the frame sizes, also as ``.plans`` like a real batch."""

    @property
    def plans(self) -> list[tuple[int, int]]:
        return list(self)


class FakeDetector:
    """Records each call's batch; one empty `Detections` per frame with that frame's size."""

    def __init__(self, bucket_batches: tuple[int, ...] | None = None) -> None:
        self.calls: list[list[tuple[int, int]]] = []
        # Like Detector.max_batch: the engine's largest bucket batch, None for the eager detector.
        self.max_batch = max(bucket_batches) if bucket_batches else None

    def preprocess(self, images: list[np.ndarray]) -> _Plans:
        return _Plans(im.shape[:2] for im in images)

    def infer(self, batch: list[tuple[int, int]]) -> list[tuple[int, int]]:
        self.calls.append(batch)
        return batch

    def postprocess(self, shapes: list[tuple[int, int]], plans: Any) -> list[Detections]:
        return [Detections.empty(image_shape=s) for s in shapes]


def started(*sources: Source) -> list[Source]:
    return [s.start() for s in sources]


def collect_in_thread(batcher: Batcher, stop: threading.Event | None = None) -> list[Frame]:
    """`collect` with a deadline that turns a hang into a failure (nothing asserts how long it took)."""
    out: list[list[Frame]] = []
    t = threading.Thread(target=lambda: out.append(batcher.collect(stop)), daemon=True)
    t.start()
    t.join(20.0)
    assert not t.is_alive(), "collect did not return"
    return out[0]


@pytest.fixture
def sources() -> Any:
    made: list[Source] = []

    def make(*args: Any, **kwargs: Any) -> PushSource:
        s = PushSource(*args, **kwargs)
        made.append(s.start())
        return s

    yield make
    for s in made:
        s.stop()


def test_newest_frame_of_each_stream_in_one_call(sources: Any) -> None:
    a, b = sources("a"), sources("b")
    for _ in range(3):
        a.push()
    b.push(height=4, width=6)
    det = FakeDetector()
    batcher = Batcher(det, [a, b], max_wait_ms=60_000)  # both streams have a frame: no wait for the window
    results = batcher.step()
    assert [r.frame.stream for r in results] == ["a", "b"]
    assert results[0].frame.index == 2  # a's newest of 0, 1, 2
    assert [r.detections.image_shape for r in results] == [(8, 8), (4, 6)]
    assert det.calls == [[(8, 8), (4, 6)]]  # one call, batch of 2
    assert a.stats.frames_dropped == 2  # the two older frames of a


def test_max_batch_serves_the_longest_waiting_first_and_replaces_stale_frames(sources: Any) -> None:
    a, b = sources("a"), sources("b")
    a.push()
    b.push()
    batcher = Batcher(FakeDetector(), [a, b], max_batch=1, max_wait_ms=0)
    first = collect_in_thread(batcher)
    assert [f.stream for f in first] == ["a"]  # a's frame came first
    a.push()  # a's next frame arrives while b's still waits
    second = collect_in_thread(batcher)
    assert [f.stream for f in second] == ["b"]  # b has waited longer than a's new frame
    a.push()  # replaces a's waiting frame: only the newest is kept
    third = collect_in_thread(batcher)
    assert [(f.stream, f.index) for f in third] == [("a", 2)]
    assert batcher.replaced["a"] == 1


def test_a_batch_waits_for_live_streams_only(sources: Any) -> None:
    a, b, never = sources("a"), sources("b"), sources("never")
    a.push()
    b.push()
    # `never` has delivered nothing: not live, so the batch does not wait for it (a 60 s wait would time out).
    batcher = Batcher(FakeDetector(), [a, b, never], max_wait_ms=60_000)
    assert [f.stream for f in collect_in_thread(batcher)] == ["a", "b"]
    # b is live (it delivered just now): a batch holding a's next frame waits for b's, which comes later.
    a.push()
    timer = threading.Timer(0.2, b.push)
    timer.start()
    assert [f.stream for f in collect_in_thread(batcher)] == ["a", "b"]
    timer.join()
    # ... but only up to max_wait_ms: without a frame from b in time, a's frame leaves alone.
    batcher.max_wait_s = 0.03
    a.push()
    assert [f.stream for f in collect_in_thread(batcher)] == ["a"]


def test_lossless_source_loses_nothing(sources: Any) -> None:
    a = sources("file", lossless=True, queue_size=2)
    pusher = threading.Thread(target=lambda: [a.push() for _ in range(6)], daemon=True)
    pusher.start()  # blocks whenever 2 frames wait: a lossless source waits for room
    batcher = Batcher(FakeDetector(), [a], max_wait_ms=0)
    got = [f.index for _ in range(6) for f in collect_in_thread(batcher)]
    pusher.join(10.0)
    assert got == [0, 1, 2, 3, 4, 5]
    assert batcher.replaced["file"] == 0 and a.stats.frames_dropped == 0


def test_end_of_input_and_stop(sources: Any) -> None:
    a = sources("a")
    a.push()
    batcher = Batcher(FakeDetector(), [a], max_wait_ms=0)
    a.end()
    assert [f.index for f in collect_in_thread(batcher)] == [0]  # what was buffered is still delivered
    assert collect_in_thread(batcher) == [] and batcher.exhausted
    b = sources("b")
    stop = threading.Event()
    stop.set()
    assert collect_in_thread(Batcher(FakeDetector(), [b]), stop) == [] and not b.finished


@pytest.mark.parametrize(
    ("buckets", "configured", "expected"),
    [
        (None, None, DEFAULT_MAX_BATCH),  # eager detector, nothing configured
        ((1, 2, 4), None, 4),  # the engine's largest bucket
        ((1, 2, 4), 2, 2),  # the config wins
        (None, 3, 3),
    ],
)
def test_max_batch_source(buckets: tuple[int, ...] | None, configured: int | None, expected: int) -> None:
    det = FakeDetector(buckets)
    assert engine_max_batch(det) == (max(buckets) if buckets else None)
    assert Batcher(det, [], max_batch=configured).max_batch == expected


# ---- the real detector --------------------------------------------------------------------------

MIRRORED = tuple(  # the default scene left-right mirrored: same shapes, other places
    Shape(s.kind, s.color, s.size, tuple((t, 1 - x, y) for t, x, y in s.path)) for s in Scene().shapes
)
SMALL = Scene(width=320, height=180, fps=10, n_frames=12)
LARGE = Scene(width=640, height=360, fps=10, n_frames=12, shapes=MIRRORED)


def iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    lt, rb = torch.maximum(a[:, None, :2], b[None, :, :2]), torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = lambda x: (x[:, 2:] - x[:, :2]).prod(-1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def matched(det: Detections, scene: Scene, index: int) -> int:
    """How many ground-truth shapes of ``scene`` frame ``index`` a detection of the same class covers
    with IoU > 0.5 (a box in the wrong stream's pixels, or from the other scene, overlaps none)."""
    gt = ground_truth(scene, index)
    boxes = torch.tensor([g.xyxy for g in gt])
    ious = iou(boxes, det.xyxy)
    same = torch.tensor([g.cls for g in gt])[:, None] == det.cls[None, :]
    return int(((ious > 0.5) & same).any(1).sum())


def test_two_frame_sizes_share_one_call_and_results_go_back_to_their_stream(tmp_path: Path, fixtures: Path) -> None:
    detector = load(fixtures / "checkpoints" / "yolo11n-shapes.pt", imgsz=320)
    shapes: list[tuple[int, ...]] = []
    infer = detector.infer
    detector.infer = lambda batch: shapes.append(tuple(batch.images.shape)) or infer(batch)  # type: ignore[method-assign]
    small = VideoFileSource("small", write_mp4(tmp_path / "small.mp4", SMALL), realtime=False).start()
    large = VideoFileSource("large", write_mp4(tmp_path / "large.mp4", LARGE), realtime=False).start()
    try:
        # Both streams hold a frame before the first batch: one that has not delivered yet is not waited
        # for. A source turns "running" only after its first frame is buffered; `frames_decoded` counts a
        # frame before it is buffered (waiting on it let CI's first batch hold one stream only).
        deadline = time.monotonic() + 30
        while not (small.stats.state == large.stats.state == "running"):
            assert time.monotonic() < deadline, "sources did not start"
            time.sleep(0.01)
        batcher = Batcher(detector, [small, large], max_batch=2, max_wait_ms=60_000)
        results = [r for _ in range(3) for r in batcher.step()]
    finally:
        small.stop()
        large.stop()
    assert shapes == [(2, 3, 320, 320)] * 3  # both streams in each call, letterboxed to one input size
    for r in results:
        scene, other = (SMALL, LARGE) if r.frame.stream == "small" else (LARGE, SMALL)
        assert r.detections.image_shape == (scene.height, scene.width) == r.frame.shape
        n_gt = len(ground_truth(scene, r.frame.index))
        # Every shape is found in its own stream's frame (the model finds these reliably at imgsz 320) ...
        assert matched(r.detections, scene, r.frame.index) == n_gt, (r.frame.stream, r.detections.to_list())
        # ... and the boxes are not the other stream's (mirrored scene, other pixel size).
        assert matched(r.detections, other, r.frame.index) < n_gt
        assert r.inference_done >= r.frame.timestamp
    assert sorted((r.frame.stream, r.frame.index) for r in results) == [
        (s, i) for s in ("large", "small") for i in range(3)
    ]
