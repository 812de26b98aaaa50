"""yolostream's native .safetensors format: round trip and damaged files."""

from __future__ import annotations

from pathlib import Path

import pytest
import safetensors.torch
import torch

from yolostream.errors import CheckpointError
from yolostream.weights import RawCheckpoint, read_checkpoint, read_native, read_ultralytics_checkpoint, save_native

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
