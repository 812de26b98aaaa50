"""The whole demo in one call: generate the conveyor video, run the pipeline on it with the bundled model,
and score what it found (boxes, line counts, dwell alarms) against the scene's ground truth."""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from yolostream.demo.score import score_video
from yolostream.demo.video import make_video

log = logging.getLogger("yolostream.demo")
TEMPLATE = Path(__file__).with_name("pipeline.yaml")


def _video(out: Path, seconds: float, seed: int) -> dict[str, Any]:
    """The ground truth of ``out/conveyor.mp4``, generating the video unless the same one is there."""
    video, truth_path = out / "conveyor.mp4", out / "conveyor.json"
    if video.is_file() and truth_path.is_file():
        truth = json.loads(truth_path.read_text())
        if truth.get("seed") == seed and abs(truth["n_frames"] / truth["fps"] - seconds) < 1e-6:
            return truth
    return make_video(video, seconds=seconds, seed=seed)


def run_demo(
    out: str | Path = "runs/demo", seconds: float = 20.0, seed: int = 0, model: str | None = None, progress: bool = True
) -> dict[str, Any]:
    """Generate (if needed) and run the demo under ``out``; returns (and writes to ``summary.json``) the scores.

    ``model``: another model file for the pipeline (default: the bundled demo model).
    """
    from yolostream.pipeline.app import Pipeline
    from yolostream.pipeline.config import load_config

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    truth = _video(out, seconds, seed)
    config = out / "demo.yaml"
    shutil.copyfile(TEMPLATE, config)
    if model is not None:
        text = config.read_text().replace("model:\n", f"model:\n  path: {Path(model).resolve()}\n", 1)
        config.write_text(text)
    shutil.rmtree(out / "pipeline", ignore_errors=True)  # a fresh database and recording each time
    loaded = load_config(config)
    pipeline = Pipeline(loaded)
    n = int(truth["n_frames"])
    boxes: list[np.ndarray | None] = [None] * n
    pipeline.taps.append(lambda r: boxes.__setitem__(r.frame.index, _rows(r.detections)))
    alarms: Counter[str] = Counter()
    t0 = time.perf_counter()
    pipeline.start()
    try:
        _follow(pipeline, n, boxes, progress)
    finally:
        pipeline.close(10.0)
    elapsed = time.perf_counter() - t0
    for line in (out / "pipeline" / "alarms.jsonl").read_text().splitlines():
        alarms[json.loads(line)["rule"]] += 1
    # A paced source drops frames the machine could not keep up with; score the frames that were processed.
    done = [i for i, b in enumerate(boxes) if b is not None]
    score = score_video({**truth, "frames": [truth["frames"][i] for i in done]}, [boxes[i] for i in done])
    videos = sorted((out / "pipeline" / "video").rglob("*.mp4"))
    summary = {
        "frames": n,
        "frames_processed": len(done),
        "seconds": round(elapsed, 1),
        "model": str(loaded.config.model.path or "bundled demo model"),
        "parts_counted": alarms["parts-counted"],
        "parts_counted_truth": int(truth["summary"]["line_in"]),
        "dwell_alarms": alarms["part-left-in-reject-tray"],
        "dwell_alarms_truth": int(truth["summary"]["dwell_alarms"]),
        "recall": score["recall"],
        "false_rate": score["false_rate"],
        "parts": score["parts"],
        "annotated_video": str(videos[-1]) if videos else None,
        "alarms_jsonl": str(out / "pipeline" / "alarms.jsonl"),
        "database": str(out / "pipeline" / "yolostream.db"),
        "config": str(config),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def _rows(det: Any) -> np.ndarray:
    """One frame's `Detections` as ``x1 y1 x2 y2 conf cls`` rows (what `score_video` reads)."""
    xyxy, conf, cls = (np.asarray(t) for t in (det.xyxy, det.conf, det.cls))
    return np.concatenate([xyxy.reshape(-1, 4), conf.reshape(-1, 1), cls.reshape(-1, 1)], 1).astype(np.float64)


def _follow(pipeline: Any, n: int, boxes: list[Any], progress: bool) -> None:
    """Wait for the pipeline to end, with a progress bar over the video's frames."""
    if not progress:
        pipeline.wait(None)
        return
    from yolostream.cli.common import progress_bar

    with progress_bar() as bar:
        task = bar.add_task("demo", total=n, status="")
        while not pipeline.wait(0.25):
            done = sum(b is not None for b in boxes)
            counted = pipeline.rules.line_counts("conveyor").get("parts-counted", (0, 0))[0]
            bar.update(task, completed=done, status=f"parts counted {counted}")
        bar.update(task, completed=n)
