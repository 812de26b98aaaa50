"""`yolostream run` stopped by SIGTERM mid-run (every alarm raised is in the database, exit code 0), and
`yolostream bench-pipeline`: the stream-count search, and one short real trial through the CLI."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from yolostream.pipeline.bench import TrialResult, search_streams
from yolostream.pipeline.synthetic import write_demo_clip

pytest.importorskip("av")

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "yolostream.cli.main", *args]


def env() -> dict[str, str]:
    # The child imports yolostream from this checkout even where it is not installed.
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


CONFIG = """\
model:
  path: {model}
  imgsz: 320
sources:
  - name: cam
    uri: {clip}
    loop: true
zones:   # the box goes from the left third to the right third and back once a loop
  left: [[0, 180], [213, 180], [213, 360], [0, 360]]
  right: [[427, 180], [640, 180], [640, 360], [427, 360]]
rules:
  - {{name: left, kind: presence, zone: left, classes: [box], cooldown_s: 0.5}}
  - {{name: right, kind: presence, zone: right, classes: [box], cooldown_s: 0.5}}
tracking:
  enabled: false   # presence needs no track IDs, and the box turns too sharply for the tracker
sinks:
  sqlite: {{path: {db}}}
server:
  metrics: false
"""


def test_sigterm_mid_run_keeps_every_alarm_and_exits_0(fixtures: Path, tmp_path: Path) -> None:
    clip = write_demo_clip(tmp_path / "demo.mp4", 640, 360, fps=15, seconds=2.0)  # the box goes and comes back
    db = tmp_path / "alarms.db"
    config = tmp_path / "run.yaml"
    model = fixtures / "checkpoints" / "yolo11n-shapes.pt"
    config.write_text(CONFIG.format(model=model, clip=clip, db=db))
    proc = subprocess.Popen(
        cli("run", str(config), "--log-json"), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env()
    )
    records: list[dict] = []
    reader = threading.Thread(target=lambda: records.extend(json.loads(line) for line in proc.stderr), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 90
        while sum("alarm" in r for r in records) < 3:
            assert proc.poll() is None, f"run ended early: {records[-5:]}"
            assert time.monotonic() < deadline, "no alarms"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(10)
    assert code == 0, records[-5:]
    messages = [r["message"] for r in records]
    assert "pipeline stopping (SIGTERM received)" in messages
    raised = {r["alarm"]["event_id"] for r in records if "alarm" in r}
    stored = {row[0] for row in sqlite3.connect(db).execute("SELECT event_id FROM alarms")}
    assert len(raised) >= 3 and stored == raised  # all raised (before and while stopping), nothing else
    assert any(m.startswith("final: ") for m in messages)


def fake_trial(limit: int, tried: list[int]):
    def trial(n: int) -> TrialResult:
        tried.append(n)
        fps = 15.0 if n <= limit else 10.0
        return TrialResult("720p", n, n <= limit, fps, fps, [fps] * n, 1, 2, 3, 4, 0, 1, 0, 0.0, 1.0, 1.0, 1.0, 1.0, 1)

    return trial


@pytest.mark.parametrize(
    ("limit", "max_streams", "counts", "largest", "tried"),
    [
        (5, 64, None, 5, [1, 2, 4, 8, 6, 5]),  # doubling to the first failure (8), bisection 4..8
        (4, 64, None, 4, [1, 2, 4, 8, 6, 5]),
        (0, 64, None, 0, [1]),  # not even one stream
        (64, 64, None, 64, [1, 2, 4, 8, 16, 32, 64]),  # holds up to the search limit
        (3, 64, [1, 2, 5], 2, [1, 2, 5]),  # explicit counts: exactly those trials
    ],
)
def test_stream_search(limit: int, max_streams: int, counts: list[int] | None, largest: int, tried: list[int]) -> None:
    seen: list[int] = []
    got, results = search_streams(fake_trial(limit, seen), max_streams, counts)
    assert (got, seen) == (largest, tried)
    assert [r.streams for r in results] == tried


def test_bench_pipeline_cli_short_trial(fixtures: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = ["bench-pipeline", str(fixtures / "checkpoints" / "yolo11n-shapes.pt"), "--imgsz", "320"]
    args += ["--resolutions", "360p", "--streams", "1", "--duration", "2", "--warmup", "1", "--json", str(out)]
    done = subprocess.run(cli(*args), capture_output=True, text=True, timeout=180, env=env())
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    (trial,) = report["trials"]
    assert trial["streams"] == 1 and trial["resolution"] == "360p" and trial["frames"] > 0
    assert trial["holds"] == (trial["fps_min"] >= 0.95 * 15)  # the default tolerance of the default target
    assert trial["latency_p50_ms"] is not None and trial["latency_p50_ms"] <= trial["latency_p99_ms"]
    assert report["largest_streams"] == {"360p": 1 if trial["holds"] else 0}
    assert {"cpu_capability", "torch", "cpu_flags"} <= set(report["environment"])
    assert "largest N holding 15 fps" in done.stdout
