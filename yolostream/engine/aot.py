"""AOTInductor packages: the inference graph compiled ahead of time, one model per bucket, in one `.pt2`.

A package starts serving with no compiler at all (load ~0.1 s). It is tied to what it was built for:
the torch build (major.minor), the CPU instruction set (AVX2 vs AVX-512/AMX kernels) or the GPU model,
the device type, the buckets and the graph settings baked in (head, amp dtype, multi-label); the thread
count only sets how many OpenMP threads run it. Export again after changing any of those.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from yolostream.engine.buckets import Bucket, choose_bucket, pad_to_bucket
from yolostream.engine.runtime import cpu_flags, set_threads, use_cache_dir
from yolostream.errors import CheckpointError, ShapeError
from yolostream.postprocess.candidates import Candidates

log = logging.getLogger("yolostream.engine")
FORMAT_VERSION = 1
METADATA_KEY = "yolostream"


class _TupleGraph(nn.Module):
    """The inference graph with a plain tuple output (AOTInductor serialises no custom NamedTuple)."""

    def __init__(self, graph: nn.Module) -> None:
        super().__init__()
        self.inner = graph  # not "graph": an exported GraphModule has its own `.graph`

    def forward(self, images: Tensor, conf: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return tuple(self.inner(images, conf))


def _model_name(bucket: Bucket) -> str:
    return f"b{bucket.batch}x{bucket.height}x{bucket.width}"


def export_package(
    detector: Any,
    buckets: Sequence[Bucket],
    path: str | os.PathLike[str],
    progress: Callable[[str, int, int], None] | None = None,
    graph: nn.Module | None = None,
    extra: dict[str, Any] | None = None,
    inductor_options: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Compile ``detector``'s graph for every bucket into one package at ``path``; returns seconds per bucket.

    Built under ``no_grad``: exported with autograd on, the graph keeps its convolutions as separate
    ops and Inductor cannot fuse them. ``graph``: another graph with the detector's settings to package
    instead (the INT8 one of `yolostream quantize`); ``extra``: more metadata (e.g. its accuracy gate);
    ``inductor_options``: Inductor settings patched in while compiling (freezing is on for CPU unless they
    say otherwise).
    """
    import torch._inductor.config as inductor_config
    from torch._inductor.package import package_aoti

    # What is baked in: the given graph's settings (e.g. the INT8 graph's float-part precision), else the detector's.
    graph_config = asdict(getattr(graph, "config", detector.graph.config))
    # A given graph holds exported (quantized) modules, which refuse .eval(); they are inference graphs already.
    graph = _TupleGraph(graph) if graph is not None else _TupleGraph(detector.graph).eval()
    device = detector.device
    meta = {
        "format_version": FORMAT_VERSION,
        "names": {str(k): v for k, v in detector.names.items()},
        "arch": detector.arch,
        "family": detector.spec.family,
        "scale": detector.spec.scale,
        "detector_config": asdict(detector.config),
        "graph_config": graph_config,
        "buckets": [list(b) for b in buckets],
        "torch": torch.__version__,
        "device": device.type,
        "cpu_flags": cpu_flags(),
        "threads": torch.get_num_threads(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **(extra or {}),
    }
    files: dict[str, list[Any]] = {}
    seconds: dict[str, float] = {}
    conf = torch.tensor(0.25, device=device)
    for i, bucket in enumerate(buckets):
        if progress is not None:
            progress(str(bucket), i, len(buckets))
        start = time.perf_counter()
        x = torch.full((bucket.batch, 3, bucket.height, bucket.width), 114, dtype=torch.uint8, device=device)
        with torch.no_grad(), inductor_config.patch({"freezing": device.type == "cpu", **(inductor_options or {})}):
            ep = torch.export.export(graph, (x, conf), strict=False)
            files[_model_name(bucket)] = torch._inductor.aot_compile(
                ep.module(),
                (x, conf),
                options={"aot_inductor.package": True, "aot_inductor.metadata": {METADATA_KEY: json.dumps(meta)}},
            )
        seconds[str(bucket)] = time.perf_counter() - start
        log.info("AOT-compiled bucket %s in %.1fs", bucket, seconds[str(bucket)])
    if progress is not None:
        progress("", len(buckets), len(buckets))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Write next to the target, then rename: a crash never leaves half a package under the real name.
    with tempfile.NamedTemporaryFile(dir=out.parent, suffix=".pt2", delete=False) as tmp:
        tmp_name = tmp.name
    try:
        package_aoti(tmp_name, files)
        os.replace(tmp_name, out)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return seconds


def package_models(path: str | os.PathLike[str]) -> list[str]:
    """Model names inside a package (one per bucket), from the archive's layout."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(f"{path}: not a readable .pt2 package ({e})") from e
    models = sorted({n.split("/aotinductor/", 1)[1].split("/", 1)[0] for n in names if "/aotinductor/" in n})
    if not models:
        raise CheckpointError(f"{path}: holds no AOTInductor model (export it with `yolostream export`)")
    return models


def compile_aot(
    detector: Any,
    buckets: Sequence[Bucket],
    *,
    graph: nn.Module | None = None,
    threads: int | None = None,
    cache_dir: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    inductor_options: dict[str, Any] | None = None,
) -> AotRunner:
    """``detector``'s graph (or ``graph``, e.g. an INT8 one) AOT-compiled for ``buckets`` and served in this
    process (``backend="inductor", compile="aoti"``): a temporary package, loaded, then deleted.

    Why: an AOTInductor model is called with no Dynamo guard evaluation, recompile stance or AOTAutograd
    wrapper around its kernels. yolostream keeps no copy of these packages (``yolostream export`` writes one
    to keep); Inductor's caches under ``cache_dir`` (as for the JIT engine) still shorten a rebuild.
    """
    use_cache_dir(cache_dir)
    with tempfile.TemporaryDirectory(prefix="yolostream-aoti-") as tmp:
        path = Path(tmp) / "graph.pt2"
        seconds = export_package(
            detector, buckets, path, progress=progress, graph=graph, inductor_options=inductor_options
        )
        runner = AotRunner(path, device=detector.device, threads=threads)
    runner.build_s = seconds
    return runner


class AotRunner:
    """Callable ``(images uint8 [B, 3, H, W], conf) -> Candidates`` over the package's bucket models."""

    backend = "inductor"
    mode = "aoti"
    dtype = "fp32"  # set by `yolostream.engine.backends` when built in process (bf16 / int8)
    float_parts = "fp32"

    def __init__(
        self, path: str | os.PathLike[str], device: str | torch.device = "cpu", threads: int | None = None
    ) -> None:
        from torch._inductor.package import load_package

        self.device = torch.device(device)
        if self.device.type == "cpu":
            set_threads(threads)
        self.models: dict[Bucket, Any] = {}
        self.metadata: dict[str, Any] = {}
        index = self.device.index if self.device.index is not None else -1
        for name in package_models(path):
            try:
                model = load_package(os.fspath(path), name, device_index=index)
            except Exception as e:  # the loader raises plain RuntimeErrors
                raise CheckpointError(f"{path}: model {name} cannot be loaded here ({e})") from e
            meta = json.loads(model.get_metadata().get(METADATA_KEY, "{}"))
            if meta.get("format_version") != FORMAT_VERSION:
                raise CheckpointError(f"{path}: not a yolostream package (format {meta.get('format_version')!r})")
            self.metadata = meta
            b, h, w = (int(v) for v in name.removeprefix("b").split("x"))
            self.models[Bucket(b, h, w)] = model
        if self.metadata.get("device", "cpu") != self.device.type:
            raise CheckpointError(f"{path} was built for {self.metadata['device']}, not {self.device.type}")
        self.buckets = tuple(sorted(self.models, key=lambda k: (k.batch * k.height * k.width, k)))
        self.build_s: dict[str, float] = {}
        self._lock = threading.Lock()

    def bucket_for(self, batch: int, height: int, width: int) -> Bucket | None:
        return choose_bucket(self.buckets, batch, height, width)

    @property
    def max_batch(self) -> int:
        return max(k.batch for k in self.buckets)

    def __call__(self, images: Tensor, conf: Tensor) -> Candidates:
        b, _, h, w = images.shape
        bucket = self.bucket_for(b, h, w)
        if bucket is None:
            raise ShapeError(
                f"input batch {b} of {h}x{w} fits none of the package's buckets ({', '.join(map(str, self.buckets))})"
            )
        x = pad_to_bucket(images.to(self.device), bucket)
        with self._lock:
            out = Candidates(*self.models[bucket](x, conf.to(self.device)))
        return Candidates(*(t[:b] for t in out)) if bucket.batch != b else out
