"""Would Inductor's CPU GEMM templates pay if the network's 1x1 convolutions were matmuls?

    python bench/conv1x1_as_linear.py MODEL [--imgsz 640] [--rounds 30] [--threads 2] [--json PATH]

`max-autotune` brings Inductor's C++ GEMM templates (micro-kernels generated into the graph, no ATen call
around them), but they only see matmuls. A 1x1, stride-1 convolution on NHWC activations is one: this script
rewrites every such convolution (after batch-norm folding) as ``F.linear`` over the channel dimension and times,
in turn in one process, the frozen compiled network three ways: as it is (oneDNN convolutions), with the
rewrite (MKL packed linear), and with the rewrite under ``max_autotune`` (each linear's fastest of MKL and the
C++ template, as Inductor's own benchmark chose at compile time; it logs its choices on stderr).
Input: float [1, 3, imgsz, imgsz] in [0, 1]; output: the raw decoded head, compared against the eager model.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from collections.abc import Callable

import torch
import torch._inductor.config as inductor_config
import torch.nn.functional as F
from torch import Tensor, nn

from yolostream.bench.environment import environment
from yolostream.models.load import model_from_checkpoint
from yolostream.weights import read_checkpoint


class Linear1x1(nn.Module):
    """A 1x1, stride-1, ungrouped convolution as a matmul: [B, c1, H, W] -> [B, c2, H, W], same numbers."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.weight = nn.Parameter(conv.weight.detach().flatten(1).clone())
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        # On channels-last activations both permutes are views: the matmul reads the conv's own memory.
        return F.linear(x.permute(0, 2, 3, 1), self.weight, self.bias).permute(0, 3, 1, 2)


def as_linear(module: nn.Module) -> int:
    """Replace, in place, every 1x1 stride-1 ungrouped ``nn.Conv2d`` under ``module``; how many."""
    n = 0
    for name, child in module.named_children():
        pointwise = isinstance(child, nn.Conv2d) and child.kernel_size == (1, 1) and child.stride == (1, 1)
        if pointwise and child.groups == 1:
            setattr(module, name, Linear1x1(child))
            n += 1
        else:
            n += as_linear(child)
    return n


def compiled(model: nn.Module, x: Tensor, options: dict[str, object]) -> tuple[Callable[[Tensor], Tensor], float]:
    """``model`` frozen and compiled with ``options`` (patched into Inductor's config: torch 2.13 ignores
    freezing in ``options=``), warmed on ``x``; the function and its compile seconds."""
    torch._dynamo.reset()
    start = time.perf_counter()
    with torch.inference_mode(), inductor_config.patch({"freezing": True, "cpp_wrapper": True, **options}):
        fn = torch.compile(model, fullgraph=True, dynamic=False)
        fn(x)
        fn(x)
    return fn, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--calls", type=int, default=2, help="calls per row per round")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model, _ = model_from_checkpoint(read_checkpoint(args.model))
    model.eval()
    rewritten = copy.deepcopy(model)
    n = as_linear(rewritten)
    x = torch.rand(1, 3, args.imgsz, args.imgsz, generator=torch.Generator().manual_seed(0))
    rows: dict[str, Callable[[Tensor], Tensor]] = {}
    compile_s: dict[str, float] = {}
    for name, m, options in (
        ("conv (oneDNN)", model, {}),
        ("1x1 as linear (MKL)", rewritten, {}),
        ("1x1 as linear + max-autotune", rewritten, {"max_autotune": True}),
    ):
        rows[name], compile_s[name] = compiled(m, x, options)
        print(f"compiled {name} in {compile_s[name]:.1f} s", flush=True)
    times: dict[str, list[float]] = {k: [] for k in rows}
    with torch.inference_mode():
        reference = model(x)
        diff = {k: float((fn(x) - reference).abs().max()) for k, fn in rows.items()}
        for _ in range(args.rounds):  # rows in turn: this VM's speed drifts over a minute
            for k, fn in rows.items():
                start = time.perf_counter()
                for _ in range(args.calls):
                    fn(x)
                times[k].append((time.perf_counter() - start) / args.calls * 1e3)
    base = next(iter(rows))
    print(f"{args.model}, {args.imgsz}x{args.imgsz}, {n} convolutions rewritten, {args.threads} threads:")
    result = {}
    for k, t in times.items():
        paired = statistics.median(a / b for a, b in zip(t, times[base], strict=True))
        result[k] = {"p50_ms": statistics.median(t), "paired_ratio": paired, "max_abs_diff": diff[k],
                     "compile_s": compile_s[k]}  # fmt: skip
        print(f"  {k:30s} p50 {result[k]['p50_ms']:7.2f} ms  paired ratio {paired:.3f}  max |diff| {diff[k]:.1e}")
    if args.json:
        doc = {"kind": "conv1x1-as-linear", "model": args.model, "imgsz": args.imgsz, "rewritten": n,
               "rounds": args.rounds, "calls": args.calls,
               "environment": environment(torch.device("cpu"), args.threads), "results": result,
               "rounds_ms": times}  # fmt: skip
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)


if __name__ == "__main__":
    main()
