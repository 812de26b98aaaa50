"""The fixed cost of one convolution call on the CPU: wall time per call against oneDNN's own execution time.

    python bench/conv_overhead.py [--channels 32] [--size 8] [--calls 5000] [--threads 2] [--json PATH]

A tiny NHWC 3x3 convolution (so the kernel itself takes microseconds) through the op a frozen Inductor graph
calls (``mkldnn._convolution_pointwise``, the weight prepacked, SiLU fused), timed in rounds alternating with
the same calls under oneDNN's verbose log, whose execution times say what the kernel alone takes. Wall minus
kernel is what ATen and ideep spend around each convolution: yolov8n calls 63 of them. (Plain ``F.conv2d`` is
no reference here: at such sizes ATen runs its own non-oneDNN kernel.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

import torch

sys.path.insert(0, os.path.dirname(__file__))
from conv_kernels import _c_stdout  # bench scripts run as files, not as a package

from yolostream.bench.environment import environment


def per_call_us(fn: Callable[[], object], calls: int) -> float:
    """Mean wall microseconds of ``fn`` over ``calls`` calls."""
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t) / calls * 1e6


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--size", type=int, default=8, help="input height = width")
    p.add_argument("--calls", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    c, s = args.channels, args.size
    x = torch.randn(1, c, s, s).contiguous(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(c, c, 3, padding=1).eval().to(memory_format=torch.channels_last)
    packed = torch.ops.mkldnn._reorder_convolution_weight(conv.weight, [1, 1], [1, 1], [1, 1], 1, list(x.shape))

    def pointwise() -> torch.Tensor:
        return torch.ops.mkldnn._convolution_pointwise(x, packed, conv.bias, [1, 1], [1, 1], [1, 1], 1, "swish", [], "")

    walls: list[float] = []
    kernel: list[float] = []
    with torch.inference_mode(), tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "verbose.txt")
        per_call_us(pointwise, 200)  # warm: primitive caches, allocator
        for _ in range(args.rounds):  # in turn, as this VM's speed drifts over a minute
            walls.append(per_call_us(pointwise, args.calls))
            with _c_stdout(log), torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                per_call_us(pointwise, 200)
        with open(log) as f:
            for line in f:
                if ",primitive,exec," in line and ",convolution," in line:
                    kernel.append(float(line.strip().rsplit(",", 1)[1]) * 1e3)
    row = {"pointwise": statistics.median(walls), "onednn_exec": statistics.median(kernel)}
    print(f"NHWC 3x3 conv {c}->{c} at {s}x{s}, {args.threads} threads, median of {args.rounds} rounds:")
    print(f"  mkldnn._convolution_pointwise (prepacked, SiLU fused) {row['pointwise']:7.1f} us per call")
    print(f"  oneDNN execution alone (verbose log)                  {row['onednn_exec']:7.1f} us")
    print(f"  around the kernel, per Inductor convolution:          {row['pointwise'] - row['onednn_exec']:7.1f} us")
    if args.json:
        doc = {"kind": "conv-overhead", "channels": c, "size": s, "calls": args.calls, "rounds": args.rounds,
               "environment": environment(torch.device("cpu"), args.threads), "results_us": row,
               "rounds_us": walls}  # fmt: skip
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)


if __name__ == "__main__":
    main()
