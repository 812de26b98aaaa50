"""Bounded loopback load test of `yolostream serve`: ``POST /v1/detect`` and the live view with several viewers.

    python bench/bench_web.py                          # examples/pipeline.yaml (run make_demo_video.py first)
    python bench/bench_web.py --requests 300 --concurrency 4 --viewers 8 --seconds 15

Starts the same stack as `yolostream serve` in this process (pipeline, web state, uvicorn on a free loopback
port) and measures, one phase after the other, each bounded by a count and a time:

1. ``/v1/detect``: ``--requests`` uploads (a 1280x720 JPEG of the demo scene) from ``--concurrency``
   client threads, at most ``--seconds``: requests/s, latency p50/p99 (client side, upload to answer),
   status counts (429 = the detector's queue was full), while the pipeline keeps running.
2. the live view: ``--viewers`` MJPEG clients of one stream for ``--seconds``: pictures per second each
   viewer got, JPEGs the server encoded for all of them (one shared encoder: about one viewer's worth), and
   the pipeline's fps and capture-to-result p99 with the viewers vs. the same time without any.

The clients run in a second process, so that their Python threads do not take the GIL from the server's.

Writes ``bench/results/bench-web-<cpu>-<date>.json``. On a shared machine the figures say more about the
neighbours than about the server: the load average is recorded with them.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
TOKEN = "bench-token-0123456789abcdef"


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def demo_jpeg() -> bytes:
    from PIL import Image

    from yolostream.pipeline.synthetic import background, render

    buf = io.BytesIO()
    Image.fromarray(render(0.3, background(1280, 720))).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def load_detect(url: str, requests: int, concurrency: int, seconds: float) -> dict[str, Any]:
    import httpx

    body = demo_jpeg()
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    left = [requests]
    end = time.monotonic() + seconds

    def client() -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as c:
            while time.monotonic() < end:
                with lock:
                    if left[0] <= 0:
                        return
                    left[0] -= 1
                t0 = time.perf_counter()
                r = c.post("/v1/detect", files={"image": ("demo.jpg", body, "image/jpeg")})
                dt = time.perf_counter() - t0
                with lock:
                    statuses[r.status_code] += 1
                    if r.status_code == 200:
                        latencies.append(dt)

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return {
        "requests": sum(statuses.values()),
        "ok": statuses.get(200, 0),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "concurrency": concurrency,
        "seconds": elapsed,
        "requests_per_s": statuses.get(200, 0) / elapsed,
        "latency_p50_ms": 1000 * (percentile(latencies, 50) or 0),
        "latency_p99_ms": 1000 * (percentile(latencies, 99) or 0),
        "upload_bytes": len(body),
    }


def _viewer(url: str, stream: str, stop: threading.Event, out: list[int]) -> None:
    import httpx

    pattern = re.compile(rb"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: (\d+)\r\n\r\n")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.stream("GET", f"{url}/v1/streams/{stream}/live", headers=headers, timeout=60) as r:
        buf = b""
        for chunk in r.iter_bytes():
            buf += chunk
            while (m := pattern.search(buf)) and len(buf) >= m.end() + int(m.group(1)):
                out.append(int(m.group(1)))
                buf = buf[m.end() + int(m.group(1)) :]
            if stop.is_set():
                return


def run_viewers(url: str, stream: str, viewers: int, warmup_s: float, seconds: float) -> dict[str, Any]:
    """``viewers`` MJPEG clients (in the client process): pictures each got during the ``seconds`` after
    ``warmup_s``, and their sizes."""
    stop = threading.Event()
    parts: list[list[int]] = [[] for _ in range(viewers)]
    threads = [threading.Thread(target=_viewer, args=(url, stream, stop, p), daemon=True) for p in parts]
    for t in threads:
        t.start()
    time.sleep(warmup_s)
    counts0 = [len(p) for p in parts]
    time.sleep(seconds)
    counts1 = [len(p) for p in parts]
    stop.set()
    for t in threads:
        t.join(5)
    return {
        "per_viewer": [b - a for a, b in zip(counts0, counts1, strict=True)],
        "sizes": [s for p in parts for s in p],
    }


def pipeline_fps(pipeline: Any, stream: str, start_s: float, seconds: float) -> dict[str, Any]:
    """The pipeline's frames per second on ``stream`` over ``seconds``, starting ``start_s`` from now."""
    time.sleep(start_s)
    first = {s.stream: s for s in pipeline.snapshot().streams}[stream].frames
    time.sleep(seconds)
    snap = {s.stream: s for s in pipeline.snapshot().streams}[stream]
    return {"fps": (snap.frames - first) / seconds, "latency_p99_ms": snap.latency_p99_ms}


def load_live(url: str, state: Any, viewers: int, seconds: float, clients: Any) -> dict[str, Any]:
    stream = state.loaded.config.sources[0].name
    idle = pipeline_fps(state.pipeline, stream, 0.0, seconds)
    before = state.hub.encoded[stream]
    warmup = 2.0  # every viewer connects and gets its first picture
    job = clients.submit(run_viewers, url, stream, viewers, warmup, seconds)
    watched = pipeline_fps(state.pipeline, stream, warmup, seconds)
    got = job.result()
    encoded = state.hub.encoded[stream] - before
    per_viewer = [n / seconds for n in got["per_viewer"]]
    return {
        "stream": stream,
        "viewers": viewers,
        "seconds": seconds,
        "pictures_per_s_per_viewer_mean": statistics.mean(per_viewer),
        "pictures_per_s_per_viewer_min": min(per_viewer),
        "jpeg_kib_mean": statistics.mean(got["sizes"]) / 1024 if got["sizes"] else None,
        "encoded_total": encoded,
        "sent_total": len(got["sizes"]),
        "live_fps_cap": state.web.live_fps,
        "pipeline_without_viewers": idle,
        "pipeline_with_viewers": watched,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, default=REPO / "examples" / "pipeline.yaml")
    p.add_argument("--requests", type=int, default=200, help="uploads at most (default 200)")
    p.add_argument("--concurrency", type=int, default=4, help="upload client threads (default 4)")
    p.add_argument("--viewers", type=int, default=8, help="live view clients (default 8)")
    p.add_argument("--seconds", type=float, default=15.0, help="time bound of each phase (default 15)")
    p.add_argument("--out", type=Path, help="result file (default bench/results/bench-web-<cpu>-<date>.json)")
    args = p.parse_args()

    import logging

    import torch

    from yolostream.bench.environment import device_tag, environment
    from yolostream.pipeline.app import Pipeline
    from yolostream.pipeline.config import load_config
    from yolostream.web.app import create_app
    from yolostream.web.server import WebServer
    from yolostream.web.state import WebState

    logging.basicConfig(level=logging.WARNING)
    loaded = load_config(args.config)
    with tempfile.TemporaryDirectory() as tmp:
        # The bench must not edit the operator's file or share its database: a private copy of both.
        sinks = loaded.config.sinks.model_copy(
            update={"sqlite": loaded.config.sinks.sqlite.model_copy(update={"path": Path(tmp) / "bench.db"})}
            if loaded.config.sinks.sqlite is not None
            else {}
        )
        sinks = sinks.model_copy(update={"jsonl": None, "video": None, "snapshots": None, "state_dir": Path(tmp)})
        config = loaded.config.model_copy(update={"sinks": sinks})
        loaded = type(loaded)(config, loaded.rules, loaded.source, loaded.lines)
        pipeline = Pipeline(loaded)
        state = WebState(pipeline, Path(tmp) / "unused.yaml", TOKEN, loaded.config.server.web)
        server = WebServer(create_app(state), "127.0.0.1", 0, hub=state.hub).start()
        pipeline.start()
        # Clients run in another process: in this one their threads would take the GIL from the pipeline.
        clients = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        try:
            clients.submit(time.sleep, 0).result()  # the client process is up before the clock starts
            time.sleep(3.0)  # the first inferences warm up
            detect = clients.submit(load_detect, server.url, args.requests, args.concurrency, args.seconds).result()
            live = load_live(server.url, state, args.viewers, args.seconds, clients)
        finally:
            clients.shutdown()
            server.stop()
            state.close()
            pipeline.close(1.0)
    env = environment(torch.device("cpu"), torch.get_num_threads())
    model = Path(str(loaded.config.model.path)).stem
    result = {"environment": env, "config": str(args.config), "model": model, "detect": detect, "live": live}
    out = args.out or RESULTS / f"bench-web-{model}-{device_tag(env)}-{env['date'][:10]}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    d, lv = detect, live
    print(f"machine: {env['cpu_model']}, {env['usable_cores']} cores, load average {env['load_average']}")
    print(
        f"POST /v1/detect: {d['ok']}/{d['requests']} ok, {d['requests_per_s']:.2f} req/s, "
        f"p50 {d['latency_p50_ms']:.0f} ms, p99 {d['latency_p99_ms']:.0f} ms, statuses {d['statuses']} "
        f"({d['concurrency']} clients, {d['seconds']:.1f} s)"
    )
    print(
        f"live view: {lv['viewers']} viewers, {lv['pictures_per_s_per_viewer_mean']:.2f} pictures/s each "
        f"(min {lv['pictures_per_s_per_viewer_min']:.2f}, cap {lv['live_fps_cap']:g}), {lv['encoded_total']} JPEGs "
        f"encoded for {lv['sent_total']} sent; pipeline {lv['pipeline_without_viewers']['fps']:.2f} fps without "
        f"viewers, {lv['pipeline_with_viewers']['fps']:.2f} with"
    )
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.fspath(REPO))
    sys.exit(main())
