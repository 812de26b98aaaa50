"""Benchmark eager against compiled engines (and ONNX Runtime / OpenVINO) in one run, accuracy next to speed.

For every configuration (mode x dtype x batch): compile time apart from steady state; warm latency
p50/p90/p99/max and standard deviation over --iters calls after --warmup untimed ones; throughput in
images/s; peak memory (RSS on CPU, allocated on GPU); on GPU, kernel launches per forward and GPU
utilisation. End to end (uint8 HWC frame -> detections) and network only (the compiled graph on a
letterboxed batch) are timed apart, and every figure also appears as a ratio to eager fp32 measured in
the same run. Accuracy: the deviation of scores and boxes from eager fp32 and whether the final detections
on --check-images are unchanged (--check-models checks more models, e.g. trained ones, untimed).

Modes: eager, default, reduce-overhead, max-autotune, max-autotune-no-cudagraphs (torch.compile), aoti (an
AOTInductor package exported, then served; also timed from a fresh process to its first result).
Baselines (CPU, network only, same float input): onnxruntime, openvino (fp32; OpenVINO also bf16 where
the CPU has it natively and bf16 is benched).

CPU figures need a quiet machine: OpenMP threads spin against any other busy process. The environment
(versions, CPU, ISA, threads, load average) is recorded in the JSON.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable


def _csv(kind: type = str) -> Callable[[str], tuple]:
    """An argparse ``type`` for comma-separated values: ``"1,8,32"`` -> ``(1, 8, 32)``."""

    def parse(text: str) -> tuple:
        try:
            return tuple(kind(v.strip()) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of {kind.__name__}") from None

    return parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model", nargs="?", help="Ultralytics .pt or yolostream .safetensors file (default: the bundled demo model)"
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (default cpu)")
    p.add_argument("--imgsz", type=int, default=640, help="square network input side (default 640)")
    p.add_argument("--batch", type=_csv(int), default=(1,), help="batch sizes, e.g. 1,8,32 (default 1)")
    p.add_argument("--modes", type=_csv(), default=("eager", "default"), help="default eager,default")
    p.add_argument("--dtype", type=_csv(), default=None, help="fp32,bf16,fp16 (default fp32; --backends: all)")
    p.add_argument("--iters", type=int, default=200, help="timed calls per figure (default 200)")
    p.add_argument("--warmup", type=int, default=10, help="untimed calls before timing (default 10)")
    p.add_argument("--baseline", type=_csv(), default=(), help="onnxruntime,openvino (CPU only)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: the cores this process may use)")
    p.add_argument("--frame", default=None, help="picture timed end to end (default: noise of IMGSZ x IMGSZ)")
    p.add_argument("--check-images", nargs="+", default=[], metavar="IMAGE", help="pictures for the accuracy check")
    p.add_argument("--check-models", nargs="+", default=[], metavar="MODEL", help="more models to check, untimed")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--plot", default=None, help="write a PNG summary here (needs matplotlib)")
    p.add_argument(
        "--out-dir",
        default=None,
        help="write <dir>/bench-<model>-<device>-<dtypes>-pt<version>.json and .png (names from the environment)",
    )
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no compile progress bar")
    p.add_argument(
        "--backends",
        type=_csv(),
        default=None,
        help="instead of the modes: backends side by side, e.g. all, inductor,openvino, inductor-int8, "
        "inductor-fp32+python-wrapper (variants: python-wrapper, cpp_wrapper [the CPU default], max-autotune, "
        "no-freezing, aot [AOTInductor-compiled at load, served in process]); timed interleaved",
    )
    p.add_argument("--rounds", type=int, default=10, help="--backends: interleaved rounds (default 10)")
    p.add_argument("--calib", nargs="+", default=None, metavar="PATH", help="--backends: int8 calibration pictures")
    p.add_argument("--note", default="", help="a remark kept in the results (e.g. 'shared machine')")
    p.add_argument(
        "--no-eager-timing",
        dest="time_eager",
        action="store_false",
        help="--backends: eager fp32 only as the accuracy reference",
    )


def run(args: argparse.Namespace) -> int:
    import importlib.util
    from pathlib import Path

    from rich.console import Console

    from yolostream.bench.config import BenchConfig
    from yolostream.bench.report import default_stem, print_report, write_json
    from yolostream.bench.suite import run_suite
    from yolostream.cli.common import model_or_demo, stderr
    from yolostream.errors import ConfigError

    args.model = model_or_demo(args.model)
    if args.backends:
        return _run_backends(args)
    config = BenchConfig(
        model=args.model,
        device=args.device,
        imgsz=args.imgsz,
        batches=tuple(args.batch),
        modes=tuple(args.modes),
        dtypes=tuple(args.dtype or ("fp32",)),
        iters=args.iters,
        warmup=args.warmup,
        baselines=tuple(args.baseline),
        threads=args.threads,
        check_images=tuple(args.check_images),
        check_models=tuple(args.check_models),
        frame=args.frame,
    )
    config.validate()  # before minutes of work
    targets: list[tuple[str, Path]] = []
    if args.json:
        targets.append(("json", Path(args.json)))
    if args.plot:
        targets.append(("plot", Path(args.plot)))
    plotting = importlib.util.find_spec("matplotlib") is not None
    if args.plot and not plotting:
        raise ConfigError("--plot needs matplotlib: pip install 'yolostream[bench]'")
    if args.iters < 200:
        stderr.print(f"[yellow]note: {args.iters} iterations; latency percentiles need >= 200 to mean much")
    doc = run_suite(config, log=lambda message: stderr.print(f"[dim]{message}"), progress=args.progress)
    console = Console()
    if not console.is_terminal:  # a file or pipe: wide enough that no column is cut
        console = Console(width=200)
    print_report(doc, console)
    if args.out_dir:
        stem = default_stem(doc)  # "...-pt2.13": not Path.with_suffix, which would replace ".13"
        targets.append(("json", Path(args.out_dir) / f"{stem}.json"))
        if plotting:
            targets.append(("plot", Path(args.out_dir) / f"{stem}.png"))
        else:
            stderr.print("[yellow]no PNG: matplotlib is not installed (pip install 'yolostream[bench]')")
    for kind, path in targets:
        if kind == "json":
            write_json(doc, path)
        else:
            from yolostream.bench.plot import plot

            plot(doc, path)
        stderr.print(f"wrote {path}")
    failed = any(r.get("error") for r in [*doc["results"], *doc["checks"]])
    return 1 if failed else 0


def _run_backends(args: argparse.Namespace) -> int:
    """``--backends``: every configuration loaded, then timed in interleaved rounds; one table, one JSON."""
    from pathlib import Path

    from rich.console import Console

    from yolostream.bench.backends import parse_backends, print_backends, results_stem, run_backends
    from yolostream.bench.report import write_json
    from yolostream.cli.common import stderr
    from yolostream.errors import ConfigError

    if args.device != "cpu" or len(args.batch) != 1:
        raise ConfigError("--backends compares CPU runtimes at one batch size (--device cpu, one --batch)")
    configs = parse_backends(args.backends, dtypes=args.dtype)
    per_round = max(1, args.iters // max(1, args.rounds))
    doc = run_backends(
        args.model,
        configs,
        imgsz=args.imgsz,
        batch=args.batch[0],
        rounds=args.rounds,
        calls=per_round,
        warmup=args.warmup,
        threads=args.threads,
        calib=args.calib,
        pictures=[(Path(p).name, p) for p in args.check_images],
        frame=args.frame,
        note=args.note,
        time_eager=args.time_eager,
        log=lambda message: stderr.print(f"[dim]{message}"),
    )
    print_backends(doc, Console(width=220) if not Console().is_terminal else Console())
    paths = [Path(args.json)] if args.json else []
    if args.out_dir:
        paths.append(Path(args.out_dir) / f"{results_stem(doc)}.json")
    for path in paths:
        write_json(doc, path)
        stderr.print(f"wrote {path}")
    return 1 if any(r.get("error") for r in doc["results"]) else 0
