"""Pipeline config: every error names the key path and its line; env expansion, relative paths, named
zones/lines, rule checks against the model's classes, the example config, and `yolostream run --check`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from yolostream.cli.main import main
from yolostream.errors import ConfigError
from yolostream.pipeline.assemble import build_sources, check_rules
from yolostream.pipeline.config import load_config
from yolostream.pipeline.rules import LineCrossRule, PresenceRule
from yolostream.pipeline.yaml_lines import load_yaml, resolve

REPO = Path(__file__).resolve().parents[1]
NAMES = {0: "box", 1: "disc", 2: "triangle"}

GOOD = """\
model:
  path: model.pt
  imgsz: 320
sources:
  - name: cam1
    uri: clip.mp4
    fps: 10
zones:
  bay: [[0, 0], [10, 0], [10, 10]]
lines:
  gate: [[0, 5], [10, 5]]
rules:
  - name: in-bay
    kind: presence
    zone: bay
    classes: [box]
  - name: crossing
    kind: line_cross
    line: gate
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text))
    return path


# Each case: the config text, then the "<line>: <key path>" the message must contain (lines counted by hand).
ERRORS = [
    pytest.param("model: {path: m.pt, imgsz: 300}\nsources: [{name: a, uri: x.mp4}]\n", "1: model.imgsz", id="imgsz"),
    pytest.param("model:\n  path: m.pt\n  conf: 2\nsources: [{name: a, uri: x.mp4}]\n", "3: model.conf", id="conf"),
    pytest.param("model:\n  device: cpu\nsources:\n  - name: a\n", "4: sources[0].uri", id="missing-key"),
    pytest.param("model: {device: cpu}\n", "1: sources", id="missing-section"),
    pytest.param(
        "model: {path: m.pt}\nsources:\n  - name: a\n    uri: x.mp4\n  - name: b\n    uri: y.mp4\n    fps: -1\n",
        "7: sources[1].fps",
        id="source-fps",
    ),
    pytest.param(
        "model: {path: m.pt}\nsources:\n  - name: a\n    uri: x.mp4\n    colour: red\n",
        "5: sources[0].colour",
        id="unknown-key",
    ),
    pytest.param("model: {path: m.pt}\nsources: []\n", "2: sources", id="no-sources"),
    pytest.param(
        "model: {path: m.pt}\nsources:\n  - {name: a, uri: x.mp4}\n  - {name: a, uri: y.mp4}\n",
        "2: sources",
        id="duplicate-source",
    ),
    pytest.param(
        "model: {path: m.pt}\nsources: [{name: a, uri: x.mp4}]\nsinks:\n  mqtt:\n    port: 70000\n",
        "5: sinks.mqtt.port",
        id="nested",
    ),
    pytest.param(
        "model: {path: m.pt}\nsources: [{name: a, uri: x.mp4}]\nzones:\n  bay: [[0, 0], [1, 1]]\n",
        "4: zones.bay",
        id="zone-points",
    ),
    pytest.param(
        "model: {path: m.pt}\nsources: [{name: a, uri: x.mp4}]\nrules:\n  - name: r\n    kind: presense\n",
        "5: rules[0].kind",
        id="rule-kind",
    ),
    pytest.param(
        "model: {path: m.pt}\nsources: [{name: a, uri: x.mp4}]\nrules:\n  - name: r\n    kind: count\n"
        "    min_count: 0\n",
        "6: rules[0].min_count",
        id="rule-value",
    ),
    pytest.param(
        "model: {path: m.pt}\nsources: [{name: a, uri: x.mp4}]\nrules:\n  - name: r\n    kind: presence\n"
        "    zone: nowhere\n",
        "6: rules[0].zone",
        id="unknown-zone-name",
    ),
    pytest.param(
        "model: {path: m.pt}\nsources: [{name: a, uri: x.mp4}]\nrules:\n  - {name: r, kind: presence}\n"
        "  - {name: r, kind: presence}\n",
        "5: rules[1].name",
        id="duplicate-rule",
    ),
    pytest.param("model: {path: m.pt}\nsources:\n  - name: a\n   uri: x.mp4\n", "4: invalid YAML", id="yaml-syntax"),
    pytest.param("model:\n  path: ${NO_SUCH_VAR_4711}\nsources: [{name: a, uri: x.mp4}]\n", "2: model.path", id="env"),
]


@pytest.mark.parametrize(("text", "where"), ERRORS)
def test_config_errors_name_the_line_and_key(tmp_path: Path, text: str, where: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path}:{where}" in str(err.value)


def test_every_problem_is_listed_with_its_own_line(tmp_path: Path) -> None:
    path = write(tmp_path, "model:\n  path: m.pt\n  iou: -1\nsources:\n  - name: a\n    uri: x.mp4\n    stride: 0\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    lines = str(err.value).splitlines()
    assert [line.split(": ")[0:2] for line in lines] == [[f"{path}:3", "model.iou"], [f"{path}:7", "sources[0].stride"]]


def test_good_config_resolves_names_paths_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YS_TEST_DB", "store/alarms.db")
    text = GOOD + "sinks:\n  sqlite:\n    path: ${YS_TEST_DB}\n  jsonl:\n    path: ${YS_UNSET:-log.jsonl}\n"
    loaded = load_config(write(tmp_path, text))
    cfg = loaded.config
    # Relative paths are taken from the config file's folder; URLs and absolute paths are left alone.
    assert cfg.model.path == tmp_path / "model.pt"
    assert cfg.sources[0].uri == str(tmp_path / "clip.mp4")
    assert cfg.sinks.sqlite is not None and cfg.sinks.sqlite.path == tmp_path / "store/alarms.db"
    assert cfg.sinks.jsonl is not None and cfg.sinks.jsonl.path == tmp_path / "log.jsonl"
    # Only the keys the file sets go to the source (the source's own defaults apply to the rest).
    assert cfg.sources[0].source_options() == {"fps": 10.0}
    presence, line = loaded.rules
    assert isinstance(presence, PresenceRule) and presence.zone == ((0, 0), (10, 0), (10, 10))
    assert isinstance(line, LineCrossRule) and line.line == ((0, 5), (10, 5))
    assert loaded.where("rules", 1, "line") == f"{tmp_path / 'config.yaml'}:19: rules[1].line"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("rtsp://cam.local/s1", "rtsp://cam.local/s1"),  # a URL
        ("/dev/video0", "/dev/video0"),  # absolute
        ("0", "0"),  # a camera number
        ("frames", "<tmp>/frames"),  # a folder next to the config
    ],
)
def test_source_uris(tmp_path: Path, uri: str, expected: str) -> None:
    loaded = load_config(write(tmp_path, f"model: {{path: m.pt}}\nsources: [{{name: a, uri: '{uri}'}}]\n"))
    assert loaded.config.sources[0].uri == expected.replace("<tmp>", str(tmp_path))


@pytest.mark.parametrize(
    ("extra", "where", "message"),
    [
        ("    classes: [box, lorry]\n", "rules[0].classes", "'lorry' is not a class"),
        ("    classes: [7]\n", "rules[0].classes", "class id 7"),
    ],
)
def test_rule_classes_are_checked_against_the_model(tmp_path: Path, extra: str, where: str, message: str) -> None:
    text = "model: {path: m.pt}\nsources: [{name: a, uri: x.mp4}]\nrules:\n  - name: r\n    kind: presence\n" + extra
    loaded = load_config(write(tmp_path, text))
    with pytest.raises(ConfigError, match=message) as err:
        check_rules(loaded, NAMES)
    assert f"config.yaml:6: {where}" in str(err.value)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{name: cam, uri: 'rtsp://127.0.0.1:9/x', loop: true}", "unexpected keyword argument 'loop'"),
        ("{name: cam, uri: missing.mp4}", "input not found"),
    ],
)
def test_source_errors_name_the_source_line(tmp_path: Path, source: str, message: str) -> None:
    pytest.importorskip("av")
    ok = "{name: ok, uri: 'rtsp://127.0.0.1:9/ok'}"  # a stream source is made without connecting
    loaded = load_config(write(tmp_path, f"model: {{path: m.pt}}\nsources:\n  - {ok}\n  - {source}\n"))
    with pytest.raises(ConfigError, match=message) as err:
        build_sources(loaded)
    assert "config.yaml:4: sources[1]" in str(err.value)


def test_line_rule_without_tracking_is_refused(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, GOOD + "tracking:\n  enabled: false\n"))
    with pytest.raises(ConfigError, match="needs tracking") as err:
        check_rules(loaded, NAMES)
    assert "config.yaml:18: rules[1].kind" in str(err.value)


def test_yaml_positions_skip_union_tags() -> None:
    data, lines = load_yaml("a:\n  b:\n    - 1\n    - x: 2\n")
    # pydantic reports e.g. ("a", "b", 1, "x", "int") for a union member: the tag is not in the data.
    assert resolve(data, ("a", "b", 1, "x", "int")) == ("a", "b", 1, "x")
    assert lines[("a", "b", 1, "x")] == 4


def test_example_config_is_valid() -> None:
    loaded = load_config(REPO / "examples" / "pipeline.yaml")
    assert [s.name for s in loaded.config.sources] == ["front-720p", "side-360p"]
    assert {r.kind for r in loaded.rules} == {"presence", "count", "dwell", "line_cross"}
    check_rules(loaded, NAMES)


@pytest.mark.parametrize(("text", "code"), [(GOOD, 0), ("model: {path: m.pt}\nsources: 3\n", 1)])
def test_run_check(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, code: int) -> None:
    path = write(tmp_path, text)
    assert main(["run", str(path), "--check"]) == code
    out, err = capsys.readouterr()
    assert ("OK (1 source(s), 2 rule(s))" in out) if code == 0 else (f"{path}:2: sources" in err)


def test_no_model_section_means_the_bundled_demo_model(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, "sources: [{name: a, uri: x.mp4}]\n"))
    assert loaded.config.model.path is None  # `yolostream.load(None)` serves yolostream/assets/demo.safetensors
