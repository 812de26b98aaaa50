"""Alarm rules as typed config: one frozen dataclass per kind, and `parse_rules` for the YAML list.

Firing, common to the zone kinds (``presence``, ``count``, ``dwell``), per rule and stream, on frame
timestamps only:

- The rule fires when its condition has held on every frame for ``min_duration_s`` (0: on the first
  frame it holds); a frame where it does not hold restarts that wait, so a one-frame flicker never fires.
- Having fired, the rule is disarmed: one situation raises one alarm however long it lasts.
- It re-arms after a pause of at least ``cooldown_s``: the time from the first frame on which the
  condition is false to the next frame on which it holds again. A situation that stops and starts
  again within ``cooldown_s`` is the same situation and raises nothing; after a longer pause it is a
  new one, which fires (after its own ``min_duration_s``). ``cooldown_s = 0``: any false frame re-arms.

``line_cross`` fires once per crossing; there ``cooldown_s`` is the least time between two alarms of the
rule on a stream (crossings in between are still counted and show in the next alarm's counts), and
``min_duration_s`` must be 0 since a crossing has no duration.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from yolostream.errors import ConfigError
from yolostream.pipeline.rules.zones import ANCHORS

SEVERITIES = ("info", "warning", "critical")
DIRECTIONS = ("in", "out")
Point = tuple[float, float]


def _fail(rule: str, key: str, value: Any, want: str) -> ConfigError:
    return ConfigError(f"rule {rule!r}: key {key!r} must be {want}, got {value!r}")


def _number(rule: str, key: str, value: Any, least: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < least:
        raise _fail(rule, key, value, f"a number >= {least:g}")
    return float(value)


def _point_list(rule: str, key: str, value: Any, count: int | None) -> tuple[Point, ...]:
    try:
        pts = tuple((float(p[0]), float(p[1])) for p in value if len(p) == 2)
        ok = len(pts) == len(value) and all(math.isfinite(c) for p in pts for c in p)
    except (TypeError, ValueError, IndexError):
        ok = False
    want = f"{count} [x, y] points" if count else "a list of 3 or more [x, y] points"
    if not ok or (len(pts) != count if count else len(pts) < 3):
        raise _fail(rule, key, value, want)
    return pts


@dataclass(frozen=True, kw_only=True)
class RuleBase:
    """Fields every rule has.

    ``classes``: class names or ids to consider (empty: all); ``min_conf``: least confidence to consider;
    ``streams``: streams the rule watches (empty: all); ``severity``: one of `SEVERITIES`.
    """

    kind: ClassVar[str]
    name: str
    classes: tuple[int | str, ...] = ()
    min_conf: float = 0.0
    min_duration_s: float = 0.0
    cooldown_s: float = 5.0
    severity: str = "warning"
    streams: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"rule name must be a non-empty string, got {self.name!r}")
        classes = (self.classes,) if isinstance(self.classes, int | str) else self.classes
        if not isinstance(classes, Sequence) or not all(
            isinstance(c, int | str) and not isinstance(c, bool) for c in classes
        ):
            raise _fail(self.name, "classes", self.classes, "a list of class names or ids")
        streams = (self.streams,) if isinstance(self.streams, str) else self.streams
        if not isinstance(streams, Sequence) or not all(isinstance(s, str) for s in streams):
            raise _fail(self.name, "streams", self.streams, "a list of stream names")
        if self.severity not in SEVERITIES:
            raise _fail(self.name, "severity", self.severity, f"one of {SEVERITIES}")
        conf = _number(self.name, "min_conf", self.min_conf)
        if conf > 1:
            raise _fail(self.name, "min_conf", self.min_conf, "in [0, 1]")
        self._set(
            classes=tuple(classes),
            streams=tuple(streams),
            min_conf=conf,
            min_duration_s=_number(self.name, "min_duration_s", self.min_duration_s),
            cooldown_s=_number(self.name, "cooldown_s", self.cooldown_s),
        )

    def _set(self, **values: Any) -> None:
        for key, value in values.items():
            object.__setattr__(self, key, value)  # normalising a frozen dataclass in __post_init__


@dataclass(frozen=True, kw_only=True)
class ZoneRule(RuleBase):
    """``zone``: polygon ``[[x, y], ...]`` in frame pixels, or None for the whole frame."""

    zone: tuple[Point, ...] | None = None
    anchor: str = "bottom_center"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.zone is not None:
            self._set(zone=_point_list(self.name, "zone", self.zone, None))
        if self.anchor not in ANCHORS:
            raise _fail(self.name, "anchor", self.anchor, f"one of {ANCHORS}")


@dataclass(frozen=True, kw_only=True)
class PresenceRule(ZoneRule):
    """Fires when any matching object is in the zone."""

    kind: ClassVar[str] = "presence"


@dataclass(frozen=True, kw_only=True)
class CountRule(ZoneRule):
    """Fires when at least ``min_count`` matching objects are in the zone at once."""

    kind: ClassVar[str] = "count"
    min_count: int

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.min_count, bool) or not isinstance(self.min_count, int) or self.min_count < 1:
            raise _fail(self.name, "min_count", self.min_count, "an integer >= 1")


@dataclass(frozen=True, kw_only=True)
class DwellRule(ZoneRule):
    """Fires when a tracked matching object has stayed in the zone for ``dwell_s`` seconds.

    The object's stay survives frames where it is not seen (missed detection, occlusion) for up to
    ``max_gap_s``; seen outside the zone, or unseen for longer, it starts over.
    """

    kind: ClassVar[str] = "dwell"
    dwell_s: float
    max_gap_s: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self._set(
            dwell_s=_number(self.name, "dwell_s", self.dwell_s),
            max_gap_s=_number(self.name, "max_gap_s", self.max_gap_s),
        )


@dataclass(frozen=True, kw_only=True)
class LineCrossRule(RuleBase):
    """Fires on each crossing of ``line`` ``[[x1, y1], [x2, y2]]`` in one of ``directions``.

    Direction "in" is from the left of start -> end to its right as seen on screen (see `LineCounter`).
    """

    kind: ClassVar[str] = "line_cross"
    line: tuple[Point, Point]
    directions: tuple[str, ...] = DIRECTIONS
    anchor: str = "bottom_center"
    hysteresis_px: float = 2.0
    cooldown_s: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        line = _point_list(self.name, "line", self.line, 2)
        if line[0] == line[1]:
            raise _fail(self.name, "line", self.line, "two different points")
        directions = (self.directions,) if isinstance(self.directions, str) else tuple(self.directions)
        if not directions or any(d not in DIRECTIONS for d in directions):
            raise _fail(self.name, "directions", self.directions, f"a non-empty subset of {DIRECTIONS}")
        if self.anchor not in ANCHORS:
            raise _fail(self.name, "anchor", self.anchor, f"one of {ANCHORS}")
        if self.min_duration_s != 0:
            raise _fail(self.name, "min_duration_s", self.min_duration_s, "0 for line_cross")
        self._set(
            line=line,
            directions=directions,
            hysteresis_px=_number(self.name, "hysteresis_px", self.hysteresis_px),
        )


Rule = PresenceRule | CountRule | DwellRule | LineCrossRule
RULE_KINDS: dict[str, type[Rule]] = {r.kind: r for r in (PresenceRule, CountRule, DwellRule, LineCrossRule)}


def parse_rule(d: Mapping[str, Any]) -> Rule:
    """One rule from its config mapping: ``kind`` picks the class, the other keys are its fields."""
    if not isinstance(d, Mapping):
        raise ConfigError(f"a rule must be a mapping, got {d!r}")
    name, kind = d.get("name", "?"), d.get("kind")
    if kind not in RULE_KINDS:
        raise ConfigError(f"rule {name!r}: key 'kind' must be one of {tuple(RULE_KINDS)}, got {kind!r}")
    cls = RULE_KINDS[kind]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields) - {"kind"})
    if unknown:
        raise ConfigError(f"rule {name!r}: unknown key(s) {unknown} for kind {kind!r}; known: {sorted(fields)}")
    missing = sorted(
        k
        for k, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and k not in d
    )
    if missing:
        raise ConfigError(f"rule {name!r}: kind {kind!r} needs key(s) {missing}")
    return cls(**{k: v for k, v in d.items() if k != "kind"})


def parse_rules(items: Sequence[Mapping[str, Any]], source: str = "config") -> list[Rule]:
    """The ``rules:`` list of a config; errors name ``source`` and the rule's position."""
    if not isinstance(items, Sequence) or isinstance(items, str):
        raise ConfigError(f"{source}: 'rules' must be a list, got {items!r}")
    rules: list[Rule] = []
    for i, item in enumerate(items):
        try:
            rules.append(parse_rule(item))
        except ConfigError as e:
            raise ConfigError(f"{source}: rules[{i}]: {e}") from e
    names = [r.name for r in rules]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{source}: rule names must be unique, repeated: {dupes}")
    return rules
