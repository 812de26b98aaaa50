"""Strict loading of checkpoint tensors into a freshly built `YOLO`.

Every tensor of the checkpoint must land in the model and every parameter/buffer of the model must come
from the checkpoint, with the same shape; otherwise the error names the keys.
"""

from __future__ import annotations

import torch
from torch import nn

from yolostream.errors import CheckpointError
from yolostream.models.builder import build
from yolostream.models.fold import fold
from yolostream.models.spec import ArchSpec, parse_arch
from yolostream.models.yolo import YOLO
from yolostream.weights.raw import RawCheckpoint


def _list(keys: list[str], limit: int = 8) -> str:
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def remap_keys(state_dict: dict[str, torch.Tensor], paths: dict[int, str]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Checkpoint keys ``model.<layer>.<rest>`` -> ``<our module path>.<rest>``; also returns keys that fit nowhere."""
    out, unplaced = {}, []
    for key, value in state_dict.items():
        parts = key.split(".", 2)
        if len(parts) == 3 and parts[0] == "model" and parts[1].isdigit() and int(parts[1]) in paths:
            out[f"{paths[int(parts[1])]}.{parts[2]}"] = value
        else:
            unplaced.append(key)
    return out, unplaced


def _check_activations(model: nn.Module, raw: RawCheckpoint, paths: dict[int, str]) -> None:
    """Activations carry no tensors, so compare their types with the pickled module tree."""
    ours = dict(model.named_modules())
    for path, (qualname, _) in raw.modules.items():
        kind = qualname.rsplit(".", 1)[-1]
        if kind not in ("SiLU", "Identity") or not path.endswith(".act"):
            continue
        mapped, unplaced = remap_keys({path: torch.empty(0)}, paths)
        target = next(iter(mapped), None)
        if target is None or unplaced:
            continue
        mine = type(ours[target]).__name__ if target in ours else None
        if mine is not None and mine != kind:
            raise CheckpointError(f"{path} is {kind} in the checkpoint but {mine} in the built model ({target})")


def load_state_strict(model: nn.Module, state: dict[str, torch.Tensor], unplaced: list[str] = ()) -> None:
    """Assign ``state`` to ``model`` (built on any device, meta included) or raise naming every mismatch."""
    expected = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected)) + list(unplaced)
    shapes = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in state.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} model tensors missing from the checkpoint: {_list(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} checkpoint tensors the model has no place for: {_list(unexpected)}")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatches: {_list(shapes, 4)}")
    if problems:
        raise CheckpointError("checkpoint does not fit the architecture it describes: " + "; ".join(problems))
    model.load_state_dict(state, strict=True, assign=True)


def model_from_checkpoint(raw: RawCheckpoint, fold_bn: bool = True) -> tuple[YOLO, ArchSpec]:
    """Build the described architecture (on the meta device: no init cost), fill it, fold it; eval mode."""
    nc = len(raw.names) if raw.names else None
    spec = parse_arch(raw.arch, nc=nc)
    with torch.device("meta"):
        model, paths = build(spec)
    state, unplaced = remap_keys(raw.state_dict, paths)
    load_state_strict(model, state, unplaced)
    _check_activations(model, raw, paths)
    model.eval().requires_grad_(False)
    if fold_bn:
        fold(model)
    return model, spec
