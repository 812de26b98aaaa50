"""`CompiledRunner`: the inference graph compiled once per shape bucket, warmed up at start.

Design (see docs/engine.md):
- one ``torch.compile(graph, fullgraph=True, dynamic=False)``; each bucket is a static-shape entry of it,
  compiled during warm-up in the creating thread, under ``inference_mode`` (the mode every call uses:
  a change of grad mode, thread count or dtype would otherwise recompile);
- after warm-up every call runs under Dynamo's serving stance (`yolostream.engine.stance`: fail on
  recompile, only the guards that tell cache entries apart): a shape outside the buckets is routed before
  it can reach the compiler (error, or the eager graph if so configured), and anything else that would
  recompile raises instead of stalling the serving path; warm-ups wait while runners serve, and the other
  way round;
- calls are serialised by a lock, so one runner can be shared by threads (the pipeline uses a single
  owner thread anyway); CUDA-graph outputs are copied out before the next replay can overwrite them.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch

from yolostream.engine import stance
from yolostream.engine.buckets import Bucket, choose_bucket, pad_to_bucket
from yolostream.engine.runtime import set_threads, use_cache_dir
from yolostream.errors import ShapeError
from yolostream.graph import InferenceGraph
from yolostream.postprocess.candidates import Candidates

log = logging.getLogger("yolostream.engine")

CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]
COMPILE_MODES: tuple[str, ...] = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# Inductor settings for CPU graphs. cpp_wrapper: the wrapper that calls the ~60 oneDNN convolutions and
# generated kernels of a YOLO graph is C++ instead of Python. Network time with it, yolov8n 640, interleaved
# in one run each (`bench --backends ...+cpp_wrapper`): AVX2 0.90x and 0.95x (fp32, 1 thread); AVX-512 + AMX
# 0.94x (fp32) and 0.92x (bf16), 2 threads. `{"cpp_wrapper": False}` in `inductor_options` turns it off.
CPU_OPTIONS: dict[str, object] = {"cpp_wrapper": True}


@dataclass
class WarmupReport:
    """Compile time (seconds, first call including compilation) per bucket."""

    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


def _device_of(graph: torch.nn.Module) -> torch.device:
    """The device of the graph's weights: parameters, or buffers for a quantized graph (which has none)."""
    for tensor in (*graph.parameters(), *graph.buffers()):
        return tensor.device
    return torch.device("cpu")


class CompiledRunner:
    """Callable ``(images uint8 [B, 3, H, W], conf 0-d tensor) -> Candidates`` over compiled buckets.

    Inputs are fitted to the smallest bucket that holds them (short batches padded, padding results
    dropped). ``outside="error"`` raises `ShapeError` for an input no bucket holds; ``"eager"`` runs it
    through the uncompiled graph instead.
    """

    backend = "inductor"
    dtype = "fp32"  # the network's precision, set by `yolostream.engine.backends` (bf16 / int8)
    float_parts = "fp32"  # int8: the precision of what stays in float (`backends.int8_float_parts`)

    def __init__(
        self,
        graph: InferenceGraph,
        buckets: Sequence[Bucket],
        mode: CompileMode = "default",
        *,
        outside: Literal["error", "eager"] = "error",
        inductor_options: dict[str, object] | None = None,
        threads: int | None = None,
        cache_dir: str | None = None,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> None:
        if mode not in COMPILE_MODES:
            raise ValueError(f"compile mode must be one of {COMPILE_MODES}, got {mode!r}")
        if outside not in ("error", "eager"):
            raise ValueError(f"outside must be 'error' or 'eager', got {outside!r}")
        self.graph = graph
        self.buckets = tuple(buckets)
        self.mode = mode
        self.outside = outside
        self.device = _device_of(graph)
        self.cudagraphs = self.device.type == "cuda" and mode == "reduce-overhead"
        # Inductor settings patched in while compiling, over the CPU defaults (`CPU_OPTIONS`). Freezing (on for
        # CPU unless ``inductor_options`` says otherwise) folds weights into the graph as constants and lets
        # Inductor prepack them for oneDNN: it is what makes CPU convolutions fast. torch 2.13 ignores it in
        # `options=`, hence the config patch.
        defaults = CPU_OPTIONS if self.device.type == "cpu" else {}
        self.inductor_options = {**defaults, **(inductor_options or {})}
        self.freezing = bool(self.inductor_options.pop("freezing", self.device.type == "cpu"))
        self.threads = set_threads(threads) if self.device.type == "cpu" else torch.get_num_threads()
        self.cache_dir = use_cache_dir(cache_dir)
        self._lock = threading.Lock()
        self._compiled = torch.compile(graph, fullgraph=True, dynamic=False, mode=mode)
        self.report = self._warm_up(progress)

    def _compile_context(self) -> contextlib.ExitStack:
        import torch._dynamo.config as dynamo_config
        import torch._inductor.config as inductor_config

        stack = contextlib.ExitStack()
        stack.enter_context(stance.compiling())
        stack.enter_context(inductor_config.patch({"freezing": self.freezing, **self.inductor_options}))
        # Each bucket is one more cache entry of the same code object (InferenceGraph.forward), and so is
        # every bucket of every other engine in this process: leave room for all of them. The limit only
        # matters while compiling; after warm-up the fail-on-recompile stance rules.
        stack.enter_context(dynamo_config.patch(recompile_limit=max(64, 8 * len(self.buckets))))
        return stack

    def _warm_up(self, progress: Callable[[str, int, int], None] | None) -> WarmupReport:
        report = WarmupReport()
        with self._compile_context(), torch.inference_mode():
            conf = torch.tensor(0.25, device=self.device)
            for i, bucket in enumerate(self.buckets):
                if progress is not None:
                    progress(str(bucket), i, len(self.buckets))
                x = torch.full(
                    (bucket.batch, 3, bucket.height, bucket.width), 114, dtype=torch.uint8, device=self.device
                )
                start = time.perf_counter()
                self._run(x, conf)
                self._run(x, conf)  # CUDA graphs record on the second call; cheap elsewhere
                self._sync()
                report.seconds[str(bucket)] = time.perf_counter() - start
                log.info("compiled bucket %s (%s) in %.1fs", bucket, self.mode, report.seconds[str(bucket)])
            if progress is not None:
                progress("", len(self.buckets), len(self.buckets))
        return report

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _run(self, x: torch.Tensor, conf: torch.Tensor) -> Candidates:
        if self.cudagraphs:
            torch.compiler.cudagraph_mark_step_begin()
        out = self._compiled(x, conf)
        if self.cudagraphs:
            # The next replay reuses these buffers: copy the outputs before handing them out.
            out = Candidates(*(t.clone() for t in out))
        return out

    def bucket_for(self, batch: int, height: int, width: int) -> Bucket | None:
        return choose_bucket(self.buckets, batch, height, width)

    def __call__(self, images: torch.Tensor, conf: torch.Tensor) -> Candidates:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3 or images.device != self.device:
            raise ShapeError(
                f"the compiled graph takes uint8 [B, 3, H, W] images on {self.device}, got {images.dtype} "
                f"{tuple(images.shape)} on {images.device}"
            )
        b, _, h, w = images.shape
        bucket = self.bucket_for(b, h, w)
        if bucket is None:
            if self.outside == "eager":
                log.debug("input %dx%dx%d fits no bucket: running eagerly", b, h, w)
                return self.graph(images, conf)
            raise ShapeError(
                f"input batch {b} of {h}x{w} fits none of the compiled buckets "
                f"({', '.join(map(str, self.buckets))}); add a bucket, lower the batch, or load with outside='eager'"
            )
        with torch.inference_mode():
            # Guards compare tensors' dispatch keys: an input made outside inference mode would not match
            # the warm-up's inference tensors and would recompile. Copy such inputs in (rare, cheap).
            x = pad_to_bucket(images, bucket)
            x = x if x.is_inference() else x.clone()
            conf = conf if conf.is_inference() else conf.clone()
            with self._lock, stance.serving():
                out = self._run(x, conf)
        return Candidates(*(t[:b] for t in out)) if bucket.batch != b else out

    @property
    def max_batch(self) -> int:
        return max(k.batch for k in self.buckets)
