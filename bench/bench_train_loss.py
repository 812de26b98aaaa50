"""Time the detection training loss alone (assignment, forward and backward) on synthetic head outputs.

    python bench/bench_train_loss.py                       # batch 16 at 320 and 640, 80 classes, 20 boxes/picture
    python bench/bench_train_loss.py --sizes 640 --compile # + Inductor (fullgraph, max_boxes fixed)

Modes: ``eager`` (what the trainer runs), ``eager-dense`` (eager, but the candidate metrics computed over all
B x M x A triples as the compiled graph does: shows what the sparse eager path saves) and ``inductor``.
The head outputs are random, the boxes random in the picture (2-32 % of its side), so the number of
candidate anchors is realistic. Writes bench/results/bench-train-loss-<cpu>-pt<torch>.json. The figures are
only meaningful on a quiet machine; ``--threads 1`` keeps them stable on a shared one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from unittest import mock

import torch

from yolostream.models.head import HeadOutput
from yolostream.train.loss import DetectionLoss

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"


def _inputs(b: int, size: int, nc: int, m: int, reg_max: int = 16):
    g = torch.Generator().manual_seed(0)
    shapes = [(size // s, size // s) for s in (8, 16, 32)]
    a = sum(h * w for h, w in shapes)
    boxes = torch.randn(b, 4 * reg_max, a, generator=g).requires_grad_(True)
    scores = (torch.randn(b, nc, a, generator=g) - 4).requires_grad_(True)
    n = b * m
    xy = torch.rand(n, 2, generator=g) * 0.8 + 0.1
    wh = torch.rand(n, 2, generator=g) * 0.3 + 0.02
    batch = {
        "batch_idx": torch.arange(b).repeat_interleave(m).float(),
        "cls": torch.randint(0, nc, (n,), generator=g).float(),
        "bboxes": torch.cat((xy, wh), 1),
    }
    return HeadOutput(boxes, scores), shapes, batch


def _step(size: int, mode: str, args: argparse.Namespace):
    """One loss forward + backward for ``mode``, as a callable."""
    out, shapes, batch = _inputs(args.batch, size, args.nc, args.boxes)
    criterion = DetectionLoss(args.nc, 16, (8.0, 16.0, 32.0), max_boxes=args.boxes if mode == "inductor" else None)
    fn = lambda bx, sc: criterion((HeadOutput(bx, sc), shapes), batch, (size, size))[0]  # noqa: E731
    if mode == "inductor":
        fn = torch.compile(fn, fullgraph=True, dynamic=False)

    def step() -> None:
        out.boxes.grad = out.scores.grad = None
        if mode == "eager-dense":
            with mock.patch.object(torch.compiler, "is_compiling", lambda: True):
                fn(out.boxes, out.scores).backward()
        else:
            fn(out.boxes, out.scores).backward()

    return step


def run(size: int, modes: list[str], args: argparse.Namespace) -> list[dict[str, float]]:
    """Time every mode at one size, interleaved (round-robin) so that load changes hit all modes alike."""
    steps, first = {}, {}
    for mode in modes:
        steps[mode] = _step(size, mode, args)
        t0 = time.perf_counter()
        steps[mode]()
        first[mode] = time.perf_counter() - t0
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(args.iters):
        for mode in modes:
            t0 = time.perf_counter()
            steps[mode]()
            times[mode].append(time.perf_counter() - t0)
    rows = []
    for mode in modes:
        t = sorted(times[mode])
        rows.append({"imgsz": size, "mode": mode, "first_call_s": first[mode], "median_ms": statistics.median(t) * 1e3,
                     "p90_ms": t[int(0.9 * (len(t) - 1))] * 1e3})  # fmt: skip
    return rows


def _cpu() -> tuple[str, str]:
    """(model name, "avx512" or "avx2") from /proc/cpuinfo where there is one."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.machine(), "unknown"
    name = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "?")
    return name, "avx512" if "avx512f" in info else "avx2"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="320,640", help="input sides, comma-separated (default 320,640)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--nc", type=int, default=80, help="classes (default 80)")
    p.add_argument("--boxes", type=int, default=20, help="labels per picture (default 20)")
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--compile", action="store_true", help="also time the Inductor-compiled loss")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    modes = ["eager", "eager-dense"] + ["inductor"] * args.compile
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        for r in run(size, modes, args):
            rows.append(r)
            print(f"{size:4d} {r['mode']:12s} median {r['median_ms']:8.1f} ms  p90 {r['p90_ms']:8.1f} ms", end="")
            print(f"  first call {r['first_call_s']:.1f} s")
    cpu, isa = _cpu()
    meta = {"batch": args.batch, "nc": args.nc, "boxes_per_picture": args.boxes, "threads": args.threads}
    meta |= {"torch": torch.__version__, "cpu": cpu, "date": time.strftime("%Y-%m-%d")}
    meta["load_average_1min"] = os.getloadavg()[0]  # > cores: a busy machine, figures inflated and noisy
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"bench-train-loss-cpu-{isa}-pt{'.'.join(torch.__version__.split('.')[:2])}.json"
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
