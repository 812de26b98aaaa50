"""The whole pipeline with the real shapes model: alarm rules on a scripted video, an RTSP camera killed and
restarted beside a file stream (with the /metrics endpoint), corrupt and truncated inputs.

Waits use generous deadlines only to turn a hang into a failure; nothing asserts how long anything took.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from media import Scene, Shape, corrupted_copy, truncated_copy, write_mp4
from rtsp_server import rtsp_server  # noqa: F401  (pytest fixture)

from yolostream.pipeline.app import Pipeline
from yolostream.pipeline.config import config_from_data
from yolostream.pipeline.prometheus import MetricsServer

pytest.importorskip("av")


def make_config(fixtures: Path, tmp_path: Path, sources: list[dict[str, Any]], **sections: Any) -> Any:
    data = {
        "model": {"path": str(fixtures / "checkpoints" / "yolo11n-shapes.pt"), "imgsz": 320},
        "sources": sources,
        "sinks": {"state_dir": str(tmp_path / "state"), "sqlite": {"path": str(tmp_path / "run.db")}},
        "server": {"metrics": False},
        **sections,
    }
    return config_from_data(data, source="<test>")


def wait_for(what: Callable[[], bool], message: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(0.05)


def frames_of(pipeline: Pipeline) -> dict[str, int]:
    return {s.stream: s.frames for s in pipeline.snapshot().streams}


# ---- rules through the whole pipeline ----------------------------------------------------------------

# A box scripted against a zone (x >= 0.6 of the width) and a vertical line (x = 0.35); times in seconds:
#   0.0-1.0   stands at x = 0.2 (the tracker settles, the first inference warms up)
#   1.0-2.5   moves right: crosses the line left -> right (1.375), enters the zone (2.0)
#   3.5-4.9   steps out to x = 0.4 and back in: out of the zone 3.8 -> 4.6 (0.8 s), line not crossed
#   5.8-7.3   moves left: leaves the zone (6.3), crosses the line right -> left (6.925)
#   8.3-9.8   moves right: crosses the line left -> right (8.675), enters the zone again (9.3; 3 s out)
# A triangle stands still in the top left corner, in neither the zone nor the rules' classes.
BOX_PATH = ((0.0, 0.2), (1.0, 0.2), (2.5, 0.8), (3.5, 0.8), (4.1, 0.4), (4.3, 0.4), (4.9, 0.8), (5.8, 0.8),
            (7.3, 0.2), (8.3, 0.2), (9.8, 0.8), (10.4, 0.8))  # fmt: skip
SCRIPTED = Scene(
    width=640,
    height=360,
    fps=15,
    n_frames=156,  # 10.4 s
    shapes=(
        Shape("box", (130, 30, 140), (0.15, 0.3), tuple((t, x, 0.5) for t, x in BOX_PATH)),
        Shape("triangle", (230, 150, 50), (0.1, 0.18), ((0.0, 0.1, 0.15), (11.0, 0.1, 0.15))),
    ),
)
ZONE = [[384, 0], [640, 0], [640, 360], [384, 360]]  # x >= 0.6 * 640
LINE = [[224, 0], [224, 360]]  # x = 0.35 * 640, drawn downwards: "in" is moving left (see LineCounter)


def test_zone_fires_once_per_entry_with_cooldown_and_line_counts_per_direction(fixtures: Path, tmp_path: Path) -> None:
    clip = write_mp4(tmp_path / "scripted.mp4", SCRIPTED)
    rules = [
        # The 0.8 s step-out is shorter than this cooldown (same situation); the 2.5 s absence is longer.
        {"name": "zone-2s", "kind": "presence", "zone": "bay", "classes": ["box"], "cooldown_s": 2.0},
        # Same zone, 0.4 s cooldown: the step-out re-arms it (and shows the step-out was seen at all),
        # while a missed detection or two (< 0.4 s at 15 fps) would not.
        {"name": "zone-0.4s", "kind": "presence", "zone": "bay", "classes": ["box"], "cooldown_s": 0.4},
        {"name": "gate", "kind": "line_cross", "line": "gate", "classes": ["box"]},
    ]
    loaded = make_config(
        fixtures,
        tmp_path,
        # Unpaced: every frame, and the rules time them on the clip's own clock (Frame.clock), so the
        # rules' seconds are the script's seconds however fast or slow this machine is.
        [{"name": "scripted", "uri": str(clip), "realtime": False}],
        zones={"bay": ZONE},
        lines={"gate": LINE},
        rules=rules,
        tracking={"frame_rate": 15},
    )
    pipeline = Pipeline(loaded)
    assert pipeline.run(duration_s=120) == 0
    assert pipeline.stop_reason == "every input ended"  # not the safety duration

    db = sqlite3.connect(tmp_path / "run.db")
    rows = db.execute("SELECT rule, time, details, objects FROM alarms ORDER BY time").fetchall()
    by_rule: dict[str, list[tuple[float, dict[str, Any], list[dict[str, Any]]]]] = {}
    for rule, t, details, objects in rows:
        by_rule.setdefault(rule, []).append((t, json.loads(details), json.loads(objects)))
    assert len(by_rule["zone-2s"]) == 2, by_rule
    assert len(by_rule["zone-0.4s"]) == 3, by_rule
    gate = by_rule["gate"]
    assert [d["direction"] for _, d, _ in gate] == ["out", "in", "out"]
    assert (gate[-1][1]["count_in"], gate[-1][1]["count_out"]) == (1, 2)
    # Every alarm is about the box, with a track ID; the two zone-2s alarms are the 1st and 3rd entries (script
    # times from frame numbers; the margins cover the frames the tracker needs to confirm a track).
    assert all(o["name"] == "box" and o["track_id"] is not None for *_, objs in rows for o in json.loads(objs))
    first, second = (d["frame_index"] / SCRIPTED.fps for _, d, _ in by_rule["zone-2s"])
    assert 2.0 <= first < 3.8 and second >= 9.3
    snap = {s.stream: s for s in pipeline.snapshot().streams}["scripted"]
    assert snap.alarms == len(rows) and snap.decode_errors == 0


# ---- an RTSP camera killed and restarted -----------------------------------------------------------


def test_rtsp_stream_resumes_after_restart_while_the_file_stream_goes_on(
    rtsp_server: Any,  # noqa: F811
    fixtures: Path,
    tmp_path: Path,
) -> None:
    clip = write_mp4(tmp_path / "file.mp4", Scene(width=320, height=180, fps=25, n_frames=50))
    loaded = make_config(
        fixtures,
        tmp_path,
        [
            {"name": "rtsp", "uri": rtsp_server.url, "timeout_s": 2.0, "backoff": [0.1, 0.4]},
            {"name": "file", "uri": str(clip), "loop": True},
        ],
    )
    pipeline = Pipeline(loaded).start()
    server = MetricsServer(pipeline, port=0)
    try:
        wait_for(lambda: min(frames_of(pipeline).values()) > 5, "both streams running")
        rtsp_server.kill()
        at_kill = frames_of(pipeline)
        # While the camera is away, its source retries and the file stream keeps getting results.
        wait_for(
            lambda: pipeline.sources[0].stats.reconnects >= 1 and frames_of(pipeline)["file"] > at_kill["file"] + 25,
            "reconnect attempts while the file stream goes on",
        )
        assert pipeline.sources[0].stats.state in ("reconnecting", "stalled")
        rtsp_server.start()
        during = frames_of(pipeline)
        wait_for(lambda: frames_of(pipeline)["rtsp"] > during["rtsp"] + 10, "rtsp results after the restart")
        wait_for(lambda: frames_of(pipeline)["file"] > during["file"] + 10, "file results after the restart")
        assert pipeline.sources[0].stats.state == "running"
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as response:
            metrics = response.read().decode()
    finally:
        server.close()
        pipeline.close()
    snaps = {s.stream: s for s in pipeline.snapshot().streams}
    assert snaps["rtsp"].reconnects >= 1 and snaps["file"].reconnects == 0
    assert f'yolostream_reconnects_total{{stream="rtsp"}} {float(snaps["rtsp"].reconnects)}' in metrics
    assert 'yolostream_reconnects_total{stream="file"} 0.0' in metrics
    assert 'yolostream_latency_seconds_count{stream="file"}' in metrics
    assert 'yolostream_sink_stat{sink="sqlite",stat="summaries"}' in metrics
    db = sqlite3.connect(tmp_path / "run.db")
    stored = dict(db.execute("SELECT stream, COUNT(*) FROM detections GROUP BY stream").fetchall())
    assert stored == {"rtsp": snaps["rtsp"].frames, "file": snaps["file"].frames}  # every result summarised


# ---- broken inputs -------------------------------------------------------------------------------


def test_corrupt_and_truncated_inputs_are_counted_and_logged_and_the_run_goes_on(
    fixtures: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    scene = Scene(width=320, height=180, fps=25, n_frames=50)
    good = write_mp4(tmp_path / "good.mp4", scene)
    corrupted_copy(good, tmp_path / "corrupt.mp4", frames=(10, 15))  # P-frames; keyframes at 0 and 25
    truncated_copy(good, tmp_path / "truncated.mp4", keep=0.5)
    names = ("good", "corrupt", "truncated")
    loaded = make_config(
        fixtures, tmp_path, [{"name": n, "uri": str(tmp_path / f"{n}.mp4"), "realtime": False} for n in names]
    )
    caplog.set_level(logging.WARNING, logger="yolostream.sources")
    pipeline = Pipeline(loaded)
    assert pipeline.run(duration_s=120) == 0
    assert pipeline.stop_reason == "every input ended"
    snaps = {s.stream: s for s in pipeline.snapshot().streams}
    assert snaps["good"].decode_errors == 0 and snaps["good"].frames == 50  # offline: every frame, none lost
    for name in ("corrupt", "truncated"):
        assert snaps[name].decode_errors > 0, snaps[name]
        assert any(name in r.getMessage() and "decode error" in r.getMessage() for r in caplog.records), name
        assert snaps[name].state == "finished"
    db = sqlite3.connect(tmp_path / "run.db")
    last = dict(db.execute("SELECT stream, MAX(frame) FROM detections GROUP BY stream").fetchall())
    assert last["corrupt"] >= 40  # it went on past the damaged frames 10-14 to the end of the file
    assert 0 < snaps["truncated"].frames < 50


class FlakyDetector:
    """Wraps the real detector; its first ``infer`` call raises (a driver hiccup, an out-of-memory)."""

    def __init__(self, detector: Any) -> None:
        self.detector, self.names, self.calls = detector, detector.names, 0

    def preprocess(self, images: Any) -> Any:
        return self.detector.preprocess(images)

    def infer(self, batch: Any) -> Any:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("device lost")
        return self.detector.infer(batch)

    def postprocess(self, cands: Any, plans: Any) -> Any:
        return self.detector.postprocess(cands, plans)


def test_a_failed_batch_is_counted_and_logged_and_the_run_goes_on(
    fixtures: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from yolostream.api import load

    clip = write_mp4(tmp_path / "clip.mp4", Scene(width=320, height=180, fps=25, n_frames=12))
    loaded = make_config(fixtures, tmp_path, [{"name": "cam", "uri": str(clip), "realtime": False}])
    detector = FlakyDetector(load(fixtures / "checkpoints" / "yolo11n-shapes.pt", imgsz=320))
    pipeline = Pipeline(loaded, detector=detector)
    assert pipeline.run(duration_s=60) == 0
    assert pipeline.inference_errors == 1
    assert any("inference failed on a batch of 1" in r.getMessage() for r in caplog.records)
    assert pipeline.snapshot().streams[0].frames == 11  # every frame but the one of the failed call
