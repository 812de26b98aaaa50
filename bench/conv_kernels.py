"""INT8 convolutions shape by shape: Inductor's oneDNN kernels against OpenVINO's, on the same network.

    python bench/conv_kernels.py MODEL [--imgsz 640] [--calib DIR] [--calls 10] [--threads 2] [--json PATH]

Both sides are the INT8 networks `yolostream bench` times (Inductor: PT2E + x86 quantizer, lowered to
``onednn::qconv_pointwise``; OpenVINO: NNCF), calibrated on the same pictures. Ours are timed by oneDNN's own
verbose log (each primitive's execution time), OpenVINO's by its per-node performance counters; both are the
kernel alone, without the framework around it. One line per convolution shape (input channels, output
channels, input and output size, 1x1 or not): how many, ms per call on each side, the ratio. Where the
convolutions differ shape for shape, no change in the graph around them can close the gap.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator

import torch

import yolostream
from yolostream.bench.environment import environment

Key = tuple[int, int, int, int, str]  # (in channels, out channels, in height, out height, "1x1" | "kxk")


@contextlib.contextmanager
def _c_stdout(path: str) -> Iterator[None]:
    """oneDNN writes its verbose lines with C stdio: send file descriptor 1 to ``path`` meanwhile."""
    saved = os.dup(1)
    with open(path, "w") as f:
        os.dup2(f.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def inductor_convs(runner, x: torch.Tensor, conf: torch.Tensor, calls: int) -> dict[Key, list[float]]:
    """ms per call of each oneDNN convolution shape in ``runner`` (a compiled INT8 graph)."""
    shape = re.compile(r"mb\d+_ic(\d+)oc(\d+)_ih(\d+)oh(\d+)kh(\d+)")
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "verbose.txt")
        with torch.inference_mode():
            for _ in range(3):
                runner(x, conf)
            with _c_stdout(log), torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                for _ in range(calls):
                    runner(x, conf)
        rows: dict[Key, list[float]] = collections.defaultdict(list)
        with open(log) as f:
            for line in f:
                parts = line.strip().split(",")
                if len(parts) < 8 or parts[2:4] != ["primitive", "exec"] or parts[5] != "convolution":
                    continue
                m = shape.search(line)
                if m:
                    ic, oc, ih, oh, kh = map(int, m.groups())
                    rows[(ic, oc, ih, oh, "1x1" if kh == 1 else "kxk")].append(float(parts[-1]))
    return rows


def openvino_convs(det, x: torch.Tensor, calib: str, calls: int, threads: int) -> dict[Key, list[float]]:
    """ms per call of each convolution shape in the OpenVINO INT8 network, from its performance counters."""
    import openvino as ov

    from yolostream.engine.buckets import Bucket
    from yolostream.engine.external import BranchNetwork
    from yolostream.engine.openvino_backend import _nncf_quantize
    from yolostream.quant.calibration import calibration_batches, calibration_files

    bucket = Bucket(*x.shape[:1], *x.shape[2:])
    with torch.no_grad():
        exported = torch.export.export(BranchNetwork(det.model.eval(), False).eval(), (x.float() / 255,), strict=False)
    converted = ov.convert_model(exported)
    # Static shapes for the counters below (an export after the compiled engine's can come out dynamic).
    converted.reshape({0: list(x.shape)})
    converted = _nncf_quantize(converted, calibration_batches(calibration_files(calib), bucket))
    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "PERF_COUNT": True}
    compiled = ov.Core().compile_model(converted, "CPU", config)
    ops = {op.get_friendly_name(): op for op in compiled.get_runtime_model().get_ops()}
    request = compiled.create_infer_request()
    a = (x.float() / 255).numpy()
    for _ in range(3):
        request.infer({0: a})
    rows: dict[Key, list[float]] = collections.defaultdict(list)
    for _ in range(calls):
        request.infer({0: a})
        for p in request.get_profiling_info():
            op = ops.get(p.node_name)
            if p.node_type != "Convolution" or op is None:
                continue
            src, dst = op.input(0).get_partial_shape(), op.output(0).get_partial_shape()
            if src.is_dynamic or dst.is_dynamic:
                raise RuntimeError(f"convolution {p.node_name}: dynamic shape {src} -> {dst}")
            _, ic, ih, _ = src.to_shape()
            _, oc, oh, _ = dst.to_shape()
            rows[(ic, oc, ih, oh, "1x1" if "1x1" in p.exec_type else "kxk")].append(p.real_time.total_seconds() * 1e3)
    return rows


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--calib", default="../shared/fixtures/images")
    p.add_argument("--calls", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    det = yolostream.load(
        args.model, imgsz=args.imgsz, backend="inductor", dtype="int8", calib=args.calib, threads=args.threads
    )
    x = torch.randint(0, 256, (1, 3, args.imgsz, args.imgsz), generator=torch.Generator().manual_seed(0))
    x = x.to(torch.uint8)
    ours = inductor_convs(det.runner, x, torch.tensor(0.25), args.calls)
    base = yolostream.load(args.model, imgsz=args.imgsz)
    theirs = openvino_convs(base, x, args.calib, args.calls, args.threads)
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
    if args.json:
        env = environment(torch.device("cpu"), args.threads)
        doc = {"kind": "int8-conv-kernels", "model": args.model, "imgsz": args.imgsz, "calls": args.calls,
               "environment": env, "results": rows, "total_ms": {"inductor": total_a, "openvino": total_b}}  # fmt: skip
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)


if __name__ == "__main__":
    main()
