"""What one `yolostream bench` run measures: the model, the grid of configurations, the loop sizes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from yolostream.detector import DTYPES
from yolostream.engine.compiled import COMPILE_MODES
from yolostream.errors import ConfigError

# "eager": no compilation; the torch.compile modes; "aoti": an AOTInductor package exported, then loaded.
MODES: tuple[str, ...] = ("eager", *COMPILE_MODES, "aoti")
BASELINES: tuple[str, ...] = ("onnxruntime", "openvino")
REFERENCE = ("eager", "fp32")  # every ratio is to this configuration, measured in the same run


@dataclass(frozen=True)
class BenchConfig:
    """One bench run: every (mode, dtype, batch) of the grid, plus each baseline at each batch.

    iters: timed calls per figure (the latency percentiles need >= 200 for a meaningful p99).
    warmup: untimed calls before timing, per callable.
    threads: CPU intra-op threads for every engine (None: the cores this process may use).
    check_images: pictures for the accuracy check (none: the timing frame).
    check_models: further models (e.g. trained ones, whose detections mean something) checked for
        unchanged detections in every (mode, dtype) at batch 1, untimed.
    frame: a picture to time end to end instead of deterministic noise of imgsz x imgsz.
    """

    model: str
    device: str = "cpu"
    imgsz: int = 640
    batches: tuple[int, ...] = (1,)
    modes: tuple[str, ...] = ("eager", "default")
    dtypes: tuple[str, ...] = ("fp32",)
    iters: int = 200
    warmup: int = 10
    baselines: tuple[str, ...] = ()
    threads: int | None = None
    check_images: tuple[str, ...] = ()
    check_models: tuple[str, ...] = ()
    frame: str | None = None
    seed: int = 0

    def validate(self) -> None:
        """Raise `ConfigError` naming the first bad value."""
        _one_of("mode", self.modes, MODES)
        _one_of("dtype", self.dtypes, tuple(DTYPES))
        _one_of("baseline", self.baselines, BASELINES)
        if not self.batches or any(b < 1 for b in self.batches):
            raise ConfigError(f"batch sizes must be >= 1, got {list(self.batches)}")
        if self.imgsz < 32 or self.imgsz % 32:
            raise ConfigError(f"imgsz={self.imgsz}: must be a positive multiple of the stride 32")
        if self.iters < 1:
            raise ConfigError(f"iters={self.iters}: must be >= 1")
        if self.warmup < 0:
            raise ConfigError(f"warmup={self.warmup}: must be >= 0")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads={self.threads}: must be >= 1")
        if self.baselines and not self.device.startswith("cpu"):
            raise ConfigError(f"--baseline runs ONNX Runtime / OpenVINO on the CPU; it cannot sit beside {self.device}")
        for path in (self.model, *self.check_images, *self.check_models, *([self.frame] if self.frame else [])):
            if not Path(path).is_file():
                raise ConfigError(f"{path}: no such file")

    def grid(self) -> list[tuple[str, str]]:
        """(mode, dtype) pairs to measure, the eager fp32 reference first (added when not asked for)."""
        pairs = [(m, d) for m in self.modes for d in self.dtypes]
        return [REFERENCE, *(p for p in pairs if p != REFERENCE)]


def _one_of(what: str, values: tuple[str, ...], allowed: tuple[str, ...]) -> None:
    for value in values:
        if value not in allowed:
            raise ConfigError(f"unknown {what} {value!r}: choose from {', '.join(allowed)}")
    if len(set(values)) != len(values):
        raise ConfigError(f"{what} listed twice in {list(values)}")


def config_name(mode: str, dtype: str) -> str:
    """Display name of a configuration, e.g. ``default-bf16``."""
    return f"{mode}-{dtype}"
