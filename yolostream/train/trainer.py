"""The training loop: data -> model -> loss -> optimiser, EMA, validation, checkpoints, resume.

Determinism: the data order and every augmentation are functions of (seed, epoch, index) and the initial
weights of the seed, optimiser steps happen at fixed iterations and every epoch ends on a step, so a run
resumed from the end of epoch k repeats exactly what the uninterrupted run did (same thread count).
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from yolostream.detector import Detector, DetectorConfig
from yolostream.errors import ConfigError
from yolostream.train.config import TrainConfig
from yolostream.train.data import AugmentConfig, TrainDataset, make_loader
from yolostream.train.ema import ModelEMA
from yolostream.train.loss import build_loss, train_outputs
from yolostream.train.model import TrainableModel, from_checkpoint, from_scratch, to_checkpoint
from yolostream.train.optim import Schedule, make_optimizer, resolve_optimizer
from yolostream.train.progress import EpochProgress
from yolostream.train.results import plot_rows, read_rows, write_rows
from yolostream.train.state import STATE_NAME, load_state, save_state
from yolostream.val.dataset import load_yolo_dataset
from yolostream.val.run import validate
from yolostream.weights import save_native

log = logging.getLogger("yolostream.train")


@dataclass(frozen=True)
class TrainResult:
    out: Path
    best: Path
    last: Path
    epochs: int
    best_fitness: float
    metrics: dict[str, Any]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def fitness(metrics: dict[str, Any]) -> float:
    """What "best" means: mostly mAP50-95, a little mAP50 (as is usual for YOLO training)."""
    return 0.1 * float(metrics["map50"]) + 0.9 * float(metrics["map50_95"])


def _autocast(cfg: TrainConfig, device: torch.device) -> contextlib.AbstractContextManager:
    if cfg.dtype == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if cfg.dtype == "bf16" else torch.float16)


def _is_file(model: str) -> bool:
    return Path(model).suffix in (".pt", ".safetensors") or Path(model).exists()


def build_model(cfg: TrainConfig, names: dict[int, str]) -> TrainableModel:
    if _is_file(cfg.model):
        if not Path(cfg.model).is_file():
            raise ConfigError(f"model file {cfg.model} does not exist")
        return from_checkpoint(cfg.model, names, cfg.imgsz)
    return from_scratch(cfg.model, names, cfg.imgsz)


class Trainer:
    """One run of `TrainConfig`. ``train()`` runs it to the end (or resumes it with ``resume=True``)."""

    def __init__(self, cfg: TrainConfig, resume: bool = False, progress: bool = True) -> None:
        out = Path(cfg.out)
        self.state: dict[str, Any] | None = None
        if resume:
            self.state = load_state(out / STATE_NAME)
            # A resumed run continues the saved settings: changing them halfway would break equality with
            # the uninterrupted run.
            cfg = TrainConfig.from_plain(self.state["config"], out=str(out))
            log.info("resuming with the settings saved in %s", out / STATE_NAME)
        self.cfg, self.out, self.progress = cfg, out, progress
        out.mkdir(parents=True, exist_ok=True)
        self.device = torch.device(cfg.device)
        seed_everything(cfg.seed)
        # Training skips (and reports) bad pictures and label files; validation reads its split strictly, here
        # at the start, so a broken val set is a clear error now rather than a crash after the first epoch.
        train_split = load_yolo_dataset(cfg.data, split="train", on_error="skip")
        self.val_split = load_yolo_dataset(cfg.data, split="val")
        self.names = dict(train_split.names)
        self.tm = build_model(cfg, self.names)
        memory = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.memory_format = memory
        self.model = self.tm.model.to(self.device, memory_format=memory)
        self.loss = build_loss(self.model, self.tm.spec, cfg.hyp)
        aug = AugmentConfig(**cfg.aug)
        self.dataset = TrainDataset(train_split, cfg.imgsz, augment=True, aug=aug, seed=cfg.seed, cache=cfg.cache)
        self.skipped = list(self.dataset.skipped)
        if self.skipped:
            shown = "; ".join(f"{p}: {why}" for p, why in self.skipped[:5])
            more = f" (+{len(self.skipped) - 5} more)" if len(self.skipped) > 5 else ""
            log.warning("skipping %d unusable training pictures: %s%s", len(self.skipped), shown, more)
        if len(self.dataset) == 0:
            raise ConfigError(f"{cfg.data}: the train split has no usable pictures")
        self.batches = math.ceil(len(self.dataset) / cfg.batch)
        self.accumulate = max(round(cfg.nbs / cfg.batch), 1)
        decay = cfg.weight_decay * cfg.batch * self.accumulate / cfg.nbs
        steps = math.ceil(len(self.dataset) / max(cfg.batch, cfg.nbs)) * cfg.epochs
        opt_name, lr0, momentum = resolve_optimizer(cfg.optimizer, cfg.lr0, cfg.momentum, len(self.names), steps)
        if cfg.optimizer == "auto":
            log.info("optimizer auto: %s lr0=%g momentum=%g (%d optimiser steps)", opt_name, lr0, momentum, steps)
        self.adam = opt_name == "adamw"
        self.optimizer = make_optimizer(self.model, opt_name, lr0, momentum, decay)
        warmup = max(round(cfg.warmup_epochs * self.batches), 100) if cfg.warmup_epochs > 0 else 0
        self.schedule = Schedule(
            lr0, cfg.lrf, cfg.epochs, momentum, warmup, cfg.warmup_momentum, cfg.warmup_bias_lr, cfg.cosine
        )
        self.ema = ModelEMA(self.model)
        self.scaler = torch.amp.GradScaler("cuda", enabled=cfg.dtype == "fp16")
        self.forward = self._forward_fn()
        self.start_epoch, self.best_fitness = 0, -1.0
        self.rows = read_rows(out / "results.csv") if resume else []
        if self.state is not None:
            self._restore(self.state)

    def _forward_fn(self) -> Any:
        fn = lambda x: train_outputs(self.model, x)  # noqa: E731
        return torch.compile(fn, dynamic=False) if self.cfg.compile else fn

    def _restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.start_epoch, self.best_fitness = int(state["epoch"]), float(state["best_fitness"])
        torch.set_rng_state(state["torch_rng"])
        self.rows = [r for r in self.rows if r["epoch"] <= self.start_epoch]
        log.info("resuming %s at epoch %d of %d", self.out, self.start_epoch + 1, self.cfg.epochs)

    # ---- one epoch --------------------------------------------------------------------------------

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        cfg = self.cfg
        if hasattr(self.loss, "update"):
            self.loss.update(epoch, cfg.epochs)  # dual heads: the one-to-many weight decays over training
        self.dataset.set_epoch(epoch)
        self.dataset.set_mosaic(epoch < cfg.epochs - cfg.close_mosaic)
        loader = make_loader(self.dataset, cfg.batch, cfg.workers, shuffle=True, seed=cfg.seed, epoch=epoch)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        total, seen, pending = torch.zeros(3), 0, 0
        t0 = time.perf_counter()
        with EpochProgress(epoch, cfg.epochs, self.batches, enabled=self.progress, third=self.loss_names[2]) as bar:
            for i, batch in enumerate(loader):
                it = i + self.batches * epoch
                self.schedule.apply(self.optimizer, it, epoch, self.adam)
                batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
                img = (batch["img"].float() / 255).contiguous(memory_format=self.memory_format)
                with _autocast(cfg, self.device):
                    outputs = self.forward(img)
                loss, items = self.loss(outputs, batch, (img.shape[2], img.shape[3]))
                self.scaler.scale(loss).backward()
                pending += 1
                if pending == self.accumulate or i == self.batches - 1:
                    self._step()
                    pending = 0
                total += items.float().cpu() * img.shape[0]
                seen += img.shape[0]
                bar.update(total / seen, self.optimizer.param_groups[0]["lr"])
        elapsed = time.perf_counter() - t0
        mean = (total / max(seen, 1)).tolist()
        return {"train/box": mean[0], "train/cls": mean[1], "train/dfl": mean[2], "images_per_s": seen / elapsed,
                "lr": self.optimizer.param_groups[0]["lr"]}  # fmt: skip

    def _step(self) -> None:
        self.scaler.unscale_(self.optimizer)
        # Clipping bounds the rare huge gradient of a badly assigned batch (norm 10, per optimiser step).
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=self.cfg.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.ema.update(self.model)

    @property
    def loss_names(self) -> list[str]:
        return ["box", "cls", "dfl" if self.tm.spec.reg_max > 1 else "l1"]

    # ---- validation and saving --------------------------------------------------------------------

    def validate(self) -> dict[str, Any]:
        det = Detector(self.ema.module, self.tm.spec, self.names, DetectorConfig(imgsz=self.cfg.imgsz), self.device)
        return validate(det, self.cfg.data, imgsz=self.cfg.imgsz, batch=self.cfg.val_batch, rect=True)

    def _meta(self, epoch: int, metrics: dict[str, Any]) -> dict[str, Any]:
        base = self.tm.source
        return {
            "trained_by": "yolostream train",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "epoch": epoch,
            "base_model": base,
            "train_args": self.cfg.to_plain(),
            "metrics": {k: float(metrics[k]) for k in ("map50", "map50_95") if k in metrics},
        }

    def _save(self, epoch: int, metrics: dict[str, Any], improved: bool) -> None:
        raw = to_checkpoint(self.tm, self.ema.module, self._meta(epoch, metrics))
        save_native(raw, self.out / "last.safetensors")
        if improved:
            save_native(raw, self.out / "best.safetensors")
        state = {
            "config": self.cfg.to_plain(),
            "epoch": epoch,
            "best_fitness": self.best_fitness,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "torch_rng": torch.get_rng_state(),
        }
        save_state(self.out / STATE_NAME, state)

    def train(self) -> TrainResult:
        cfg, metrics = self.cfg, {}
        if self.start_epoch >= cfg.epochs:
            log.info("%s is already complete (%d epochs)", self.out, cfg.epochs)
        for epoch in range(self.start_epoch, cfg.epochs):
            row: dict[str, float] = {"epoch": epoch + 1, **self._train_epoch(epoch)}
            improved = False
            if (epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs:
                metrics = self.validate()
                row.update({"val/map50": metrics["map50"], "val/map50_95": metrics["map50_95"]})
                f = fitness(metrics)
                improved = f > self.best_fitness
                self.best_fitness = max(f, self.best_fitness)
                log.info(
                    "epoch %d/%d: mAP50 %.4f mAP50-95 %.4f",
                    epoch + 1,
                    cfg.epochs,
                    metrics["map50"],
                    metrics["map50_95"],
                )
            self.rows.append(row)
            write_rows(self.out / "results.csv", self.rows)
            plot_rows(self.out / "results.png", self.rows, self.loss_names[2])
            self._save(epoch + 1, metrics, improved)
        best = self.out / "best.safetensors"
        return TrainResult(self.out, best, self.out / "last.safetensors", cfg.epochs, self.best_fitness, metrics)


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> TrainResult:
    """Run (or resume) one training run; see `TrainConfig`."""
    return Trainer(cfg, resume=resume, progress=progress).train()
