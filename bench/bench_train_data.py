"""Training data pipeline throughput: pictures per second, in-process and through 2 loader workers.

    python bench/bench_train_data.py [--imgsz 320] [--pictures 200] [--out bench/results/...json]

Generates demo-scene stills (640 x 384 JPEGs, as `yolostream demo` writes them) in a temporary folder and
times `TrainDataset` on them: the letterbox path (``augment=False``), augmented without mosaic (affine,
colour jitter, flip), augmented with mosaic (four pictures per sample), each without and with the RAM
cache (``cache=True``: pictures decoded once); then through `make_loader` with 0 and 2 workers.
One warm-up pass first (page cache); the figures are medians of 3 passes, per wall second and per CPU
second (this process and its loader workers: a per-core rate that a busy machine's waiting does not
dilute; time shared with a hyper-thread sibling still counts, so it is still a lower bound).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from yolostream.demo import make_dataset
from yolostream.train.data import AugmentConfig, TrainDataset, make_loader
from yolostream.val.dataset import load_yolo_dataset


def _cpu_s() -> float:
    """CPU seconds of this process and of its reaped children (the loader's workers, once joined)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _rate(fn, n: int, repeats: int = 3) -> tuple[float, float]:
    """(pictures per wall second, pictures per CPU second), medians over ``repeats`` passes."""
    fn()  # warm-up: file cache, worker start code paths
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), _cpu_s()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(_cpu_s() - c0)
    return n / statistics.median(wall), n / statistics.median(cpu)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--pictures", type=int, default=200)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = p.parse_args()
    torch.set_num_threads(1)  # what a loader worker gets; the in-process figures are per core
    results: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = make_dataset(tmp, args.pictures, 1, 640, seed=0)["data_yaml"]
        split = load_yolo_dataset(data, "train", on_error="skip")
        n = len(split)
        cases = {
            "letterbox": (False, AugmentConfig()),
            "augment_no_mosaic": (True, AugmentConfig(mosaic=0.0)),
            "augment_mosaic": (True, AugmentConfig(mosaic=1.0)),
        }
        for name, (augment, cfg) in cases.items():
            for cache in (False, True) if augment else (False,):
                ds = TrainDataset(split, args.imgsz, augment, cfg, seed=0, cache=cache)
                key = f"{name}{'_cached' if cache else ''}_in_process"
                results[key] = _rate(lambda ds=ds: [ds[i] for i in range(n)], n)
        for name in ("augment_no_mosaic", "augment_mosaic"):
            for cache in (False, True):
                ds = TrainDataset(split, args.imgsz, True, cases[name][1], seed=0, cache=cache)
                for workers in (0, 2):
                    run = lambda ds=ds, w=workers: list(make_loader(ds, args.batch, w, True, 0, 0))  # noqa: E731
                    results[f"{name}{'_cached' if cache else ''}_loader_{workers}_workers"] = _rate(run, n)
    report = {
        "what": "training data pipeline, pictures per second (median of 3 passes)",
        "imgsz": args.imgsz,
        "pictures": args.pictures,
        "batch": args.batch,
        "source": "demo-scene JPEG stills 640x384",
        "images_per_s": {k: round(v[0], 1) for k, v in results.items()},
        "images_per_cpu_s": {k: round(v[1], 1) for k, v in results.items()},
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpu": platform.processor() or platform.machine(),
        "cores": len(os.sched_getaffinity(0)),
        "torch": torch.__version__,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
