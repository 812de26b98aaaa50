"""Training speed: images/s of whole training steps (forward, loss, backward, optimiser step) per setting.

Batches are synthetic (random pictures and boxes, fixed by a seed): the data loader runs in other
processes in a real run, so this measures the part that is ours to make fast. Settings are measured
interleaved (A B C A B C ...) so a change in machine load hits every setting alike; the median step
counts, compile time is reported apart.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass

import torch

from yolostream.train.loss import build_loss, train_outputs
from yolostream.train.model import from_scratch
from yolostream.train.optim import make_optimizer


@dataclass(frozen=True)
class Setting:
    imgsz: int
    compiled: bool
    dtype: str  # fp32 | bf16
    channels_last: bool = True

    @property
    def label(self) -> str:
        layout = "NHWC" if self.channels_last else "NCHW"
        return f"{self.imgsz} {'compiled' if self.compiled else 'eager'} {self.dtype} {layout}"


def synthetic_batch(
    batch: int, imgsz: int, nc: int, boxes_per_image: int = 6, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Random pictures with ``boxes_per_image`` random boxes each (``collate``'s layout)."""
    g = torch.Generator().manual_seed(seed)
    n = batch * boxes_per_image
    wh = torch.rand(n, 2, generator=g) * 0.3 + 0.05
    xy = torch.rand(n, 2, generator=g) * (1 - wh) + wh / 2
    return {
        "img": torch.randint(0, 256, (batch, 3, imgsz, imgsz), dtype=torch.uint8, generator=g),
        "batch_idx": torch.arange(batch).repeat_interleave(boxes_per_image).float(),
        "cls": torch.randint(0, nc, (n,), generator=g).float(),
        "bboxes": torch.cat((xy, wh), 1),
    }


class StepRunner:
    """One model + optimiser in one setting; ``step()`` runs a full training step and returns its seconds."""

    def __init__(self, model_name: str, setting: Setting, batch: int, nc: int = 4) -> None:
        torch.manual_seed(0)
        tm = from_scratch(model_name, {i: f"c{i}" for i in range(nc)}, setting.imgsz)
        fmt = torch.channels_last if setting.channels_last else torch.contiguous_format
        self.model = tm.model.to(memory_format=fmt)
        self.fmt, self.setting = fmt, setting
        self.loss = build_loss(self.model, tm.spec, None)
        self.opt = make_optimizer(self.model, "sgd", 0.01, 0.937, 5e-4)
        fn = lambda x: train_outputs(self.model, x)  # noqa: E731
        self.forward = torch.compile(fn, dynamic=False) if setting.compiled else fn
        self.batch = synthetic_batch(batch, setting.imgsz, nc)
        self.compile_s = 0.0

    def step(self) -> float:
        t0 = time.perf_counter()
        img = (self.batch["img"].float() / 255).contiguous(memory_format=self.fmt)
        amp = torch.autocast("cpu", dtype=torch.bfloat16) if self.setting.dtype == "bf16" else contextlib.nullcontext()
        with amp:
            out = self.forward(img)
        loss, _ = self.loss(out, self.batch, (img.shape[2], img.shape[3]))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 10.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0


def run_bench(
    model_name: str, settings: list[Setting], batch: int, iters: int, warmup: int = 2
) -> list[dict[str, float | str | bool]]:
    """Images/s (median over ``iters`` interleaved steps) and compile/warm-up seconds per setting."""
    runners = [StepRunner(model_name, s, batch) for s in settings]
    for r in runners:  # the first steps compile (compiled settings) or warm the allocator (eager)
        r.compile_s = sum(r.step() for _ in range(warmup))
    times: list[list[float]] = [[] for _ in runners]
    for _ in range(iters):
        for k, r in enumerate(runners):
            times[k].append(r.step())
    rows = []
    for s, r, t in zip(settings, runners, times, strict=True):
        med = statistics.median(t)
        rows.append({"setting": s.label, "imgsz": s.imgsz, "compiled": s.compiled, "dtype": s.dtype,
                     "channels_last": s.channels_last, "step_s": med, "images_per_s": batch / med,
                     "warmup_s": r.compile_s})  # fmt: skip
    return rows
