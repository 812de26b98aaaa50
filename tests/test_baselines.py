"""Baseline runtimes: ONNX export, ONNX Runtime and OpenVINO give what eager torch gives; input and option errors.

The runtimes are optional extras. Without one, its tests skip with the install command on a developer's machine
but FAIL under CI (``$CI`` set), which installs the dev extra: a missing runtime there is a broken environment,
not a reason to report green.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from yolostream.engine.baselines import OnnxRuntimeRunner, OpenVINORunner, export_available, export_onnx
from yolostream.errors import CheckpointError, ConfigError, ShapeError
from yolostream.models.load import model_from_checkpoint
from yolostream.weights import read_checkpoint


def _need(ok: bool, what: str, extra: str) -> None:
    if ok:
        return
    msg = f"{what} not installed: pip install -e '.[{extra}]' (the dev extra includes it)"
    if os.environ.get("CI"):
        pytest.fail(f"{msg}; CI installs the dev extra, so this environment is broken")
    pytest.skip(msg)


def need_export() -> None:
    _need(export_available(), "onnx/onnxscript (ONNX export)", "onnx")


def need_ort() -> None:
    need_export()
    _need(OnnxRuntimeRunner.available(), "onnxruntime", "onnx")


def need_openvino() -> None:
    need_export()
    _need(OpenVINORunner.available(), "openvino", "openvino")


@dataclass(frozen=True)
class Row:
    name: str
    batch: int
    hw: tuple[int, int]
    anchors: int  # hand-computed: H*W/64 + H*W/256 + H*W/1024
    one2one: bool = False
    pictures: bool = False  # feed fixture pictures instead of uniform noise


ROWS = [
    Row("yolov8n-random", 1, (128, 128), 256 + 64 + 16),  # plain C2f/SPPF/DFL graph
    Row("yolo11n-random", 1, (128, 128), 256 + 64 + 16),  # C2PSA: scaled_dot_product_attention over 4x4 tokens
    # slow: ~5 s of export each; they pin down that both attention variants and the other heads export.
    pytest.param(Row("yolov10n-random", 1, (64, 64), 64 + 16 + 4, one2one=True), marks=pytest.mark.slow),  # PSA
    pytest.param(Row("yolo26n-random", 1, (64, 64), 64 + 16 + 4), marks=pytest.mark.slow),  # C2PSA, reg_max 1
    # The random fixtures' outputs barely depend on their input (two noise images differ by ~1e-7 relative), so
    # alone they could not tell a graph that dropped its input. The trained model on two different pictures
    # (outputs differ by ~20%) can; batch 2 and a non-square bucket catch mixed-up batch items and swapped H/W.
    Row("yolo11n-shapes", 2, (96, 160), 240 + 60 + 15, pictures=True),
]


@dataclass(frozen=True)
class Case:
    row: Row
    path: Path
    x: np.ndarray  # float32 [B, 3, H, W]
    ref: np.ndarray  # eager torch output, float32 [B, 4 + nc, A]


def _pictures(fixtures: Path, batch: int, hw: tuple[int, int]) -> np.ndarray:
    files = sorted((fixtures / "images" / "synth").glob("*.jpg"))[:batch]
    size = (hw[1], hw[0])  # PIL takes (width, height)
    arrays = [np.asarray(Image.open(f).convert("RGB").resize(size), dtype=np.float32) / 255 for f in files]
    return np.stack(arrays).transpose(0, 3, 1, 2).copy()


@pytest.fixture(scope="module", params=ROWS, ids=lambda r: r.name)
def case(request, fixtures, tmp_path_factory) -> Case:
    need_export()
    row: Row = request.param
    model, _ = model_from_checkpoint(read_checkpoint(fixtures / "checkpoints" / f"{row.name}.pt"))
    shape = (row.batch, 3, *row.hw)
    x = _pictures(fixtures, row.batch, row.hw) if row.pictures else np.random.default_rng(0).random(shape, np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x), one2one=row.one2one).numpy()
    if row.pictures:  # precondition of the row's purpose (see ROWS)
        assert np.abs(ref[0] - ref[1]).max() > 0.01 * np.abs(ref).max()
    path = export_onnx(
        model, tmp_path_factory.mktemp("onnx") / f"{row.name}.onnx", row.hw, row.batch, one2one=row.one2one
    )
    return Case(row, path, x, ref)


def assert_close(y: np.ndarray, case: Case, rel: float) -> None:
    """Boxes within ``rel`` x max|boxes| (pixels, up to ~500 here); class probabilities within ``rel`` absolute.

    Separate bounds because one bound relative to max|ref| would be set by the box coordinates and let the
    probabilities (in [0, 1]) be off by up to 500x more than the boxes.
    """
    assert y.dtype == np.float32
    assert y.shape == (case.row.batch, case.ref.shape[1], case.row.anchors)
    box_err = np.abs(y[:, :4] - case.ref[:, :4]).max() / np.abs(case.ref[:, :4]).max()
    prob_err = np.abs(y[:, 4:] - case.ref[:, 4:]).max()
    assert box_err <= rel, f"boxes: {box_err:.3g} x max|ref| > {rel}"
    assert prob_err <= rel, f"probabilities: {prob_err:.3g} > {rel}"


# fp32 tolerance, ONNX Runtime and OpenVINO alike: 1e-4. Both run the same float32 graph as eager torch with other
# kernels (ORT's MLAS, OpenVINO's oneDNN/JIT convs, possibly Winograd), so only summation order differs; measured
# worst over 20 inputs on every row: 3.2e-7 relative (boxes) and 3.1e-7 (probabilities), ~2 float32 ulps. 1e-4
# leaves 300x headroom for other CPUs' kernels, while a real export fault (anchor offset, stride, missing sigmoid,
# wrong branch) moves outputs by whole pixels / percent.
FP32_TOL = 1e-4
# bf16 (OpenVINO): weights and activations are rounded to bf16 (8-bit mantissa, unit roundoff 2^-9 = 2e-3), with
# float32 accumulation. Measured worst over 20 inputs: 2.6e-3 relative (boxes), 1.7e-3 (probabilities), about one
# bf16 rounding of the output. 1e-2 (~5 bf16 roundings) leaves ~4x headroom and still catches a wrong graph.
BF16_TOL = 1e-2


def test_onnxruntime_matches_eager(case):
    need_ort()
    runner = OnnxRuntimeRunner(case.path)
    assert runner.input_shape == case.x.shape  # static: one file per bucket
    assert runner.threads == len(os.sched_getaffinity(0))
    assert_close(runner(case.x), case, FP32_TOL)


def test_openvino_fp32_matches_eager(case):
    need_openvino()
    runner = OpenVINORunner(case.path)
    assert runner.input_shape == case.x.shape
    # Explicit, because on bf16-capable CPUs the plugin's default would be bf16.
    assert str(runner.compiled.get_property("INFERENCE_PRECISION_HINT")) == "<Type: 'float32'>"
    assert_close(runner(case.x), case, FP32_TOL)


def test_openvino_bf16_matches_eager(case):
    need_openvino()
    if not OpenVINORunner.native_bf16():
        pytest.skip("this CPU has no native bf16 (avx512_bf16 / amx_bf16): OpenVINORunner refuses bf16 here")
    runner = OpenVINORunner(case.path, threads=1, precision="bf16")
    assert str(runner.compiled.get_property("INFERENCE_PRECISION_HINT")) == "<Type: 'bfloat16'>"
    assert runner.compiled.get_property("INFERENCE_NUM_THREADS") == 1
    assert_close(runner(case.x), case, BF16_TOL)


@pytest.fixture(scope="module")
def affine_onnx(tmp_path_factory) -> Path:
    """A 1x1 conv computing y_c = 2 x_c + c for c = 0, 1, 2: its output is known by hand."""
    need_export()
    conv = nn.Conv2d(3, 3, 1).eval().requires_grad_(False)
    conv.weight.copy_(2 * torch.eye(3).view(3, 3, 1, 1))
    conv.bias.copy_(torch.tensor([0.0, 1.0, 2.0]))
    return export_onnx(conv, tmp_path_factory.mktemp("affine") / "affine.onnx", (32, 32))


RUNNERS = [
    pytest.param(need_ort, lambda p: OnnxRuntimeRunner(p, threads=1), id="onnxruntime"),
    pytest.param(need_openvino, lambda p: OpenVINORunner(p, threads=1), id="openvino"),
]


@pytest.mark.parametrize(("need", "make"), RUNNERS)
def test_runner_output_by_hand(need, make, affine_onnx):
    need()
    x = np.full((1, 3, 32, 32), 0.25, np.float32)
    x[0, :, 5, 7] = (1.0, 2.0, 3.0)
    expected = np.empty_like(x)
    expected[0, 0], expected[0, 1], expected[0, 2] = 0.5, 1.5, 2.5  # 2 * 0.25 + c
    expected[0, :, 5, 7] = (2.0, 5.0, 8.0)  # 2 * (1, 2, 3) + (0, 1, 2)
    # 2x + c with x in {0.25, 1, 2, 3} is exact in float32 (and in bf16, not used here).
    np.testing.assert_array_equal(make(affine_onnx)(x), expected)


BAD_INPUTS = [
    (np.zeros((1, 3, 32, 32), np.float64), "float32 numpy array"),  # float64: no silent cast
    (np.zeros((1, 3, 64, 32), np.float32), r"\(1, 3, 64, 32\)"),  # another bucket's shape
    (np.zeros((2, 3, 32, 32), np.float32), r"\(2, 3, 32, 32\)"),  # another batch size
    (np.zeros((3, 32, 32), np.float32), r"\(3, 32, 32\)"),  # no batch axis
    (torch.zeros(1, 3, 32, 32), "got Tensor"),  # a tensor, not an array
]


@pytest.mark.parametrize(("need", "make"), RUNNERS)
@pytest.mark.parametrize(("x", "match"), BAD_INPUTS)
def test_runner_rejects_bad_input(need, make, x, match, affine_onnx):
    need()
    with pytest.raises(ShapeError, match=match):
        make(affine_onnx)(x)


@pytest.mark.parametrize(("need", "cls"), [(need_ort, OnnxRuntimeRunner), (need_openvino, OpenVINORunner)])
def test_runner_rejects_bad_file(need, cls, tmp_path):
    need()
    with pytest.raises(CheckpointError, match=r"missing\.onnx: no such model file"):
        cls(tmp_path / "missing.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a protobuf")
    with pytest.raises(CheckpointError, match=r"garbage\.onnx: .* cannot load it"):
        cls(garbage)
    with pytest.raises(ConfigError, match="threads=0"):
        cls(garbage, threads=0)


def test_openvino_rejects_unknown_precision(tmp_path):
    # Checked before openvino is imported: holds with or without the extra.
    with pytest.raises(ConfigError, match="precision='fp16'"):
        OpenVINORunner(tmp_path / "m.onnx", precision="fp16")


def _tiny() -> nn.Module:
    return nn.Conv2d(3, 4, 1).eval()


EXPORT_ERRORS = [
    (_tiny, {"input_hw": (100, 128)}, ShapeError, r"input_hw=\(100, 128\)"),  # 100 is not a multiple of 32
    (_tiny, {"input_hw": (0, 64)}, ShapeError, r"input_hw=\(0, 64\)"),  # empty
    (_tiny, {"batch": 0}, ShapeError, "batch=0"),
    (_tiny, {"opset": 17}, ConfigError, "opset=17"),  # below the torch.export exporter's oldest opset
    (lambda: _tiny().train(), {}, ConfigError, "training mode"),  # would export BatchNorm on batch statistics
    (lambda: _tiny().half(), {}, ConfigError, "torch.float16"),  # the graph's input is float32
]


@pytest.mark.parametrize(("make", "kwargs", "error", "match"), EXPORT_ERRORS)
def test_export_rejects(make, kwargs, error, match, tmp_path):
    # Validated before onnx/onnxscript are needed: holds with or without the extra.
    with pytest.raises(error, match=match):
        export_onnx(make(), tmp_path / "m.onnx", **kwargs)
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize(
    ("cls", "module", "extra"),
    [(OnnxRuntimeRunner, "onnxruntime", "onnx"), (OpenVINORunner, "openvino", "openvino")],
)
def test_missing_runtime_is_reported(cls, module, extra, monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a))
    assert cls.available() is False
    with pytest.raises(ModuleNotFoundError, match=rf"{module} not installed: pip install 'yolostream\[{extra}\]'"):
        cls(tmp_path / "m.onnx")
