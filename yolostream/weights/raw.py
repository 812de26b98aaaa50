"""The format-neutral result of reading a checkpoint: tensors plus the plain data that describes them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

# What "plain data" means everywhere in yolostream.weights: JSON-like values that need no class to rebuild.
PlainData = None | bool | int | float | str | list["PlainData"] | dict[Any, "PlainData"]


class NotPlainError(ValueError):
    """A value that has no plain-data form (a tensor, a module, an unknown object)."""


def to_plain(value: Any) -> PlainData:
    """A deep copy of `value` as dict/list/str/int/float/bool/None; tuples and `torch.Size` become lists.

    Dict keys may be str, int, float, bool or None (Ultralytics keys class names by int). Raises
    `NotPlainError` for anything else anywhere inside, so a caller can drop the whole value.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, list | tuple):  # torch.Size is a tuple
        return [to_plain(v) for v in value]
    if isinstance(value, dict):  # OrderedDict too
        out: dict[Any, PlainData] = {}
        for k, v in value.items():
            if not (k is None or isinstance(k, bool | int | float | str)):
                raise NotPlainError(f"dict key of type {type(k).__name__}")
            out[k] = to_plain(v)
        return out
    raise NotPlainError(f"value of type {type(value).__module__}.{type(value).__qualname__}")


def plain_or_missing(value: Any) -> tuple[bool, PlainData]:
    """`(True, to_plain(value))`, or `(False, None)` when it has no plain form."""
    try:
        return True, to_plain(value)
    except NotPlainError:
        return False, None


@dataclass
class RawCheckpoint:
    """A detection checkpoint as read from disk, before any model is built.

    state_dict: exactly the keys `nn.Module.state_dict()` of the stored module gives, in its order;
        floating tensors float32, integer tensors (`num_batches_tracked`, int64) unchanged; every tensor
        contiguous, writable and owning its memory.
    arch: the stored architecture description (Ultralytics' parsed model description) as plain data.
    names: class index -> class name. stride: the detection strides in input pixels, e.g. [8.0, 16.0, 32.0].
    task: "detect", "segment", ... modules: submodule path ("" for the root, "model.22", "model.2.m.0")
        -> (stored class "package.module.Class", its plain non-underscore attributes).
    source: which checkpoint entry was read ("ema" or "model"; "native" files keep the original's).
    meta: plain data about the file (version, date, license, epoch, train_args, ...).
    """

    state_dict: dict[str, torch.Tensor]
    arch: dict[str, Any]
    names: dict[int, str]
    stride: list[float]
    task: str = "detect"
    modules: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    source: str = "model"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.names)


def check_names(names: Any, where: str) -> dict[int, str]:
    """`names` as {int: str}; Ultralytics stores a dict, some older files a list. Raises ValueError."""
    if isinstance(names, list | tuple):
        names = dict(enumerate(names))
    if not isinstance(names, dict) or not all(
        isinstance(k, int) and not isinstance(k, bool) and isinstance(v, str) for k, v in names.items()
    ):
        raise ValueError(f"{where}: class names must map int -> str, got {names!r:.200}")
    return {int(k): v for k, v in sorted(names.items())}


def check_stride(stride: Any, where: str) -> list[float]:
    """`stride` as a non-empty list of finite positive floats. Raises ValueError."""
    if isinstance(stride, torch.Tensor):
        stride = stride.reshape(-1).tolist()
    if not isinstance(stride, list | tuple) or not stride:
        raise ValueError(f"{where}: stride must be a non-empty list, got {stride!r:.200}")
    out = []
    for s in stride:
        if isinstance(s, bool) or not isinstance(s, int | float) or not math.isfinite(s) or s <= 0:
            raise ValueError(f"{where}: stride values must be positive numbers, got {stride!r:.200}")
        out.append(float(s))
    return out
