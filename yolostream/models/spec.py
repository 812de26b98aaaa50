"""`ArchSpec`: the architecture a checkpoint describes, checked against the families we implement.

Ultralytics stores with each model a description: a list of layers ``[from, repeats, module, args]``, a
table of scales ``{name: [depth, width, max_channels]}`` and the chosen scale. We read it as data: to pick
the family, the scale multipliers and each layer's width, depth and flags. The topology itself is code,
in `yolostream.models.families`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from yolostream.errors import CheckpointError

# Layer types per family, in order (Upsample/Concat included, as they occupy indices). YOLOv10 swaps C2f for
# C2fCIB at different places per scale, so its block positions accept either.
_B = "C2f|C2fCIB"
FAMILY_LAYOUTS: dict[str, tuple[str, ...]] = {
    "yolov5u": (
        *("Conv", "Conv", "C3", "Conv", "C3", "Conv", "C3", "Conv", "C3", "SPPF"),
        *("Conv", "Upsample", "Concat", "C3", "Conv", "Upsample", "Concat", "C3"),
        *("Conv", "Concat", "C3", "Conv", "Concat", "C3", "Detect"),
    ),
    "yolov8": (
        *("Conv", "Conv", "C2f", "Conv", "C2f", "Conv", "C2f", "Conv", "C2f", "SPPF"),
        *("Upsample", "Concat", "C2f", "Upsample", "Concat", "C2f"),
        *("Conv", "Concat", "C2f", "Conv", "Concat", "C2f", "Detect"),
    ),
    "yolov10": (
        *("Conv", "Conv", _B, "Conv", _B, "SCDown", _B, "SCDown", _B, "SPPF", "PSA"),
        *("Upsample", "Concat", _B, "Upsample", "Concat", _B),
        *("Conv", "Concat", _B, "SCDown", "Concat", _B, "v10Detect"),
    ),
    "yolo11": (
        *("Conv", "Conv", "C3k2", "Conv", "C3k2", "Conv", "C3k2", "Conv", "C3k2", "SPPF", "C2PSA"),
        *("Upsample", "Concat", "C3k2", "Upsample", "Concat", "C3k2"),
        *("Conv", "Concat", "C3k2", "Conv", "Concat", "C3k2", "Detect"),
    ),
}
FAMILIES = ("yolov5u", "yolov8", "yolov10", "yolo11", "yolo26")


@dataclass(frozen=True)
class Layer:
    """One layer of the description: its type, source indices, repeats and constructor arguments."""

    kind: str
    src: int | tuple[int, ...]
    repeats: int
    args: tuple[Any, ...]


@dataclass(frozen=True)
class ArchSpec:
    """A parsed, validated architecture: family, scale multipliers, classes, head options and layers."""

    family: str
    scale: str
    depth: float
    width: float
    max_channels: int
    nc: int
    reg_max: int
    end2end: bool
    layers: tuple[Layer, ...]
    scales: dict[str, tuple[float, float, int]]

    def channels(self, c: int) -> int:
        """Scaled width of a layer declared with ``c`` output channels (rounded up to a multiple of 8)."""
        return math.ceil(min(c, self.max_channels) * self.width / 8) * 8

    def repeats(self, n: int) -> int:
        """Scaled depth of a layer declared with ``n`` repeats (at least 1)."""
        return max(round(n * self.depth), 1) if n > 1 else n

    def out(self, i: int) -> int:
        """Scaled output channels of layer ``i`` (its first argument)."""
        return self.channels(int(self.layers[i].args[0]))

    def n(self, i: int) -> int:
        """Scaled repeats of layer ``i``."""
        return self.repeats(self.layers[i].repeats)

    def arg(self, i: int, k: int, default: Any) -> Any:
        """Argument ``k`` of layer ``i`` (0 = output channels), or ``default`` when not given."""
        args = self.layers[i].args
        return args[k] if len(args) > k else default

    def with_scale(self, scale: str) -> ArchSpec:
        """The same description at another of its scales (e.g. 's' from an 'n' checkpoint)."""
        if scale not in self.scales:
            raise CheckpointError(f"scale {scale!r} is not in this description (has {sorted(self.scales)})")
        d, w, m = self.scales[scale]
        return replace(self, scale=scale, depth=d, width=w, max_channels=m)


def _kind(name: str) -> str:
    return name.split(".")[-1]  # "nn.Upsample" -> "Upsample"


def _layers(arch: dict[str, Any]) -> tuple[Layer, ...]:
    rows = list(arch.get("backbone") or []) + list(arch.get("head") or [])
    layers = []
    for i, row in enumerate(rows):
        if not (isinstance(row, (list, tuple)) and len(row) == 4):
            raise CheckpointError(f"architecture layer {i} is not [from, repeats, module, args]: {row!r}")
        src, n, module, args = row
        src = tuple(src) if isinstance(src, (list, tuple)) else int(src)
        layers.append(Layer(_kind(str(module)), src, int(n), tuple(args)))
    return tuple(layers)


def _family(layers: tuple[Layer, ...], arch: dict[str, Any]) -> str:
    kinds = tuple(layer.kind for layer in layers)
    for family, layout in FAMILY_LAYOUTS.items():
        if len(kinds) == len(layout) and all(k in allowed.split("|") for k, allowed in zip(kinds, layout, strict=True)):
            if family == "yolo11" and arch.get("end2end"):
                return "yolo26"  # same layer types; YOLO26 is end-to-end with reg_max 1 and SPPF shortcut
            return family
    raise CheckpointError(
        "unsupported architecture: layer types "
        + " ".join(kinds)
        + f" match none of the supported detection families ({', '.join(FAMILIES)})"
    )


def parse_arch(arch: dict[str, Any], nc: int | None = None) -> ArchSpec:
    """Validate a stored description and resolve its scale.

    ``nc`` overrides the description's class count (checkpoints trained on other data store both; the
    tensors are the truth and the builder checks them).
    """
    if not isinstance(arch, dict) or "backbone" not in arch or "head" not in arch:
        raise CheckpointError("the checkpoint carries no architecture description (no backbone/head lists)")
    layers = _layers(arch)
    family = _family(layers, arch)
    scales = {str(k): (float(v[0]), float(v[1]), int(v[2])) for k, v in (arch.get("scales") or {}).items()}
    scale = str(arch.get("scale") or "")
    if scale in scales:
        depth, width, max_ch = scales[scale]
    elif "depth_multiple" in arch and "width_multiple" in arch:
        depth, width, max_ch = float(arch["depth_multiple"]), float(arch["width_multiple"]), 1 << 30
    elif len(scales) == 1:
        scale, (depth, width, max_ch) = next(iter(scales.items()))
    else:
        raise CheckpointError(f"the description does not say which scale it is (scale={scale!r}, has {sorted(scales)})")
    head = layers[-1]
    if head.src not in ((15, 18, 21), (16, 19, 22), (17, 20, 23)):
        raise CheckpointError(f"only three-level (P3, P4, P5) heads are supported; the head reads layers {head.src}")
    return ArchSpec(
        family=family,
        scale=scale,
        depth=depth,
        width=width,
        max_channels=max_ch,
        nc=int(nc if nc is not None else arch.get("nc", 80)),
        reg_max=int(arch.get("reg_max", 16)),
        end2end=bool(arch.get("end2end", family == "yolov10")),
        layers=layers,
        scales=scales,
    )
