"""OpenVINO behind `Detector`: the network exported per bucket, converted, compiled for OpenVINO's CPU plugin.

The exported program is converted directly (``openvino.convert_model``), so no ONNX file is needed. Precision:
"fp32"; "bf16" where the CPU has it natively (OpenVINO's own default there, set explicitly so the figures do
not change meaning with the host); "int8": NNCF post-training quantization of the converted model on the
same calibration pictures as the Inductor INT8 path, for a like-for-like comparison (``nncf``, optional).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from yolostream.cpus import spread_threads
from yolostream.engine import runtime
from yolostream.engine.buckets import Bucket
from yolostream.engine.external import BranchNetwork, ExternalNetwork, Session
from yolostream.engine.runtime import quiet_loggers, usable_cores
from yolostream.errors import ConfigError

log = logging.getLogger("yolostream.engine")
PRECISIONS = ("fp32", "bf16", "int8")
_HINT = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}  # int8: what is left in float (bf16 where native)


def available(precision: str = "fp32") -> bool:
    """Whether openvino (and nncf, for "int8") is installed, without importing them."""
    mods = ["openvino", *(["nncf"] if precision == "int8" else [])]
    return all(importlib.util.find_spec(m) is not None for m in mods)


def native_bf16(core: Any = None) -> bool:
    """Whether OpenVINO's CPU plugin reports native bf16 here (AVX512-BF16 / AMX) and no ISA cap forbids it.

    The plugin reads the CPU's own flags, but the oneDNN inside it obeys ``ONEDNN_MAX_CPU_ISA``: under an AVX2
    cap on a bf16 CPU it would ask for bf16 kernels that oneDNN then refuses ("Supported primitive descriptors
    list is empty"), so the cap-aware `runtime.native_bf16` has the last word.
    """
    if not runtime.native_bf16():
        return False
    if core is None:
        core = importlib.import_module("openvino").Core()
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def _nncf_quantize(ov_model: Any, batches: Sequence[torch.Tensor]) -> Any:
    import nncf

    data = nncf.Dataset([(b.float() / 255).numpy() for b in batches])
    # The decode at the end of the graph (anchor offsets, stride scaling, sigmoid, the DFL softmax) stays in
    # float, as the Inductor path keeps the head's outputs: int8 steps there move boxes by whole pixels.
    ignored = nncf.IgnoredScope(types=["Multiply", "Subtract", "Sigmoid", "Softmax"], validate=False)
    with quiet_loggers("nncf", level=logging.WARNING):  # it logs every node it leaves in float at INFO
        return nncf.quantize(
            ov_model, data, subset_size=len(batches), preset=nncf.QuantizationPreset.MIXED, ignored_scope=ignored
        )


def build_sessions(
    model: nn.Module,
    buckets: Sequence[Bucket],
    *,
    one2one: bool,
    precision: str = "fp32",
    threads: int | None = None,
    calibration: Mapping[Bucket, Sequence[torch.Tensor]] | None = None,
) -> tuple[ExternalNetwork, dict[str, float], str]:
    """One compiled OpenVINO model per bucket: (network, build seconds per bucket, openvino version).

    ``model``: the float32 `YOLO` (eval); ``calibration``: uint8 batches per bucket ("int8" only).
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"dtype={precision!r}: the openvino backend supports {', '.join(PRECISIONS)}")
    if not available(precision):
        extra = "openvino" if precision != "int8" else "openvino,int8"
        raise ModuleNotFoundError(
            f"openvino{' / nncf' if precision == 'int8' else ''} not installed: pip install 'yolostream[{extra}]'"
        )
    ov = importlib.import_module("openvino")
    # The CPU plugin reads the CPUs it may use when it loads, and starts its worker threads on the first
    # inference, both with the calling thread's mask: OpenMP binding may have pinned that thread to one core.
    with spread_threads():
        return _build(ov, model, buckets, one2one, precision, threads, calibration)


def _build(
    ov: Any,
    model: nn.Module,
    buckets: Sequence[Bucket],
    one2one: bool,
    precision: str,
    threads: int | None,
    calibration: Mapping[Bucket, Sequence[torch.Tensor]] | None,
) -> tuple[ExternalNetwork, dict[str, float], str]:
    """`build_sessions` after its checks: convert, quantize, compile and run once per bucket."""
    core = ov.Core()
    if precision == "bf16" and not native_bf16(core):
        raise ConfigError(
            "dtype='bf16': this CPU has no native bf16 (avx512_bf16 / amx_bf16); OpenVINO would emulate it"
        )
    if precision == "int8" and not calibration:
        raise ConfigError("dtype='int8' needs calibration batches")
    # INT8's float remainder in bf16 where the CPU has it natively (OpenVINO's own default there), as the
    # Inductor INT8 path does (`backends.int8_float_parts`): the comparison stays like for like.
    hint = "bf16" if precision == "int8" and native_bf16(core) else _HINT[precision]
    config = {
        "INFERENCE_NUM_THREADS": threads or usable_cores(),
        "INFERENCE_PRECISION_HINT": hint,
        "PERFORMANCE_HINT": "LATENCY",
    }
    root = BranchNetwork(model.eval(), one2one).eval()
    sessions: dict[Bucket, Session] = {}
    seconds: dict[str, float] = {}
    for bucket in buckets:
        start = time.perf_counter()
        x = torch.zeros(bucket.batch, 3, bucket.height, bucket.width)
        with torch.no_grad():
            converted = ov.convert_model(torch.export.export(root, (x,), strict=False))
        if precision == "int8":
            converted = _nncf_quantize(converted, calibration[bucket])  # type: ignore[index]
        request = core.compile_model(converted, "CPU", config).create_infer_request()
        request.infer({0: x.numpy()})  # starts the worker threads here, inside `spread_threads`
        # share_outputs=False: the request reuses its output buffer on the next call.
        sessions[bucket] = lambda a, r=request: r.infer({0: a}, share_inputs=True, share_outputs=False)[0]
        seconds[str(bucket)] = time.perf_counter() - start
        log.info("openvino %s: built bucket %s in %.1fs", precision, bucket, seconds[str(bucket)])
    return ExternalNetwork(sessions, one2one), seconds, str(ov.get_version())
