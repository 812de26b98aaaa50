"""Training-side model building: descriptions for from-scratch training, fine-tuning with a new class count,
and trained weights written back as a checkpoint that `yolostream.load` serves."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import yolostream
from yolostream.errors import CheckpointError, ConfigError
from yolostream.models.descriptions import description, parse_model_name
from yolostream.train.model import from_checkpoint, from_scratch, to_checkpoint
from yolostream.weights import read_checkpoint, save_native

# (reference checkpoint, family+scale name): the description we write must be the one the checkpoint stores.
DESCRIBED = [
    ("yolov5nu-random", "yolov5nu"),
    ("yolov8n-random", "yolov8n"),
    ("yolov10n-random", "yolov10n"),
    ("yolo11n-random", "yolo11n"),
    ("yolo26n-random", "yolo26n"),
    ("yolo11n-shapes", "yolo11n"),
    ("yolo26n-shapes", "yolo26n"),
]


def _plain(x):
    return json.loads(json.dumps(x))


@pytest.mark.parametrize(("checkpoint", "name"), DESCRIBED)
def test_description_matches_the_reference_checkpoint(checkpoint, name, fixtures):
    stored = _plain(read_checkpoint(fixtures / "checkpoints" / f"{checkpoint}.pt").arch)
    ours = _plain(description(name, stored["nc"]))
    for key in ("backbone", "head", "nc", "scale", "end2end", "reg_max"):
        assert ours.get(key) == stored.get(key), key
    # Our tables may hold more scales (yolostream's own "t"); every stored one must be identical.
    assert all(ours["scales"][k] == v for k, v in stored["scales"].items())


# Unfused parameter counts at 80 classes (fixtures README), now built from our descriptions alone.
@pytest.mark.parametrize(
    ("name", "params"),
    [("yolov8n", 3_157_200), ("yolov8s", 11_166_560), ("yolo11n", 2_624_080), ("yolo11s", 9_458_752),
     ("yolov5nu", 2_654_816), ("yolov10n", 2_775_520), ("yolo26n", 2_572_280)],
)  # fmt: skip
def test_from_scratch_parameter_counts(name, params):
    tm = from_scratch(name, {i: f"c{i}" for i in range(80)})
    assert sum(p.numel() for p in tm.model.parameters()) == params
    assert tm.model.training and tm.reinitialised


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("yolo12n", "neither a model file"),  # unknown family
        ("yolov8q", "neither a model file"),  # unknown scale
        ("yolo11nu", "only YOLOv5 names"),  # 'u' belongs to YOLOv5u
        ("yolov10s", "fine-tune from one of their checkpoints"),  # v10 scales move blocks: n only
    ],
)
def test_bad_model_names(name, error):
    with pytest.raises(ConfigError, match=error):
        parse_model_name(name)


def test_names_resolve():
    assert parse_model_name("YOLOv5n") == ("yolov5u", "n")
    assert parse_model_name("yolov5su") == ("yolov5u", "s")
    assert parse_model_name("yolo11t") == ("yolo11", "t")


def test_head_bias_init_prior():
    tm = from_scratch("yolo11t", {0: "a", 1: "b"}, imgsz=320)
    head = tm.model.head
    # Stride 8 at 320: 40 x 40 cells; a prior of 5 objects over 2 classes -> log(5 / 2 / 1600).
    assert head.cv3[0][-1].bias[0].item() == pytest.approx(np.log(5 / 2 / 1600))
    assert torch.all(head.cv2[2][-1].bias == 1.0)
    assert not head.dfl.conv.weight.requires_grad


def test_fine_tune_with_new_class_count_keeps_everything_but_the_class_branch(fixtures):
    path = fixtures / "checkpoints" / "yolo11n-shapes.pt"
    same = from_checkpoint(path)
    grown = from_checkpoint(path, {i: f"k{i}" for i in range(5)})
    assert same.reinitialised == [] and same.spec.nc == 3 and grown.spec.nc == 5
    a, b = same.model.state_dict(), grown.model.state_dict()
    assert grown.reinitialised and all(k.startswith("head.cv3.") for k in grown.reinitialised)
    for k, v in b.items():
        if k not in grown.reinitialised:
            assert torch.equal(v, a[k]), k
    assert b["head.cv3.0.2.weight"].shape[0] == 5


def test_fine_tune_rejects_a_checkpoint_with_foreign_tensors(fixtures, tmp_path):
    raw = read_checkpoint(fixtures / "checkpoints" / "yolo11n-shapes.pt")
    raw.state_dict["model.99.extra"] = torch.zeros(1)
    save_native(raw, tmp_path / "odd.safetensors")
    with pytest.raises(CheckpointError, match=r"model\.99\.extra"):
        from_checkpoint(tmp_path / "odd.safetensors", {i: f"k{i}" for i in range(5)})


@pytest.mark.parametrize("half", [False, True])
def test_trained_weights_serve_through_load(fixtures, tmp_path, half):
    tm = from_checkpoint(fixtures / "checkpoints" / "yolo26n-shapes.pt")
    model = tm.model.eval()
    path = tmp_path / "trained.safetensors"
    save_native(to_checkpoint(tm, model, {"epoch": 3}, half=half), path)
    det = yolostream.load(path, imgsz=320)
    x = torch.rand(1, 3, 320, 320)
    with torch.inference_mode():
        ref, got = model(x), det.model(x)
    # fp32: folding BatchNorm at load changes rounding only (~1e-6 relative). fp16 storage rounds every
    # weight to 11 bits (~5e-4 relative each), which accumulates to a few 1e-3 of the largest output.
    tol = 1e-2 if half else 1e-4
    assert float((got - ref).abs().max() / ref.abs().max()) < tol
    assert read_checkpoint(path).meta["epoch"] == 3
