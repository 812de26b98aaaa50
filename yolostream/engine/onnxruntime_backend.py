"""ONNX Runtime behind `Detector`: the network exported to a static-shape ONNX file per bucket (fp32)."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from torch import nn

from yolostream.engine.baselines import OnnxRuntimeRunner, export_available, export_onnx
from yolostream.engine.buckets import Bucket
from yolostream.engine.external import ExternalNetwork, Session
from yolostream.engine.runtime import quiet_loggers
from yolostream.errors import ConfigError

log = logging.getLogger("yolostream.engine")
PRECISIONS = ("fp32",)


def available(precision: str = "fp32") -> bool:
    """Whether the export (onnx, onnxscript) and onnxruntime are installed, for a supported precision."""
    return precision in PRECISIONS and export_available() and OnnxRuntimeRunner.available()


def build_sessions(
    model: nn.Module, buckets: Sequence[Bucket], *, one2one: bool, precision: str = "fp32", threads: int | None = None
) -> tuple[ExternalNetwork, dict[str, float], str]:
    """One ONNX Runtime session per bucket: (network, build seconds per bucket, onnxruntime version)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"dtype={precision!r}: the onnxruntime backend supports {', '.join(PRECISIONS)}")
    if not available(precision):
        raise ModuleNotFoundError("onnx / onnxscript / onnxruntime not installed: pip install 'yolostream[onnx]'")
    sessions: dict[Bucket, Session] = {}
    seconds: dict[str, float] = {}
    version = ""
    # The file is only needed until the session has read it into memory.
    with tempfile.TemporaryDirectory(prefix="yolostream-onnx-") as tmp:
        for bucket in buckets:
            start = time.perf_counter()
            with quiet_loggers("onnxscript", "onnx_ir", "torch.onnx", level=logging.WARNING + 1):
                path = export_onnx(
                    model, Path(tmp) / f"{bucket}.onnx", (bucket.height, bucket.width), bucket.batch, one2one=one2one
                )
            runner = OnnxRuntimeRunner(path, threads=threads, spinning=False)
            sessions[bucket], version = runner, runner.version
            seconds[str(bucket)] = time.perf_counter() - start
            log.info("onnxruntime: built bucket %s in %.1fs", bucket, seconds[str(bucket)])
    return ExternalNetwork(sessions, one2one), seconds, version
