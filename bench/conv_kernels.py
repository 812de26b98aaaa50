"""Convolutions shape by shape: Inductor's oneDNN kernels against OpenVINO's, on the same network and precision.

    python bench/conv_kernels.py MODEL [--dtype int8|fp32|bf16] [--imgsz 640] [--calib DIR] [--calls 10]
        [--threads 2] [--json PATH]

Both sides are the networks `yolostream bench` times in that precision (int8, the default: Inductor PT2E + x86
quantizer lowered to ``onednn::qconv_pointwise``, OpenVINO NNCF, calibrated on the same pictures; fp32 / bf16:
the frozen Inductor graph's ``mkldnn`` convolutions, OpenVINO with that inference precision). Ours are timed by
oneDNN's own verbose log (each primitive's execution time), OpenVINO's by its per-node performance counters;
both are the kernel alone, without the framework around it, and the two sides run call by call in turn. One
line per convolution shape (input channels, output channels, input and output size, 1x1 or not): how many, ms
per call on each side, the ratio. Where the convolutions differ shape for shape, no change in the graph around
them can close the gap. Last, both whole calls timed plainly, alternating: ours minus our convolutions is what
the graph around them costs. OpenVINO's counters can sum to more than its whole call (measured: 595 against 472
ms on yolov8s, Zen 1), so its per-shape figures compare with ours only where that overstatement is small.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import ctypes
import json
import os
import re
import statistics
import tempfile
from collections.abc import Callable, Iterator

import torch

import yolostream
from yolostream.bench.environment import environment
from yolostream.bench.measure import time_calls

Key = tuple[int, int, int, int, str]  # (in channels, out channels, in height, out height, "1x1" | "kxk")


@contextlib.contextmanager
def _c_stdout(path: str) -> Iterator[None]:
    """oneDNN writes its verbose lines with C stdio: send file descriptor 1 to the end of ``path`` meanwhile."""
    libc = ctypes.CDLL(None)
    saved = os.dup(1)
    with open(path, "a") as f:
        os.dup2(f.fileno(), 1)
        try:
            yield
        finally:
            libc.fflush(None)  # what C stdio still buffers belongs to this file, not to the terminal
            os.dup2(saved, 1)
            os.close(saved)


_SHAPE = re.compile(r"mb\d+_ic(\d+)oc(\d+)_ih(\d+)oh(\d+)kh(\d+)")


def inductor_call(runner, x: torch.Tensor, conf: torch.Tensor, log: str) -> None:
    """One call of ``runner`` (a compiled graph) with oneDNN's verbose log appended to ``log``."""
    with _c_stdout(log), torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
        runner(x, conf)


def inductor_convs(log: str) -> dict[Key, list[float]]:
    """Milliseconds of each oneDNN convolution execution in ``log``, by shape."""
    rows: dict[Key, list[float]] = collections.defaultdict(list)
    with open(log) as f:
        for line in f:
            parts = line.strip().split(",")
            if len(parts) < 8 or parts[2:4] != ["primitive", "exec"] or parts[5] != "convolution":
                continue
            m = _SHAPE.search(line)
            if m:
                ic, oc, ih, oh, kh = map(int, m.groups())
                rows[(ic, oc, ih, oh, "1x1" if kh == 1 else "kxk")].append(float(parts[-1]))
    return rows


def openvino_request(det, x: torch.Tensor, calib: str, threads: int, dtype: str) -> tuple[Callable[[], None], dict]:
    """The OpenVINO network `yolostream bench` times in ``dtype``, compiled with performance counters on:
    (one call, its operations by name)."""
    import openvino as ov

    from yolostream.engine.buckets import Bucket
    from yolostream.engine.external import BranchNetwork
    from yolostream.engine.openvino_backend import _nncf_quantize, native_bf16
    from yolostream.quant.calibration import calibration_batches, calibration_files

    bucket = Bucket(*x.shape[:1], *x.shape[2:])
    with torch.no_grad():
        exported = torch.export.export(BranchNetwork(det.model.eval(), False).eval(), (x.float() / 255,), strict=False)
    converted = ov.convert_model(exported)
    # Static shapes for the counters below (an export after the compiled engine's can come out dynamic).
    converted.reshape({0: list(x.shape)})
    if dtype == "int8":
        converted = _nncf_quantize(converted, calibration_batches(calibration_files(calib), bucket))
    # The precision `build_sessions` asks for: int8's float remainder in bf16 where native.
    hint = "bf16" if dtype == "bf16" or (dtype == "int8" and native_bf16()) else "f32"
    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "PERF_COUNT": True,
              "INFERENCE_PRECISION_HINT": hint}  # fmt: skip
    compiled = ov.Core().compile_model(converted, "CPU", config)
    ops = {op.get_friendly_name(): op for op in compiled.get_runtime_model().get_ops()}
    request = compiled.create_infer_request()
    a = (x.float() / 255).numpy()
    return (lambda: request.infer({0: a})), {"request": request, "ops": ops}


def openvino_convs(state: dict, rows: dict[Key, list[float]]) -> None:
    """Add the last call's convolution times (OpenVINO's performance counters) to ``rows``, by shape."""
    for p in state["request"].get_profiling_info():
        op = state["ops"].get(p.node_name)
        if p.node_type != "Convolution" or op is None:
            continue
        src, dst = op.input(0).get_partial_shape(), op.output(0).get_partial_shape()
        if src.is_dynamic or dst.is_dynamic:
            raise RuntimeError(f"convolution {p.node_name}: dynamic shape {src} -> {dst}")
        _, ic, ih, _ = src.to_shape()
        _, oc, oh, _ = dst.to_shape()
        rows[(ic, oc, ih, oh, "1x1" if "1x1" in p.exec_type else "kxk")].append(p.real_time.total_seconds() * 1e3)


def openvino_total(state: dict) -> float:
    """Milliseconds of every node of the last call by OpenVINO's performance counters."""
    return sum(p.real_time.total_seconds() * 1e3 for p in state["request"].get_profiling_info())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--dtype", choices=("int8", "fp32", "bf16"), default="int8")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--calib", default="../shared/fixtures/images")
    p.add_argument("--calls", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    det = yolostream.load(
        args.model, imgsz=args.imgsz, backend="inductor", dtype=args.dtype, calib=args.calib, threads=args.threads
    )
    x = torch.randint(0, 256, (1, 3, args.imgsz, args.imgsz), generator=torch.Generator().manual_seed(0))
    x = x.to(torch.uint8)
    base = yolostream.load(args.model, imgsz=args.imgsz)
    call_openvino, state = openvino_request(base, x, args.calib, args.threads, args.dtype)
    conf = torch.tensor(0.25)
    theirs: dict[Key, list[float]] = collections.defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        log = os.path.join(tmp, "verbose.txt")
        for _ in range(3):
            det.runner(x, conf)
            call_openvino()
        # Call by call, alternating: this VM's speed drifts by 10-50% over a minute, so timing one side after
        # the other would compare two machines.
        walls: dict[str, list[float]] = {"inductor": [], "openvino": [], "openvino_counters": []}
        for _ in range(args.calls):
            inductor_call(det.runner, x, conf, log)
            call_openvino()
            openvino_convs(state, theirs)
            walls["openvino_counters"].append(openvino_total(state))
            # Whole calls without the verbose log or counters read back: what the kernels leave to the rest.
            walls["inductor"] += [ns / 1e6 for ns in time_calls(lambda: det.runner(x, conf), 1)]
            walls["openvino"] += [ns / 1e6 for ns in time_calls(call_openvino, 1)]
        ours = inductor_convs(log)
    rows = []
    for key in sorted(set(ours) | set(theirs), key=lambda k: -sum(ours.get(k, [])) - sum(theirs.get(k, []))):
        a = sum(ours.get(key, [])) / args.calls
        b = sum(theirs.get(key, [])) / args.calls
        n = len(ours.get(key, theirs.get(key, []))) // args.calls
        rows.append({"ic": key[0], "oc": key[1], "ih": key[2], "oh": key[3], "kind": key[4], "count": n,
                     "inductor_ms": a, "openvino_ms": b})  # fmt: skip
        ratio = f"{a / b:5.2f}x" if a and b else "    -"
        print(f"{key[0]:4d}->{key[1]:<4d} {key[2]:4d}->{key[3]:<4d} {key[4]}  x{n:<2d}  ours {a:6.2f} ms  "
              f"openvino {b:6.2f} ms  {ratio}")  # fmt: skip
    total_a = sum(r["inductor_ms"] for r in rows)
    total_b = sum(r["openvino_ms"] for r in rows)
    print(f"all convolutions: ours {total_a:.2f} ms, openvino {total_b:.2f} ms ({total_a / total_b:.2f}x)")
    whole = {k: statistics.median(v) for k, v in walls.items()}
    print(
        f"whole call (median): ours {whole['inductor']:.2f} ms, of which {whole['inductor'] - total_a:.2f} outside "
        f"the convolutions; openvino {whole['openvino']:.2f} ms, its counters summing to "
        f"{whole['openvino_counters']:.2f} (above its whole call where they overstate: then compare the walls)"
    )
    if args.json:
        env = environment(torch.device("cpu"), args.threads)
        doc = {"kind": f"{args.dtype}-conv-kernels", "model": args.model, "imgsz": args.imgsz, "calls": args.calls,
               "environment": env, "results": rows, "total_ms": {"inductor": total_a, "openvino": total_b},
               "whole_call_ms": whole}  # fmt: skip
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)


if __name__ == "__main__":
    main()
