"""An allow-list unpickler for torch.save pickles that builds inert records instead of running anything.

A pickle names the callables it wants (GLOBAL / STACK_GLOBAL) and the unpickler calls them: that is how a
checkpoint can run `os.system`. Here `find_class` answers every name with one of
- an inert placeholder class (Ultralytics and `torch.nn` modules): it records the constructor arguments and the
  state that BUILD / `__setstate__` hands it, and has no other behaviour;
- our own tensor rebuilders, which return `TensorRecord`s describing a view of a storage (read later);
- a short list of harmless builtins and torch value types;
and refuses every other name with `UnsafeCheckpointError`. Nothing from the file is ever imported or executed.
"""

from __future__ import annotations

import collections
import io
import math
import pickle
from typing import Any, ClassVar

import torch

from yolostream.errors import CheckpointError, UnsafeCheckpointError

# Most elements a tensor may claim beyond its storage's (stride-0 broadcasts); bounds what a hostile file can
# make us allocate from a few bytes, while letting through the small expanded tensors torch.save can write.
MAX_EXPANDED_NUMEL = 1 << 24
# torch.save names each storage's element type by its legacy storage class.
STORAGE_DTYPES: dict[str, torch.dtype] = {
    "HalfStorage": torch.float16,
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
    "UntypedStorage": torch.uint8,  # counted in bytes
}

# Value types a module's plain attributes may hold; calling them with pickle arguments cannot run code.
_DTYPE_NAMES = ("float16", "float32", "float64", "bfloat16", "half", "float", "double")
_DTYPE_NAMES += ("int64", "int32", "int16", "int8", "uint8", "long", "int", "bool")
_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    **{("torch", name): getattr(torch, name) for name in _DTYPE_NAMES},
}
# Python 2 module names that protocol-2 pickles carry (the C unpickler maps them inside find_class).
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}
# Classes of these packages become placeholders: they are only ever looked at, never run.
_PLACEHOLDER_PACKAGES = ("ultralytics", "torch.nn.modules")


class BadRecordError(ValueError):
    """A pickle that is well-formed but describes an impossible tensor or storage."""


class _Frozen:
    """Base of the unpickler's own records: BUILD (`__setstate__`) on them is refused, so a file cannot edit them."""

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        raise BadRecordError(f"pickle tries to set state on a {type(self).__name__}")


class StorageType(_Frozen):
    """What `torch.HalfStorage` & co. unpickle to: just the element type."""

    __slots__ = ("dtype", "name")

    def __init__(self, name: str, dtype: torch.dtype):
        self.name, self.dtype = name, dtype


class StorageRef(_Frozen):
    """A storage that the zip's `data/<key>` record holds; `numel` elements of `dtype`."""

    __slots__ = ("dtype", "key", "numel")

    def __init__(self, key: str, dtype: torch.dtype, numel: int):
        self.key, self.dtype, self.numel = key, dtype, numel

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StorageRef) and (self.key, self.dtype, self.numel) == (
            other.key,
            other.dtype,
            other.numel,
        )

    def __hash__(self) -> int:
        return hash((self.key, self.numel))


class TensorRecord(_Frozen):
    """A tensor still on disk: a strided view of a storage, materialised by the checkpoint reader."""

    __slots__ = ("offset", "size", "storage", "stride")

    def __init__(self, storage: StorageRef, offset: int, size: tuple[int, ...], stride: tuple[int, ...]):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __repr__(self) -> str:
        return f"TensorRecord({self.storage.key}, {self.storage.dtype}, size={self.size})"


class Placeholder:
    """An instance of a class we refuse to import: remembers its arguments and its pickled state only."""

    __slots__ = ("args", "state")
    class_name: ClassVar[str] = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> Placeholder:  # NEWOBJ / NEWOBJ_EX / REDUCE
        obj = object.__new__(cls)
        obj.args = (args, kwargs)
        obj.state = None
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # REDUCE calls cls(*args): nothing to do
        pass

    def __setstate__(self, state: Any) -> None:  # BUILD
        # (dict, slots) pairs come from classes with __slots__; merge both into one attribute dict.
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict | type(None)):
            merged = dict(state[0] or {})
            merged.update(state[1] or {})
            state = merged
        if isinstance(self.state, dict) and isinstance(state, dict):
            self.state.update(state)
        else:
            self.state = state

    def __repr__(self) -> str:
        return f"<placeholder {self.class_name}>"


def _int_tuple(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple | list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise BadRecordError(f"tensor {what} must be a tuple of non-negative ints, got {value!r:.100}")
    return tuple(value)


def rebuild_tensor_v2(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> TensorRecord:
    """Stands in for `torch._utils._rebuild_tensor_v2`: checks the view fits its storage, reads nothing."""
    if not isinstance(storage, StorageRef):
        raise BadRecordError(f"tensor rebuilt from {type(storage).__name__}, not from a stored storage")
    if not isinstance(storage_offset, int) or isinstance(storage_offset, bool) or storage_offset < 0:
        raise BadRecordError(f"tensor storage offset must be a non-negative int, got {storage_offset!r:.100}")
    size_t, stride_t = _int_tuple(size, "size"), _int_tuple(stride, "stride")
    if len(size_t) != len(stride_t):
        raise BadRecordError(f"tensor size {size_t} and stride {stride_t} differ in length")
    if all(s > 0 for s in size_t):
        last = storage_offset + sum((n - 1) * st for n, st in zip(size_t, stride_t, strict=True))
        if last >= storage.numel:
            raise BadRecordError(
                f"tensor of size {size_t} at offset {storage_offset} overruns its storage "
                f"'{storage.key}' of {storage.numel} elements"
            )
    # Zero strides let a tiny storage claim a huge tensor; allow the small broadcasts torch.save can produce.
    numel = math.prod(size_t)
    if numel > storage.numel and numel > MAX_EXPANDED_NUMEL:
        raise BadRecordError(f"tensor of size {size_t} expands storage '{storage.key}' of {storage.numel} elements")
    return TensorRecord(storage, storage_offset, size_t, stride_t)


def rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None, state: Any = None) -> Any:
    """Stands in for `torch._utils._rebuild_parameter(_with_state)`: a parameter is its data."""
    if not isinstance(data, TensorRecord):
        raise BadRecordError(f"parameter rebuilt from {type(data).__name__}, not from a tensor")
    return data


_REBUILDERS = {
    ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): rebuild_parameter,
}


def _is_dotted_identifier(name: str) -> bool:
    return bool(name) and all(part.isidentifier() for part in name.split("."))


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles `data.pkl` of a torch.save zip into plain containers, placeholders and tensor records.

    `source` (the file name) goes into error messages; `storages` maps each persistent storage key the pickle
    mentions to its `StorageRef`, so the caller can read each record once.
    """

    def __init__(self, data: bytes, source: str):
        super().__init__(io.BytesIO(data))
        self.source = source
        self.storages: dict[str, StorageRef] = {}
        self._placeholder_classes: dict[str, type[Placeholder]] = {}

    def find_class(self, module: str, name: str) -> Any:
        module = _PY2_MODULES.get(module, module)
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[(module, name)]
        if (module, name) in _REBUILDERS:
            return _REBUILDERS[(module, name)]
        if module in ("torch", "torch.storage") and name in STORAGE_DTYPES:
            return StorageType(name, STORAGE_DTYPES[name])
        in_package = any(module == p or module.startswith(p + ".") for p in _PLACEHOLDER_PACKAGES)
        # A plain class name only: a dotted name ("Conv2d.__init__") would walk attributes in a real unpickler.
        if in_package and _is_dotted_identifier(module) and name.isidentifier() and not name.startswith("__"):
            return self._placeholder(f"{module}.{name}")
        raise UnsafeCheckpointError(
            f"{self.source}: refusing to load: its pickle asks for the global '{module}.{name}', which is not "
            "on yolostream's allow-list of checkpoint contents (loading it could run code). "
            "Nothing from the file was executed."
        )

    def _placeholder(self, class_name: str) -> type[Placeholder]:
        cls = self._placeholder_classes.get(class_name)
        if cls is None:
            short = class_name.rsplit(".", 1)[-1]
            cls = type(short, (Placeholder,), {"__slots__": (), "class_name": class_name})
            self._placeholder_classes[class_name] = cls
        return cls

    def persistent_load(self, pid: Any) -> StorageRef:
        # torch.save writes ("storage", storage type, key, location, numel) for every storage.
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise BadRecordError(f"unexpected persistent id {pid!r:.100} in data.pkl")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, StorageType):
            raise BadRecordError(f"storage {key!r:.50} has no storage type ({storage_type!r:.50})")
        if not isinstance(key, str) or not key.isalnum():
            raise BadRecordError(f"storage key {key!r:.50} is not a plain record name")
        if not isinstance(numel, int) or isinstance(numel, bool) or numel < 0:
            raise BadRecordError(f"storage '{key}' has a bad element count {numel!r:.50}")
        ref = StorageRef(key, storage_type.dtype, numel)
        known = self.storages.setdefault(key, ref)
        if known != ref:
            raise BadRecordError(f"storage '{key}' is described twice, differently")
        return ref


def unpickle_restricted(data: bytes, source: str) -> tuple[Any, dict[str, StorageRef]]:
    """The object `data` (a torch.save pickle) describes, and the storages it refers to.

    Raises UnsafeCheckpointError for a global outside the allow-list, CheckpointError for any other defect.
    """
    unpickler = RestrictedUnpickler(data, source)
    try:
        obj = unpickler.load()
    except UnsafeCheckpointError:
        raise
    except BadRecordError as e:
        raise CheckpointError(f"{source}: data.pkl is malformed: {e}") from e
    except (Exception, RecursionError) as e:  # any malformed pickle: truncated, bad opcode, wrong arguments...
        raise CheckpointError(f"{source}: data.pkl is not a valid pickle ({type(e).__name__}: {e})") from e
    return obj, unpickler.storages
