"""Where the time goes in a compiled (or quantized) graph, per kind of kernel: convolutions (oneDNN, with their
fused activation), Inductor's generated C++ kernels (concat, upsample, add, SiLU not fused into a conv, the
decode), the candidate selection (topk / sort), and everything else.

    python bench/profile_layers.py MODEL [--imgsz 640] [--dtype fp32|int8] [--calib DIR] [--iters 20] [--threads N]
        [--top N]

Prints one line per kind: share of the profiled CPU time and ms per call (`--top N`: also the N heaviest kernels,
Inductor's generated ones named); `--json PATH` writes them too.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict

import torch

# Kernel name patterns -> kind (first match wins).
KINDS = [
    ("conv int8 (oneDNN)", r"onednn::qconv|quantized::|qconv"),
    ("conv fp32 (oneDNN)", r"mkldnn::_convolution|aten::convolution|aten::mkldnn_convolution|mkldnn_rnn|_convolution"),
    ("matmul", r"mm|linear|bmm"),
    ("topk/sort (candidates)", r"topk|sort"),
    ("Inductor C++ kernels", r"cpp_fused|kernel_cpp|graph_\d+_cpp"),
]


def kind_of(name: str) -> str:
    for kind, pattern in KINDS:
        if re.search(pattern, name):
            return kind
    return "other"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--dtype", default="fp32")
    p.add_argument("--calib", default=None)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None)
    p.add_argument("--top", type=int, default=0, help="also print the N kernels with the most self time")
    args = p.parse_args()
    import torch._inductor.config as inductor_config

    import yolostream

    # Name every generated C++ kernel in the profile (else they all hide in the compiled graph's self time).
    inductor_config.cpp.enable_kernel_profile = True
    det = yolostream.load(
        args.model, imgsz=args.imgsz, backend="inductor", dtype=args.dtype, calib=args.calib, threads=args.threads
    )
    x = torch.full((1, 3, args.imgsz, args.imgsz), 114, dtype=torch.uint8)
    conf = torch.tensor(0.25)
    with torch.inference_mode():
        for _ in range(3):
            det.runner(x, conf)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for _ in range(args.iters):
                det.runner(x, conf)
    totals: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        # Self time only: a fused kernel's time is not counted again under its caller.
        totals[kind_of(event.key)] += event.self_cpu_time_total / 1e3 / args.iters
    whole = sum(totals.values())
    rows = sorted(totals.items(), key=lambda kv: -kv[1])
    for kind, ms in rows:
        print(f"{kind:28s} {ms:8.2f} ms/call  {100 * ms / whole:5.1f}%")
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    for event in events[: args.top]:
        ms = event.self_cpu_time_total / 1e3 / args.iters
        print(f"  {ms:7.2f} ms/call  x{event.count // args.iters:<3d} {kind_of(event.key):24s} {event.key[:90]}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"model": args.model, "imgsz": args.imgsz, "dtype": args.dtype, "ms_per_call": dict(rows)}, f, indent=2
            )


if __name__ == "__main__":
    main()
