"""Zones, line counting, rule configs and `RuleEngine` firing on synthetic, timestamped detections.

Timestamps are 1000 + k * 0.25 s: multiples of 1/4 are exact in float64, so "held exactly 5 s" cases
compare exactly and the boundary rows test the documented ``>=``.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from yolostream.detections import Detections
from yolostream.errors import ConfigError
from yolostream.pipeline.annotate import draw_detections, encode_jpeg
from yolostream.pipeline.events import AlarmEvent
from yolostream.pipeline.frames import Frame, FrameResult
from yolostream.pipeline.rules import (
    CountRule,
    DwellRule,
    LineCounter,
    LineCrossRule,
    PolygonZone,
    PresenceRule,
    RuleEngine,
    parse_rules,
)

NAMES = {0: "person", 1: "car", 2: "dog"}
DT = 0.25
T0 = 1000.0
ZONE = [(100, 100), (200, 100), (200, 200), (100, 200)]
IMAGE = np.zeros((240, 320, 3), dtype=np.uint8)


def obj(x: float, y: float, cls: int = 0, conf: float = 0.9, tid: int = 1) -> tuple:
    """An object whose bottom-centre anchor is at (x, y): a 20x40 box standing on that point."""
    return (x - 10, y - 40, x + 10, y, conf, cls, tid)


INSIDE, OUTSIDE = (150, 150), (260, 150)


def det(rows: list[tuple], tracked: bool = True) -> Detections:
    n = len(rows)
    a = np.array(rows, dtype=np.float64).reshape(n, 7)
    return Detections(
        xyxy=torch.tensor(a[:, :4], dtype=torch.float32),
        conf=torch.tensor(a[:, 4], dtype=torch.float32),
        cls=torch.tensor(a[:, 5], dtype=torch.int64),
        names=NAMES,
        image_shape=IMAGE.shape[:2],
        tracker_id=torch.tensor(a[:, 6], dtype=torch.int64) if tracked else None,
    )


def result(k: int, rows: list[tuple], stream: str = "cam1", tracked: bool = True) -> FrameResult:
    return FrameResult(Frame(stream, k, T0 + k * DT, IMAGE), det(rows, tracked), T0 + k * DT + 0.05)


def fired_frames(engine: RuleEngine, frames: list[list[tuple]], stream: str = "cam1") -> list[int]:
    """Indices of the frames on which any alarm fired."""
    return [k for k, rows in enumerate(frames) if engine.process(result(k, rows, stream))]


def segments(*spec: tuple[int, bool]) -> list[list[tuple]]:
    """Frames from ``(count, present)`` runs: one person in the zone, or nobody."""
    return [[obj(*INSIDE)] if present else [] for n, present in spec for _ in range(n)]


# ---- zones and lines -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("point", "anchor", "inside"),
    [
        ((150, 150), "bottom_center", True),  # well inside the square
        ((250, 150), "bottom_center", False),  # right of it
        ((150, 210), "bottom_center", False),  # feet 10 px below the square...
        ((150, 210), "center", True),  # ...but the box centre (150, 190) is inside
        ((150, 115), "bottom_center", True),  # feet 15 px inside the top edge...
        ((150, 115), "center", False),  # ...centre (150, 95) above it
    ],
)
def test_polygon_zone_anchor(point: tuple, anchor: str, inside: bool) -> None:
    assert PolygonZone(ZONE, anchor=anchor).contains(det([obj(*point)])).tolist() == [inside]


def test_polygon_zone_concave_and_empty() -> None:
    # An L shape: the notch (150..200, 100..150) is outside although inside the bounding box.
    zone = PolygonZone([(100, 100), (150, 100), (150, 150), (200, 150), (200, 200), (100, 200)])
    got = zone.contains(det([obj(120, 120), obj(175, 125), obj(175, 175)]))
    assert got.tolist() == [True, False, True]
    assert zone.contains(det([])).shape == (0,)


@pytest.mark.parametrize(
    ("polygon", "anchor"),
    [([(0, 0), (1, 1)], "center"), ([(0, 0), (1, 1), (float("nan"), 2)], "center"), (ZONE, "top")],
)
def test_polygon_zone_rejects_bad_input(polygon: list, anchor: str) -> None:
    with pytest.raises(ConfigError):
        PolygonZone(polygon, anchor=anchor)


LINE = ((0, 100), (200, 100))  # left to right: "in" is moving down the picture (y growing)


@pytest.mark.parametrize(
    ("path", "hysteresis", "counts"),
    [
        ([(50, 90), (50, 95), (50, 105), (50, 110)], 2.0, (1, 0)),  # straight down: in
        ([(50, 110), (50, 105), (50, 95), (50, 90)], 2.0, (0, 1)),  # straight up: out
        # Jitter within +-2 px of the line keeps the last side: one crossing, when it leaves the band.
        ([(50, 90), (50, 99), (50, 101), (50, 99), (50, 101), (50, 99), (50, 101), (50, 110)], 2.0, (1, 0)),
        # The same jitter with no band: every sign change counts (in at 101, out at 99, ...).
        ([(50, 90), (50, 99), (50, 101), (50, 99), (50, 101), (50, 99), (50, 101), (50, 110)], 0.0, (3, 2)),
        # Real back and forth beyond the band is counted each way.
        ([(50, 90), (50, 97), (50, 103), (50, 97), (50, 103)], 2.0, (2, 1)),
        ([(300, 90), (300, 110)], 2.0, (0, 0)),  # beyond the segment's end (x = 200)
        ([(190, 90), (230, 110)], 2.0, (0, 0)),  # path meets the line at x = 210: outside the segment
        ([(150, 90), (250, 110)], 2.0, (1, 0)),  # meets it at x = 200: the end point counts
        ([(50, 110)], 2.0, (0, 0)),  # first sighting: a side, no crossing
        ([(50, 100), (50, 110)], 2.0, (0, 0)),  # first seen in the band, then takes a side: no crossing
    ],
)
def test_line_counter(path: list, hysteresis: float, counts: tuple) -> None:
    line = LineCounter(*LINE, hysteresis_px=hysteresis)
    masks_in, masks_out = [], []
    for p in path:
        crossed_in, crossed_out = line.update(det([obj(*p)]))
        masks_in.append(bool(crossed_in[0]))
        masks_out.append(bool(crossed_out[0]))
    assert (line.count_in, line.count_out) == counts
    assert (sum(masks_in), sum(masks_out)) == counts  # each crossing flagged on exactly one frame


def test_line_counter_keeps_tracks_apart_and_needs_ids() -> None:
    line = LineCounter(*LINE)
    line.update(det([obj(50, 90, tid=1), obj(100, 110, tid=2)]))
    crossed_in, crossed_out = line.update(det([obj(50, 110, tid=1), obj(100, 90, tid=2)]))
    assert crossed_in.tolist() == [True, False] and crossed_out.tolist() == [False, True]
    line.update(det([obj(100, 90, tid=3)]))  # a new track appearing on the far side is not a crossing
    assert (line.count_in, line.count_out) == (1, 1)
    with pytest.raises(ConfigError, match="tracker"):
        line.update(det([obj(50, 90)], tracked=False))


# ---- firing: presence, cooldown, min_duration ------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "cooldown", "min_duration", "want"),
    [
        # enter, stay 2 s, leave 6 s (> 5 s cooldown), re-enter: a new situation -> 2 alarms
        (((8, True), (24, False), (8, True)), 5.0, 0.0, [0, 32]),
        # gone only 2 s (< cooldown), then stays 10 s: the same situation -> 1 alarm
        (((8, True), (8, False), (40, True)), 5.0, 0.0, [0]),
        # gone exactly 5 s (frames 8..27 false, back at 28 = 20 frames later): cooldown passed (>=)
        (((8, True), (20, False), (4, True)), 5.0, 0.0, [0, 28]),
        (((8, True), (19, False), (4, True)), 5.0, 0.0, [0]),  # gone 4.75 s: not yet
        (((2, True), (1, False), (2, True)), 0.0, 0.0, [0, 3]),  # no cooldown: one false frame re-arms
        # min_duration 1 s: runs of 3 frames (0.5 s) never fire; the long run fires 4 frames (1 s) in
        (((3, True), (1, False), (3, True), (1, False), (10, True)), 5.0, 1.0, [12]),
        (((1, True), (10, False), (1, True), (10, False)), 0.0, 0.25, []),  # one-frame flickers never fire
        (((40, True),), 5.0, 0.5, [2]),  # steady presence: once, after 0.5 s
        (((0, True),), 5.0, 0.0, []),  # no frames, no alarm
    ],
)
def test_presence_cooldown_and_debounce(spec: tuple, cooldown: float, min_duration: float, want: list) -> None:
    rule = PresenceRule(name="p", zone=ZONE, cooldown_s=cooldown, min_duration_s=min_duration)
    assert fired_frames(RuleEngine([rule], snapshot=False), segments(*spec)) == want


def test_presence_outside_zone_and_whole_frame() -> None:
    frames = [[obj(*OUTSIDE)]] * 3
    assert fired_frames(RuleEngine([PresenceRule(name="p", zone=ZONE)], snapshot=False), frames) == []
    assert fired_frames(RuleEngine([PresenceRule(name="p")], snapshot=False), frames) == [0]  # no zone


@pytest.mark.parametrize(
    ("classes", "min_conf", "row", "fires"),
    [
        (("person",), 0.5, obj(*INSIDE, cls=1), False),  # a car: wrong class
        (("person",), 0.5, obj(*INSIDE, cls=0, conf=0.4), False),  # a person below min_conf
        (("person",), 0.5, obj(*INSIDE, cls=0, conf=0.5), True),  # exactly min_conf passes (>=)
        ((1,), 0.0, obj(*INSIDE, cls=1), True),  # class by id
        (("person", "dog"), 0.0, obj(*INSIDE, cls=2), True),  # any of several
        ((), 0.0, obj(*INSIDE, cls=2), True),  # no class filter
    ],
)
def test_class_and_conf_filters(classes: tuple, min_conf: float, row: tuple, fires: bool) -> None:
    rule = PresenceRule(name="p", zone=ZONE, classes=classes, min_conf=min_conf)
    assert fired_frames(RuleEngine([rule], snapshot=False), [[row]]) == ([0] if fires else [])


def test_unknown_class_name_is_a_config_error() -> None:
    engine = RuleEngine([PresenceRule(name="p", classes=("forklift",))], snapshot=False)
    with pytest.raises(ConfigError, match="forklift"):
        engine.process(result(0, [obj(*INSIDE)]))


def test_count_rule() -> None:
    inside = [obj(120 + 10 * i, 150, tid=i) for i in range(3)]
    per_frame = [1, 1, 2, 2, 3, 1, 0, 2]  # people in the zone per frame
    frames = [[*inside[:n], obj(*OUTSIDE, tid=9)] for n in per_frame]  # plus one outside, never counted
    rule = CountRule(name="c", zone=ZONE, min_count=2, cooldown_s=0.0)
    engine = RuleEngine([rule], snapshot=False)
    events = {k: engine.process(result(k, rows)) for k, rows in enumerate(frames)}
    assert [k for k, e in events.items() if e] == [2, 7]  # >= 2 starts at 2; clears at 5; again at 7
    (event,) = events[2]
    assert event.details["count"] == 2 and event.details["min_count"] == 2
    assert sorted(o.track_id for o in event.objects) == [0, 1]


# ---- dwell -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("track", "want"),
    [
        ("i" * 8 + "o", []),  # leaves after 1.75 s (< 2 s): no alarm
        ("i" * 9, [8]),  # frame 8 is 2.0 s after frame 0
        ("iiii-iiii", [8]),  # one unseen frame (0.25 s <= max_gap 0.5 s): the stay goes on
        ("iiii--iii", [8]),  # two unseen frames (0.5 s, the limit): still the same stay
        ("iiii---" + "i" * 9, [15]),  # three unseen (0.75 s): starts over at frame 7, fires at 15
        ("iii" + "o" + "i" * 9, [12]),  # seen outside: starts over at frame 4
        ("x" * 12, []),  # "x": only a car in the zone; the rule wants persons
        ("iiiixxiii", [8]),  # the person filtered out for 2 frames counts as unseen, not as gone
    ],
)
def test_dwell(track: str, want: list) -> None:
    rows = {"i": [obj(*INSIDE)], "o": [obj(*OUTSIDE)], "-": [], "x": [obj(*INSIDE, cls=1)]}
    rule = DwellRule(name="d", zone=ZONE, dwell_s=2.0, max_gap_s=0.5, classes=("person",))
    assert fired_frames(RuleEngine([rule], snapshot=False), [rows[c] for c in track]) == want


def test_dwell_reports_the_dwelling_track_only_and_needs_ids() -> None:
    rule = DwellRule(name="d", zone=ZONE, dwell_s=1.0)
    engine = RuleEngine([rule], snapshot=False)
    events = []
    for k in range(6):  # track 1 from frame 0, track 2 from frame 3: only 1 reaches 1 s (frame 4)
        rows = [obj(140, 150, tid=1)] + ([obj(160, 150, tid=2)] if k >= 3 else [])
        events += engine.process(result(k, rows))
    (event,) = events
    assert [o.track_id for o in event.objects] == [1]
    assert event.details["stays"] == [{"track_id": 1, "dwell_s": 1.0}]
    with pytest.raises(ConfigError, match="tracked"):
        engine.process(result(9, [obj(*INSIDE)], tracked=False))


# ---- line crossing ---------------------------------------------------------------------------


def test_line_cross_alarms_carry_direction_and_running_counts() -> None:
    rule = LineCrossRule(name="door", line=LINE, cooldown_s=0.0)
    engine = RuleEngine([rule], snapshot=False)
    frames = [
        [obj(50, 90, tid=1), obj(100, 90, tid=2), obj(150, 110, tid=3)],
        [obj(50, 110, tid=1), obj(100, 110, tid=2), obj(150, 110, tid=3)],  # 1 and 2 cross in together
        [obj(50, 110, tid=1), obj(100, 110, tid=2), obj(150, 90, tid=3)],  # 3 crosses out
        [obj(50, 90, tid=1), obj(100, 110, tid=2), obj(150, 90, tid=3)],  # 1 goes back out
    ]
    got = [
        (k, e.details["direction"], e.details["count_in"], e.details["count_out"], e.objects[0].track_id)
        for k, rows in enumerate(frames)
        for e in engine.process(result(k, rows))
    ]
    assert got == [(1, "in", 1, 0, 1), (1, "in", 2, 0, 2), (2, "out", 2, 1, 3), (3, "out", 2, 2, 1)]


@pytest.mark.parametrize(
    ("directions", "cooldown", "want"),
    [
        (("in", "out"), 0.0, [(1, "in", 1, 0), (3, "out", 1, 1), (7, "in", 2, 1)]),
        (("out",), 0.0, [(3, "out", 1, 1)]),  # "in" crossings counted, not alarmed
        # 1 s between alarms: the out at frame 3 (0.5 s after) is suppressed but still counted
        (("in", "out"), 1.0, [(1, "in", 1, 0), (7, "in", 2, 1)]),
    ],
)
def test_line_cross_directions_and_cooldown(directions: tuple, cooldown: float, want: list) -> None:
    ys = [90, 110, 110, 90, 90, 90, 90, 110]  # in at 1, out at 3, in at 7
    rule = LineCrossRule(name="door", line=LINE, directions=directions, cooldown_s=cooldown)
    engine = RuleEngine([rule], snapshot=False)
    got = [
        (k, e.details["direction"], e.details["count_in"], e.details["count_out"])
        for k, y in enumerate(ys)
        for e in engine.process(result(k, [obj(50, y)]))
    ]
    assert got == want


# ---- streams, events, snapshots --------------------------------------------------------------


def test_streams_are_isolated_and_rules_can_be_restricted() -> None:
    everywhere = PresenceRule(name="all", zone=ZONE, cooldown_s=60.0)
    only2 = PresenceRule(name="only2", zone=ZONE, streams=("cam2",), cooldown_s=60.0)
    engine = RuleEngine([everywhere, only2], snapshot=False)
    fired = []
    for k in range(4):  # cam1 has a person from frame 0; cam2 only from frame 2
        for stream, rows in (("cam1", [obj(*INSIDE)]), ("cam2", [obj(*INSIDE)] if k >= 2 else [])):
            fired += [(k, e.stream, e.rule) for e in engine.process(result(k, rows, stream))]
    assert fired == [(0, "cam1", "all"), (2, "cam2", "all"), (2, "cam2", "only2")]


def test_alarm_event_contents_and_snapshot() -> None:
    rule = PresenceRule(name="intrusion", zone=ZONE, severity="critical", classes=("person",))
    engine = RuleEngine([rule], snapshot=True)
    rows = [obj(150, 150, conf=0.8, tid=7), obj(150, 150, cls=1, tid=8)]  # the car is filtered out
    (event,) = engine.process(result(3, rows))
    assert (event.rule, event.stream, event.kind, event.severity) == ("intrusion", "cam1", "presence", "critical")
    assert event.time == T0 + 3 * DT  # the frame's capture time, not the wall clock
    assert event.details["frame_index"] == 3 and event.details["count"] == 1
    (o,) = event.objects
    assert (o.track_id, o.cls, o.name, o.xyxy) == (7, 0, "person", (140.0, 110.0, 160.0, 150.0))
    assert o.conf == pytest.approx(0.8, abs=1e-5)  # float32 0.8 rounded to 5 decimals by to_list
    image = Image.open(io.BytesIO(event.snapshot_jpeg))
    assert image.format == "JPEG" and image.size == (320, 240)
    back = AlarmEvent.from_dict(json.loads(json.dumps(event.to_dict(include_snapshot=True))))
    assert back == event  # every detail is JSON-safe and survives the round trip
    assert RuleEngine([rule], snapshot=False).process(result(3, rows))[0].snapshot_jpeg is None


@pytest.mark.parametrize("shape", [(1, 1), (48, 64), (1080, 1920)])
def test_annotate_sizes_and_encode(shape: tuple) -> None:
    image = np.full((*shape, 3), 128, dtype=np.uint8)
    boxes = det([obj(10, 30, tid=1), obj(40, 40, cls=2, conf=0.3, tid=2)])
    out = draw_detections(image, boxes, zones=[PolygonZone(ZONE)], lines=[LineCounter(*LINE)], title="t")
    assert out.shape == image.shape and out.dtype == np.uint8
    assert (image == 128).all()  # the input is not drawn on
    if shape != (1, 1):
        assert (out != 128).any()
    assert Image.open(io.BytesIO(encode_jpeg(out))).size == (shape[1], shape[0])


def test_annotate_rejects_bad_image() -> None:
    from yolostream.errors import ShapeError

    with pytest.raises(ShapeError):
        draw_detections(np.zeros((4, 4), dtype=np.uint8), det([]))


# ---- config ----------------------------------------------------------------------------------


def test_parse_rules() -> None:
    rules = parse_rules(
        [
            {"name": "a", "kind": "presence", "zone": [[0, 0], [10, 0], [10, 10]], "classes": ["person"]},
            {"name": "b", "kind": "count", "min_count": 3, "streams": "cam1"},
            {"name": "c", "kind": "dwell", "dwell_s": 30, "zone": ZONE, "severity": "critical"},
            {"name": "d", "kind": "line_cross", "line": [[0, 5], [9, 5]], "directions": "in"},
        ]
    )
    assert [type(r).__name__ for r in rules] == ["PresenceRule", "CountRule", "DwellRule", "LineCrossRule"]
    assert rules[0].zone == ((0.0, 0.0), (10.0, 0.0), (10.0, 10.0)) and rules[0].classes == ("person",)
    assert rules[1].streams == ("cam1",) and rules[1].cooldown_s == 5.0
    assert rules[2].dwell_s == 30.0
    assert rules[3].directions == ("in",) and rules[3].cooldown_s == 0.0


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"name": "x", "kind": "teleport"}, "kind"),
        ({"name": "x", "kind": "presence", "zoen": ZONE}, "zoen"),
        ({"name": "x", "kind": "count"}, "min_count"),
        ({"name": "x", "kind": "count", "min_count": 0}, "min_count"),
        ({"name": "x", "kind": "presence", "zone": [[0, 0], [1, 1]]}, "zone"),
        ({"name": "x", "kind": "presence", "severity": "panic"}, "severity"),
        ({"name": "x", "kind": "presence", "min_conf": 1.5}, "min_conf"),
        ({"name": "x", "kind": "presence", "cooldown_s": -1}, "cooldown_s"),
        ({"name": "x", "kind": "presence", "anchor": "top"}, "anchor"),
        ({"name": "x", "kind": "dwell", "dwell_s": "long"}, "dwell_s"),
        ({"name": "x", "kind": "line_cross", "line": [[0, 0], [0, 0]]}, "line"),
        ({"name": "x", "kind": "line_cross", "line": [[0, 0], [1, 0]], "directions": ["up"]}, "directions"),
        ({"name": "x", "kind": "line_cross", "line": [[0, 0], [1, 0]], "min_duration_s": 1}, "min_duration_s"),
        ({"name": "", "kind": "presence"}, "name"),
        ("presence", "mapping"),
    ],
)
def test_parse_rules_errors(item: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_rules([item], source="site.yaml")
    assert "site.yaml: rules[0]" in str(info.value)


def test_parse_rules_rejects_duplicate_names() -> None:
    with pytest.raises(ConfigError, match="unique"):
        parse_rules([{"name": "a", "kind": "presence"}, {"name": "a", "kind": "presence"}])


def test_empty_untracked_frames_are_fine_and_reset_rearms() -> None:
    rules = [
        PresenceRule(name="p", zone=ZONE, cooldown_s=60.0),
        DwellRule(name="d", zone=ZONE, dwell_s=1.0),
        LineCrossRule(name="l", line=LINE),
    ]
    engine = RuleEngine(rules, snapshot=False)
    # An empty frame carries no tracker_id even after a tracker: rules needing IDs must accept it.
    assert engine.process(result(0, [], tracked=False)) == []
    assert [e.rule for e in engine.process(result(1, [obj(*INSIDE)]))] == ["p"]
    assert engine.process(result(2, [obj(*INSIDE)])) == []  # same situation
    engine.reset("cam2")  # another stream: cam1 keeps its state
    assert engine.process(result(3, [obj(*INSIDE)])) == []
    engine.reset("cam1")
    assert [e.rule for e in engine.process(result(4, [obj(*INSIDE)]))] == ["p"]
