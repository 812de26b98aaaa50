"""The runtimes users would otherwise pick on CPU, as baselines for the compiled engine: ONNX Runtime and OpenVINO.

`export_onnx` writes one static-shape ONNX file per (batch, H, W) bucket; `OnnxRuntimeRunner` and `OpenVINORunner`
run such a file on numpy arrays. Both runtimes are optional extras (``pip install 'yolostream[onnx]'``,
``'yolostream[openvino]'``) and are imported only when a runner is built.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from torch import nn

from yolostream.cpus import spread_threads
from yolostream.engine.runtime import usable_cores
from yolostream.errors import CheckpointError, ConfigError, ShapeError

# Oldest opset the torch.export-based exporter has translations for; below it, it converts after the fact and, when
# that fails, silently keeps 18. We refuse rather than hand back a file of another opset than asked.
MIN_OPSET = 18


def _missing(*modules: str) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


def _require(extra: str, *modules: str) -> None:
    if missing := _missing(*modules):
        raise ModuleNotFoundError(f"{', '.join(missing)} not installed: pip install 'yolostream[{extra}]'")


def export_available() -> bool:
    """Whether `export_onnx` can run here (the ``onnx`` extra: onnx and onnxscript)."""
    return not _missing("onnx", "onnxscript")


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    input_hw: tuple[int, int] = (640, 640),
    batch: int = 1,
    opset: int | None = None,
    one2one: bool = False,
) -> Path:
    """Write ``model`` (a float32 `YOLO` in eval mode) as a static-shape ONNX file; returns its path.

    The graph takes ``images`` float32 [batch, 3, H, W] (RGB in [0, 1]) and gives ``y`` float32 [batch, 4 + nc, A],
    exactly what ``model(images, one2one)`` returns. ``opset`` None: the exporter's default (20 with torch 2.13).
    """
    h, w = input_hw
    if h <= 0 or w <= 0 or h % 32 or w % 32:
        raise ShapeError(f"input_hw={input_hw}: both sides must be positive multiples of the stride 32")
    if batch < 1:
        raise ShapeError(f"batch={batch}: must be at least 1")
    if opset is not None and opset < MIN_OPSET:
        raise ConfigError(f"opset={opset}: the torch.export-based ONNX exporter needs opset >= {MIN_OPSET}")
    param = next(model.parameters(), None)
    if param is not None and param.dtype != torch.float32:
        raise ConfigError(f"export_onnx needs a float32 model (the graph takes float32 images); got {param.dtype}")
    if model.training:
        raise ConfigError("export_onnx got a model in training mode (BatchNorm on batch statistics): call .eval()")
    _require("onnx", "onnx", "onnxscript")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = torch.zeros(batch, 3, h, w, device=param.device if param is not None else "cpu")
    # dynamo=True (torch.export, the default since torch 2.9): the TorchScript exporter still exists in 2.13 but
    # warns that it is deprecated and will be removed, and it needs `onnx` as well. The torch.export path needs
    # onnxscript besides, and is ~3x slower to export (~5 s for a nano model), but with optimize=True it folds the
    # anchor grid into constants instead of leaving Shape/Gather/Range chains, and it translates
    # scaled_dot_product_attention to MatMul/Softmax (opset < 23) or the ONNX Attention op (opset >= 23), both of
    # which ONNX Runtime and OpenVINO run. external_data=False: one self-contained file (nano weights ~10 MB).
    with torch.no_grad():
        torch.onnx.export(
            model,
            (images,),
            str(path),
            kwargs={"one2one": True} if one2one else None,  # only YOLO.forward takes it
            input_names=["images"],
            output_names=["y"],
            opset_version=opset,
            dynamo=True,
            external_data=False,
            optimize=True,
            verbose=False,
        )
    return path


def _check_threads(threads: int | None) -> int:
    if threads is None:
        return usable_cores()
    if threads < 1:
        raise ConfigError(f"threads={threads}: must be at least 1 (or None for every core this process may use)")
    return threads


def _check_file(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file")
    return path


def _check_input(x: Any, shape: tuple[int | None, ...], path: Path) -> np.ndarray:
    """``x`` as a C-contiguous float32 array of the model's static input shape (None: any size on that axis)."""
    if not isinstance(x, np.ndarray) or x.dtype != np.float32:
        got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise ShapeError(f"{path.name} takes a float32 numpy array [B, 3, H, W]; got {got}")
    if x.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, x.shape, strict=True)):
        raise ShapeError(f"{path.name} takes input of shape {shape} (static); got {x.shape}")
    return np.ascontiguousarray(x)


class BaselineRunner(Protocol):
    """A runtime holding one model file: ``runner(x)`` maps float32 [B, 3, H, W] to float32 [B, 4 + nc, A]."""

    name: ClassVar[str]
    version: str
    precision: str
    threads: int
    input_shape: tuple[int | None, ...]

    def __call__(self, x: np.ndarray) -> np.ndarray: ...


class OnnxRuntimeRunner:
    """ONNX Runtime on the CPU execution provider, tuned for single-request latency.

    ``threads`` intra-op threads (default: `usable_cores`); inter-op 1, since a YOLO graph is one chain with no
    independent branches wide enough to pay for a second pool; every graph optimisation on (fusions, layout).
    ``spinning=False``: idle threads sleep at once (for a session sharing the process with torch work).
    """

    name: ClassVar[str] = "onnxruntime"
    precision = "fp32"

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None, spinning: bool = True) -> None:
        _require("onnx", "onnxruntime")
        ort = importlib.import_module("onnxruntime")
        self.path = _check_file(path)
        self.threads = _check_threads(threads)
        self.version: str = ort.__version__
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if not spinning:
            # Idle pool threads otherwise spin for a while after each run, taking the cores from whatever torch
            # runs next in the same process (the backend's pre- and postprocessing).
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            with spread_threads():  # its pool starts here and inherits this thread's mask
                self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own Fail/InvalidGraph types; name the file in ours
            raise CheckpointError(f"{self.path}: ONNX Runtime cannot load it: {e}") from e
        inp = self.session.get_inputs()[0]
        self._input_name: str = inp.name
        self.input_shape = tuple(d if isinstance(d, int) else None for d in inp.shape)

    @classmethod
    def available(cls) -> bool:
        """Whether onnxruntime is installed (without importing it)."""
        return not _missing("onnxruntime")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """float32 [B, 3, H, W] -> float32 [B, 4 + nc, A], the first output of the graph."""
        x = _check_input(x, self.input_shape, self.path)
        return self.session.run(None, {self._input_name: x})[0]


_OV_PRECISIONS = {"fp32": "f32", "bf16": "bf16"}


class OpenVINORunner:
    """OpenVINO's CPU plugin on an ONNX file (read directly, no conversion step) or OpenVINO IR (``.xml``).

    ``precision`` "fp32" or "bf16": set explicitly, because on CPUs with native bf16 the plugin's default
    inference precision is bf16, and a baseline that silently changes precision with the host is no baseline.
    "bf16" is refused on CPUs without native support, where the plugin would emulate or ignore it.
    """

    name: ClassVar[str] = "openvino"

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None, precision: str = "fp32") -> None:
        if precision not in _OV_PRECISIONS:
            raise ConfigError(f"precision={precision!r}: OpenVINORunner supports {sorted(_OV_PRECISIONS)}")
        _require("openvino", "openvino")
        ov = importlib.import_module("openvino")
        self.path = _check_file(path)
        self.threads = _check_threads(threads)
        self.precision = precision
        self.version: str = ov.get_version()
        config = {
            "INFERENCE_NUM_THREADS": self.threads,
            "INFERENCE_PRECISION_HINT": _OV_PRECISIONS[precision],
            "PERFORMANCE_HINT": "LATENCY",
        }
        with spread_threads():  # the CPU plugin reads the CPUs it may use when it loads
            core = ov.Core()
            if precision == "bf16" and not self.native_bf16(core):
                raise ConfigError("precision='bf16': this CPU has no native bf16 (avx512_bf16 / amx_bf16)")
            try:
                self.compiled = core.compile_model(core.read_model(str(self.path)), "CPU", config)
            except Exception as e:  # OpenVINO raises a bare RuntimeError; name the file in ours
                raise CheckpointError(f"{self.path}: OpenVINO cannot load it: {e}") from e
        self._request = self.compiled.create_infer_request()
        self._started = False
        shape = self.compiled.input(0).get_partial_shape()
        self.input_shape = tuple(d.get_length() if d.is_static else None for d in shape)

    @classmethod
    def available(cls) -> bool:
        """Whether openvino is installed (without importing it)."""
        return not _missing("openvino")

    @classmethod
    def native_bf16(cls, core: Any = None) -> bool:
        """Whether OpenVINO's CPU plugin reports native bf16 (AVX512-BF16 or AMX) here, under any ISA cap."""
        _require("openvino", "openvino")
        from yolostream.engine.openvino_backend import native_bf16

        return native_bf16(core)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """float32 [B, 3, H, W] -> float32 [B, 4 + nc, A] (a copy: the request reuses its output buffer)."""
        x = _check_input(x, self.input_shape, self.path)
        if not self._started:
            with spread_threads():  # OpenVINO starts its worker threads on the first inference, with our mask
                out = self._request.infer({0: x}, share_inputs=True, share_outputs=False)[0]
            self._started = True
            return out
        return self._request.infer({0: x}, share_inputs=True, share_outputs=False)[0]
