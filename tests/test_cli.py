"""`yolostream predict` and `convert` end to end: JSON Lines format, errors, videos, annotated copies."""

from __future__ import annotations

import json
import shutil

import pytest

from yolostream.api import load
from yolostream.cli.main import main


@pytest.fixture(scope="module")
def model(fixtures):
    return str(fixtures / "checkpoints" / "yolo11n-shapes.pt")


def test_predict_json_lines_exact_format(model, fixtures, tmp_path, capsys):
    picture = str(fixtures / "images" / "synth" / "0003.jpg")
    assert main(["predict", model, picture, "--json", "-"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert list(record) == ["source", "frame", "height", "width", "detections"]
    assert record["source"] == picture and record["frame"] == 0
    assert (record["height"], record["width"]) == (360, 480)
    expected = load(model)(picture)[0]
    assert len(record["detections"]) == len(expected) > 0
    for row, box, conf, cls in zip(
        record["detections"], expected.xyxy.tolist(), expected.conf.tolist(), expected.cls.tolist(), strict=True
    ):
        assert list(row) == ["xyxy", "conf", "cls", "name"]
        assert row["cls"] == cls and row["name"] == ["box", "disc", "triangle"][cls]
        assert row["xyxy"] == pytest.approx(box, abs=0.01) and row["conf"] == pytest.approx(conf, abs=1e-5)


def test_predict_bad_inputs_error_but_others_run(model, fixtures, tmp_path, capsys):
    good = tmp_path / "good.jpg"
    shutil.copy(fixtures / "images" / "synth" / "0007.jpg", good)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 definitely not a JPEG")
    text = tmp_path / "notes.png"
    text.write_text("hello")
    out = tmp_path / "out.jsonl"
    code = main(
        ["predict", model, str(corrupt), str(tmp_path / "missing.jpg"), str(text), str(good), "--json", str(out)]
    )
    assert code == 1  # non-zero at the end...
    err = capsys.readouterr().err
    # ...with one error line naming each bad input, whole: the temporary paths are longer than a terminal's 80
    # columns, which rich used to fold into two lines (splitting the name under pytest-xdist's longer paths).
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 3, err
    for name in ("corrupt.jpg", "missing.jpg", "notes.png"):
        assert any(line.endswith(name) or f"{name}:" in line for line in lines), (name, err)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["source"] for r in records] == [str(good)]  # ...and the good one still processed


def test_predict_folder_glob_video_and_save_dir(model, fixtures, tmp_path):
    from media import Scene, write_mp4  # tests/media.py: generated test videos

    video = tmp_path / "clip.mp4"
    write_mp4(video, Scene(width=320, height=240, fps=10, n_frames=6))
    folder = tmp_path / "pics"
    folder.mkdir()
    for name in ("0000.jpg", "0003.jpg"):
        shutil.copy(fixtures / "images" / "synth" / name, folder / name)
    out, saved = tmp_path / "out.jsonl", tmp_path / "annotated"
    code = main(
        [
            "predict",
            model,
            str(folder),
            str(tmp_path / "pics" / "*.jpg"),
            str(video),
            "--json",
            str(out),
            "--save-dir",
            str(saved),
            "--conf",
            "0.1",
        ]
    )
    assert code == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    frames = [r["frame"] for r in records if r["source"] == str(video)]
    assert frames == list(range(6))  # every frame, in order, numbered from 0
    assert sum(r["source"].endswith(".jpg") for r in records) == 4  # folder + glob
    assert sorted(p.name for p in saved.iterdir()) == ["0000.jpg", "0003.jpg", "clip.mp4"]


def test_convert_round_trip(model, fixtures, tmp_path, capsys):
    target = tmp_path / "model.safetensors"
    assert main(["convert", model, str(target)]) == 0
    assert "yolo11n" in capsys.readouterr().out
    picture = fixtures / "images" / "scene_1280x720.jpg"
    a, b = load(model)(picture)[0], load(target)(picture)[0]
    assert len(a) == len(b) and (a.xyxy - b.xyxy).abs().max() == 0 and (a.conf - b.conf).abs().max() == 0


def test_help_explains_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for command in ("predict", "val", "convert", "export", "bench", "run", "bench-pipeline"):
        assert command in text
