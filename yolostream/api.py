"""`load()`: the one-call entry point from a model file to a ready `Detector`."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from yolostream.detector import Detector, DetectorConfig, LetterboxMode
from yolostream.errors import ConfigError

log = logging.getLogger("yolostream")


def load(
    path: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    imgsz: int = 640,
    *,
    conf: float = 0.25,
    iou: float = 0.7,
    max_det: int = 300,
    mode: LetterboxMode = "square",
    nms: bool = True,
    agnostic: bool = False,
    classes: Sequence[int] | None = None,
    dtype: str = "fp32",
    compile: str | None = None,
    backend: str | None = None,
    buckets: Sequence[str | Sequence[int]] | None = None,
    outside: str = "error",
    cache_dir: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    progress: bool = False,
    fold: bool = True,
    calib: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    val: str | os.PathLike[str] | None = None,
    inductor_options: dict[str, Any] | None = None,
    **detector_options: Any,
) -> Detector:
    """Load a model file and return a `Detector`.

    ``path`` None: the bundled demo model (`yolostream.assets.demo_model`: bolt, nut, gear, bracket).
    ``path``: an Ultralytics ``.pt`` checkpoint (read without executing any code from it), a yolostream
    ``.safetensors`` file (`yolostream convert`) or an AOTInductor ``.pt2`` package (`yolostream export`,
    served with no compilation; its graph settings are fixed, thresholds can still change).

    Thresholds: see `DetectorConfig`; ``nms=False`` selects the one-to-one head of YOLOv10/YOLO26.
    Engine: ``compile`` = None (eager), a torch.compile mode ("default", "reduce-overhead",
    "max-autotune", "max-autotune-no-cudagraphs") or "aoti" (AOTInductor-compiled at load and served in
    process: no Dynamo guard evaluation at each call; buckets only); ``buckets`` = input
    shapes to compile, as "BxHxW" strings or tuples (default: one ``1 x imgsz x imgsz``); ``outside`` =
    "error" or "eager" for inputs no bucket holds; ``dtype`` = "fp32", "bf16" or "fp16"; ``cache_dir`` =
    persistent compile cache (default ``~/.cache/yolostream/inductor``); ``threads`` = CPU threads (default:
    the usable cores); ``progress`` = show a progress bar while compiling. Compilation happens here, at
    load, for every bucket.

    Backends (CPU; see `yolostream.engine.backends`): ``backend`` = "inductor" (torch.compile, ``compile``
    defaults to "default", and to "aoti" for ``dtype="int8"`` on the CPU: `yolostream.engine.choose.default_mode`),
    "openvino", "onnxruntime", or "auto" (the fastest here that passes the accuracy gate, measured once per
    machine and cached, `yolostream.engine.auto`); ``dtype`` may then also be "int8" (post-training
    quantization calibrated on ``calib``: a folder or picture files) or "auto"; ``val`` = a data.yaml whose
    mAP50-95 the auto choice's accuracy gate checks too. ``inductor_options``: Inductor settings patched in
    while compiling, e.g. ``{"cpp_wrapper": True}`` or ``{"freezing": False}`` (what the
    `yolostream bench --backends` variants set).
    """
    if path is None:
        from yolostream.assets import demo_model

        path = demo_model()
    threshold_kwargs = dict(conf=conf, iou=iou, max_det=max_det, agnostic=agnostic)
    threshold_kwargs["classes"] = tuple(classes) if classes is not None else None
    if Path(path).suffix == ".pt2":
        if compile is not None or buckets is not None:
            raise ConfigError(f"{path} is already compiled: its buckets are fixed (pass neither compile nor buckets)")
        return _load_package(path, device, threads, threshold_kwargs)

    from yolostream.models.load import model_from_checkpoint
    from yolostream.weights import read_checkpoint

    raw = read_checkpoint(path)
    model, spec = model_from_checkpoint(raw, fold_bn=fold)
    if backend is not None or dtype in ("int8", "auto") or compile == "aoti":
        from yolostream.engine.choose import load_backend

        options = dict(imgsz=imgsz, mode=mode, nms=nms, **threshold_kwargs, **detector_options)
        return load_backend(
            model,
            spec,
            raw,
            path,
            device,
            options,
            backend=backend or "inductor",
            dtype=dtype,
            mode=compile,
            buckets=buckets,
            outside=outside,
            cache_dir=cache_dir,
            threads=threads,
            progress=progress,
            calib=calib,
            val=val,
            inductor_options=inductor_options,
        )
    config = DetectorConfig(imgsz=imgsz, mode=mode, nms=nms, dtype=dtype, **threshold_kwargs, **detector_options)
    detector = Detector(model, spec, raw.names, config, device=device, source=os.fspath(path), arch=raw.arch)
    _check_dtype(detector)
    if compile is not None:
        detector.runner = _compile(detector, compile, buckets, outside, cache_dir, threads, progress, inductor_options)
    elif buckets is not None or inductor_options:
        raise ConfigError(
            "buckets and inductor_options only apply to a compiled engine: pass compile='default' (or another mode)"
        )
    return detector


def _check_dtype(detector: Detector) -> None:
    from yolostream.engine.runtime import native_bf16

    if detector.device.type == "cpu" and detector.config.dtype == "bf16" and not native_bf16():
        log.warning(
            "bf16 requested but this CPU has no native bf16 (AVX512-BF16/AMX): expect it to be slower than fp32"
        )


def _compile(
    detector: Detector,
    mode: str,
    buckets: Sequence[str | Sequence[int]] | None,
    outside: str,
    cache_dir: str | os.PathLike[str] | None,
    threads: int | None,
    progress: bool,
    inductor_options: dict[str, Any] | None = None,
) -> Any:
    from yolostream.engine.buckets import parse_buckets
    from yolostream.engine.compiled import CompiledRunner
    from yolostream.engine.progress import compile_progress

    size = detector.config.imgsz
    parsed = parse_buckets(buckets or [(1, size, size)])
    with compile_progress(enabled=progress, what=f"compiling ({mode})") as callback:
        return CompiledRunner(
            detector.graph,  # type: ignore[arg-type]
            parsed,
            mode,  # type: ignore[arg-type]
            outside=outside,  # type: ignore[arg-type]
            threads=threads,
            cache_dir=os.fspath(cache_dir) if cache_dir is not None else None,
            progress=callback,
            inductor_options=inductor_options,
        )


def _load_package(
    path: str | os.PathLike[str], device: str | torch.device, threads: int | None, thresholds: dict[str, Any]
) -> Detector:
    from yolostream.engine.aot import AotRunner
    from yolostream.models.spec import parse_arch

    runner = AotRunner(path, device=device, threads=threads)
    meta = runner.metadata
    names = {int(k): v for k, v in meta["names"].items()}
    spec = parse_arch(meta["arch"], nc=len(names))
    baked = dict(meta["detector_config"])
    baked["classes"] = tuple(baked["classes"]) if baked.get("classes") is not None else None
    known = {f.name for f in fields(DetectorConfig)}
    config = DetectorConfig(**{**{k: v for k, v in baked.items() if k in known}, **thresholds})
    return Detector(None, spec, names, config, device=device, source=os.fspath(path), arch=meta["arch"], runner=runner)
