"""The accuracy gate: a faster configuration is kept only if its detections stay those of eager fp32.

Two measures, both against the eager fp32 detector on the same inputs:
- ``match_share``: the share of the reference's detections found again (same class, IoU >= 0.9, matched one
  to one, `yolostream.bench.accuracy.compare_detections`) on the given pictures, at the serving thresholds;
- ``map_drop``: mAP50-95 of the reference minus the candidate's on a validation set (``yolostream val``'s
  computation, square letterbox so one bucket serves every picture), when the user names one.
The gate passes when the mAP drop is at most ``max_map_drop`` (default 0.01) where measured, and the match
share at least ``min_match`` (default 0.9: INT8 moves a few scores across the threshold; a broken
quantization loses most boxes).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from yolostream.bench.accuracy import compare_detections, merge
from yolostream.detector import Detector, DetectorConfig
from yolostream.graph import InferenceGraph

MAX_MAP_DROP = 0.01
MIN_MATCH = 0.9
# Ultralytics' val settings (what `yolostream val` uses): the mAP figures are comparable with theirs.
VAL_CONF, VAL_IOU, VAL_MAX_DET = 0.001, 0.7, 300


@dataclass
class GateResult:
    """What the gate measured and decided. ``map_*`` are None when no validation set was given."""

    passed: bool
    reason: str
    match_share: float
    n_ref: int
    n_matched: int
    map_ref: float | None = None
    map_test: float | None = None
    map_drop: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def match_share(reference: Detector, test: Detector, pictures: Sequence[Any]) -> tuple[float, int, int]:
    """(share, n_ref, n_matched) of the reference's detections that ``test`` finds again on ``pictures``.
    No reference detection at all counts as a full match only if ``test`` finds none either."""
    diffs = [compare_detections(reference([p])[0], test([p])[0]) for p in pictures]
    total = merge(diffs)
    if total.n_ref == 0:
        return (1.0 if total.n_test == 0 else 0.0), 0, 0
    return total.matched / total.n_ref, total.n_ref, total.matched


def validation_twin(detector: Detector, network: nn.Module) -> Detector:
    """An eager detector running ``network`` (a `YOLO` stand-in: the INT8 graphs, another runtime's model)
    in a graph with the validation settings, so `validate` keeps it instead of falling back to eager fp32."""
    config = DetectorConfig(
        imgsz=detector.config.imgsz,
        conf=VAL_CONF,
        iou=VAL_IOU,
        max_det=VAL_MAX_DET,
        nms=detector.config.nms,
        multi_label=True,
    )
    graph = InferenceGraph(network, config.graph_config(detector.spec.end2end, detector.device))  # type: ignore[arg-type]
    return Detector(None, detector.spec, detector.names, config, detector.device, detector.source, detector.arch, graph)


def map50_95(detector: Detector, data_yaml: str | os.PathLike[str]) -> float:
    """mAP50-95 of ``detector`` on the validation split, square letterbox at its imgsz, batch 1."""
    from yolostream.val.run import validate

    imgsz = detector.config.imgsz
    result = validate(detector, data_yaml, imgsz=imgsz, conf=VAL_CONF, iou=VAL_IOU, max_det=VAL_MAX_DET, rect=False)
    return float(result["map50_95"])


def accuracy_gate(
    reference: Detector,
    test: Detector,
    pictures: Sequence[Any],
    *,
    val: tuple[Detector, Detector, str | os.PathLike[str]] | None = None,
    max_map_drop: float = MAX_MAP_DROP,
    min_match: float = MIN_MATCH,
) -> GateResult:
    """Decide whether ``test`` may replace the eager fp32 ``reference``.

    pictures: inputs for the match share (at the detectors' own thresholds).
    val: (reference, test) validation twins (`validation_twin`) and a data.yaml, for the mAP drop.
    """
    share, n_ref, n_matched = match_share(reference, test, pictures)
    result = GateResult(False, "", share, n_ref, n_matched)
    reasons = []
    if val is not None:
        ref_val, test_val, data = val
        result.map_ref, result.map_test = map50_95(ref_val, data), map50_95(test_val, data)
        result.map_drop = result.map_ref - result.map_test
        if result.map_drop > max_map_drop:
            reasons.append(f"mAP50-95 drops by {result.map_drop:.4f} > {max_map_drop}")
    if share < min_match:
        reasons.append(f"only {n_matched}/{n_ref} reference detections kept ({share:.0%} < {min_match:.0%})")
    result.passed = not reasons
    if result.passed:
        drop = f", mAP50-95 drop {result.map_drop:.4f}" if result.map_drop is not None else ""
        result.reason = f"{n_matched}/{n_ref} reference detections kept{drop}"
    else:
        result.reason = "; ".join(reasons)
    return result
