"""Another runtime's network inside yolostream's own graph: the same torch pre- and postprocessing around it.

`ExternalNetwork` stands in for `YOLO` in an `InferenceGraph`: float [B, 3, H, W] in [0, 1] in, the raw
decoded output [B, 4 + nc, A] out, computed by one compiled runtime model per bucket shape (OpenVINO, ONNX
Runtime). Everything else, uint8 normalisation before and candidate selection after, then NMS and the
mapping back to original pixels in `Detector`, is the very code the eager and Inductor paths run, so the
API and the `Detections` are the same; only the network's arithmetic differs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from yolostream.engine.buckets import Bucket, choose_bucket, pad_to_bucket
from yolostream.errors import ShapeError
from yolostream.graph import InferenceGraph
from yolostream.postprocess.candidates import Candidates

log = logging.getLogger("yolostream.engine")
Session = Callable[[np.ndarray], np.ndarray]  # float32 [B, 3, H, W] -> float32 [B, 4 + nc, A]


class BranchNetwork(nn.Module):
    """The network with its head branch fixed: float [B, 3, H, W] -> [B, 4 + nc, A], the unit that gets
    exported to another runtime or quantized. The module is called ``net`` (quantization names layers by it)."""

    def __init__(self, net: nn.Module, one2one: bool) -> None:
        super().__init__()
        self.net = net
        self.one2one = one2one

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x, self.one2one)


class ExternalNetwork(nn.Module):
    """`YOLO` stand-in over one runtime session per bucket; the head branch was fixed when they were built."""

    def __init__(self, sessions: Mapping[Bucket, Session], one2one: bool) -> None:
        super().__init__()
        self.sessions = dict(sessions)
        self.one2one = one2one

    def forward(self, x: Tensor, one2one: bool = False) -> Tensor:
        if one2one != self.one2one:
            raise ShapeError(f"this runtime model was built with one2one={self.one2one}")
        session = self.sessions.get(Bucket(x.shape[0], x.shape[2], x.shape[3]))
        if session is None:
            raise ShapeError(
                f"no runtime model for input {tuple(x.shape)}: built for {', '.join(map(str, self.sessions))}"
            )
        return torch.from_numpy(session(np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)))


class ExternalRunner:
    """Callable ``(images uint8 [B, 3, H, W], conf) -> Candidates``, like `CompiledRunner`, over a runtime.

    Inputs are fitted to the smallest bucket that holds them (as `CompiledRunner` does); ``outside="eager"``
    runs an input no bucket holds through ``fallback`` (the eager fp32 graph) instead of raising.
    """

    def __init__(
        self,
        network: ExternalNetwork,
        graph: InferenceGraph,
        *,
        backend: str,
        dtype: str,
        fallback: InferenceGraph | None = None,
        outside: Literal["error", "eager"] = "error",
        build_s: dict[str, float] | None = None,
        versions: dict[str, str] | None = None,
    ) -> None:
        if outside not in ("error", "eager"):
            raise ValueError(f"outside must be 'error' or 'eager', got {outside!r}")
        self.network = network
        self.graph = graph
        self.backend = backend
        self.dtype = dtype
        self.float_parts = "fp32"  # int8: what the runtime leaves in float runs in this (set by `backends`)
        self.fallback = fallback
        self.outside = outside
        self.build_s = dict(build_s or {})
        self.versions = dict(versions or {})
        self.buckets = tuple(sorted(network.sessions, key=lambda k: (k.batch * k.height * k.width, k)))
        self._lock = threading.Lock()

    @property
    def max_batch(self) -> int:
        return max(k.batch for k in self.buckets)

    def bucket_for(self, batch: int, height: int, width: int) -> Bucket | None:
        return choose_bucket(self.buckets, batch, height, width)

    def __call__(self, images: Tensor, conf: Tensor) -> Candidates:
        b, _, h, w = images.shape
        bucket = self.bucket_for(b, h, w)
        if bucket is None:
            if self.outside == "eager" and self.fallback is not None:
                log.debug("input %dx%dx%d fits no bucket: running eagerly", b, h, w)
                return self.fallback(images, conf)
            raise ShapeError(
                f"input batch {b} of {h}x{w} fits none of the {self.backend} buckets "
                f"({', '.join(map(str, self.buckets))}); add a bucket, lower the batch, or load with outside='eager'"
            )
        with torch.inference_mode(), self._lock:
            out = self.graph(pad_to_bucket(images, bucket), conf)
        return Candidates(*(t[:b] for t in out)) if bucket.batch != b else out

    def __repr__(self) -> str:
        return f"ExternalRunner({self.backend}, {self.dtype}, buckets={', '.join(map(str, self.buckets))})"
