"""The compiled engine: buckets, no graph breaks, no recompiles after warm-up, compiled == eager, AOT packages."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

from yolostream.api import load
from yolostream.engine.buckets import Bucket, choose_bucket, pad_to_bucket, parse_bucket, parse_buckets
from yolostream.engine.runtime import native_bf16
from yolostream.errors import ConfigError, ShapeError
from yolostream.preprocess.inputs import read_image

BUCKETS = ["1x128x128", "2x96x128"]


# --- buckets (no compilation) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1x640x640", Bucket(1, 640, 640)),
        ("8X384x640", Bucket(8, 384, 640)),  # case-insensitive
        ((4, 96, 128), Bucket(4, 96, 128)),
    ],
)
def test_parse_bucket(text, expected):
    assert parse_bucket(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1x640", "BATCHxHEIGHTxWIDTH"),
        ("axbxc", "BATCHxHEIGHTxWIDTH"),
        ("1x600x640", "multiples of 32"),  # 600 is not a multiple of the stride 32
        ("0x640x640", "batch must be >= 1"),
        ((1, 640), "three values"),
    ],
)
def test_parse_bucket_errors(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_bucket(text)


def test_choose_bucket_takes_the_smallest_that_fits():
    buckets = parse_buckets(["8x640x640", "1x640x640", "4x384x640", "1x640x640"])
    assert buckets == (Bucket(1, 640, 640), Bucket(4, 384, 640), Bucket(8, 640, 640))  # sorted, deduplicated
    assert choose_bucket(buckets, 1, 384, 640) == Bucket(4, 384, 640)  # same size: pad the batch, not the picture
    assert choose_bucket(buckets, 1, 352, 640) == Bucket(1, 640, 640)  # no exact size: smallest that holds it
    assert choose_bucket(buckets, 2, 384, 640) == Bucket(4, 384, 640)
    assert choose_bucket(buckets, 3, 640, 640) == Bucket(8, 640, 640)
    assert choose_bucket(buckets, 9, 640, 640) is None  # batch too large
    assert choose_bucket(buckets, 1, 640, 672) is None  # too wide


def test_pad_to_bucket_keeps_the_picture_in_place():
    x = torch.arange(2 * 3 * 64 * 96, dtype=torch.int64).remainder(200).to(torch.uint8).view(2, 3, 64, 96)
    out = pad_to_bucket(x, Bucket(3, 96, 128))
    assert out.shape == (3, 3, 96, 128)
    assert torch.equal(out[:2, :, :64, :96], x)  # top-left untouched: box coordinates stay valid
    assert (out[:2, :, 64:] == 114).all() and (out[:2, :, :, 96:] == 114).all() and (out[2] == 114).all()
    with pytest.raises(ShapeError):
        pad_to_bucket(x, Bucket(1, 96, 128))


# --- the compiled engine (Inductor; slow on 2 cores) -----------------------------------------


@pytest.fixture(scope="module")
def pictures(fixtures):
    names = ["synth/0003.jpg", "synth/0007.jpg", "synth/0033.jpg", "scene_1280x720.jpg"]
    return [np.ascontiguousarray(read_image(fixtures / "images" / n).permute(1, 2, 0).numpy()) for n in names]


@pytest.fixture(scope="module")
def eager(fixtures):
    return load(fixtures / "checkpoints" / "yolo11n-shapes.pt", imgsz=128, conf=0.05)


@pytest.fixture(scope="module")
def compiled(fixtures):
    torch._dynamo.reset()
    return load(
        fixtures / "checkpoints" / "yolo11n-shapes.pt", imgsz=128, conf=0.05, compile="default", buckets=BUCKETS
    )


def _assert_same(a, b, box_tol: float, conf_tol: float) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert len(x) == len(y) and torch.equal(x.cls, y.cls)
        assert _maxabs(x.xyxy - y.xyxy) <= box_tol
        assert _maxabs(x.conf - y.conf) <= conf_tol


def _maxabs(t: torch.Tensor) -> float:
    return float(t.abs().max()) if t.numel() else 0.0


@pytest.mark.slow
def test_compiled_equals_eager(compiled, eager, pictures):
    # fp32: Inductor's fused kernels reorder float sums; measured <= 2e-6 on conf and ~1e-4 px on boxes of
    # pictures up to 1280 px, i.e. ~1e-7 relative. Bounds: conf 1e-4, boxes 1e-4 x 1280 px.
    for batch in ([pictures[0]], pictures[1:3]):  # bucket 1x128x128, then 2x96x128 (square 128 -> fits 1x128 only)
        _assert_same(compiled(batch[:1]), eager(batch[:1]), box_tol=0.128, conf_tol=1e-4)
    rect = compiled.with_config(mode="rect")
    assert rect.runner is compiled.runner  # thresholds and letterbox mode do not change the graph
    # 1280x720 in rect mode at 128 -> 96x128 input: bucket 2x96x128 (batch padded, picture untouched).
    _assert_same(rect(pictures[3:]), eager.with_config(mode="rect")(pictures[3:]), box_tol=0.128, conf_tol=1e-4)


@pytest.mark.slow
def test_spatial_padding_equals_eager_on_the_padded_input(compiled, eager, pictures):
    # A 96x160 input fits no bucket width exactly... use a 64x128 rect input (2:1 picture) in 1x128x128:
    # it is padded with grey rows below; the result is eager's on that padded input.
    from yolostream.detector import Batch
    from yolostream.engine.buckets import pad_to_bucket

    wide = np.ascontiguousarray(np.concatenate([pictures[3], pictures[3]], axis=1))  # 720 x 2560
    rect = compiled.with_config(mode="rect")
    batch = rect.preprocess([wide])
    assert tuple(batch.images.shape[2:]) == (64, 128)
    ours = rect.postprocess(rect.infer(batch), batch.plans)
    padded = Batch(pad_to_bucket(batch.images, compiled.runner.bucket_for(1, 64, 128)), batch.plans)
    ref = eager.with_config(mode="rect")
    _assert_same(ours, ref.postprocess(ref.infer(padded), padded.plans), box_tol=0.128 * 2, conf_tol=1e-4)


@pytest.mark.slow
def test_no_recompile_after_warmup(compiled, pictures):
    # 100 calls mixing both buckets, short batches, rect and square inputs: no new graph, no recompile.
    rect = compiled.with_config(mode="rect")
    before = dict(counters["stats"])
    frames_before = counters["stats"]["unique_graphs"]
    for i in range(100):
        if i % 3 == 0:
            compiled([pictures[i % 4]])  # 1x128x128
        elif i % 3 == 1:
            rect([pictures[3], pictures[3]])  # 2 x 72x128 rect -> bucket 2x96x128
        else:
            rect([pictures[3]])  # short batch: 1 x 72x128 -> bucket 1x128x128
    assert counters["stats"]["unique_graphs"] == frames_before, (before, dict(counters["stats"]))


@pytest.mark.slow
def test_outside_every_bucket(compiled, pictures):
    too_big = compiled.with_config(imgsz=160)
    with pytest.raises(ShapeError, match="fits none of the compiled buckets"):
        too_big([pictures[0]])
    with pytest.raises(ShapeError, match="fits none"):
        compiled([pictures[0]] * 3)  # batch 3 > 2
    runner = compiled.runner
    graphs = counters["stats"]["unique_graphs"]
    runner.outside = "eager"
    try:
        out = too_big([pictures[0]])  # runs through the uncompiled graph, compiles nothing
    finally:
        runner.outside = "error"
    assert counters["stats"]["unique_graphs"] == graphs
    _assert_same(out, too_big.with_config(nms=True, max_candidates=29999)([pictures[0]]), 1e-3, 1e-5)


@pytest.mark.slow
def test_shared_between_threads(compiled, eager, pictures):
    expected = [eager([p]) for p in pictures]
    graphs = counters["stats"]["unique_graphs"]
    errors, results = [], {}

    def worker(k: int) -> None:
        try:
            results[k] = [compiled([pictures[(k + i) % 4]]) for i in range(8)]
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for k, outs in results.items():
        for i, out in enumerate(outs):
            _assert_same(out, expected[(k + i) % 4], box_tol=0.128, conf_tol=1e-4)
    assert counters["stats"]["unique_graphs"] == graphs


@pytest.mark.slow
@pytest.mark.skipif(not native_bf16(), reason="bf16 is only used on CPUs with native bf16 (AVX512-BF16/AMX)")
def test_bf16_close_to_fp32(fixtures, eager, pictures):
    bf16 = load(
        fixtures / "checkpoints" / "yolo11n-shapes.pt",
        imgsz=128,
        conf=0.05,
        dtype="bf16",
        compile="default",
        buckets=["1x128x128"],
    )
    # bf16 keeps 8 mantissa bits (relative step 2^-8 = 0.4%); through ~100 layers the class scores move
    # by up to ~1e-2 and box corners by ~1 px at 128 px. Detections well above the threshold must stay.
    for p in pictures:
        a, b = bf16([p])[0], eager([p])[0]
        strong = b[b.conf > 0.25]
        for i in range(len(strong)):
            iou_best = _best_iou(strong.xyxy[i], a.xyxy[a.cls == strong.cls[i]])
            assert iou_best > 0.9
        n = min(len(a), len(b), 3)
        assert _maxabs(a.conf[:n] - b.conf[:n]) <= 0.03


def _best_iou(box, boxes):
    from yolostream.postprocess.boxes import box_iou

    return float(box_iou(box[None], boxes).max()) if len(boxes) else 0.0


@pytest.mark.slow
def test_aot_package_serves_without_compiling(compiled, eager, pictures, tmp_path):
    from yolostream.engine.aot import export_package

    path = tmp_path / "model.pt2"
    export_package(compiled, compiled.runner.buckets, path)
    graphs = counters["stats"]["unique_graphs"]
    start = time.perf_counter()
    package = load(path, conf=0.05)
    load_seconds = time.perf_counter() - start
    assert package.compiled and type(package.runner).__name__ == "AotRunner"
    _assert_same(package([pictures[0]]), eager([pictures[0]]), box_tol=0.128, conf_tol=1e-4)
    rect = package.with_config(mode="rect")
    _assert_same(rect(pictures[3:] * 2), eager.with_config(mode="rect")(pictures[3:] * 2), box_tol=0.128, conf_tol=1e-4)
    assert counters["stats"]["unique_graphs"] == graphs  # nothing went through torch.compile
    assert load_seconds < 30  # not a benchmark: a load that compiled would take minutes here
    with pytest.raises(ConfigError, match="already compiled"):
        load(path, compile="default")
