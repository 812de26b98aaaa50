"""What the serving graph does differently, side by side, against OpenVINO at the same precision, call by call.

    python bench/serving_variants.py MODEL [--imgsz 640] [--dtype fp32|bf16|int8] [--calib DIR] [--rounds 200]
        [--threads 2] [--json PATH]

Network only (uint8 letterboxed batch in, candidates out), a noise picture, medians over every round; each round
calls every row once, so the VM's drift falls on all rows alike. Rows: ``new`` = what `load` serves (anchor-major
best-class decode, `yolostream.models.head.decode_best`, called under the serving stance of
`yolostream.engine.stance`); ``channel-major decode`` = the graph as it was: the whole [B, 4 + nc, A] decoded
output (sigmoid of every class logit), transposed, then the max over classes; ``every guard evaluated`` = the new
graph called under plain ``fail_on_recompile`` (Dynamo checks every frozen weight's guard each call); ``both
old`` = the old graph under plain ``fail_on_recompile``; and OpenVINO at the same precision. INT8: the served
package (AOTInductor: no Dynamo, so no guards), and the same quantized network (whose graph ends at the per-level
maps) through torch.compile in the new graph and in the channel-major one. Also printed: how far the old and new
graphs' candidates are apart. ``DFL through one shared exp``: the served graph with the DFL's two sums
reading one exp (how it was before the form in `yolostream.models.head._expected_bin`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor

import yolostream
from yolostream.bench.environment import environment
from yolostream.engine.backends import int8_float_parts
from yolostream.engine.buckets import Bucket
from yolostream.engine.compiled import CompiledRunner
from yolostream.graph import InferenceGraph
from yolostream.models.head import decode_best
from yolostream.postprocess.candidates import Candidates, select_best
from yolostream.quant.bias_pass import with_bias_pass


class ChannelMajorGraph(InferenceGraph):
    """The graph before `decode_best`: every path through the network's decoded output."""

    def forward(self, images: Tensor, conf: Tensor) -> Candidates:
        return self.all_scores(self.network_input(images), conf)


class OwnCode(InferenceGraph):
    """The same graph with a code object of its own (so a cache of its own)."""

    def forward(self, images: Tensor, conf: Tensor) -> Candidates:
        return super().forward(images, conf)


class OwnCodeOld(ChannelMajorGraph):
    def forward(self, images: Tensor, conf: Tensor) -> Candidates:
        return super().forward(images, conf)


def shared_exp_bin(logits: Tensor) -> Tensor:
    """The DFL's expected bin as it was: both sums read one exp(z), which Inductor then stores (transposed,
    scalar exp) because a reused value holding an exp is always stored on the CPU."""
    e = (logits - logits.amax(-1, keepdim=True)).exp()
    bins = torch.arange(logits.shape[-1], device=logits.device, dtype=logits.dtype)
    return (e * bins).sum(-1) / e.sum(-1)


class SharedExpGraph(InferenceGraph):
    """The served graph with the DFL through one shared exp (`shared_exp_bin`), on a code object of its own."""

    def forward(self, images: Tensor, conf: Tensor) -> Candidates:
        return super().forward(images, conf)

    def best_per_anchor(self, x: Tensor, conf: Tensor) -> Candidates:
        with self._autocast(x.device):
            levels = self.model.levels(x)
        best = decode_best(levels, self.model.strides, self.model.reg_max, expected_bin=shared_exp_bin)
        return select_best(best.boxes, best.scores, best.classes, conf, self.config.max_candidates)


class EveryGuard:
    """Calls a runner's compiled graph as the runner did before the serving stance: every guard checked."""

    def __init__(self, runner: CompiledRunner) -> None:
        self.runner = runner

    def __call__(self, x: Tensor, conf: Tensor) -> Candidates:
        with torch.inference_mode(), torch.compiler.set_stance("fail_on_recompile"):
            return self.runner._compiled(x, conf)


def float_rows(args: argparse.Namespace, bucket: Bucket) -> dict[str, Callable]:
    base = yolostream.load(args.model, imgsz=args.imgsz, backend="inductor", dtype=args.dtype, threads=args.threads)
    graph = base.runner.graph
    old = ChannelMajorGraph(graph.model, graph.config, dtype=graph.dtype)
    return {
        f"inductor-{args.dtype} new (anchor-major decode)": base.runner,
        f"inductor-{args.dtype} channel-major decode": CompiledRunner(old, [bucket], threads=args.threads),
        f"inductor-{args.dtype} DFL through one shared exp": CompiledRunner(
            SharedExpGraph(graph.model, graph.config, dtype=graph.dtype), [bucket], threads=args.threads
        ),
        f"inductor-{args.dtype} every guard evaluated": EveryGuard(
            CompiledRunner(OwnCode(graph.model, graph.config, dtype=graph.dtype), [bucket], threads=args.threads)
        ),
        f"inductor-{args.dtype} both old": EveryGuard(
            CompiledRunner(OwnCodeOld(graph.model, graph.config, dtype=graph.dtype), [bucket], threads=args.threads)
        ),
    }


def int8_rows(args: argparse.Namespace, bucket: Bucket) -> dict[str, Callable]:
    # As `load(dtype="int8")` builds it (`yolostream.engine.backends`), then the same network in both graphs.
    base = yolostream.load(
        args.model, imgsz=args.imgsz, backend="inductor", dtype="int8", threads=args.threads, calib=args.calib
    )
    network = base.runner.network
    config = dataclasses.replace(base.graph_config, amp=int8_float_parts(torch.device("cpu")))
    options = with_bias_pass(config.amp, {})

    def compiled(graph: InferenceGraph) -> CompiledRunner:
        return CompiledRunner(graph, [bucket], threads=args.threads, inductor_options=dict(options))

    return {
        "inductor-int8 new, served (AOTInductor)": base.runner,
        "inductor-int8 new, torch.compile": compiled(OwnCode(network, config)),
        "inductor-int8 channel-major decode, torch.compile": compiled(ChannelMajorGraph(network, config)),
        "inductor-int8 DFL through one shared exp, torch.compile": compiled(SharedExpGraph(network, config)),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--dtype", choices=("fp32", "bf16", "int8"), default="fp32")
    p.add_argument("--calib", default="../shared/fixtures/images", help="int8: calibration pictures (both sides)")
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    bucket = Bucket(1, args.imgsz, args.imgsz)
    runners = int8_rows(args, bucket) if args.dtype == "int8" else float_rows(args, bucket)
    ov = {"calib": args.calib} if args.dtype == "int8" else {}
    runners[f"openvino-{args.dtype}"] = yolostream.load(
        args.model, imgsz=args.imgsz, backend="openvino", dtype=args.dtype, threads=args.threads, **ov
    ).runner
    x = torch.randint(0, 256, (1, 3, args.imgsz, args.imgsz), generator=torch.Generator().manual_seed(0)).to(
        torch.uint8
    )
    conf = torch.tensor(0.25)
    samples: dict[str, list[float]] = {k: [] for k in runners}
    with torch.inference_mode():
        x, conf = x.clone(), conf.clone()  # inference tensors, as the warm-up's: no guard fails on them
        outs = {k: run(x, conf) for k, run in runners.items()}
        for run in runners.values():
            for _ in range(5):
                run(x, conf)
        for _ in range(args.rounds):
            for name, run in runners.items():
                start = time.perf_counter()
                run(x, conf)
                samples[name].append((time.perf_counter() - start) * 1e3)
    a, b = outs[next(k for k in outs if "new" in k)], outs[next(k for k in outs if "channel-major" in k)]
    n = int(a.valid.sum())
    print(
        f"new vs channel-major: {n} vs {int(b.valid.sum())} valid, "
        f"classes equal {bool(torch.equal(a.classes, b.classes))}, "
        f"max |box diff| {float((a.boxes - b.boxes).abs().max()):.2e} px, max |score diff| "
        f"{float((a.scores - b.scores).abs().max()):.2e}"
    )
    ov = statistics.median(samples[f"openvino-{args.dtype}"])
    first = statistics.median(samples[next(iter(samples))])
    rows = []
    for name, s in samples.items():
        p50 = statistics.median(s)
        rows.append({"name": name, "p50_ms": p50, "min_ms": min(s), "vs_new": p50 / first, "vs_openvino": p50 / ov})
        print(f"{name:48s} p50 {p50:7.2f} ms  min {min(s):7.2f}  vs new {p50 / first:.3f}x  vs OV {p50 / ov:.3f}x")
    if args.json:
        env = environment(torch.device("cpu"), args.threads)
        doc = {"kind": "serving-variants", "model": args.model, "imgsz": args.imgsz, "dtype": args.dtype,
               "rounds": args.rounds, "environment": env, "results": rows}  # fmt: skip
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
