"""The anchor-major best-class decode (`decode_best`, what the compiled graph serves for NMS candidates)
against Ultralytics' own decoded output, and its two reductions against the ops they replace."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from candidate_rows import rows_match  # tests/candidate_rows.py

from yolostream.graph import GraphConfig, InferenceGraph
from yolostream.models.head import DFL, _expected_bin, _max_first, decode_best
from yolostream.models.load import model_from_checkpoint
from yolostream.postprocess.boxes import xywh_to_xyxy
from yolostream.weights import read_checkpoint

ONE2MANY = ["yolov5nu-random", "yolov8n-random", "yolo11n-random", "yolov10n-random", "yolo26n-random"]
ONE2MANY += ["yolo11n-shapes", "yolo26n-shapes"]


@pytest.mark.parametrize("name", ONE2MANY)
def test_matches_the_reference_decode(name, fixtures):
    # Reference: Ultralytics' decoded one-to-many output y [1, 4 + nc, A] (xywh px, sigmoid scores), with
    # its boxes to xyxy and its best class per anchor. Tolerance 1e-4 x max|ref| as for the raw outputs
    # (test_models: float32 rounding of convolutions, ~1e-7 relative measured).
    model, _ = model_from_checkpoint(read_checkpoint(fixtures / "checkpoints" / f"{name}.pt"))
    ref = np.load(fixtures / "reference" / f"{name}.raw.npz")
    y = torch.from_numpy(ref["y"])[0].t()  # [A, 4 + nc]
    ref_boxes, ref_scores = xywh_to_xyxy(y[:, :4]), y[:, 4:]
    top2 = ref_scores.topk(2, dim=1).values
    ref_best, ref_cls = ref_scores.max(1)
    x = torch.from_numpy(ref["input_rgb_uint8"]).float()[None] / 255
    with torch.inference_mode():
        best = decode_best(model.head.levels(model.features(x)), model.head.strides, model.head.reg_max)
    assert best.boxes.shape == (1, y.shape[0], 4) and best.boxes.dtype == torch.float32
    assert float((best.boxes[0] - ref_boxes).abs().max()) <= 1e-4 * float(ref_boxes.abs().max())
    assert float((best.scores[0] - ref_best).abs().max()) <= 1e-4
    # The class must agree wherever the reference's top two differ by more than that tolerance (closer
    # than it, either is the reference's answer within float rounding: a trained model's background anchors
    # are all ~0 -- those are not checked). Enough anchors must be so decided for the check to mean something.
    decided = (top2[:, 0] - top2[:, 1]) > 1e-4
    assert int(decided.sum()) >= 1000
    assert torch.equal(best.classes[0][decided], ref_cls[decided])


@pytest.mark.parametrize("name", ["yolov8n-random", "yolo26n-random"])  # reg_max 16 and 1
def test_serving_path_equals_the_all_scores_path(name, fixtures):
    # Same graph, both paths, on the reference picture: the candidates agree row for row.
    model, _ = model_from_checkpoint(read_checkpoint(fixtures / "checkpoints" / f"{name}.pt"))
    graph = InferenceGraph(model, GraphConfig(max_candidates=1000))
    ref = np.load(fixtures / "reference" / f"{name}.raw.npz")
    images = torch.from_numpy(ref["input_rgb_uint8"])[None]
    conf = torch.tensor(0.01)
    with torch.inference_mode():
        fast = graph(images, conf)
        x = graph.network_input(images)
        full = graph.all_scores(x, conf)
    assert int(fast.valid.sum()) > 0
    # The same sigmoid of the same logit; boxes differ by the DFL's sum order only (~1e-7 relative). Rows
    # are matched rather than compared in place: a random model's near-equal scores may sort either way.
    assert rows_match(fast, full, box_tol=1e-4 * images.shape[-1], score_tol=1e-6)


def test_max_first_is_max_with_the_first_index():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(3, 50, 80, generator=g)
    s[0, 0, [3, 7]] = 9.0  # a tie: the first index, as torch.max and argmax return
    s[1, 2] = -torch.inf
    s[1, 2, 79] = 0.0
    best, cls = _max_first(s)
    ref_best, ref_cls = s.max(-1)
    assert torch.equal(best, ref_best) and torch.equal(cls, ref_cls)
    assert int(cls[0, 0]) == 3 and int(cls[1, 2]) == 79 and cls.dtype == torch.int64
    s[2, 5, 10] = torch.nan
    best, cls = _max_first(s)
    assert bool(best[2, 5].isnan()) and 0 <= int(cls[2, 5]) < 80  # a class id that exists; its score fails conf


def test_expected_bin_is_dfl_and_safe_for_large_logits():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 64, 300, generator=g) * 4  # DFL's [B, 4 * reg_max, A]
    logits[0, :16, 0] += 500.0  # exp(500) overflows float32: the max must be taken out first
    ref = DFL(16)(logits)  # [B, 4, A]
    ours = _expected_bin(logits.view(2, 4, 16, 300).transpose(2, 3))
    assert bool(ours.isfinite().all())
    assert float((ours - ref).abs().max()) <= 1e-5  # bins 0..15: ~1e-7 relative rounding
