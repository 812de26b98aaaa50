"""The trainable model: built from a checkpoint (fine-tuning) or from a family+scale name (from scratch),
and written back as a checkpoint that `yolostream.load` serves.

Training keeps BatchNorm unfolded (folding happens at load for inference). Checkpoint keys follow the
stored-description layout (``model.<layer>.<rest>``), so a trained file reads like any other.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from torch import nn

from yolostream.errors import CheckpointError
from yolostream.models.builder import build
from yolostream.models.descriptions import description
from yolostream.models.head import DFL
from yolostream.models.load import load_state_strict, remap_keys
from yolostream.models.spec import ArchSpec, parse_arch
from yolostream.models.yolo import YOLO
from yolostream.weights import RawCheckpoint, read_checkpoint

log = logging.getLogger("yolostream.train")


@dataclass
class TrainableModel:
    """A model in training form plus what is needed to save it as a checkpoint.

    paths: description layer index -> our module path (for the checkpoint's key names).
    reinitialised: parameter names that did not come from the starting checkpoint (class branch on a
        class-count change; everything when training from scratch).
    """

    model: YOLO
    spec: ArchSpec
    arch: dict[str, Any]
    names: dict[int, str]
    paths: dict[int, str]
    source: str
    reinitialised: list[str]


def init_weights(model: YOLO, imgsz: int = 640) -> None:
    """Initial weights for training from scratch.

    Convolutions keep PyTorch's default (Kaiming-uniform) init. The head's last layers get biases that
    start the optimisation near a sensible prior (the RetinaNet/YOLO practice): class logits at about
    5 objects per image spread over the anchors of each level, box distances at 1 (one stride).
    """
    head = model.head
    for cv2, cv3 in [(head.cv2, head.cv3)] + ([(head.one2one_cv2, head.one2one_cv3)] if head.end2end else []):
        for box, cls, s in zip(cv2, cv3, head.strides, strict=True):
            nn.init.constant_(box[-1].bias, 1.0)
            nn.init.constant_(cls[-1].bias, math.log(5 / head.nc / (imgsz / s) ** 2))


def _set_trainable(model: YOLO) -> YOLO:
    model.train().requires_grad_(True)
    for m in model.modules():
        if isinstance(m, DFL):
            m.requires_grad_(False)  # fixed bin values 0..reg_max-1, never trained
    return model


def from_scratch(name: str, names: dict[int, str], imgsz: int = 640) -> TrainableModel:
    """A family+scale name (``yolo11n``, ``yolov8s``, ...) with random initial weights for ``names``."""
    arch = description(name, len(names))
    spec = parse_arch(arch, nc=len(names))
    model, paths = build(spec)
    init_weights(model, imgsz)
    everything = [k for k, _ in model.named_parameters()]
    return TrainableModel(_set_trainable(model), spec, arch, dict(names), paths, name, everything)


def from_checkpoint(path: str | Path, names: dict[int, str] | None = None, imgsz: int = 640) -> TrainableModel:
    """A checkpoint to fine-tune. With ``names`` of another length, the class branch is rebuilt for it:
    every tensor whose name and shape still fit is kept, the rest (class convolutions only) is new."""
    raw = read_checkpoint(path)
    names = dict(names) if names is not None else dict(raw.names)
    arch = dict(raw.arch)
    arch["nc"] = len(names)
    spec_old = parse_arch(raw.arch, nc=len(raw.names))
    spec = replace(spec_old, nc=len(names))
    model, paths = build(spec)
    state, unplaced = remap_keys(raw.state_dict, paths)
    if len(names) == len(raw.names):
        load_state_strict(model, state, unplaced)
        fresh: list[str] = []
    else:
        init_weights(model, imgsz)
        own = model.state_dict()
        keep = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        fresh = sorted(set(own) - set(keep))
        stray = [k for k in fresh if not k.startswith(("head.cv3.", "head.one2one_cv3."))]
        if unplaced or stray:
            raise CheckpointError(f"{path}: cannot rebuild the class branch: unexpected keys {(unplaced + stray)[:8]}")
        model.load_state_dict(keep, strict=False)
        log.info("%s: %d classes -> %d: rebuilt %d class-branch tensors", path, len(raw.names), len(names), len(fresh))
    return TrainableModel(_set_trainable(model), spec, arch, names, paths, str(path), fresh)


def to_checkpoint(tm: TrainableModel, model: nn.Module, meta: dict[str, Any], half: bool = False) -> RawCheckpoint:
    """``model`` (the trained weights, e.g. the EMA copy) as a `RawCheckpoint` in the description's key layout.

    ``half`` stores floating tensors as fp16 (half the file; they read back as float32, as Ultralytics'
    own fp16 files do).
    """
    inverse = sorted(((p, i) for i, p in tm.paths.items()), key=lambda t: -len(t[0]))
    state = {}
    for key, value in model.state_dict().items():
        prefix, layer = next((p, i) for p, i in inverse if key == p or key.startswith(p + "."))
        t = value.detach().to("cpu", copy=True)
        if half and t.is_floating_point():
            t = t.half()
        state[f"model.{layer}{key[len(prefix) :]}"] = t
    strides = list(tm.model.head.strides)
    return RawCheckpoint(state, dict(tm.arch), dict(tm.names), strides, source="model", meta=dict(meta))
