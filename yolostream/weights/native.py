"""yolostream's own checkpoint format: a `.safetensors` file plus one JSON metadata entry, no pickle at all.

The tensors are the `RawCheckpoint.state_dict`; the metadata entry "yolostream" holds
`{"format_version": 1, "keys", "arch", "names", "stride", "task", "source", "modules", "meta"}`.
JSON has no int dict keys (class names are keyed by int), so a dict whose keys are not all strings is
written as `{"__yolostream_items__": [[key, value], ...]}`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch

from yolostream.errors import CheckpointError
from yolostream.weights.raw import NotPlainError, RawCheckpoint, check_names, check_stride, to_plain
from yolostream.weights.sniff import describe, is_safetensors_head, read_head

FORMAT_VERSION = 1
METADATA_KEY = "yolostream"
_ITEMS = "__yolostream_items__"
_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def save_native(raw: RawCheckpoint, path: str | os.PathLike) -> None:
    """Write `raw` to `path` (a `.safetensors` file); written to a temporary name first, then renamed."""
    p = Path(path)
    # Tensors are stored as they are held, float32: the file then reads back bit-identical, and RawCheckpoint
    # does not remember whether its source was fp16. The price is twice the size of an fp16 file (12 MB at n).
    tensors = {k: v.detach().contiguous() for k, v in raw.state_dict.items()}
    try:
        header = {
            "format_version": FORMAT_VERSION,
            "keys": list(tensors),  # safetensors sorts its records; a state dict's order is the module order
            "arch": to_plain(raw.arch),
            "names": to_plain(raw.names),
            "stride": to_plain(raw.stride),
            "task": raw.task,
            "source": raw.source,
            "modules": {k: [cls, to_plain(attrs)] for k, (cls, attrs) in raw.modules.items()},
            "meta": to_plain(raw.meta),
        }
    except NotPlainError as e:
        raise ValueError(f"cannot save {p}: RawCheckpoint holds a non-plain value ({e})") from e
    text = json.dumps(_encode(header), separators=(",", ":"))
    tmp = p.with_name(p.name + ".tmp")
    try:
        safetensors.torch.save_file(tensors, str(tmp), metadata={METADATA_KEY: text})
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)


def read_native(path: str | os.PathLike) -> RawCheckpoint:
    """A checkpoint written by `save_native`. CheckpointError for any other, damaged or newer file."""
    p, head = read_head(path)
    if not is_safetensors_head(head):
        raise CheckpointError(f"{p}: is not a yolostream .safetensors checkpoint; it looks like {describe(head)}")
    data = p.read_bytes()
    n = int.from_bytes(data[:8], "little")
    if 8 + n > len(data):
        raise CheckpointError(f"{p}: is truncated: its safetensors header says {n} bytes, the file has {len(data)}")
    try:
        header = json.loads(data[8 : 8 + n])
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{p}: has a corrupt safetensors header ({e})") from e
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    text = meta.get(METADATA_KEY) if isinstance(meta, dict) else None
    if not isinstance(text, str):
        raise CheckpointError(
            f"{p}: is a safetensors file without yolostream metadata (a bare state_dict?); "
            "yolostream reads only the files its save_native writes"
        )
    try:
        info = _decode(json.loads(text))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{p}: has corrupt yolostream metadata ({e})") from e
    version = info.get("format_version") if isinstance(info, dict) else None
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{p}: yolostream metadata has no valid format_version ({version!r:.50})")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{p}: was written by a newer yolostream (format_version {version}; this one reads "
            f"{FORMAT_VERSION}); upgrade yolostream"
        )
    try:
        flat = dict(safetensors.deserialize(data))
    except Exception as e:  # SafetensorError: offsets outside the file, overlapping records, bad dtype...
        raise CheckpointError(f"{p}: is a corrupt or truncated safetensors file ({e})") from e
    return _to_raw(info, flat, p)


def _to_raw(info: dict[str, Any], flat: dict[str, dict[str, Any]], p: Path) -> RawCheckpoint:
    keys = info.get("keys")
    if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(flat):
        raise CheckpointError(f"{p}: yolostream metadata lists other tensors than the file holds")
    try:
        state_dict = {k: _owned(flat[k], k) for k in keys}
        names = check_names(info.get("names"), f"{p}: names")
        stride = check_stride(info.get("stride"), f"{p}: stride")
        modules = {k: _module_entry(v, k) for k, v in (info.get("modules") or {}).items()}
    except (ValueError, TypeError, IndexError, KeyError, AttributeError) as e:
        raise CheckpointError(f"{p}: has invalid yolostream contents ({e})") from e
    arch, meta = info.get("arch"), info.get("meta") or {}
    if not isinstance(arch, dict) or not isinstance(meta, dict):
        raise CheckpointError(f"{p}: yolostream metadata 'arch' and 'meta' must be objects")
    return RawCheckpoint(
        state_dict=state_dict,
        arch=arch,
        names=names,
        stride=stride,
        task=str(info.get("task", "detect")),
        modules=modules,
        source=str(info.get("source", "model")),
        meta=meta,
    )


def _module_entry(value: Any, path: str) -> tuple[str, dict[str, Any]]:
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], dict)):
        raise ValueError(f"module '{path}' must be [class name, attributes], got {value!r:.100}")
    return value[0], value[1]


def _owned(spec: dict[str, Any], name: str) -> torch.Tensor:
    """A tensor in torch-owned memory from one deserialised record; floating ones as float32."""
    dtype = _DTYPES.get(spec["dtype"])
    if dtype is None:
        raise ValueError(f"tensor '{name}' has unsupported dtype {spec['dtype']}")
    out = torch.empty(spec["shape"], dtype=dtype)
    raw = spec["data"]
    if len(raw):
        out.reshape(-1).view(torch.uint8).copy_(torch.frombuffer(raw, dtype=torch.uint8))
    return out.float() if out.is_floating_point() else out


def _encode(value: Any) -> Any:
    if isinstance(value, dict):
        if all(isinstance(k, str) and k != _ITEMS for k in value):
            return {k: _encode(v) for k, v in value.items()}
        return {_ITEMS: [[k, _encode(v)] for k, v in value.items()]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and _ITEMS in value:
            return {_key(k): _decode(v) for k, v in value[_ITEMS]}
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _key(k: Any) -> Any:
    if k is None or isinstance(k, bool | int | float | str):
        return k
    raise TypeError(f"dict key {k!r:.50} is not a plain value")


__all__ = ["FORMAT_VERSION", "read_native", "save_native"]
