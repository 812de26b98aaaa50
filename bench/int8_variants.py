"""INT8 settings side by side: which layers stay in float, the precision of the float remainder, the wrapper;
Inductor against OpenVINO INT8 on the same calibration pictures, timed interleaved in one process.

    python bench/int8_variants.py MODEL [--imgsz 640] [--calib DIR] [--rounds 20] [--calls 20] [--threads 2]
        [--json PATH]

Network only (uint8 letterboxed batch in, candidates out), a noise picture, medians over every round. Rows:
``old`` = stem in float, float parts fp32, Python wrapper, C2f concatenating cv1's two halves (the defaults
before the AVX-512 sessions); ``new`` = stem quantized, float parts bf16 where native, cpp_wrapper, C2f
concatenating cv1's whole output, the uint8 pixels into the graph, float concats quantized part by part, fp32
conv biases with bf16 parts (the defaults now); one change at a time between, and two options beside the
defaults: the head's last 1x1 convolutions quantized too (what NNCF does; the accuracy gate decides), and the
same graph AOTInductor-compiled and served in process (``compile="aoti"``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import statistics
import time
from collections.abc import Callable, Iterator

import torch

import yolostream
from yolostream.bench.environment import environment
from yolostream.engine.aot import compile_aot
from yolostream.engine.buckets import Bucket
from yolostream.engine.compiled import CompiledRunner
from yolostream.engine.runtime import native_bf16
from yolostream.graph import InferenceGraph
from yolostream.models.blocks import C2f
from yolostream.quant.bias_pass import with_bias_pass
from yolostream.quant.calibration import calibration_batches, calibration_files
from yolostream.quant.pt2e import quantize_network

FLOAT_STEM = ("stem", "head_outputs", "attention")
QUANT_STEM = ("head_outputs", "attention")
QUANT_HEAD = ("attention",)  # the head's last 1x1 convolutions quantized too (as NNCF does)


@contextlib.contextmanager
def _c2f_halves() -> Iterator[None]:
    """C2f as it was: the concat takes cv1's two halves (split views), so under INT8 it gathers float halves
    and re-quantizes them. Same channels, same float result."""

    def forward(self: C2f, x: torch.Tensor) -> torch.Tensor:
        y = list(self.cv1(x).chunk(2, 1))
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))

    whole = C2f.forward
    C2f.forward = forward  # type: ignore[method-assign]
    try:
        yield
    finally:
        C2f.forward = whole  # type: ignore[method-assign]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--calib", default="../shared/fixtures/images")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--calls", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    bucket = Bucket(1, args.imgsz, args.imgsz)
    calib = {bucket: calibration_batches(calibration_files(args.calib), bucket)}
    base = yolostream.load(args.model, imgsz=args.imgsz)
    bf16 = "bf16" if native_bf16() else None  # emulated bf16 would only measure the emulation

    def inductor(
        keep: tuple[str, ...],
        amp: str | None,
        cpp_wrapper: bool,
        halves: bool = False,
        aot: bool = False,
        pixels: bool = True,
        concat_parts: bool = True,
        bias_pass: bool = True,
    ) -> Callable:
        # The graph is captured at quantization: C2f's forward matters only while it runs.
        with _c2f_halves() if halves else contextlib.nullcontext():
            net = quantize_network(
                base.model,
                calib,
                one2one=base.graph_config.one2one,
                keep_float=keep,
                pixels_input=pixels,
                concat_parts=concat_parts,
            )
        graph = InferenceGraph(net, dataclasses.replace(base.graph_config, amp=amp))  # type: ignore[arg-type]
        # As `load` compiles INT8: with bf16 parts, the fp32 conv-bias pass (`yolostream.quant.bias_pass`).
        options = with_bias_pass(amp if bias_pass else None, {"cpp_wrapper": cpp_wrapper})
        if aot:
            return compile_aot(base, [bucket], graph=graph, threads=args.threads, inductor_options=options)
        return CompiledRunner(graph, [bucket], threads=args.threads, inductor_options=options)

    builders: dict[str, Callable[[], Callable]] = {
        "inductor-int8 old (float stem, fp32 parts, python wrapper, C2f halves)": lambda: inductor(
            FLOAT_STEM, None, False, halves=True, concat_parts=False
        ),
        "inductor-int8 new (quantized stem, bf16 parts, cpp_wrapper)": lambda: inductor(QUANT_STEM, bf16, True),
        "inductor-int8 new but fp32 parts": lambda: inductor(QUANT_STEM, None, True),
        "inductor-int8 new but float stem": lambda: inductor(FLOAT_STEM, bf16, True),
        "inductor-int8 new but C2f halves concatenated": lambda: inductor(QUANT_STEM, bf16, True, halves=True),
        "inductor-int8 new but input quantize kept (float pixels in)": lambda: inductor(
            QUANT_STEM, bf16, True, pixels=False
        ),
        "inductor-int8 new but float concats quantized whole": lambda: inductor(
            QUANT_STEM, bf16, True, concat_parts=False
        ),
        "inductor-int8 new but conv biases widened per call (no bias pass)": lambda: inductor(
            QUANT_STEM, bf16, True, bias_pass=False
        ),
        "inductor-int8 new + head outputs quantized": lambda: inductor(QUANT_HEAD, bf16, True),
        "inductor-int8 new, AOTInductor in process": lambda: inductor(QUANT_STEM, bf16, True, aot=True),
        "openvino-int8 (NNCF)": lambda: (
            yolostream.load(
                args.model, imgsz=args.imgsz, backend="openvino", dtype="int8", threads=args.threads, calib=args.calib
            ).runner
        ),
    }
    if bf16 is None:  # without native bf16 the float parts are fp32 in "new" already: these rows would repeat it
        del builders["inductor-int8 new but fp32 parts"]
        del builders["inductor-int8 new but conv biases widened per call (no bias pass)"]
    runners: dict[str, Callable] = {}
    build_s: dict[str, float] = {}
    for name, build in builders.items():
        start = time.perf_counter()
        runners[name] = build()
        build_s[name] = time.perf_counter() - start
        print(f"built {name} in {build_s[name]:.0f}s", flush=True)
    x = torch.randint(0, 256, (1, 3, args.imgsz, args.imgsz), generator=torch.Generator().manual_seed(0)).to(
        torch.uint8
    )
    conf = torch.tensor(0.25)
    samples: dict[str, list[float]] = {k: [] for k in runners}
    with torch.inference_mode():
        for run in runners.values():
            for _ in range(5):
                run(x, conf)
        for _ in range(args.rounds):  # interleaved: a neighbour's load falls on every row alike
            for name, run in runners.items():
                for _ in range(args.calls):
                    start = time.perf_counter()
                    run(x, conf)
                    samples[name].append((time.perf_counter() - start) * 1e3)
    ov = statistics.median(samples["openvino-int8 (NNCF)"])
    old = statistics.median(samples[next(iter(samples))])
    rows = []
    for name, s in samples.items():
        p50 = statistics.median(s)
        rows.append({"name": name, "build_s": build_s[name], "p50_ms": p50, "min_ms": min(s), "vs_old": p50 / old,
                     "vs_openvino_int8": p50 / ov})  # fmt: skip
        print(f"{name:62s} p50 {p50:7.2f} ms  min {min(s):7.2f}  vs old {p50 / old:.2f}x  vs openvino {p50 / ov:.2f}x")
    if args.json:
        env = environment(torch.device("cpu"), args.threads)
        doc = {"kind": "int8-variants", "model": args.model, "imgsz": args.imgsz, "rounds": args.rounds,
               "calls": args.calls, "environment": env, "results": rows}  # fmt: skip
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)


if __name__ == "__main__":
    main()
