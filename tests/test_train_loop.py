"""The training loop end to end: outputs a user relies on, resume after kill -9, fine-tuning that helps."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import yolostream
from yolostream.errors import ConfigError
from yolostream.train.config import TrainConfig
from yolostream.train.results import read_rows
from yolostream.train.state import STATE_NAME, load_state
from yolostream.train.trainer import train
from yolostream.val.run import validate
from yolostream.weights import read_checkpoint

NAMES = {0: "box", 1: "disc", 2: "triangle"}


def _split_dataset(fixtures: Path, tmp: Path, n_train: int) -> Path:
    """The fixtures' 60 shapes pictures as a train split (the first ``n_train``) and a held-out val split."""
    images = sorted((fixtures / "datasets" / "shapes" / "images" / "val").glob("*.jpg"))
    (tmp / "train.txt").write_text("\n".join(str(p) for p in images[:n_train]) + "\n")
    (tmp / "val.txt").write_text("\n".join(str(p) for p in images[n_train:]) + "\n")
    data = tmp / "data.yaml"
    data.write_text(yaml.safe_dump({"path": str(tmp), "train": "train.txt", "val": "val.txt", "names": NAMES}))
    return data


def _tiny(data: Path, out: Path, **kw) -> TrainConfig:
    # 64 px pictures and the "t" scale: a few seconds per epoch, which is all these tests need.
    base = dict(data=str(data), model="yolo11t", out=str(out), epochs=2, imgsz=64, batch=8, workers=0, seed=3)
    return TrainConfig(**{**base, **kw})


def test_a_run_leaves_what_a_user_needs(fixtures, tmp_path):
    data = _split_dataset(fixtures, tmp_path, 40)
    result = train(_tiny(data, tmp_path / "run"), progress=False)
    rows = read_rows(tmp_path / "run" / "results.csv")
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(r["train/box"] > 0 and r["train/cls"] > 0 and "val/map50_95" in r for r in rows)
    assert (tmp_path / "run" / "results.png").stat().st_size > 10_000  # a drawn figure, not an empty file
    det = yolostream.load(result.best, imgsz=64)
    assert det.names == NAMES and det.spec.scale == "t"
    meta = read_checkpoint(result.last).meta
    assert meta["epoch"] == 2 and meta["train_args"]["model"] == "yolo11t"
    assert load_state(tmp_path / "run" / STATE_NAME)["epoch"] == 2


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"imgsz": 100}, "multiple of 32"),
        ({"optimizer": "lion"}, "optimizer must be"),
        ({"dtype": "fp16"}, "needs a CUDA device"),
        ({"model": "yolo12n"}, "neither a model file"),
        ({"model": "missing.pt"}, "does not exist"),
    ],
)
def test_bad_settings_are_clear_errors(fixtures, tmp_path, change, error):
    data = _split_dataset(fixtures, tmp_path, 40)
    with pytest.raises(ConfigError, match=error):
        train(_tiny(data, tmp_path / "run", **change), progress=False)


def test_dataset_pointing_at_a_missing_folder(tmp_path):
    data = tmp_path / "data.yaml"
    data.write_text(yaml.safe_dump({"path": str(tmp_path), "train": "nowhere/images", "val": "nowhere/images",
                                    "names": NAMES}))  # fmt: skip
    with pytest.raises(ConfigError, match="nowhere"):
        train(_tiny(data, tmp_path / "run"), progress=False)


# The child trains through the real CLI and SIGKILLs itself once epoch 2's optimiser steps are done in memory but
# before anything of epoch 2 is written. Polling the state file from here and killing from outside raced: on a
# loaded CI machine a 64-px epoch can finish between two polls (the kill then landed after epoch 2's save).
_KILLED_CHILD = """
import os, signal, sys
from yolostream.train.trainer import Trainer

train_epoch = Trainer._train_epoch

def train_epoch_then_die(self, epoch):
    row = train_epoch(self, epoch)
    if epoch == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return row

Trainer._train_epoch = train_epoch_then_die
from yolostream.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_resume_after_kill_9_ends_with_the_uninterrupted_weights(fixtures, tmp_path):
    data = _split_dataset(fixtures, tmp_path, 24)
    whole = train(_tiny(data, tmp_path / "whole", epochs=3), progress=False)

    out = tmp_path / "killed"
    cmd = [sys.executable, "-c", _KILLED_CHILD, "train", str(data), "--model", "yolo11t", "--epochs", "3"]
    cmd += ["--imgsz", "64", "--batch", "8", "--workers", "0", "--seed", "3", "--out", str(out), "--quiet"]
    run = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=600)
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    # Epoch 2's work died with the process: the resume file still holds the end of epoch 1.
    assert load_state(out / STATE_NAME)["epoch"] == 1
    assert [r["epoch"] for r in read_rows(out / "results.csv")] == [1]

    resumed = train(_tiny(data, out, epochs=3), resume=True, progress=False)
    a, b = read_checkpoint(whole.last).state_dict, read_checkpoint(resumed.last).state_dict
    # Same seed, same data order and augmentation per (seed, epoch, index), same thread count, optimiser
    # steps at the same iterations: the CPU kernels are deterministic, so the weights must be identical.
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]
    assert [r["epoch"] for r in read_rows(out / "results.csv")] == [1, 2, 3]


def test_resume_without_a_state_file(fixtures, tmp_path):
    data = _split_dataset(fixtures, tmp_path, 40)
    with pytest.raises(yolostream.errors.CheckpointError, match="nothing to resume"):
        train(_tiny(data, tmp_path / "empty"), resume=True, progress=False)


def _shapes_dataset(root: Path) -> Path:
    """A generated shapes dataset (`yolostream.pipeline.synthetic`: box, disc, triangle on grey noise of varied
    level): a domain near, not equal to, the pictures the reference shapes models were trained on --
    the situation of a user fine-tuning on their own line. 40 training and 20 held-out pictures."""
    from PIL import Image

    from yolostream.pipeline.synthetic import background, boxes, render

    for split, n, seed in (("train", 40, 1), ("val", 20, 2)):
        rng = np.random.default_rng(seed)
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(n):
            u, w, h = float(rng.random()), 480, 360
            bg = background(w, h, seed=int(rng.integers(1 << 30)), level=int(rng.integers(60, 190)),
                            sigma=float(rng.uniform(3, 14)))  # fmt: skip
            Image.fromarray(render(u, bg)).save(root / "images" / split / f"{i:04d}.jpg", quality=90)
            rows = [f"{k} {(a + c) / 2 / w} {(b + d) / 2 / h} {(c - a) / w} {(d - b) / h}"
                    for k, (_, (a, b, c, d)) in enumerate(boxes(u, w, h))]  # fmt: skip
            (root / "labels" / split / f"{i:04d}.txt").write_text("\n".join(rows) + "\n")
    data = root / "data.yaml"
    data.write_text(yaml.safe_dump({"path": str(root), "train": "images/train", "val": "images/val", "names": NAMES}))
    return data


@pytest.mark.slow
def test_fine_tuning_raises_held_out_map(fixtures, tmp_path):
    data = _shapes_dataset(tmp_path / "shapes")
    base = fixtures / "checkpoints" / "yolo11n-shapes.pt"
    before = validate(yolostream.load(base, imgsz=320), data, imgsz=320, batch=8)["map50_95"]
    # 60 optimiser steps, all of them inside the (at least 100-iteration) warm-up: a converged model
    # shocked by full-size first steps loses accuracy before it gains (measured: 0.70 -> 0.54 without).
    cfg = TrainConfig(data=str(data), model=str(base), out=str(tmp_path / "ft"), epochs=12, imgsz=320, batch=8,
                      nbs=8, workers=1, seed=0, close_mosaic=1, warmup_epochs=1, optimizer="adamw", lr0=5e-4,
                      val_every=12)  # fmt: skip
    result = train(cfg, progress=False)
    after = validate(yolostream.load(result.last, imgsz=320), data, imgsz=320, batch=8)["map50_95"]
    # Measured 0.70 -> 0.85 on the 20 held-out pictures; the margin leaves room for other CPUs' rounding.
    assert after > before + 0.05, (before, after)


def test_bad_training_pictures_and_labels_are_reported_and_skipped(fixtures, tmp_path):
    images = sorted((fixtures / "datasets" / "shapes" / "images" / "val").glob("*.jpg"))[:16]
    root = tmp_path / "ds"
    for sub in ("images/train", "labels/train"):
        (root / sub).mkdir(parents=True)
    for p in images:
        (root / "images/train" / p.name).write_bytes(p.read_bytes())
        (root / "labels/train" / f"{p.stem}.txt").write_text(
            (p.parents[2] / "labels/val" / f"{p.stem}.txt").read_text()
        )
    (root / "images/train" / "empty.jpg").write_bytes(b"")  # an empty picture
    (root / "images/train" / images[1].name).write_bytes(images[1].read_bytes()[:300])  # truncated
    (root / "labels/train" / f"{images[2].stem}.txt").write_text("7 0.5 0.5 0.2 0.2\n")  # class 7 of 3
    data = tmp_path / "data.yaml"
    val = str(fixtures / "datasets" / "shapes" / "images" / "val")
    data.write_text(yaml.safe_dump({"path": str(root), "train": "images/train", "val": val, "names": NAMES}))
    from yolostream.train.trainer import Trainer

    trainer = Trainer(_tiny(data, tmp_path / "run", epochs=1), progress=False)
    skipped = {p.name for p, _ in trainer.skipped}
    assert skipped == {"empty.jpg", images[1].name, images[2].name}
    assert len(trainer.dataset) == 14
    trainer.train()  # the run goes through on what is left
    assert (tmp_path / "run" / "last.safetensors").is_file()
