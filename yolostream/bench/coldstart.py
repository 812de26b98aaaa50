"""Cold start of an AOT package in a fresh process: ``python -m yolostream.bench.coldstart PKG ...``.

Prints one JSON line: ``load_s`` (`yolostream.load` of the package), ``first_result_s`` (the first call on a
frame, uint8 in, detections out) and their sum ``load_to_first_result_s``. The parent times the process as
a whole (interpreter and torch import included); a package in a warm process would hide the file reads
and library loading that a real restart pays.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m yolostream.bench.coldstart")
    p.add_argument("package")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--batch", type=int, default=1)
    args = p.parse_args(argv)

    from yolostream.api import load
    from yolostream.bench.inputs import noise_frames

    frames = noise_frames(args.batch, args.imgsz, args.imgsz)
    start = time.perf_counter()
    detector = load(args.package, device=args.device, threads=args.threads)
    loaded = time.perf_counter()
    detector(frames)  # ends with a device-to-host copy of the detections: synchronised
    done = time.perf_counter()
    out = {"load_s": loaded - start, "first_result_s": done - loaded, "load_to_first_result_s": done - start}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
