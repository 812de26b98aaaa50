"""PT2E post-training static INT8 quantization of the network with torchao's x86 Inductor quantizer.

Flow (torchao >= 0.13; torch 2.13 no longer ships ``torch.ao.quantization.quantize_pt2e``): export the
network at each bucket's shape, annotate it with `X86InductorQuantizer` (per-channel symmetric int8
weights, per-tensor affine uint8 activations), run the calibration batches through the observers, convert
to quantize/dequantize pairs around float ops. Compiled by Inductor with freezing, those pairs are matched
into oneDNN int8 convolutions with prepacked weights (`CompiledRunner`, `export_package`); run eagerly they
simulate the same arithmetic in float (what the accuracy gate can measure without compiling).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from yolostream.engine.buckets import Bucket
from yolostream.engine.runtime import native_int8_dot, quiet_loggers
from yolostream.errors import ConfigError
from yolostream.models.head import DetectHead, HeadOutput, decode, join_levels
from yolostream.models.yolo import YOLO

log = logging.getLogger("yolostream.quant")

# Kept in float by default: the head's last 1x1 convolutions produce the box distributions and class logits,
# where an int8 step is a visible box or score shift. The DFL (fixed 0..15 weights, a softmax input) is not in
# the quantized graph at all: it is part of the float decode after it (`LevelsNetwork`); the "dfl" group is
# still accepted, and names nothing. The stem (3 input channels) is quantized: kept in float it costs a
# float convolution plus a separate quantize pass over its output, and quantizing it cost no accuracy.
# Measured on yolo11n-shapes (320, calibrated on the 6 synth pictures, compiled, mAP50-95 on the 60 shapes
# pictures; fp32 0.4356): float stem 0.4386, quantized stem 0.4382 (float parts bf16: 0.4418 / 0.4389); and
# yolov8n 640 on AVX-512 + AMX: quantized stem 0.93x the network time of a float one.
# The attention block (YOLO11, YOLO26: P5 only, a few % of the time) stays in float too: its residual adds
# read a split view, which torch 2.13's int8 conv + add fusion refuses to lower ("accum is an alias").
KEEP_FLOAT = ("head_outputs", "attention")
KEEP_CHOICES = ("stem", "head_outputs", "dfl", "attention")


def available() -> bool:
    """Whether torchao's PT2E quantizer is installed (the ``int8`` extra)."""
    import importlib.util

    return importlib.util.find_spec("torchao") is not None


def float_layers(model: YOLO, keep: Sequence[str] = KEEP_FLOAT) -> list[str]:
    """Module names (relative to ``model``) to leave in float for the named groups of `KEEP_CHOICES`."""
    unknown = sorted(set(keep) - set(KEEP_CHOICES))
    if unknown:
        raise ConfigError(f"unknown layer group(s) {unknown} to keep in float: choose from {', '.join(KEEP_CHOICES)}")
    names: list[str] = []
    if "stem" in keep:
        names.append("backbone.stem")
    if "head_outputs" in keep:
        for branch in ("cv2", "cv3", "one2one_cv2", "one2one_cv3"):
            convs = getattr(model.head, branch, None)
            names += [f"head.{branch}.{i}.{len(seq) - 1}" for i, seq in enumerate(convs or [])]
    if "attention" in keep and not isinstance(model.backbone.attn, nn.Identity):
        names.append("backbone.attn")
    return names


class LevelsNetwork(nn.Module):
    """What gets quantized: the network up to the head's raw per-level maps, its branch fixed.

    [B, 3, H, W] -> (boxes P3, scores P3, boxes P4, scores P4, boxes P5, scores P5), each [B, C, H_i, W_i]. The
    decode (DFL, anchors, sigmoid) stays outside, in float, where `InferenceGraph` can take each anchor's best
    class before any sigmoid (`decode_best`). The module is called ``net`` (quantization names layers by it).
    """

    def __init__(self, net: YOLO, one2one: bool) -> None:
        super().__init__()
        self.net = net
        self.one2one = one2one

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return tuple(t for level in self.net.levels(x, self.one2one) for t in level)


class QuantizedNetwork(nn.Module):
    """Stand-in for `YOLO` in an `InferenceGraph`: one converted (q/dq) `LevelsNetwork` graph per bucket shape.

    ``levels(x, one2one)`` and ``forward(x, one2one)`` (the decoded [B, 4 + nc, A], as `YOLO`'s) take
    [B, 3, H, W] of a bucket's exact shape: the uint8 pixels themselves when ``takes_pixels`` (the input
    quantization was exact and is removed, `_pixels_input`), else the pixels / 255 in float; the head branch
    was fixed at quantization (``one2one`` must match it). Under torch.compile the shape lookup happens at
    trace time.
    """

    def __init__(
        self,
        graphs: Mapping[Bucket, nn.Module],
        one2one: bool,
        float_layers: Sequence[str],
        stem_weight_bits: int | None,
        head: DetectHead,
        takes_pixels: bool = False,
    ) -> None:
        super().__init__()
        self.graphs = nn.ModuleDict({_key(b): g for b, g in graphs.items()})
        self.one2one = one2one
        self.float_layers = tuple(float_layers)
        self.stem_weight_bits = stem_weight_bits  # 7 without VNNI (`_seven_bit_weights`), None: stem in float
        self.takes_pixels = takes_pixels
        self.strides, self.reg_max = head.strides, head.reg_max
        self.dfl = copy.deepcopy(head.dfl)  # the float decode's (fixed 0..reg_max-1 weights)

    def levels(self, x: Tensor, one2one: bool = False) -> list[HeadOutput]:
        if one2one != self.one2one:
            raise ConfigError(f"this INT8 network was quantized with one2one={self.one2one}")
        key = _key(Bucket(x.shape[0], x.shape[2], x.shape[3]))
        if key not in self.graphs:
            raise ConfigError(f"no INT8 graph for input {tuple(x.shape)}: quantized for {', '.join(self.graphs)}")
        maps = self.graphs[key](x)
        return [HeadOutput(maps[i], maps[i + 1]) for i in range(0, len(maps), 2)]

    def forward(self, x: Tensor, one2one: bool = False) -> Tensor:
        levels = self.levels(x, one2one)
        shapes = [(lv.boxes.shape[2], lv.boxes.shape[3]) for lv in levels]
        return decode(join_levels(levels), shapes, self.strides, self.dfl)


def _key(bucket: Bucket) -> str:
    return f"b{bucket.batch}x{bucket.height}x{bucket.width}"


def _seven_bit_weights(config: Any) -> Any:
    """``config`` with its int8 weights limited to -64..63 (per channel, symmetric, as before).

    Why: without VNNI, oneDNN's int8 convolution multiplies uint8 activations by int8 weights with
    ``vpmaddubsw``, which adds each pair of products into a saturating int16: 2 x 255 x 127 overflows it. The
    stem's input is the picture, full of pixels near 255, so its sums do saturate (served detections then
    differ from the simulated ones the gate measured); with 7-bit weights the largest pair, 2 x 255 x 64, fits.
    Inner layers' activations sit near their zero point and keep 8-bit weights (NNCF's "first layer" overflow
    fix does the same).
    """
    return dataclasses.replace(config, weight=dataclasses.replace(config.weight, quant_min=-64, quant_max=63))


def _exact_input_quantizer(xiq: Any) -> Any:
    """The x86 quantizer, except that the network input is quantized with scale 1/255, zero point 0.

    Why: the input is a uint8 picture divided by 255, so those parameters represent it exactly. An observer's
    range is fitted to the calibration pictures instead and can clip their brightest pixels (one measured range
    ended at 0.98: every pixel above 250 read as 250), which a picture brighter than the calibration set
    would lose more of. Inputs consumed in float (the stem kept in float) are left alone.
    """
    from torchao.quantization.pt2e.quantizer.quantizer import FixedQParamsQuantizationSpec

    exact = FixedQParamsQuantizationSpec(
        dtype=torch.uint8, scale=1 / 255, zero_point=0, quant_min=0, quant_max=255, qscheme=torch.per_tensor_affine
    )

    class ExactInputQuantizer(xiq.X86InductorQuantizer):  # type: ignore[misc, name-defined]
        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            model = super().annotate(model)
            for x in (n for n in model.graph.nodes if n.op == "placeholder"):
                for user in x.users:
                    annotation = user.meta.get(xiq.QUANT_ANNOTATION_KEY)
                    if annotation is not None and x in annotation.input_qspec_map:
                        annotation.input_qspec_map[x] = exact
            return model

    return ExactInputQuantizer()


def _pixels_input(graph: torch.fx.GraphModule) -> bool:
    """Make the converted ``graph`` take the uint8 pixels instead of pixels / 255 where its input is consumed
    only by exact quantize ops (`_exact_input_quantizer`): each returns the pixels themselves, so they are
    dropped. Returns whether the graph was changed (not when the stem stays in float: it reads the float input).

    Why: compiled, that quantize op was a kernel of its own that converts every pixel to float and back while
    transposing it into the convolution's channels-last order (kernels capped at AVX2: 1.4 ms of a 39 ms yolov8n
    forward); without it only the uint8 transpose is left. The dequantized values are bit-identical.
    """
    quant = torch.ops.quantized_decomposed.quantize_per_tensor.default
    (x,) = [n for n in graph.graph.nodes if n.op == "placeholder"]
    # torch.export's shape guards (``_guards_fn``) also read the input; they check shapes only.
    users = [u for u in x.users if not (u.op == "call_module" and u.target == "_guards_fn")]
    pixels = torch.arange(256, dtype=torch.uint8)
    for q in users:  # the op as it runs (eager and lowered alike: round(x * (1 / scale)) + zero point)
        if q.target != quant or tuple(q.args[2:]) != (0, 0, 255, torch.uint8):
            return False
        if not torch.equal(quant(pixels.float() / 255, q.args[1], 0, 0, 255, torch.uint8), pixels):
            return False  # not an exact 1/255 (a range fitted to calibration pictures)
    for q in users:
        q.replace_all_uses_with(x)
        graph.graph.erase_node(q)
    graph.recompile()
    return bool(users)


def _quantize_concat_parts(graph: torch.fx.GraphModule) -> int:
    """Rewrite ``quantize(cat(parts))`` as ``cat(quantize(part) for each part)`` where the float concat has no
    other user and no part is a dequantized int8 tensor (those concats Inductor already lowers to int8).
    Returns how many were rewritten.

    Why: quantizing is elementwise with one scale, so the result is the same, bit for bit (eager, and compiled
    with fp32 float parts); but compiled, the float concat was written out whole and read back by the quantize
    (the backbone C2f blocks: cv1's output and the residual adds; the upsampled concats), one kernel with three
    passes over the data. Quantizing each part on its way into the concat writes only the uint8 result.
    Interleaved call by call, AVX-512 + AMX, 2 threads: yolov8n fp32 parts 0.96-0.98x the network time,
    yolov8s bf16 parts 0.95-0.97x; kernels capped at AVX2: 1.00-1.01x (neutral). With bf16 parts a fused
    kernel now quantizes a residual sum before it is rounded to bf16 (Inductor keeps fused intermediates in
    fp32), so a value may land one int8 step away.
    """
    quant = torch.ops.quantized_decomposed.quantize_per_tensor.default
    dequant = torch.ops.quantized_decomposed.dequantize_per_tensor.default
    cat = torch.ops.aten.cat.default
    done = 0
    for q in [n for n in graph.graph.nodes if n.target == quant]:
        joined = q.args[0]
        if not isinstance(joined, torch.fx.Node) or joined.target != cat or len(joined.users) != 1:
            continue
        parts = joined.args[0]
        if any(not isinstance(p, torch.fx.Node) or p.target == dequant for p in parts):
            continue
        with graph.graph.inserting_before(q):
            quantized = [graph.graph.call_function(quant, (p, *q.args[1:]), dict(q.kwargs)) for p in parts]
            rebuilt = graph.graph.call_function(cat, (quantized, *joined.args[1:]), dict(joined.kwargs))
        q.replace_all_uses_with(rebuilt)
        graph.graph.erase_node(q)
        graph.graph.erase_node(joined)
        done += 1
    if done:
        graph.recompile()
    return done


def quantize_network(
    model: YOLO,
    calibration: Mapping[Bucket, Sequence[Tensor]],
    *,
    one2one: bool = False,
    keep_float: Sequence[str] = KEEP_FLOAT,
    pixels_input: bool = True,
    concat_parts: bool = True,
) -> QuantizedNetwork:
    """INT8 copy of float32 ``model`` per bucket, calibrated on that bucket's uint8 batches [B, 3, H, W].

    ``keep_float``: layer groups left in float (`KEEP_CHOICES`); ``pixels_input``: let the graphs take the uint8
    pixels where the input quantization is exact (`_pixels_input`; False only to measure it); ``concat_parts``:
    quantize a float concat's parts instead of its result (`_quantize_concat_parts`; False only to measure it).
    The float model is not modified.
    """
    if not available():
        raise ModuleNotFoundError("torchao not installed: pip install 'yolostream[int8]'")
    with quiet_loggers("torchao", "torch.utils._pytree"):
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    skip = float_layers(model, keep_float)
    stem_bits = None if "stem" in keep_float else 8 if native_int8_dot() else 7
    root = LevelsNetwork(model.eval(), one2one).eval()
    graphs: dict[Bucket, nn.Module] = {}
    pixels: list[bool] = []
    for bucket, batches in calibration.items():
        if not batches:
            raise ConfigError(f"no calibration batch for bucket {bucket}")
        config = xiq.get_default_x86_inductor_quantization_config()
        quantizer = _exact_input_quantizer(xiq).set_global(config)
        if stem_bits == 7:
            (stem,) = float_layers(model, ("stem",))  # the stem's module name, as `float_layers` names it
            quantizer.set_module_name_qconfig(f"net.{stem}", _seven_bit_weights(config))
        for name in skip:
            quantizer.set_module_name_qconfig(f"net.{name}", None)
        example = (batches[0].float() / 255,)
        with torch.no_grad():
            exported = torch.export.export(root, example, strict=False).module()
            prepared = prepare_pt2e(exported, quantizer)  # type: ignore[arg-type]
            for images in batches:
                # Divided as InferenceGraph divides: the observers must see the values served.
                prepared(images.float() / 255)
            graphs[bucket] = convert_pt2e(prepared)
            pixels.append(pixels_input and _pixels_input(graphs[bucket]))
            if concat_parts:
                _quantize_concat_parts(graphs[bucket])
        log.info("quantized bucket %s on %d batches (float: %s)", bucket, len(batches), ", ".join(keep_float) or "none")
    if any(pixels) and not all(pixels):
        raise RuntimeError("some buckets' INT8 graphs take pixels and others pixels / 255")  # one input convention
    return QuantizedNetwork(graphs, one2one, skip, stem_bits, model.head, takes_pixels=all(pixels))
