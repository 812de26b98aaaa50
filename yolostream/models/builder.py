"""Build a `YOLO` module from an `ArchSpec`: the shared PAN topology with each layer's block kind,
width and depth read from the description, and the map from the checkpoint's layer indices to our modules.
"""

from __future__ import annotations

from torch import nn

from yolostream.errors import CheckpointError
from yolostream.models.attention import C2PSA, PSA
from yolostream.models.blocks import C3, SPPF, C2f, c3k2
from yolostream.models.conv import ConvBNAct
from yolostream.models.head import DetectHead
from yolostream.models.spec import ArchSpec
from yolostream.models.v10_blocks import SCDown, c2f_cib
from yolostream.models.yolo import YOLO, Backbone, PANNeck

# Our module path for each parameterised slot of the topology, in the order the description lists them.
SLOT_PATHS = {
    "stem": "backbone.stem",
    **{f"down{k}": f"backbone.down.{k}" for k in range(4)},
    **{f"block{k}": f"backbone.blocks.{k}" for k in range(4)},
    "sppf": "backbone.sppf",
    "attn": "backbone.attn",
    "lat5": "neck.lateral5",
    "td4": "neck.top_down4",
    "lat4": "neck.lateral4",
    "td3": "neck.top_down3",
    "ndown3": "neck.down3",
    "bu4": "neck.bottom_up4",
    "ndown4": "neck.down4",
    "bu5": "neck.bottom_up5",
    "head": "head",
}
_BACKBONE = ["stem", "down0", "block0", "down1", "block1", "down2", "block2", "down3", "block3", "sppf"]


def slot_layers(spec: ArchSpec) -> dict[str, int]:
    """Slot name -> layer index in the description (Upsample/Concat layers carry no slot)."""
    slots = list(_BACKBONE)
    if spec.family in ("yolov10", "yolo11", "yolo26"):
        slots.append("attn")
    lateral = spec.family == "yolov5u"
    slots += ["lat5"] * lateral + ["td4"] + ["lat4"] * lateral + ["td3", "ndown3", "bu4", "ndown4", "bu5", "head"]
    indices = [i for i, layer in enumerate(spec.layers) if layer.kind not in ("Upsample", "Concat")]
    if len(indices) != len(slots):
        raise CheckpointError(f"{spec.family}: expected {len(slots)} parameterised layers, found {len(indices)}")
    return dict(zip(slots, indices, strict=True))


def _check_wiring(spec: ArchSpec, at: dict[str, int]) -> None:
    """The concatenations must join the layers our neck joins (else this is another topology)."""
    p5 = at.get("attn", at["sppf"])
    expected = [
        at["block2"],  # top-down: upsampled P5 with P4
        at["block1"],  # top-down: upsampled P4 with P3
        at.get("lat4", at["td4"]),  # bottom-up: downsampled P3 with the top-down P4
        at.get("lat5", p5),  # bottom-up: downsampled P4 with P5
    ]
    concats = [(i, layer) for i, layer in enumerate(spec.layers) if layer.kind == "Concat"]
    for (i, layer), want in zip(concats, expected, strict=True):
        if layer.src != (-1, want):
            raise CheckpointError(f"layer {i} concatenates {layer.src}, this topology needs (-1, {want})")
    for i, layer in enumerate(spec.layers):
        if layer.kind == "Upsample" and tuple(layer.args[1:]) != (2, "nearest"):
            raise CheckpointError(f"layer {i}: only 2x nearest upsampling is supported, got {layer.args}")
    if spec.layers[-1].src != (at["td3"], at["bu4"], at["bu5"]):
        raise CheckpointError(f"the head reads layers {spec.layers[-1].src}, expected the three neck outputs")


def _conv(spec: ArchSpec, i: int, c1: int) -> nn.Module:
    """A downsampling/lateral layer: Conv [c2, k, s, p] or SCDown [c2, k, s]."""
    layer, c2 = spec.layers[i], spec.out(i)
    k, s = int(spec.arg(i, 1, 1)), int(spec.arg(i, 2, 1))
    if layer.kind == "SCDown":
        return SCDown(c1, c2, k, s)
    p = spec.arg(i, 3, None)
    return ConvBNAct(c1, c2, k, s, None if p is None else int(p))


def _csp(spec: ArchSpec, i: int, c1: int) -> nn.Module:
    """A CSP block as the description declares it, with its scaled width and depth."""
    kind, c2, n = spec.layers[i].kind, spec.out(i), spec.n(i)
    if kind == "C2f":
        return C2f(c1, c2, n, shortcut=bool(spec.arg(i, 1, False)))
    if kind == "C3":
        return C3(c1, c2, n, shortcut=bool(spec.arg(i, 1, True)))
    if kind == "C3k2":
        # Larger scales (m, l, x) always use C3k inner blocks, whatever the layer's flag says.
        use_c3k = bool(spec.arg(i, 1, False)) or spec.scale in ("m", "l", "x")
        e, attn = float(spec.arg(i, 2, 0.5)), bool(spec.arg(i, 3, False))
        return c3k2(c1, c2, n, use_c3k=use_c3k, e=e, attn=attn)
    if kind == "C2fCIB":
        return c2f_cib(c1, c2, n, shortcut=bool(spec.arg(i, 1, False)), lk=bool(spec.arg(i, 2, False)))
    raise CheckpointError(f"layer {i}: {kind} is not a supported block here")


def build(spec: ArchSpec) -> tuple[YOLO, dict[int, str]]:
    """The model for ``spec`` (random init) and the map layer index -> our module path."""
    at = slot_layers(spec)
    _check_wiring(spec, at)
    out = lambda slot: spec.out(at[slot])  # noqa: E731

    stem = _conv(spec, at["stem"], 3)
    stages, c = [], out("stem")
    for k in range(4):
        down = _conv(spec, at[f"down{k}"], c)
        block = _csp(spec, at[f"block{k}"], out(f"down{k}"))
        stages.append((down, block))
        c = out(f"block{k}")
    i = at["sppf"]
    sppf = SPPF(c, out("sppf"), int(spec.arg(i, 1, 5)), int(spec.arg(i, 2, 3)), bool(spec.arg(i, 3, False)))
    c5 = out("sppf")
    attn = None
    if "attn" in at:
        i = at["attn"]
        attn = C2PSA(c5, out("attn"), spec.n(i)) if spec.layers[i].kind == "C2PSA" else PSA(c5, out("attn"))
        c5 = out("attn")
    backbone = Backbone(stem, stages, sppf, attn)

    c3, c4 = out("block1"), out("block2")
    lat5 = _conv(spec, at["lat5"], c5) if "lat5" in at else None
    l5 = out("lat5") if lat5 is not None else c5
    td4 = _csp(spec, at["td4"], l5 + c4)
    lat4 = _conv(spec, at["lat4"], out("td4")) if "lat4" in at else None
    t4 = out("lat4") if lat4 is not None else out("td4")
    td3 = _csp(spec, at["td3"], t4 + c3)
    down3 = _conv(spec, at["ndown3"], out("td3"))
    bu4 = _csp(spec, at["bu4"], out("ndown3") + t4)
    down4 = _conv(spec, at["ndown4"], out("bu4"))
    bu5 = _csp(spec, at["bu5"], out("ndown4") + l5)
    neck = PANNeck(td4, td3, down3, bu4, down4, bu5, lateral5=lat5, lateral4=lat4)

    head = DetectHead(
        spec.nc,
        (out("td3"), out("bu4"), out("bu5")),
        reg_max=spec.reg_max,
        depthwise_cls=spec.family not in ("yolov5u", "yolov8"),
        end2end=spec.end2end,
    )
    paths = {at[slot]: SLOT_PATHS[slot] for slot in at}
    return YOLO(backbone, neck, head), paths
