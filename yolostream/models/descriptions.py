"""Architecture descriptions for training from scratch: what a checkpoint of each family would store.

A checkpoint carries its architecture as data (layers ``[from, repeats, module, args]``, a table of
scales, the chosen scale, the class count); `yolostream.models.spec.parse_arch` reads it and our topology
code builds the model. A model trained from nothing has no checkpoint to read it from, so this module
writes that description for a family and scale, in the same plain-data form. The layer widths, repeats
and flags are facts of the published architectures (checked against the reference checkpoints' own
descriptions in the tests); the layout is generated here from the shared PAN topology.
"""

from __future__ import annotations

import re
from typing import Any

from yolostream.errors import ConfigError

# Scale tables: name -> (depth multiple, width multiple, max channels).
_SCALES_V5_V8: dict[str, dict[str, list[float]]] = {
    "yolov5u": {s: [d, w, 1024] for s, (d, w) in {"n": (0.33, 0.25), "s": (0.33, 0.5), "m": (0.67, 0.75),
                                                    "l": (1.0, 1.0), "x": (1.33, 1.25)}.items()},
    "yolov8": {"n": [0.33, 0.25, 1024], "s": [0.33, 0.5, 1024], "m": [0.67, 0.75, 768], "l": [1.0, 1.0, 512],
               "x": [1.0, 1.25, 512]},
}  # fmt: skip
_SCALES_11 = {"n": [0.5, 0.25, 1024], "s": [0.5, 0.5, 1024], "m": [0.5, 1.0, 512], "l": [1.0, 1.0, 512],
              "x": [1.0, 1.5, 512]}  # fmt: skip
# "t" (tiny) is yolostream's own scale below n: half n's width (a quarter of its compute), for models that
# must train in minutes on a CPU and run many streams on one, such as the bundled demo model.
_TINY = {"t": [0.5, 0.125, 1024]}
SCALES: dict[str, dict[str, list[float]]] = {
    **_SCALES_V5_V8,
    "yolov10": {"n": [0.33, 0.25, 1024]},
    "yolo11": {**_TINY, **_SCALES_11},
    "yolo26": {**_TINY, **_SCALES_11},
}

_NAME = re.compile(r"^(yolov5|yolov8|yolov10|yolo11|yolo26)([tnsmlx])(u?)$")
_UP = [-1, 1, "nn.Upsample", ["None", 2, "nearest"]]


def _cat(src: int) -> list[Any]:
    return [[-1, src], 1, "Concat", [1]]


def _v5u() -> list[list[Any]]:
    c3 = lambda n, c, *a: [-1, n, "C3", [c, *a]]  # noqa: E731
    conv = lambda c, k, s, *p: [-1, 1, "Conv", [c, k, s, *p]]  # noqa: E731
    backbone = [conv(64, 6, 2, 2), conv(128, 3, 2), c3(3, 128), conv(256, 3, 2), c3(6, 256), conv(512, 3, 2),
                c3(9, 512), conv(1024, 3, 2), c3(3, 1024), [-1, 1, "SPPF", [1024, 5]]]  # fmt: skip
    head = [conv(512, 1, 1), _UP, _cat(6), c3(3, 512, False), conv(256, 1, 1), _UP, _cat(4), c3(3, 256, False),
            conv(256, 3, 2), _cat(14), c3(3, 512, False), conv(512, 3, 2), _cat(10), c3(3, 1024, False),
            [[17, 20, 23], 1, "Detect", ["nc"]]]  # fmt: skip
    return backbone + head


def _v8_like(late: list[list[Any]], down: dict[int, str], attn: list[Any] | None, sppf: list[Any],
             neck: list[list[Any]], head_kind: str) -> list[list[Any]]:  # fmt: skip
    """The YOLOv8 / v10 / 11 / 26 layout: stem, 4 stages (down + block), SPPF, optional attention on P5,
    then the PAN neck (top-down with stage blocks 6 and 4, bottom-up) and the head on its three outputs."""
    rows: list[list[Any]] = [[-1, 1, "Conv", [64, 3, 2]]]
    for k, c in enumerate([128, 256, 512, 1024]):
        rows += [[-1, 1, down.get(k, "Conv"), [c, 3, 2]], late[k]]
    rows.append([-1, 1, "SPPF", sppf])
    if attn is not None:
        rows.append(attn)
    p5 = len(rows) - 1
    rows += [_UP, _cat(6), neck[0], _UP, _cat(4), neck[1]]  # neck[0] (top-down P4) lands at p5 + 3
    rows += [[-1, 1, "Conv", [256, 3, 2]], _cat(p5 + 3), neck[2]]
    rows += [[-1, 1, down.get(4, "Conv"), [512, 3, 2]], _cat(p5), neck[3]]
    n = len(rows)
    return [*rows, [[n - 7, n - 4, n - 1], 1, head_kind, ["nc"]]]


def _layers(family: str) -> list[list[Any]]:
    if family == "yolov5u":
        return _v5u()
    if family == "yolov8":
        late = [[-1, n, "C2f", [c, True]] for n, c in [(3, 128), (6, 256), (6, 512), (3, 1024)]]
        neck = [[-1, 3, "C2f", [c]] for c in (512, 256, 512, 1024)]
        return _v8_like(late, {}, None, [1024, 5], neck, "Detect")
    if family == "yolov10":  # the n scale's layout (other scales place C2fCIB elsewhere)
        late = [[-1, n, "C2f", [c, True]] for n, c in [(3, 128), (6, 256), (6, 512), (3, 1024)]]
        neck = [
            [-1, 3, "C2f", [512]],
            [-1, 3, "C2f", [256]],
            [-1, 3, "C2f", [512]],
            [-1, 3, "C2fCIB", [1024, True, True]],
        ]
        down = {2: "SCDown", 3: "SCDown", 4: "SCDown"}
        return _v8_like(late, down, [-1, 1, "PSA", [1024]], [1024, 5], neck, "v10Detect")
    e2e = family == "yolo26"
    late = [[-1, 2, "C3k2", [256, False, 0.25]], [-1, 2, "C3k2", [512, False, 0.25]], [-1, 2, "C3k2", [512, True]],
            [-1, 2, "C3k2", [1024, True]]]  # fmt: skip
    neck = [[-1, 2, "C3k2", [512, e2e]], [-1, 2, "C3k2", [256, e2e]], [-1, 2, "C3k2", [512, e2e]]]
    neck.append([-1, 1, "C3k2", [1024, True, 0.5, True]] if e2e else [-1, 2, "C3k2", [1024, True]])
    sppf = [1024, 5, 3, True] if e2e else [1024, 5]
    return _v8_like(late, {}, [-1, 2, "C2PSA", [1024]], sppf, neck, "Detect")


def parse_model_name(name: str) -> tuple[str, str]:
    """``"yolo11n"`` -> ``("yolo11", "n")``; ``"yolov5nu"``/``"yolov5n"`` -> ``("yolov5u", "n")``."""
    m = _NAME.match(name.strip().lower())
    if m is None:
        raise ConfigError(
            f"{name!r} is neither a model file nor a family+scale name "
            "(yolov5nu, yolov8s, yolov10n, yolo11m, yolo26x, ...)"
        )
    family, scale, u = m.groups()
    if u and family != "yolov5":
        raise ConfigError(f"{name!r}: only YOLOv5 names take the 'u' suffix")
    family = "yolov5u" if family == "yolov5" else family
    if scale not in SCALES[family]:
        raise ConfigError(
            f"{name!r}: from scratch, {family} is available at scales {sorted(SCALES[family])} "
            "(its other scales move blocks around; fine-tune from one of their checkpoints instead)"
        )
    return family, scale


def description(name: str, nc: int) -> dict[str, Any]:
    """The stored-architecture dict (as in a checkpoint) for a family+scale name and class count."""
    family, scale = parse_model_name(name)
    rows = _layers(family)
    head = 10 if family in ("yolov5u", "yolov8") else 11  # backbone rows: up to SPPF, plus the attention block
    arch: dict[str, Any] = {"nc": int(nc), "scales": {k: list(v) for k, v in SCALES[family].items()}, "scale": scale}
    if family == "yolo26":
        arch.update(end2end=True, reg_max=1)
    arch["backbone"], arch["head"] = rows[:head], rows[head:]
    arch["channels"] = 3
    return arch
