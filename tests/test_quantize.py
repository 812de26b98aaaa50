"""INT8: calibration inputs, the layers kept in float, the accuracy gate (it rejects a broken quantization), and
the lowered INT8 paths (Inductor JIT, the `quantize` package, OpenVINO NNCF) against eager fp32 on the fixtures."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
import torch

from yolostream.api import load
from yolostream.cli.main import main as cli
from yolostream.detector import Detector
from yolostream.engine.backends import backend_available
from yolostream.engine.buckets import Bucket
from yolostream.errors import ConfigError
from yolostream.graph import InferenceGraph
from yolostream.quant.calibration import calibration_batches, calibration_files
from yolostream.quant.gate import accuracy_gate, match_share, validation_twin
from yolostream.quant.pt2e import available, float_layers, quantize_network

IMGSZ = 320
BUCKET = Bucket(1, IMGSZ, IMGSZ)
needs_torchao = pytest.mark.skipif(not available(), reason="torchao not installed (the int8 extra)")


@pytest.fixture(scope="module")
def ref(fixtures):
    return load(fixtures / "checkpoints" / "yolo11n-shapes.pt", imgsz=IMGSZ)


@pytest.fixture(scope="module")
def calib(fixtures):
    return calibration_files(fixtures / "images" / "synth")


def _fake_quant(ref: Detector, network) -> Detector:
    """The converted network run eagerly: q/dq in float, the arithmetic Inductor lowers to int8 kernels."""
    return Detector(None, ref.spec, ref.names, ref.config, runner=InferenceGraph(network, ref.graph_config))


# --- calibration inputs and float layers (no quantization) ------------------------------------------------


def test_calibration_batches_letterbox_and_cycle(calib):
    batches = calibration_batches(calib, Bucket(4, 256, 320))
    assert len(calib) == 6 and len(batches) == 2  # 6 pictures fill 2 batches of 4, the last cycled from the first
    assert all(b.shape == (4, 3, 256, 320) and b.dtype == torch.uint8 for b in batches)
    assert torch.equal(batches[1][2], batches[0][0])


@pytest.mark.parametrize(
    ("source", "message"),
    [("missing-folder", "no such file or folder"), ("empty", "no pictures")],
)
def test_calibration_errors(tmp_path, source, message):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=message):
        calibration_files(tmp_path / source)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # the last 1x1 conv of each box (cv2) and class (cv3) branch at three levels + attention (the DFL is
        # not in the quantized graph: it is part of the float decode)
        ("yolo11n-shapes", 2 * 3 + 1),
        ("yolo26n-shapes", 4 * 3 + 1),  # the one-to-one copies too
    ],
)
def test_float_layers(fixtures, name, expected):
    model = load(fixtures / "checkpoints" / f"{name}.pt", imgsz=IMGSZ).model
    names = float_layers(model)
    assert len(names) == expected and "backbone.stem" not in names and "head.cv3.2.2" in names
    assert float_layers(model, ("stem",)) == ["backbone.stem"]
    modules = dict(model.named_modules())
    assert all(n in modules for n in names)
    assert float_layers(model, ("dfl",)) == []  # accepted (older scripts), names nothing
    with pytest.raises(ConfigError, match="unknown layer group"):
        float_layers(model, ("backbone",))


@needs_torchao
def test_c2f_and_neck_concats_stay_int8(fixtures):
    """A concat whose inputs are all dequantized int8 tensors is lowered to an int8 concat (no float gather and
    re-quantize). yolov8n has 7: SPPF's, the two PAN concats of a conv with an earlier C2f/SPPF output, and
    the four neck C2f blocks (no shortcut: every input a quantized conv), which get there only because C2f
    concatenates cv1's whole output rather than its two halves (the halves, split views, are not quantized ops).
    The backbone C2f blocks end in residual adds and the upsampling concats take a float upsample: float."""
    det = load(fixtures / "checkpoints" / "yolov8n-random.pt", imgsz=64)
    bucket = Bucket(1, 64, 64)
    batch = torch.randint(0, 256, (1, 3, 64, 64), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    graph = quantize_network(det.model, {bucket: [batch]}).graphs["b1x64x64"].graph
    dequant = torch.ops.quantized_decomposed.dequantize_per_tensor.default
    cats = [n for n in graph.nodes if n.target == torch.ops.aten.cat.default]
    int8 = [n for n in cats if all(a.target == dequant for a in n.args[0])]
    assert len(int8) == 7, [[str(a.target) for a in n.args[0]] for n in cats]


@needs_torchao
def test_float_concats_quantize_their_parts(fixtures):
    """The remaining float concats (yolov8n: the 4 backbone C2f blocks, whose inner outputs are residual adds,
    and the 2 after an upsample) quantize each part on its way in instead of the concat's result: the same
    values bit for bit, with no float concat left for Inductor to write out and read back."""
    det = load(fixtures / "checkpoints" / "yolov8n-random.pt", imgsz=64)
    bucket = Bucket(1, 64, 64)
    batch = torch.randint(0, 256, (1, 3, 64, 64), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    before = quantize_network(det.model, {bucket: [batch]}, concat_parts=False).graphs["b1x64x64"]
    after = quantize_network(det.model, {bucket: [batch]}).graphs["b1x64x64"]
    quant = torch.ops.quantized_decomposed.quantize_per_tensor.default
    dequant = torch.ops.quantized_decomposed.dequantize_per_tensor.default
    cat = torch.ops.aten.cat.default

    def quantized_cats(graph, of_parts):
        cats = [n for n in graph.graph.nodes if n.target == cat]
        if of_parts:
            return [n for n in cats if all(p.target == quant for p in n.args[0])]
        # A float concat quantized afterwards (the int8 concats, of dequantized parts, are left as they are).
        return [
            n for n in cats if [u.target for u in n.users] == [quant] and all(p.target != dequant for p in n.args[0])
        ]

    assert len(quantized_cats(before, of_parts=False)) == 6 and not quantized_cats(before, of_parts=True)
    assert len(quantized_cats(after, of_parts=True)) == 6 and not quantized_cats(after, of_parts=False)
    with torch.no_grad():
        outs = [torch.utils._pytree.tree_leaves(g(batch)) for g in (before, after)]
    assert len(outs[0]) == len(outs[1]) and all(torch.equal(a, b) for a, b in zip(*outs, strict=True))


@needs_torchao
def test_network_input_is_quantized_exactly(fixtures):
    """The input (a uint8 picture / 255) is quantized with scale 1/255 and zero point 0, whatever the calibration
    pictures: every pixel value 0..255 round-trips. Calibrated on dark pictures (<= 100), an observer would fit
    the range to them (scale ~100/255/255) and read every brighter pixel as 100. With the stem kept in float
    the input is not quantized at all."""
    det = load(fixtures / "checkpoints" / "yolov8n-random.pt", imgsz=64)
    bucket = Bucket(1, 64, 64)
    dark = torch.randint(0, 101, (1, 3, 64, 64), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    # pixels_input=False keeps the quantize op that the default graph drops (`test_int8_graph_takes_pixels`).
    graph = quantize_network(det.model, {bucket: [dark]}, pixels_input=False).graphs["b1x64x64"].graph
    quant = torch.ops.quantized_decomposed.quantize_per_tensor.default  # registered by torchao's import
    (x,) = [n for n in graph.nodes if n.op == "placeholder"]
    (q,) = [n for n in x.users if n.target == quant]
    scale, zero_point = q.args[1:3]
    assert scale == pytest.approx(1 / 255, rel=1e-6) and zero_point == 0
    pixels = torch.arange(256, dtype=torch.float32) / 255
    assert torch.equal(quant(pixels, scale, zero_point, 0, 255, torch.uint8), torch.arange(256).to(torch.uint8))
    float_stem = quantize_network(det.model, {bucket: [dark]}, keep_float=("stem",)).graphs["b1x64x64"].graph
    (x,) = [n for n in float_stem.nodes if n.op == "placeholder"]
    assert not [n for n in x.users if n.target == quant]


@needs_torchao
def test_int8_graph_takes_pixels(fixtures):
    """Because the input quantization is exact, the default INT8 graph drops it and takes the uint8 pixels
    (no float round trip per pixel when compiled): the candidates are bit-identical to the graph that keeps the
    quantize op. With the stem in float the input is consumed in float and the graph keeps taking pixels / 255."""
    det = load(fixtures / "checkpoints" / "yolov8n-random.pt", imgsz=64)
    bucket = Bucket(1, 64, 64)
    batch = torch.randint(0, 256, (1, 3, 64, 64), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    pixels = quantize_network(det.model, {bucket: [batch]})
    floats = quantize_network(det.model, {bucket: [batch]}, pixels_input=False)
    assert pixels.takes_pixels and not floats.takes_pixels
    quant = torch.ops.quantized_decomposed.quantize_per_tensor.default
    (x,) = [n for n in pixels.graphs["b1x64x64"].graph.nodes if n.op == "placeholder"]
    assert not [n for n in x.users if n.target == quant]
    assert InferenceGraph(pixels, det.graph_config).pixels_in and not InferenceGraph(floats, det.graph_config).pixels_in
    conf = torch.tensor(0.01)  # low: many candidates compared, not a handful
    with torch.no_grad():
        got = InferenceGraph(pixels, det.graph_config)(batch, conf)
        want = InferenceGraph(floats, det.graph_config)(batch, conf)
    assert int(want.valid.sum()) > 10  # many candidates really compared
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)
    assert not quantize_network(det.model, {bucket: [batch]}, keep_float=("stem",)).takes_pixels


@needs_torchao
@pytest.mark.parametrize("vnni", [False, True])
def test_stem_weights_are_7_bit_without_vnni(fixtures, monkeypatch, vnni):
    """Without VNNI, oneDNN adds u8 x s8 products pairwise into a saturating int16, and the picture's bright
    pixels times 8-bit stem weights overflow it (on the AVX2 development machine the served INT8 then kept only
    12/15 of the fp32 detections on the synth pictures against 15/15 simulated). So the stem's weights are
    7-bit there (-64..63) and 8-bit elsewhere; the other convolutions keep -128..127 on every CPU."""
    import yolostream.quant.pt2e as pt2e

    monkeypatch.setattr(pt2e, "native_int8_dot", lambda: vnni)
    det = load(fixtures / "checkpoints" / "yolov8n-random.pt", imgsz=64)
    bucket = Bucket(1, 64, 64)
    batch = torch.randint(0, 256, (1, 3, 64, 64), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    module_owner = quantize_network(det.model, {bucket: [batch]})
    module = module_owner.graphs["b1x64x64"]
    per_channel = torch.ops.quantized_decomposed.dequantize_per_channel.default
    ranges = [tuple(n.args[4:6]) for n in module.graph.nodes if n.target == per_channel]
    stem = (-128, 127) if vnni else (-64, 63)
    assert ranges[0] == stem and set(ranges[1:]) == {(-128, 127)}, ranges
    assert module_owner.stem_weight_bits == (8 if vnni else 7)
    weights = [n.args[0] for n in module.graph.nodes if n.target == per_channel]
    assert int(getattr(module, weights[0].target).abs().max()) <= -stem[0]


# --- the accuracy gate ---------------------------------------------------------------------------------------


@pytest.fixture
def one_thread():
    """Eager fake-quant graphs are hundreds of small ops: on a busy machine two OpenMP threads wait on each
    other at every one of them (minutes instead of seconds); one thread keeps the gate tests' time bounded."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@needs_torchao
@pytest.mark.slow
def test_gate_passes_real_calibration_and_rejects_a_broken_one(fixtures, ref, one_thread):
    data = fixtures / "datasets" / "shapes" / "data.yaml"
    calib = calibration_files(fixtures / "images")  # the 8 fixture pictures (scenes and synth), not the val set
    pictures = [str(p) for p in calib]
    ref_val = validation_twin(ref, ref.model)
    good = quantize_network(ref.model, {BUCKET: calibration_batches(calib, BUCKET)})
    # Calibrated on black pictures, every activation range collapses to ~0: all real activations saturate.
    black = quantize_network(ref.model, {BUCKET: [torch.zeros(1, 3, IMGSZ, IMGSZ, dtype=torch.uint8)]})
    passed = accuracy_gate(ref, _fake_quant(ref, good), pictures, val=(ref_val, validation_twin(ref, good), data))
    broken = accuracy_gate(ref, _fake_quant(ref, black), pictures, val=(ref_val, validation_twin(ref, black), data))
    assert passed.passed, passed.reason
    # Measured: mAP50-95 0.4356 (fp32) -> 0.4407 (int8, fake-quant), every fp32 detection kept.
    assert passed.map_drop is not None and passed.map_drop <= 0.01 and passed.match_share >= 0.9
    assert not broken.passed and broken.map_drop > 0.01 and "mAP50-95 drops" in broken.reason
    assert broken.map_ref == passed.map_ref  # the same fp32 reference both times


# --- lowered INT8 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "native", "expected"), [("cpu", True, "bf16"), ("cpu", False, None), ("cuda", True, None)]
)
def test_int8_float_parts_follow_native_bf16(monkeypatch, device, native, expected):
    import yolostream.engine.backends as backends

    monkeypatch.setattr(backends, "native_bf16", lambda: native)
    assert backends.int8_float_parts(device) == expected


def _qconv_graph() -> torch.fx.GraphModule:
    """Two int8 convolutions sharing one bf16 bias, a binary one with an fp32 bias (its bias sits at another
    position), and a bf16 constant that is no bias: built, never run (the pass only rewrites constants)."""
    root = torch.nn.Module()
    root.register_buffer("b16", torch.tensor([0.1, -2.5, 3.0]).to(torch.bfloat16))
    root.register_buffer("b32", torch.tensor([0.5, 1.5, -1.0]))
    root.register_buffer("other16", torch.ones(3, dtype=torch.bfloat16))
    g = torch.fx.Graph()
    x, w, ws, wz = (g.placeholder(n) for n in ("x", "w", "ws", "wz"))
    b16, b32, other = g.get_attr("b16"), g.get_attr("b32"), g.get_attr("other16")
    conv = torch.ops.onednn.qconv_pointwise.default
    tail = ([1, 1], [0, 0], [1, 1], 1, 1.0, 0, torch.bfloat16, "none", [], "")
    a = g.call_function(conv, (x, 0.1, 0, w, ws, wz, b16, *tail))
    b = g.call_function(conv, (a, 0.1, 0, w, ws, wz, b16, *tail))
    binary = torch.ops.onednn.qconv2d_pointwise.binary
    c = g.call_function(binary, (b, 0.1, 0, w, ws, wz, a, b32, [1, 1], [0, 0], [1, 1], 1, 1.0, 0, None,
                                 1.0, 0, "sum", 1.0, "none", [], ""))  # fmt: skip
    g.output((c, g.call_function(torch.add, (other, 1))))
    return torch.fx.GraphModule(root, g)


def test_fp32_conv_bias_pass_widens_only_bf16_conv_biases():
    from yolostream.quant.bias_pass import FP32ConvBias

    gm = _qconv_graph()
    FP32ConvBias()(gm.graph)
    convs = [n for n in gm.graph.nodes if str(n.target).startswith("onednn.")]
    biases = [convs[0].args[6], convs[1].args[6], convs[2].args[7]]
    assert biases[0] is biases[1]  # one widened constant for the shared bias
    widened = getattr(gm, biases[0].target)
    assert widened.dtype == torch.float32 and torch.equal(widened, gm.b16.float())  # same values, bit for bit
    assert biases[2].target == "b32"  # already fp32: untouched
    attrs = {n.target for n in gm.graph.nodes if n.op == "get_attr"}
    assert "b16" not in attrs and "other16" in attrs  # the unused bf16 node is gone; a non-bias one stays


def test_with_bias_pass_only_for_bf16_parts_and_never_over_the_callers_pass():
    from yolostream.quant.bias_pass import FP32ConvBias, with_bias_pass

    assert isinstance(with_bias_pass("bf16", {"cpp_wrapper": True})["post_grad_custom_pre_pass"], FP32ConvBias)
    assert with_bias_pass(None, {"cpp_wrapper": True}) == {"cpp_wrapper": True}
    mine = object()
    assert with_bias_pass("bf16", {"post_grad_custom_pre_pass": mine})["post_grad_custom_pre_pass"] is mine


_BUILT: list[dict] = []


class _Recorder:
    """Stands in for `CompiledRunner`: records what it was built with (in `_BUILT`), compiles nothing."""

    def __init__(self, graph, buckets, mode="default", **kwargs):
        _BUILT.append({"mode": mode, "graph": graph, **kwargs})
        self.graph = graph


@needs_torchao
@pytest.mark.parametrize("float_parts", ["bf16", None])
def test_int8_compile_gets_the_bias_pass_with_bf16_parts(fixtures, calib, monkeypatch, float_parts):
    import yolostream.engine.backends as backends
    import yolostream.engine.compiled as compiled
    from yolostream.quant.bias_pass import FP32ConvBias

    monkeypatch.setattr(compiled, "CompiledRunner", _Recorder)
    monkeypatch.setattr(backends, "int8_float_parts", lambda device: float_parts)
    _BUILT.clear()
    path = fixtures / "checkpoints" / "yolo11n-shapes.pt"
    load(path, imgsz=IMGSZ, backend="inductor", dtype="int8", calib=calib, compile="default")
    chosen = _BUILT[0]["inductor_options"].get("post_grad_custom_pre_pass")
    assert isinstance(chosen, FP32ConvBias) if float_parts == "bf16" else chosen is None


@needs_torchao
@pytest.mark.slow
@pytest.mark.parametrize(("float_parts", "mode"), [("fp32", None), ("bf16", None), ("fp32", "default")])
def test_inductor_int8_keeps_the_fp32_detections(fixtures, ref, calib, monkeypatch, float_parts, mode):
    """Served INT8 (AOTInductor by default on the CPU, `choose.default_mode`; torch.compile when asked) keeps the
    fp32 detections."""
    import yolostream.engine.backends as backends
    from yolostream.engine.runtime import native_bf16

    if float_parts == "bf16" and not native_bf16():
        pytest.skip("int8 with bf16 float parts is chosen only where the CPU has native bf16 (not here)")
    # Either precision of the float remainder, whatever this CPU would choose by itself.
    monkeypatch.setattr(backends, "int8_float_parts", lambda device: "bf16" if float_parts == "bf16" else None)
    det = load(
        fixtures / "checkpoints" / "yolo11n-shapes.pt",
        imgsz=IMGSZ,
        backend="inductor",
        dtype="int8",
        calib=calib,
        compile=mode,
    )
    assert det.config.dtype == "int8" and det.runner.dtype == "int8" and det.runner.float_parts == float_parts
    assert det.runner.mode == (mode or "aoti")
    graph = det.runner.metadata["graph_config"] if mode is None else asdict(det.runner.graph.config)
    assert graph["amp"] == (None if float_parts == "fp32" else "bf16")
    share, n_ref, _ = match_share(ref, det, [str(p) for p in calib])
    # Measured 14/15 kept: INT8 moves scores and boxes a little, so a detection the fp32 model itself is unsure
    # of may come or go; 0.9 is the accuracy gate's own threshold (a broken quantization keeps ~0).
    assert n_ref >= 10 and share >= 0.9


@pytest.mark.skipif(not backend_available("openvino", "int8"), reason="openvino / nncf not installed")
@pytest.mark.slow
def test_openvino_int8_keeps_the_fp32_detections(fixtures, ref, calib):
    det = load(
        fixtures / "checkpoints" / "yolo11n-shapes.pt", imgsz=IMGSZ, backend="openvino", dtype="int8", calib=calib
    )
    share, n_ref, _ = match_share(ref, det, [str(p) for p in calib])
    # Measured 12/15: NNCF's INT8 moved two boxes past IoU 0.9 (by ~3 px) and lost one box/disc the fp32 model
    # itself hesitates on (conf 0.40). 0.75 holds that and still fails a broken model (which keeps ~0).
    # The accuracy gate (90%) would reject it for this model: that is the gate's job, not this test's.
    assert n_ref >= 10 and share >= 0.75


@needs_torchao
@pytest.mark.slow
def test_quantize_command_writes_a_gated_package(fixtures, tmp_path, capsys):
    out = tmp_path / "shapes.int8.pt2"
    model = fixtures / "checkpoints" / "yolo11n-shapes.pt"
    data = fixtures / "datasets" / "shapes" / "data.yaml"
    code = cli(["quantize", str(model), "--calib", str(fixtures / "images" / "synth"), "--val", str(data),
                "--imgsz", str(IMGSZ), "--out", str(out)])  # fmt: skip
    doc = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and doc["gate"]["passed"] and doc["package"] == str(out)
    assert doc["lowered_match_share"] >= 0.9  # the real int8 kernels, not only the fake-quant simulation
    served = load(out)
    assert served.config.dtype == "int8" and served.runner.metadata["quantization"]["gate"]["passed"]
    # The float remainder packaged in the precision the in-process INT8 backend uses on this CPU (bf16 where
    # native), and the package says so.
    from yolostream.engine.backends import int8_float_parts

    expected = int8_float_parts("cpu")
    assert served.runner.metadata["graph_config"]["amp"] == expected
    assert served.runner.metadata["quantization"]["float_parts"] == (expected or "fp32")
    from yolostream.engine.runtime import native_int8_dot

    # The stem's weight width this machine quantized with (7 bits without VNNI), recorded.
    assert served.runner.metadata["quantization"]["stem_weight_bits"] == (8 if native_int8_dot() else 7)


def test_quantize_command_rejects_unknown_float_groups(fixtures, capsys):
    assert cli(["quantize", str(fixtures / "checkpoints" / "yolo11n-shapes.pt"), "--keep-float", "neck"]) == 1
    assert "--keep-float ['neck']" in capsys.readouterr().err
