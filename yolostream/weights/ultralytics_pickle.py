"""Read an Ultralytics `.pt` checkpoint (a torch.save zip) without torch.load and without Ultralytics.

Layout of a torch.save zip: `<name>/data.pkl` (the pickled object; each tensor refers to a storage by key),
`<name>/data/<key>` (one raw little-endian record per storage), `<name>/byteorder`, `<name>/version`.
Ultralytics pickles a dict whose `model` / `ema` entry is the whole `DetectionModel` (fp16), so a state dict
has to be dug out of the pickled module tree, which `restricted_unpickler` turns into inert placeholders.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import torch

from yolostream.errors import CheckpointError
from yolostream.weights.raw import RawCheckpoint, check_names, check_stride, plain_or_missing
from yolostream.weights.restricted_unpickler import Placeholder, StorageRef, TensorRecord, unpickle_restricted
from yolostream.weights.sniff import describe, kind_of, looks_like_pt2, read_head

# A checkpoint's pickle is a few hundred KiB; a bound keeps a compressed "zip bomb" from exhausting memory.
MAX_PICKLE_BYTES = 256 << 20
# The task each Ultralytics top-level model class solves; anything else falls back to train_args["task"].
_TASK_OF_CLASS = {
    "DetectionModel": "detect",
    "WorldModel": "detect",
    "YOLOEModel": "detect",
    "RTDETRDetectionModel": "detect",
    "SegmentationModel": "segment",
    "PoseModel": "pose",
    "OBBModel": "obb",
    "ClassificationModel": "classify",
}
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError)


def read_ultralytics_checkpoint(path: str | os.PathLike) -> RawCheckpoint:
    """The module stored under `ema` (when present and not None), else `model`, as a `RawCheckpoint`.

    Raises UnsafeCheckpointError when the pickle asks for anything outside the allow-list (nothing from the
    file runs), CheckpointError for anything that is not a readable Ultralytics checkpoint.
    """
    p, head = read_head(path)
    kind = kind_of(head)
    if kind == "legacy_torch":
        raise CheckpointError(
            f"{p}: is a pre-1.6 torch.save file; legacy torch.save format is not supported "
            "(re-save it with a current PyTorch, which writes a zip archive)"
        )
    if kind != "zip":
        raise CheckpointError(
            f"{p}: is not an Ultralytics checkpoint (a torch.save zip); it looks like {describe(head)}"
        )
    try:
        zf = zipfile.ZipFile(p)
    except _ZIP_ERRORS as e:
        raise CheckpointError(
            f"{p}: is a truncated or corrupt zip archive ({p.stat().st_size} bytes; {e}); "
            "was a download or copy cut short?"
        ) from e
    with zf:
        prefix = _torch_prefix(zf, p)
        data = _read_member(zf, prefix + "data.pkl", p, limit=MAX_PICKLE_BYTES)
        obj, _ = unpickle_restricted(data, str(p))
        module, source = _pick_module(obj, p)
        records: dict[str, TensorRecord] = {}
        modules: dict[str, tuple[str, dict[str, Any]]] = {}
        _walk(module, "", records, modules, p, active=set())
        root = module.state
        stride_value = root.get("stride")
        wanted = list(records.values())
        if isinstance(stride_value, TensorRecord):
            wanted.append(stride_value)
        loaded = _materialise(zf, prefix, wanted, p)
    tensors = dict(zip(records, loaded, strict=False))  # the stride tensor, if any, is last and left over
    if isinstance(stride_value, TensorRecord):
        stride_value = loaded[-1]
    try:
        stride = check_stride(stride_value, f"{p}: checkpoint['{source}'].stride")
        names = check_names(root.get("names"), f"{p}: checkpoint['{source}'].names")
    except ValueError as e:
        raise CheckpointError(str(e)) from e
    arch = root.get("yaml")
    ok, arch_plain = plain_or_missing(arch)
    if not ok or not isinstance(arch_plain, dict):
        raise CheckpointError(
            f"{p}: checkpoint['{source}'] has no architecture description ('yaml' is {type(arch).__name__})"
        )
    meta = {k: v for k, v in _plain_items(obj) if k not in ("model", "ema", "optimizer")}
    return RawCheckpoint(
        state_dict=tensors,
        arch=arch_plain,
        names=names,
        stride=stride,
        task=_task(module, meta),
        modules=modules,
        source=source,
        meta=meta,
    )


def _torch_prefix(zf: zipfile.ZipFile, p: Path) -> str:
    """The folder torch.save put its records in ("" or "name/"); CheckpointError when it is no torch.save zip."""
    names = zf.namelist()
    pickles = [n for n in names if n == "data.pkl" or (n.endswith("/data.pkl") and n.count("/") == 1)]
    if len(pickles) == 1:
        prefix = pickles[0][: -len("data.pkl")]
        order = zf.read(prefix + "byteorder").strip() if prefix + "byteorder" in names else b"little"
        if order != b"little":
            raise CheckpointError(f"{p}: was saved on a {order.decode(errors='replace')}-endian machine; unsupported")
        return prefix
    if looks_like_pt2(names):
        raise CheckpointError(f"{p}: is an AOTInductor package; load it with yolostream.load")
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    what = "no data.pkl record" if not pickles else f"{len(pickles)} data.pkl records"
    raise CheckpointError(f"{p}: is a zip archive but not a torch.save file: {what} (holds {shown or 'nothing'})")


def _read_member(zf: zipfile.ZipFile, name: str, p: Path, limit: int) -> bytes:
    info = zf.getinfo(name)
    if info.file_size > limit:
        raise CheckpointError(f"{p}: record '{name}' is {info.file_size} bytes, more than the {limit} allowed")
    try:
        return zf.read(info)
    except _ZIP_ERRORS as e:
        raise CheckpointError(f"{p}: record '{name}' is corrupt ({e})") from e


def _pick_module(obj: Any, p: Path) -> tuple[Placeholder, str]:
    """`obj["ema"]` when present and not None, else `obj["model"]`: the pickled module and which one it was."""
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"{p}: data.pkl holds {_what(obj)}, not an Ultralytics checkpoint (a dict with 'model' or 'ema')"
        )
    source = "ema" if obj.get("ema") is not None else "model"
    module = obj.get(source)
    if module is None:
        keys = [str(k) for k in list(obj)[:8]]
        bare = bool(obj) and all(isinstance(v, TensorRecord) for v in obj.values())
        hint = " (it looks like a bare state_dict)" if bare else ""
        raise CheckpointError(
            f"{p}: is not an Ultralytics checkpoint: its dict has no 'model' or 'ema' entry{hint} "
            f"(keys: {', '.join(keys) or 'none'})"
        )
    if not _is_module(module):
        raise CheckpointError(f"{p}: checkpoint['{source}'] is {_what(module)}, not a pickled torch module")
    return module, source


def _is_module(obj: Any) -> bool:
    return (
        isinstance(obj, Placeholder)
        and isinstance(obj.state, dict)
        and all(isinstance(obj.state.get(k, {}), dict) for k in ("_parameters", "_buffers", "_modules"))
    )


def _what(obj: Any) -> str:
    if isinstance(obj, Placeholder):
        return f"a {obj.class_name}"
    if isinstance(obj, TensorRecord):
        return "a tensor"
    return f"a {type(obj).__name__}"


def _walk(
    module: Placeholder,
    prefix: str,
    records: dict[str, TensorRecord],
    modules: dict[str, tuple[str, dict[str, Any]]],
    p: Path,
    active: set[int],
) -> None:
    """Collect what `module.state_dict()` would: own parameters, persistent buffers, then children in order."""
    path = prefix[:-1]
    if id(module) in active:
        raise CheckpointError(f"{p}: module '{path}' contains itself")
    active.add(id(module))
    state = module.state
    skip = state.get("_non_persistent_buffers_set") or set()
    for group in ("_parameters", "_buffers"):
        for name, tensor in (state.get(group) or {}).items():
            if tensor is None or (group == "_buffers" and name in skip):
                continue
            if not isinstance(name, str):
                raise CheckpointError(f"{p}: module '{path}' has a {group[1:-1]} named {name!r:.50}, not a string")
            if not isinstance(tensor, TensorRecord):
                raise CheckpointError(f"{p}: '{prefix}{name}' in {group} is {_what(tensor)}, not a tensor")
            records[f"{prefix}{name}"] = tensor
    attrs = {}
    for key, value in state.items():
        if isinstance(key, str) and not key.startswith("_"):
            ok, plain = plain_or_missing(value)
            if ok:
                attrs[key] = plain
    modules[path] = (module.class_name, attrs)
    for name, child in (state.get("_modules") or {}).items():
        if child is None:
            continue
        if not _is_module(child):
            raise CheckpointError(f"{p}: submodule '{prefix}{name}' is {_what(child)}, not a pickled torch module")
        _walk(child, f"{prefix}{name}.", records, modules, p, active)
    active.discard(id(module))


def _materialise(zf: zipfile.ZipFile, prefix: str, records: list[TensorRecord], p: Path) -> list[torch.Tensor]:
    """Fresh contiguous tensors for `records`, reading each storage once and dropping it after its last use."""
    uses: dict[str, int] = {}
    for rec in records:
        uses[rec.storage.key] = uses.get(rec.storage.key, 0) + 1
    cache: dict[str, torch.Tensor] = {}
    out = []
    for rec in records:
        key = rec.storage.key
        flat = cache.get(key)
        if flat is None:
            flat = cache[key] = _read_storage(zf, prefix, rec.storage, p)
        view = flat.as_strided(rec.size, rec.stride, rec.offset)
        # Ultralytics stores fp16; yolostream computes (and folds BatchNorm) in fp32, so widen here, once.
        dtype = torch.float32 if view.is_floating_point() else view.dtype
        out.append(torch.empty(rec.size, dtype=dtype).copy_(view))
        uses[key] -= 1
        if uses[key] == 0:
            del cache[key]
    return out


def _read_storage(zf: zipfile.ZipFile, prefix: str, ref: StorageRef, p: Path) -> torch.Tensor:
    """Storage `ref` as a flat tensor of its dtype, in memory torch owns."""
    name = f"{prefix}data/{ref.key}"
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise CheckpointError(f"{p}: storage record '{name}' is missing from the archive") from None
    nbytes = ref.numel * ref.dtype.itemsize
    if info.file_size != nbytes:
        raise CheckpointError(
            f"{p}: storage record '{name}' holds {info.file_size} bytes; the pickle expects {nbytes} "
            f"({ref.numel} x {ref.dtype})"
        )
    buf = torch.empty(nbytes, dtype=torch.uint8)
    try:
        with zf.open(info) as f:
            got = f.readinto(buf.numpy())
    except _ZIP_ERRORS as e:
        raise CheckpointError(f"{p}: storage record '{name}' is corrupt ({e})") from e
    if got != nbytes:
        raise CheckpointError(f"{p}: storage record '{name}' ended after {got} of {nbytes} bytes")
    return buf.view(ref.dtype)


def _plain_items(obj: dict[Any, Any]) -> list[tuple[str, Any]]:
    """The top-level checkpoint entries that have a plain-data form (date, version, train_args, epoch, ...)."""
    items = []
    for k, v in obj.items():
        if isinstance(k, str):
            ok, plain = plain_or_missing(v)
            if ok:
                items.append((k, plain))
    return items


def _task(module: Placeholder, meta: dict[str, Any]) -> str:
    """The model's own `task` attribute, else what its class implies, else train_args["task"], else detect."""
    task = module.state.get("task")
    if not isinstance(task, str):
        task = _TASK_OF_CLASS.get(module.class_name.rsplit(".", 1)[-1])
    if task is None:
        args = meta.get("train_args")
        task = args.get("task") if isinstance(args, dict) else None
    return task if isinstance(task, str) else "detect"


__all__ = ["read_ultralytics_checkpoint"]
