"""Local sinks: SQLite, JSON Lines, snapshots, video; the summary type and naming helpers."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from yolostream.detections import Detections
from yolostream.errors import ConfigError, ShapeError
from yolostream.pipeline.events import AlarmEvent, AlarmObject
from yolostream.pipeline.frames import Frame, FrameResult
from yolostream.pipeline.sinks import (
    DetectionSummary,
    JsonlSink,
    SnapshotSink,
    SQLiteSink,
    VideoRecorder,
    snapshot_path,
)
from yolostream.pipeline.sinks.base import redact, safe_name, to_json
from yolostream.pipeline.sinks.mqtt import topic_for
from yolostream.pipeline.sinks.webhook import is_permanent


def jpeg(color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 8), color).save(buf, format="JPEG")
    return buf.getvalue()


def alarm(i: int = 0, snapshot: bytes | None = None, t: float = 1_700_000_000.25) -> AlarmEvent:
    obj = AlarmObject(track_id=7, cls=0, name="person", conf=0.9, xyxy=(1.0, 2.0, 3.0, 4.0))
    return AlarmEvent(
        rule="zone a",
        stream="cam/1",
        time=t + i,
        kind="presence",
        objects=(obj,),
        details={"i": i},
        snapshot_jpeg=snapshot,
    )


def summary(frame: int, stream: str = "cam1") -> DetectionSummary:
    return DetectionSummary(stream, frame, 100.0 + frame, {"car": 1}, 1, 0.05)


def test_summary_from_result() -> None:
    dets = Detections(
        xyxy=torch.zeros((3, 4)),
        conf=torch.tensor([0.9, 0.8, 0.7]),
        cls=torch.tensor([0, 2, 0]),
        names={0: "person", 2: "car"},
        image_shape=(4, 4),
    )
    frame = Frame("cam1", 12, 1000.0, np.zeros((4, 4, 3), np.uint8))
    s = DetectionSummary.from_result(FrameResult(frame, dets, inference_done=1000.25))
    # Two persons and one car; latency is inference_done - timestamp = 0.25 s exactly in binary.
    assert s == DetectionSummary("cam1", 12, 1000.0, {"car": 1, "person": 2}, 3, 0.25)
    assert DetectionSummary.from_dict(json.loads(s.to_json())) == s


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cam1", "cam1"),  # already safe
        ("cam/1", "cam_1"),  # a slash would add a folder or a topic level
        ("a+b#c", "a_b_c"),  # MQTT wildcards
        ("../etc", "etc"),  # no climbing out of the folder
        ("", "_"),  # never empty
    ],
)
def test_safe_name(text: str, expected: str) -> None:
    assert safe_name(text) == expected


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:secret@hooks.local:8080/a/b?token=x#f", "http://hooks.local:8080/a/b"),  # no secrets
        ("postgresql://ys:pw@db/yolo", "postgresql://db/yolo"),  # password dropped, default port
        ("", "<url>"),  # nothing to show
    ],
)
def test_redact(url: str, shown: str) -> None:
    assert redact(url) == shown


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ({"b": 1, "a": 2.5}, '{"a": 2.5, "b": 1}'),  # keys sorted
        ({"r": float("nan"), "s": [float("inf"), 1.0]}, '{"r": null, "s": [null, 1.0]}'),  # not JSON: null
        ((1, "x"), '[1, "x"]'),  # tuples are arrays
    ],
)
def test_to_json_is_strict(value: object, text: str) -> None:
    assert to_json(value) == text


@pytest.mark.parametrize(
    ("kind", "record", "topic"),
    [
        ("alarm", {"stream": "cam1", "rule": "zone"}, "p/cam1/alarms/zone"),
        ("alarm", {"stream": "cam/1", "rule": "a#"}, "p/cam_1/alarms/a"),  # unsafe levels cleaned
        ("summary", {"stream": "cam1"}, "p/cam1/detections"),
    ],
)
def test_mqtt_topics(kind: str, record: dict, topic: str) -> None:
    assert topic_for("p", kind, record) == topic


@pytest.mark.parametrize(
    ("status", "permanent"),
    [(400, True), (404, True), (422, True), (408, False), (429, False), (500, False), (503, False), (302, False)],
)
def test_webhook_status_classes(status: int, permanent: bool) -> None:
    assert is_permanent(status) is permanent


def test_snapshot_path_and_sink(tmp_path: Path) -> None:
    # 1_700_000_000 s is 2023-11-14 22:13:20 UTC; .25 s gives 250 ms.
    event = alarm(0, snapshot=jpeg())
    expected = tmp_path / "cam_1" / f"20231114T221320.250Z_zone_a_{event.event_id}.jpg"
    assert snapshot_path(tmp_path, event) == expected
    assert snapshot_path(tmp_path, alarm(0)) is None  # no JPEG, no file
    with SnapshotSink(tmp_path) as sink:
        sink.write_alarm(event)
        sink.write_alarm(alarm(1))
    assert expected.read_bytes() == event.snapshot_jpeg
    assert Image.open(expected).size == (16, 8)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [expected.name]
    assert sink.stats() == {"written": 1}


def test_sqlite_stores_each_record_once(tmp_path: Path) -> None:
    path = tmp_path / "db" / "yolo.sqlite"
    events = [alarm(i, snapshot=jpeg() if i == 0 else None) for i in range(3)]
    with SQLiteSink(path, snapshot_dir=tmp_path / "snaps", summary_batch=2) as sink:
        for e in [*events, events[1]]:  # the replay of events[1] must not add a row
            sink.write_alarm(e)
        # Alarms are committed on return: another connection sees them before close.
        with sqlite3.connect(path) as other:
            assert other.execute("SELECT COUNT(*) FROM alarms").fetchone() == (3,)
        for f in [0, 1, 2, 1, 3]:  # frame 1 twice, across a batch boundary
            sink.write_summary(summary(f))
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        rows = db.execute("SELECT event_id, stream, rule, objects, details, snapshot_path FROM alarms").fetchall()
        frames = db.execute("SELECT frame, counts, n, latency_s FROM detections ORDER BY frame").fetchall()
    by_id = {r[0]: r for r in rows}
    assert sorted(by_id) == sorted(e.event_id for e in events)
    first = by_id[events[0].event_id]
    assert first[1:3] == ("cam/1", "zone a")
    assert json.loads(first[3])[0]["xyxy"] == [1.0, 2.0, 3.0, 4.0]
    assert json.loads(first[4]) == {"i": 0}
    assert first[5] == str(snapshot_path(tmp_path / "snaps", events[0]))
    assert by_id[events[1].event_id][5] is None  # no JPEG, no path
    assert frames == [(f, '{"car": 1}', 1, 0.05) for f in range(4)]


def test_sqlite_closed_sink_refuses_writes(tmp_path: Path) -> None:
    sink = SQLiteSink(tmp_path / "x.sqlite")
    sink.close()
    sink.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        sink.write_alarm(alarm())


def test_jsonl_lines_and_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"type": "alarm", "ev')  # a previous run died mid-line
    events = [alarm(i) for i in range(2)]
    with JsonlSink(path) as sink:
        sink.write_alarm(events[0])
        assert path.read_bytes().endswith(b"\n")  # the alarm line is out before close
        sink.write_summary(summary(5))
        sink.write_alarm(events[1])
    lines = path.read_bytes().split(b"\n")
    assert lines[0] == b'{"type": "alarm", "ev' and lines[-1] == b""
    records = [json.loads(line) for line in lines[1:-1]]
    assert [r["type"] for r in records] == ["alarm", "detections", "alarm"]
    assert [records[0]["event_id"], records[2]["event_id"]] == [e.event_id for e in events]
    assert (
        AlarmEvent.from_dict({k: v for k, v in records[0].items() if k not in ("type", "snapshot_path")}) == (events[0])
    )
    assert records[1]["counts"] == {"car": 1} and records[1]["frame"] == 5


@pytest.mark.parametrize(("alarms", "summaries", "types"), [(True, False, ["alarm"]), (False, True, ["detections"])])
def test_jsonl_kind_filter(tmp_path: Path, alarms: bool, summaries: bool, types: list) -> None:
    path = tmp_path / "out.jsonl"
    with JsonlSink(path, alarms=alarms, summaries=summaries) as sink:
        sink.write_alarm(alarm())
        sink.write_summary(summary(0))
    assert [json.loads(line)["type"] for line in path.read_text().splitlines()] == types


def decoded(path: Path) -> list[tuple[int, int]]:
    """(height, width) of every frame PyAV decodes from ``path``."""
    import av

    with av.open(str(path)) as container:
        return [(f.height, f.width) for f in container.decode(video=0)]


def test_video_rotates_and_reopens(tmp_path: Path) -> None:
    rec = VideoRecorder(tmp_path, fps=2.0, segment_s=1.0)
    with rec:
        for i in range(6):  # t = 0, 0.5, ..., 2.5 s: segments start at 0, 1 and 2 s, two frames each
            rec.write_frame("cam/1", np.full((48, 64, 3), 40 * i, np.uint8), 1000.0 + 0.5 * i)
        for i in range(3):  # odd size: the last row and column are cut for 4:2:0
            rec.write_frame("b", np.zeros((25, 33, 3), np.uint8), 1000.0 + 0.1 * i)
        rec.write_frame("b", np.zeros((24, 32, 3), np.uint8), 1000.3)  # same size after the cut: same file
        rec.write_frame("b", np.zeros((40, 40, 3), np.uint8), 1000.4)  # new size: new file
    a_files = sorted((tmp_path / "cam_1").glob("*.mp4"))
    # 1000 s after the epoch is 00:16:40 UTC; files are named by their first frame's capture time.
    names = ["19700101T001640.000Z.mp4", "19700101T001641.000Z.mp4", "19700101T001642.000Z.mp4"]
    assert [p.name for p in a_files] == names
    assert [len(decoded(p)) for p in a_files] == [2, 2, 2]
    b_files = sorted((tmp_path / "b").glob("*.mp4"))
    assert [decoded(p) for p in b_files] == [[(24, 32)] * 4, [(40, 40)]]
    assert rec.stats() == {"frames": 11, "files": 5, "open": 0}


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((8, 8), np.uint8),  # no channel axis
        np.zeros((8, 8, 4), np.uint8),  # RGBA
        np.zeros((8, 8, 3), np.float32),  # not uint8
        np.zeros((1, 8, 3), np.uint8),  # one row: nothing left after the even cut
    ],
)
def test_video_rejects_bad_frames(tmp_path: Path, image: np.ndarray) -> None:
    with VideoRecorder(tmp_path) as rec, pytest.raises(ShapeError, match="video 'cam'"):
        rec.write_frame("cam", image, 0.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"codec": "no-such-codec"}, "no-such-codec"), ({"segment_s": 0}, "segment_s"), ({"fps": -1}, "fps")],
)
def test_video_bad_config(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        VideoRecorder(tmp_path, **kwargs)
