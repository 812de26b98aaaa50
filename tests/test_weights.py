"""Checkpoint readers: Ultralytics .pt without torch.load (fixtures and crafted files), the allow-list."""

from __future__ import annotations

import collections
import json
import os
import pickle
import types
import zipfile
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from pickle_crafting import craft, fake_module, tiny_model

from yolostream.weights import read_ultralytics_checkpoint

RANDOM = ["yolov5nu-random.pt", "yolov8n-random.pt", "yolo11n-random.pt", "yolov10n-random.pt", "yolo26n-random.pt"]
SHAPES = ["yolo11n-shapes.pt", "yolo26n-shapes.pt"]
BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")

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
