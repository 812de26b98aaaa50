"""Malicious pickles are refused by name and never run; damaged or foreign files get clear errors."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from pickle_crafting import CraftingPickler, FakeCall, FakeGlobal, FakeObject, craft, fake_module, tiny_model

from yolostream.errors import CheckpointError, UnsafeCheckpointError
from yolostream.weights import read_checkpoint

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
