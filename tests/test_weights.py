"""Checkpoint readers: Ultralytics .pt without torch.load, the allow-list unpickler, yolostream's .safetensors."""

from __future__ import annotations

import collections
import io
import json
import os
import pickle
import types
import zipfile
from pathlib import Path
from typing import Any, ClassVar

import pytest
import safetensors.torch
import torch

from yolostream.errors import CheckpointError, UnsafeCheckpointError
from yolostream.weights import RawCheckpoint, read_checkpoint, read_native, read_ultralytics_checkpoint, save_native

RANDOM = ["yolov5nu-random.pt", "yolov8n-random.pt", "yolo11n-random.pt", "yolov10n-random.pt", "yolo26n-random.pt"]
SHAPES = ["yolo11n-shapes.pt", "yolo26n-shapes.pt"]
BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


# ---------------------------------------------------------------------------------------------------------
# Crafting torch.save zips that hold classes nobody can import (fake Ultralytics modules, malicious calls).
# torch.save writes the real zip layout; a pure-Python pickler lets us emit any GLOBAL name we like.


class FakeGlobal:
    """Pickled as the global `module.name` (GLOBAL, or STACK_GLOBAL when `stack`), whatever that names."""

    def __init__(self, module: str, name: str, stack: bool = False):
        self.module, self.name, self.stack = module, name, stack

    def __call__(self, *args: Any) -> None:  # pickle insists that a reduce function be callable
        raise AssertionError("never called")


class FakeCall:
    """Pickled as REDUCE: the unpickler would call `func(*args)`."""

    def __init__(self, func: FakeGlobal, args: tuple):
        self.func, self.args = func, args


class FakeObject:
    """Pickled like a module instance: NEWOBJ of `cls`, then BUILD with `state`."""

    def __init__(self, cls: FakeGlobal, state: dict):
        self.cls, self.state = cls, state


class CraftingPickler(pickle._Pickler):  # the pure-Python pickler: its save() can be extended
    def save(self, obj: Any, save_persistent_id: bool = True) -> None:
        if isinstance(obj, FakeGlobal):
            if obj.stack:
                super().save(obj.module)
                super().save(obj.name)
                self.write(pickle.STACK_GLOBAL)
            else:
                self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        elif isinstance(obj, FakeCall):
            self.save(obj.func)
            self.save(obj.args)
            self.write(pickle.REDUCE)
        elif isinstance(obj, FakeObject):
            if id(obj) in self.memo:
                self.write(self.get(self.memo[id(obj)][0]))
                return
            self.save(obj.cls)
            self.save(())
            self.write(pickle.NEWOBJ)
            self.memoize(obj)
            self.save(obj.state)
            self.write(pickle.BUILD)
        else:
            super().save(obj, save_persistent_id)


CRAFTING = types.ModuleType("crafting_pickle")
CRAFTING.Pickler = CraftingPickler


def craft(path: Path, obj: Any, protocol: int = 2) -> Path:
    """torch.save's zip layout around a pickle that may name any global."""
    torch.save(obj, path, pickle_module=CRAFTING, pickle_protocol=protocol)
    return path


def fake_module(cls: str, params=None, buffers=None, children=None, nonpersistent=(), **attrs) -> FakeObject:
    """A pickled nn.Module of class `cls`, with the attribute layout nn.Module pickles."""
    module, name = cls.rsplit(".", 1)
    state = {
        "training": False,
        "_parameters": dict(params or {}),
        "_buffers": dict(buffers or {}),
        "_non_persistent_buffers_set": set(nonpersistent),
        "_modules": dict(children or {}),
        **attrs,
    }
    return FakeObject(FakeGlobal(module, name), state)


def tiny_model(fill: float, names: dict | None = None) -> FakeObject:
    """A 2-layer fake DetectionModel whose conv weight is all `fill` (fp16, as Ultralytics stores it)."""
    conv = fake_module(
        "torch.nn.modules.conv.Conv2d",
        params={"weight": torch.nn.Parameter(torch.full((2, 3, 1, 1), fill, dtype=torch.float16)), "bias": None},
        kernel_size=(1, 1),
    )
    bn = fake_module(
        "torch.nn.modules.batchnorm.BatchNorm2d",
        params={"weight": torch.nn.Parameter(torch.ones(2).half()), "bias": torch.nn.Parameter(torch.zeros(2).half())},
        buffers={
            "running_mean": torch.tensor([0.5, -0.5]).half(),
            "running_var": torch.tensor([2.0, 4.0]).half(),
            "num_batches_tracked": torch.tensor(7),
            "scratch": torch.zeros(3),  # non-persistent: state_dict() leaves it out
            "gone": None,  # a None buffer: left out too
        },
        nonpersistent={"scratch"},
        eps=0.001,
    )
    block = fake_module(
        "ultralytics.nn.modules.conv.Conv",
        children={"conv": conv, "bn": bn, "act": None},
        f=-1,
        i=0,
        anchors=torch.zeros(2),  # a tensor attribute: neither in state_dict nor in modules' plain attributes
        _private=1,
    )
    seq = fake_module("torch.nn.modules.container.Sequential", children={"0": block})
    return fake_module(
        "ultralytics.nn.tasks.DetectionModel",
        children={"model": seq},
        yaml={"nc": 2, "backbone": [[-1, 1, "Conv", [16, 3, 2]]], "scales": {"n": (0.5, 0.25, 1024)}},
        names=names or {0: "cat", 1: "dog"},
        stride=torch.tensor([8.0, 16.0, 32.0]),
    )


# ---------------------------------------------------------------------------------------------------------
# An independent oracle for the fixtures: torch.load itself, with Ultralytics classes swapped for bare
# nn.Module subclasses (trusted fixture files only), then nn.Module.state_dict().


class _StubUnpickler(pickle.Unpickler):
    classes: ClassVar[dict[str, type]] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("ultralytics"):
            key = f"{module}.{name}"
            return self.classes.setdefault(key, type(name, (torch.nn.Module,), {"qualified": key}))
        return super().find_class(module, name)


STUB = types.ModuleType("stub_pickle")
STUB.Unpickler = _StubUnpickler
STUB.load = pickle.load


def torch_oracle(path: Path) -> dict:
    return torch.load(path, map_location="cpu", pickle_module=STUB, weights_only=False)


def class_name(m: torch.nn.Module) -> str:
    return getattr(type(m), "qualified", f"{type(m).__module__}.{type(m).__qualname__}")


# ---------------------------------------------------------------------------------------------------------
# The fixture checkpoints.


@pytest.mark.parametrize("name", RANDOM + SHAPES)
def test_fixture_loads_like_torch(fixtures: Path, name: str) -> None:
    path = fixtures / "checkpoints" / name
    raw = read_ultralytics_checkpoint(path)
    truth = torch_oracle(path)["model"]
    expected = truth.state_dict()
    assert list(raw.state_dict) == list(expected)  # same keys, same order
    for key, tensor in raw.state_dict.items():
        want = expected[key]
        assert tensor.dtype == (torch.float32 if want.is_floating_point() else want.dtype), key
        assert torch.equal(tensor, want.to(tensor.dtype)), key  # fp16 -> fp32 is exact, so equality
        assert tensor.is_contiguous(), key
        # Owns exactly its own memory: not a view into a shared storage or a Python buffer.
        assert tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size(), key
    ptrs = [t.data_ptr() for t in raw.state_dict.values() if t.numel()]
    assert len(set(ptrs)) == len(ptrs)
    truth_modules = {path: class_name(m) for path, m in truth.named_modules(remove_duplicate=False)}
    assert {k: cls for k, (cls, _) in raw.modules.items()} == truth_modules
    assert raw.stride == truth.stride.tolist() == [8.0, 16.0, 32.0]
    assert raw.source == "model"  # Ultralytics' end-of-training strip and model.save() both leave ema empty
    assert raw.task == "detect"
    assert raw.arch["nc"] == len(raw.names)
    if name in SHAPES:
        assert raw.names == {0: "box", 1: "disc", 2: "triangle"}
        assert raw.meta["train_args"]["task"] == "detect"
    else:
        assert raw.names == {i: f"class{i}" for i in range(80)}
    assert raw.meta["version"] == "8.4.190"  # README: made with Ultralytics 8.4.190
    json.dumps(raw.meta)  # plain data only
    json.dumps(raw.arch)


@pytest.mark.parametrize(
    ("name", "params"),
    [  # README "Parameter counts (80 classes, unfused)"; BatchNorm statistics are buffers, not parameters
        ("yolov8n-random.pt", 3_157_200),
        ("yolo11n-random.pt", 2_624_080),
        ("yolov5nu-random.pt", 2_654_816),
        ("yolov10n-random.pt", 2_775_520),
        ("yolo26n-random.pt", 2_572_280),
    ],
)
def test_fixture_parameter_count(fixtures: Path, name: str, params: int) -> None:
    raw = read_ultralytics_checkpoint(fixtures / "checkpoints" / name)
    assert sum(t.numel() for k, t in raw.state_dict.items() if not k.endswith(BN_BUFFERS)) == params


@pytest.mark.parametrize("name", ["yolov5nu-random.pt", "yolov8n-random.pt", "yolo11n-random.pt", "yolov10n-random.pt"])
def test_dfl_weight_is_arange(fixtures: Path, name: str) -> None:
    # The distribution head's 1x1 conv is fixed to 0..15 (the expectation over 16 bins); fp16 holds them exactly.
    raw = read_ultralytics_checkpoint(fixtures / "checkpoints" / name)
    (key,) = [k for k in raw.state_dict if k.endswith("dfl.conv.weight")]
    assert torch.equal(raw.state_dict[key], torch.arange(16.0).view(1, 16, 1, 1))
    head = key.rsplit(".dfl.", 1)[0]
    assert raw.modules[head][1]["reg_max"] == 16


def test_yolov8n_module_attributes(fixtures: Path) -> None:
    raw = read_ultralytics_checkpoint(fixtures / "checkpoints" / "yolov8n-random.pt")
    cls, attrs = raw.modules["model.22"]
    assert cls == "ultralytics.nn.modules.head.Detect"
    assert (attrs["nc"], attrs["reg_max"], attrs["f"], attrs["i"]) == (80, 16, [15, 18, 21], 22)
    assert raw.modules["model.2"][0] == "ultralytics.nn.modules.block.C2f"
    assert raw.modules["model.2.m.0"] == ("ultralytics.nn.modules.block.Bottleneck", {"training": False, "add": True})
    assert raw.modules["model.0.conv"][1]["kernel_size"] == [3, 3]  # tuples become lists
    assert all(not k.startswith("_") for _, a in raw.modules.values() for k in a)


def test_zip_closed_and_storages_read_once(fixtures: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = fixtures / "checkpoints" / "yolov8n-random.pt"
    opened: list[str] = []
    real_open = zipfile.ZipFile.open

    def counting_open(self, name, *args, **kwargs):
        opened.append(name if isinstance(name, str) else name.filename)
        return real_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", counting_open)
    read_ultralytics_checkpoint(path)
    assert len(opened) == len(set(opened))
    fds = Path("/proc/self/fd")
    if fds.is_dir():  # Linux: no descriptor still points at the checkpoint
        assert not [fd for fd in fds.iterdir() if os.path.realpath(fd) == str(path.resolve())]


# ---------------------------------------------------------------------------------------------------------
# Crafted checkpoints: which entry is read, and what state_dict() would hold.


@pytest.mark.parametrize(
    ("entries", "source", "fill"),
    [
        ({"model": 1.0, "ema": 2.0}, "ema", 2.0),  # mid-training: ema preferred
        ({"ema": 2.0, "model": 1.0}, "ema", 2.0),  # order of the keys does not matter
        ({"model": 1.0, "ema": None}, "model", 1.0),  # stripped: ema None -> model
        ({"model": 1.0}, "model", 1.0),  # model.save(): no ema key at all
        ({"ema": 3.0}, "ema", 3.0),  # ema alone
    ],
)
def test_ema_preferred(tmp_path: Path, entries: dict, source: str, fill: float) -> None:
    obj = {"epoch": 5, **{k: (None if v is None else tiny_model(v)) for k, v in entries.items()}}
    raw = read_ultralytics_checkpoint(craft(tmp_path / "c.pt", obj))
    assert raw.source == source
    assert torch.equal(raw.state_dict["model.0.conv.weight"], torch.full((2, 3, 1, 1), fill))
    assert raw.meta == {"epoch": 5}


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_crafted_state_dict(tmp_path: Path, protocol: int) -> None:
    raw = read_ultralytics_checkpoint(craft(tmp_path / "c.pt", {"model": tiny_model(1.0)}, protocol))
    # What nn.Module.state_dict() gives: own params (None skipped), persistent non-None buffers, children.
    assert list(raw.state_dict) == [
        "model.0.conv.weight",
        "model.0.bn.weight",
        "model.0.bn.bias",
        "model.0.bn.running_mean",
        "model.0.bn.running_var",
        "model.0.bn.num_batches_tracked",
    ]
    assert raw.state_dict["model.0.bn.running_var"].tolist() == [2.0, 4.0]
    nbt = raw.state_dict["model.0.bn.num_batches_tracked"]
    assert nbt.dtype == torch.int64 and nbt.item() == 7  # integers stay as they are
    assert raw.names == {0: "cat", 1: "dog"} and raw.stride == [8.0, 16.0, 32.0]
    assert raw.arch["scales"] == {"n": [0.5, 0.25, 1024]}  # plain data: the tuple became a list
    assert raw.modules["model.0"] == ("ultralytics.nn.modules.conv.Conv", {"training": False, "f": -1, "i": 0})
    assert raw.modules["model.0.bn"][1]["eps"] == 0.001
    assert set(raw.modules) == {"", "model", "model.0", "model.0.conv", "model.0.bn"}


def test_shared_and_strided_storages(tmp_path: Path) -> None:
    base = torch.arange(12, dtype=torch.float16)
    buffers = {
        "head": base[:4],  # offset 0 into a shared storage
        "tail": base[6:].view(2, 3),  # offset 6
        "t": base[:6].view(2, 3).t(),  # non-contiguous view: stride (1, 3)
        "d": torch.tensor([1.5, 2.5], dtype=torch.float64),  # widened... narrowed to float32 too
        "flag": torch.tensor([True, False]),
        "empty": torch.zeros(0, 4),
    }
    seq = fake_module("torch.nn.modules.container.Sequential", buffers=buffers)
    model = fake_module("ultralytics.nn.tasks.DetectionModel", children={"model": seq}, yaml={}, names={0: "a"})
    model.state["stride"] = torch.tensor([32.0])
    raw = read_ultralytics_checkpoint(craft(tmp_path / "c.pt", {"model": model}))
    sd = raw.state_dict
    assert sd["model.head"].tolist() == [0, 1, 2, 3]
    assert sd["model.tail"].tolist() == [[6, 7, 8], [9, 10, 11]]
    assert sd["model.t"].tolist() == [[0, 3], [1, 4], [2, 5]] and sd["model.t"].is_contiguous()
    assert sd["model.d"].dtype == torch.float32 and sd["model.d"].tolist() == [1.5, 2.5]
    assert sd["model.flag"].dtype == torch.bool and sd["model.flag"].tolist() == [True, False]
    assert sd["model.empty"].shape == (0, 4)
    sd["model.head"][0] = 5.0  # writable, and its own memory: the neighbour that shared its storage is unchanged
    assert sd["model.t"][0, 0] == 0.0


# ---------------------------------------------------------------------------------------------------------
# Malicious pickles: refused by name, and nothing runs.


def _touch(marker: Path) -> str:
    return f"touch {marker}"


def _code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


def _getattr_system(marker: Path) -> FakeCall:  # getattr(__import__("os"), "system")("touch ...")
    imp = FakeCall(FakeGlobal("builtins", "__import__"), ("os",))
    return FakeCall(FakeCall(FakeGlobal("builtins", "getattr"), (imp, "system")), (_touch(marker),))


# The global each payload asks for first (what the error must name) -> the payload, given the marker file
# that running it would create.
EVIL = {
    "posix.system": lambda m: FakeCall(FakeGlobal("posix", "system"), (_touch(m),)),
    "os.system": lambda m: FakeCall(FakeGlobal("os", "system"), (_touch(m),)),
    "builtins.eval": lambda m: FakeCall(FakeGlobal("builtins", "eval"), (_code(m),)),
    "builtins.exec": lambda m: FakeCall(FakeGlobal("builtins", "exec"), (_code(m),)),
    "subprocess.Popen": lambda m: FakeCall(FakeGlobal("subprocess", "Popen"), (["touch", str(m)],)),
    "builtins.getattr": _getattr_system,
    "torch.load": lambda m: FakeCall(FakeGlobal("torch", "load"), (str(m),)),
    "torch.serialization.load": lambda m: FakeCall(FakeGlobal("torch.serialization", "load"), (str(m),)),
    "numpy.load": lambda m: FakeCall(FakeGlobal("numpy", "load"), (str(m),)),
    "copyreg._reconstructor": lambda m: FakeCall(FakeGlobal("copyreg", "_reconstructor"), ()),
    "torch._utils._rebuild_device_tensor_from_numpy": lambda m: FakeCall(
        FakeGlobal("torch._utils", "_rebuild_device_tensor_from_numpy"), ()
    ),
    # Python 2 spelling that protocol-2 pickles use; named in its Python 3 form.
    "builtins.print": lambda m: FakeCall(FakeGlobal("__builtin__", "print"), ("x",)),
    # Look-alikes of the placeholder packages, and attribute walks through them (STACK_GLOBAL resolves dots).
    "ultralytics_evil.tasks.DetectionModel": lambda m: FakeObject(
        FakeGlobal("ultralytics_evil.tasks", "DetectionModel"), {}
    ),
    "torch.nn.modulesx.Conv2d": lambda m: FakeObject(FakeGlobal("torch.nn.modulesx", "Conv2d"), {}),
    "torch.nn.modules.conv.Conv2d.__init__": lambda m: FakeCall(
        FakeGlobal("torch.nn.modules.conv", "Conv2d.__init__", stack=True), ()
    ),
    "ultralytics.__builtins__": lambda m: FakeCall(FakeGlobal("ultralytics", "__builtins__", stack=True), ()),
}


@pytest.mark.parametrize("protocol", [0, 2, 4])
@pytest.mark.parametrize("named", list(EVIL))
def test_malicious_pickle_refused(tmp_path: Path, named: str, protocol: int) -> None:
    marker = tmp_path / "pwned"
    path = craft(tmp_path / "evil.pt", {"date": "x", "model": EVIL[named](marker)}, protocol)
    with pytest.raises(UnsafeCheckpointError, match="refusing to load") as err:
        read_checkpoint(path)
    assert f"'{named}'" in str(err.value) and str(path) in str(err.value)
    assert "Nothing from the file was executed" in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize("named", ["posix.system", "builtins.eval", "builtins.exec", "builtins.getattr"])
def test_malicious_payloads_are_live(tmp_path: Path, named: str) -> None:
    # Control for the test above: plain pickle does run these payloads, so "marker absent" means something.
    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    CraftingPickler(buf, protocol=2).dump({"model": EVIL[named](marker)})
    pickle.loads(buf.getvalue())
    assert marker.exists()


# ---------------------------------------------------------------------------------------------------------
# Files that are not checkpoints, or damaged ones.


def _zip_with(path: Path, records: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in records.items():
            zf.writestr(name, data)
    return path


def _rewrite_zip(src: Path, dst: Path, edit) -> Path:
    with zipfile.ZipFile(src) as zf:
        records = {n: zf.read(n) for n in zf.namelist()}
    return _zip_with(dst, edit(records))


def _bad_file(kind: str, tmp: Path, fixtures: Path) -> Path:
    real = fixtures / "checkpoints" / "yolov8n-random.pt"
    p = tmp / "bad.pt"
    if kind == "missing":
        return tmp / "nope.pt"
    if kind == "directory":
        return tmp
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "truncated":
        data = real.read_bytes()
        p.write_bytes(data[: len(data) // 2])
    elif kind == "jpeg":
        return fixtures / "images" / "scene_1280x720.jpg"
    elif kind == "text":
        p.write_text("model: yolov8n\nepochs: 3\n")
    elif kind == "legacy":
        torch.save({"model": torch.zeros(2)}, p, _use_new_zipfile_serialization=False)
    elif kind == "bare_pickle":
        p.write_bytes(pickle.dumps({"model": 1}, protocol=2))
    elif kind == "zip_no_pkl":
        _zip_with(p, {"notes/readme.txt": b"hi"})
    elif kind in ("pt2", "pt2_renamed"):  # by its name, or by its records when renamed to .pt
        target = tmp / "m.pt2" if kind == "pt2" else p
        _zip_with(target, {"m/archive_format": b"pt2", "m/data/aotinductor/model/x.so": b""})
        return target
    elif kind == "list":
        torch.save([1, 2, 3], p)
    elif kind == "no_model":
        torch.save({"date": "today", "epoch": 3}, p)
    elif kind == "state_dict":
        torch.save({"conv.weight": torch.zeros(2)}, p)
    elif kind == "model_not_module":
        torch.save({"model": {"conv.weight": torch.zeros(2)}}, p)
    elif kind == "pkl_cut":
        craft(tmp / "ok.pt", {"model": tiny_model(1.0)})
        _rewrite_zip(
            tmp / "ok.pt", p, lambda r: {n: (d[: len(d) // 2] if n.endswith("data.pkl") else d) for n, d in r.items()}
        )
    elif kind == "storage_missing":
        craft(tmp / "ok.pt", {"model": tiny_model(1.0)})
        _rewrite_zip(tmp / "ok.pt", p, lambda r: {n: d for n, d in r.items() if not n.endswith("/data/0")})
    elif kind == "storage_short":
        craft(tmp / "ok.pt", {"model": tiny_model(1.0)})
        _rewrite_zip(tmp / "ok.pt", p, lambda r: {n: (d[:-2] if n.endswith("/data/0") else d) for n, d in r.items()})
    elif kind in ("no_yaml", "no_stride", "bad_names"):
        model = tiny_model(1.0)
        del model.state[{"no_yaml": "yaml", "no_stride": "stride", "bad_names": "names"}[kind]]
        if kind == "bad_names":
            model.state["names"] = {"0": 5}
        craft(p, {"model": model})
    elif kind in ("overrun", "expanded"):
        storage = torch.zeros(4, dtype=torch.float16).untyped_storage()  # 8 bytes, read as uint8
        size, stride = ((9,), (1,)) if kind == "overrun" else ((1 << 25,), (0,))
        rebuild = FakeCall(FakeGlobal("torch._utils", "_rebuild_tensor_v2"), (storage, 0, size, stride, False, {}))
        craft(p, {"model": fake_module("ultralytics.nn.tasks.DetectionModel", buffers={"b": rebuild})})
    return p


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "no such checkpoint file"),
        ("directory", "is a directory"),
        ("empty", r"is empty \(0 bytes\)"),
        ("truncated", "truncated or corrupt zip"),  # the first half of a real checkpoint: no central directory
        ("jpeg", "looks like a JPEG image"),
        ("text", "looks like a text file"),
        ("legacy", "legacy torch.save format is not supported"),
        ("bare_pickle", "bare pickle"),
        ("zip_no_pkl", "no data.pkl record"),
        ("pt2", "is an AOTInductor package; load it with yolostream.load"),
        ("pt2_renamed", "is an AOTInductor package; load it with yolostream.load"),
        ("list", "holds a list, not an Ultralytics checkpoint"),
        ("no_model", r"no 'model' or 'ema' entry \(keys: date, epoch\)"),
        ("state_dict", "looks like a bare state_dict"),
        ("model_not_module", r"checkpoint\['model'\] is a dict, not a pickled torch module"),
        ("pkl_cut", "data.pkl is not a valid pickle"),
        ("storage_missing", "storage record '.*data/0' is missing"),
        ("storage_short", "storage record '.*data/0' holds 10 bytes; the pickle expects 12"),  # 2x3 fp16
        ("no_yaml", r"checkpoint\['model'\] has no architecture description"),
        ("no_stride", r"checkpoint\['model'\].stride: stride must be a non-empty list, got None"),
        ("bad_names", r"checkpoint\['model'\].names: class names must map int -> str"),
        ("overrun", r"tensor of size \(9,\) at offset 0 overruns its storage '0' of 8 elements"),
        ("expanded", "expands storage '0' of 8 elements"),
    ],
)
def test_bad_files(tmp_path: Path, fixtures: Path, kind: str, message: str) -> None:
    path = _bad_file(kind, tmp_path, fixtures)
    with pytest.raises(CheckpointError, match=message) as err:
        read_checkpoint(path)
    assert not isinstance(err.value, UnsafeCheckpointError)
    assert str(path) in str(err.value)  # every message names the file


# ---------------------------------------------------------------------------------------------------------
# yolostream's native .safetensors format.


@pytest.fixture(scope="module")
def shapes_raw(fixtures: Path) -> RawCheckpoint:
    return read_ultralytics_checkpoint(fixtures / "checkpoints" / "yolo26n-shapes.pt")


def test_native_round_trip(tmp_path: Path, shapes_raw: RawCheckpoint) -> None:
    path = tmp_path / "m.safetensors"
    save_native(shapes_raw, path)
    for back in (read_native(path), read_checkpoint(path)):
        assert list(back.state_dict) == list(shapes_raw.state_dict)
        for k, t in shapes_raw.state_dict.items():
            assert back.state_dict[k].dtype == t.dtype and torch.equal(back.state_dict[k], t), k
        assert back.names == shapes_raw.names and isinstance(next(iter(back.names)), int)
        assert (back.arch, back.stride, back.task, back.source) == (
            shapes_raw.arch,
            shapes_raw.stride,
            shapes_raw.task,
            shapes_raw.source,
        )
        assert back.modules == shapes_raw.modules and back.meta == shapes_raw.meta
    assert not list(tmp_path.glob("*.tmp"))


def test_native_keeps_awkward_plain_data(tmp_path: Path) -> None:
    raw = RawCheckpoint(
        state_dict={"w": torch.ones(2), "n": torch.tensor(3)},
        arch={"__yolostream_items__": 1, "nested": {1: [None, True, 2.5]}},  # a key equal to the escape tag
        names={0: "a", 1: "b"},
        stride=[8.0],
        modules={"": ("x.Y", {"k": {2: "two"}})},
    )
    save_native(raw, tmp_path / "m.safetensors")
    back = read_native(tmp_path / "m.safetensors")
    assert back.arch == raw.arch and back.modules == raw.modules and back.names == raw.names
    assert back.state_dict["n"].dtype == torch.int64


def _native_bad(kind: str, tmp: Path, raw: RawCheckpoint) -> Path:
    p = tmp / "bad.safetensors"
    if kind == "foreign":
        safetensors.torch.save_file({"w": torch.zeros(2)}, str(p))
    elif kind == "newer":
        safetensors.torch.save_file({"w": torch.zeros(2)}, str(p), metadata={"yolostream": '{"format_version": 2}'})
    elif kind == "bad_meta_json":
        safetensors.torch.save_file({"w": torch.zeros(2)}, str(p), metadata={"yolostream": "{not json"})
    elif kind == "corrupt_header":
        p.write_bytes((20).to_bytes(8, "little") + b"{this is not json!!}" + b"\0" * 16)
    else:
        save_native(raw, p)
        data = p.read_bytes()
        # "cut_data": the header survives, tensor bytes are missing; "cut_header": not even the header does.
        p.write_bytes(data[: len(data) // 2] if kind == "cut_data" else data[:100])
    return p


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("foreign", "safetensors file without yolostream metadata"),
        ("newer", r"newer yolostream \(format_version 2"),
        ("bad_meta_json", "corrupt yolostream metadata"),
        ("corrupt_header", "corrupt safetensors header"),
        ("cut_data", "corrupt or truncated safetensors file"),
        ("cut_header", "is truncated: its safetensors header says"),
    ],
)
def test_native_bad_files(tmp_path: Path, shapes_raw: RawCheckpoint, kind: str, message: str) -> None:
    path = _native_bad(kind, tmp_path, shapes_raw)
    for reader in (read_native, read_checkpoint):
        with pytest.raises(CheckpointError, match=message) as err:
            reader(path)
        assert str(path) in str(err.value)


def test_native_refuses_a_pickle(fixtures: Path) -> None:
    with pytest.raises(CheckpointError, match=r"not a yolostream \.safetensors checkpoint; it looks like a zip"):
        read_native(fixtures / "checkpoints" / "yolov8n-random.pt")


def test_allowed_value_types(tmp_path: Path) -> None:
    # Harmless globals on the allow-list load; attributes without a plain form are left out of `modules`.
    model = tiny_model(1.0)
    model.state.update(
        shape=torch.Size([1, 2]),
        tags=frozenset({"a"}),
        window=slice(1, 3),
        dtype=torch.float16,
        device=torch.device("cpu"),
        seen={1, 2},
        hooks=collections.OrderedDict(a=1),
    )
    raw = read_ultralytics_checkpoint(craft(tmp_path / "c.pt", {"model": model}))
    attrs = raw.modules[""][1]
    assert attrs["shape"] == [1, 2] and attrs["hooks"] == {"a": 1}
    assert not {"tags", "window", "dtype", "device", "seen"} & set(attrs)


def test_ordered_dict_parameters(tmp_path: Path) -> None:
    # Older torch pickled _parameters/_modules as OrderedDict; order must still be kept.
    conv = fake_module("torch.nn.modules.conv.Conv2d")
    conv.state["_parameters"] = collections.OrderedDict(
        [("weight", torch.nn.Parameter(torch.ones(1))), ("bias", torch.nn.Parameter(torch.zeros(1)))]
    )
    model = fake_module("ultralytics.nn.tasks.DetectionModel", children={"m": conv}, yaml={}, names=["only"])
    model.state["stride"] = torch.tensor([16.0])
    raw = read_ultralytics_checkpoint(craft(tmp_path / "c.pt", {"model": model}))
    assert list(raw.state_dict) == ["m.weight", "m.bias"] and raw.names == {0: "only"}
