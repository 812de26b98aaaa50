"""`quantize_model`: float checkpoint -> INT8 AOTInductor package, written only if the accuracy gate passes.

Steps: calibrate and convert per bucket (`quantize_network`); gate the fake-quant (eager q/dq) network
against eager fp32 (mAP50-95 drop on ``val``, match share on the pictures); AOT-compile the INT8 graph
(Inductor lowers the q/dq pairs to oneDNN int8 convolutions); load the package and measure the match share
again with the real int8 kernels, recorded beside the gate in the package's metadata.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from yolostream.api import load
from yolostream.detector import Detector
from yolostream.engine.buckets import parse_buckets
from yolostream.errors import ConfigError
from yolostream.graph import InferenceGraph
from yolostream.quant.calibration import CalibSource, calibration_batches, calibration_files
from yolostream.quant.gate import MAX_MAP_DROP, MIN_MATCH, GateResult, accuracy_gate, match_share, validation_twin
from yolostream.quant.pt2e import KEEP_FLOAT, quantize_network

log = logging.getLogger("yolostream.quant")


@dataclass
class QuantizeReport:
    """The gate on the fake-quant network, the match share of the compiled package, where it was written."""

    gate: GateResult
    path: Path | None = None
    compile_s: dict[str, float] = field(default_factory=dict)
    lowered_match_share: float | None = None
    float_layers: list[str] = field(default_factory=list)
    n_calibration: int = 0


def quantize_model(
    model: str | os.PathLike[str],
    calib: CalibSource | None,
    *,
    out: str | os.PathLike[str] | None = None,
    val: str | os.PathLike[str] | None = None,
    imgsz: int = 640,
    buckets: Sequence[str] | None = None,
    nms: bool = True,
    keep_float: Sequence[str] = KEEP_FLOAT,
    max_map_drop: float = MAX_MAP_DROP,
    min_match: float = MIN_MATCH,
    pictures: Sequence[Any] | None = None,
    force: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> QuantizeReport:
    """Quantize ``model`` on ``calib`` and, if the gate passes (or ``force``), write the package to ``out``.

    ``pictures``: inputs for the match share (default: the calibration pictures). ``out`` None: gate only.
    """
    reference = load(model, imgsz=imgsz, nms=nms)
    files = calibration_files(calib)
    parsed = parse_buckets(buckets or [(1, imgsz, imgsz)])
    calibration = {b: calibration_batches(files, b) for b in parsed}
    network = quantize_network(
        reference.model, calibration, one2one=reference.graph_config.one2one, keep_float=keep_float
    )  # type: ignore[arg-type]
    config = replace(reference.config, dtype="int8")
    fake = Detector(
        None, reference.spec, reference.names, config, runner=InferenceGraph(network, reference.graph_config)
    )  # type: ignore[arg-type]
    checks = list(pictures) if pictures is not None else [str(p) for p in files]
    twins = (validation_twin(reference, reference.model), validation_twin(reference, network), val) if val else None  # type: ignore[arg-type]
    gate = accuracy_gate(reference, fake, checks, val=twins, max_map_drop=max_map_drop, min_match=min_match)  # type: ignore[arg-type]
    report = QuantizeReport(gate, float_layers=list(network.float_layers), n_calibration=len(files))
    log.info("INT8 accuracy gate (fake-quant): %s: %s", "passed" if gate.passed else "FAILED", gate.reason)
    if out is None or not (gate.passed or force):
        return report

    from yolostream.engine.aot import export_package
    from yolostream.engine.backends import int8_float_parts
    from yolostream.quant.bias_pass import with_bias_pass

    holder = Detector(
        reference.model, reference.spec, reference.names, config, source=reference.source, arch=reference.arch
    )
    # The float remainder in the precision the in-process INT8 backend gives it on this machine (bf16 where
    # the CPU has it natively): a package is built for the CPU flags of the machine that builds it anyway.
    packaged_config = replace(reference.graph_config, amp=int8_float_parts(reference.device))
    quantization = {"gate": gate.to_dict(), "float_layers": report.float_layers, "calibration": len(files),
                    "stem_weight_bits": network.stem_weight_bits}  # fmt: skip
    extra = {"quantization": {**quantization, "float_parts": packaged_config.amp or "fp32"}}
    report.compile_s = export_package(
        holder,
        parsed,
        out,
        progress=progress,
        graph=InferenceGraph(network, packaged_config),  # type: ignore[arg-type]
        extra=extra,
        inductor_options=with_bias_pass(packaged_config.amp, None),
    )
    report.path = Path(out)
    if all((b.height, b.width) == (imgsz, imgsz) for b in parsed[:1]):
        packaged = load(out)
        report.lowered_match_share = match_share(reference, packaged, checks)[0]
        log.info(
            "INT8 package %s: %.0f%% of fp32 detections kept with the int8 kernels",
            out,
            100 * report.lowered_match_share,
        )
    return report


def check_float_groups(groups: Sequence[str]) -> tuple[str, ...]:
    """``--keep-float`` values, checked (an empty list quantizes every layer)."""
    from yolostream.quant.pt2e import KEEP_CHOICES

    bad = [g for g in groups if g not in KEEP_CHOICES]
    if bad:
        raise ConfigError(f"--keep-float {bad}: choose from {', '.join(KEEP_CHOICES)}")
    return tuple(groups)
