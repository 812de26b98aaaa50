"""`TrainConfig`: every setting of a training run, with defaults that suit fine-tuning a small model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from yolostream.errors import ConfigError


@dataclass(frozen=True)
class TrainConfig:
    """One training run.

    data: dataset YAML (``train``/``val`` splits, ``names``), read like `yolostream val` reads it.
    model: a checkpoint to fine-tune (Ultralytics ``.pt`` or yolostream ``.safetensors``) or a family+scale
        name to train from scratch (``yolo11n``, ``yolov8s``, ``yolo26n``...).
    imgsz: training picture side (square, multiple of 32). batch: pictures per step; gradients are
        accumulated to a nominal batch of ``nbs`` before each optimiser step (weight decay scaled to match).
    optimizer: ``sgd``, ``adamw`` or ``auto`` (AdamW with a class-scaled lr for short runs, else SGD).
    lr0 / lrf: initial learning rate and the final fraction of it; ``cosine`` for a cosine instead of a linear
        decay. warmup_epochs: linear warm-up of lr and momentum (at least 100 iterations when > 0).
    close_mosaic: the last N epochs train without mosaic (pictures as the detector will see them).
    dtype: ``fp32``; ``bf16`` autocasts forward and backward (CPU with native bf16 or GPU), ``fp16`` (GPU,
        with loss scaling). compile: torch.compile the model's training forward. channels_last: NHWC
        activations (oneDNN's fast convolution layout; 2-3x faster training steps on the CPU).
    cache: keep the decoded training pictures in memory (about 3 * imgsz^2 bytes each; mosaic twice as fast).
    val_every: validate the EMA weights every k epochs (always after the last one).
    hyp: loss gains (box, cls, dfl). aug: augmentation settings (see `yolostream.train.data`).
    """

    data: str
    model: str
    out: str = "runs/train"
    epochs: int = 50
    imgsz: int = 640
    batch: int = 16
    nbs: int = 64
    optimizer: str = "auto"
    lr0: float = 0.01
    lrf: float = 0.01
    momentum: float = 0.937
    weight_decay: float = 5e-4
    warmup_epochs: float = 3.0
    warmup_momentum: float = 0.8
    warmup_bias_lr: float = 0.0
    cosine: bool = False
    close_mosaic: int = 10
    max_grad_norm: float = 10.0
    device: str = "cpu"
    workers: int = 2
    seed: int = 0
    dtype: str = "fp32"
    compile: bool = False
    channels_last: bool = True
    cache: bool = False
    val_every: int = 1
    val_batch: int = 16
    patience: int = 0
    hyp: dict[str, float] = field(default_factory=lambda: {"box": 7.5, "cls": 0.5, "dfl": 1.5})
    aug: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.imgsz % 32 or self.imgsz < 64:
            raise ConfigError(f"imgsz must be a multiple of 32 and >= 64, got {self.imgsz}")
        if self.epochs < 1 or self.batch < 1 or self.workers < 0 or self.val_every < 1:
            raise ConfigError("epochs, batch and val_every must be >= 1 and workers >= 0")
        if self.optimizer not in ("sgd", "adamw", "auto"):
            raise ConfigError(f"optimizer must be sgd, adamw or auto, got {self.optimizer!r}")
        if self.dtype not in ("fp32", "bf16", "fp16"):
            raise ConfigError(f"dtype must be fp32, bf16 or fp16, got {self.dtype!r}")
        if self.dtype == "fp16" and not self.device.startswith("cuda"):
            raise ConfigError("fp16 training needs a CUDA device (use bf16 or fp32 on the CPU)")

    def to_plain(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_plain(cls, values: dict[str, Any], **overrides: Any) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{**{k: v for k, v in values.items() if k in known}, **overrides})
