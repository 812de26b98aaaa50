"""`RuleEngine`: evaluates the alarm rules on each stream's tracked detections and raises `AlarmEvent`s.

Time is the frames' clock only (`Frame.clock`: capture time, or the media clock of a file read unpaced),
never the wall clock at evaluation, so a replayed recording raises the same alarms as the live run did,
however fast it is processed. Firing semantics are documented in `rules.config`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from yolostream.detections import Detections
from yolostream.errors import ConfigError
from yolostream.pipeline.events import AlarmEvent, AlarmObject
from yolostream.pipeline.frames import FrameResult
from yolostream.pipeline.rules.config import CountRule, DwellRule, LineCrossRule, Rule, ZoneRule
from yolostream.pipeline.rules.zones import LineCounter, PolygonZone


@dataclass
class _Gate:
    """Debounce and cooldown of one rule on one stream (semantics in `rules.config`)."""

    min_duration_s: float
    cooldown_s: float
    armed: bool = True
    true_since: float | None = None
    false_since: float | None = None

    def step(self, t: float, condition: bool) -> bool:
        """Feed one frame; True when the rule fires on it."""
        if not condition:
            self.true_since = None
            self.false_since = t if self.false_since is None else self.false_since
            return False
        # The pause runs from its first frame to the frame that ends it, so sparse frames measure it too.
        if not self.armed and self.false_since is not None and t - self.false_since >= self.cooldown_s:
            self.armed = True
        self.false_since = None
        self.true_since = t if self.true_since is None else self.true_since
        if self.armed and t - self.true_since >= self.min_duration_s:
            self.armed = False
            return True
        return False


@dataclass
class _Stay:
    since: float  # first timestamp seen in the zone
    last_seen: float
    obj: AlarmObject  # as last seen, for the alarm


@dataclass
class _StreamState:
    gate: _Gate
    stays: dict[int, _Stay] = field(default_factory=dict)  # dwell: track id -> stay
    counter: LineCounter | None = None  # line_cross
    last_fire: float | None = None  # line_cross


class RuleEngine:
    """Evaluates ``rules`` frame by frame, keeping state per (rule, stream).

    Args:
        rules: rule configs (see `parse_rules`); names must be unique.
        snapshot: attach a JPEG of the annotated frame to each alarm.
        jpeg_quality: JPEG quality of the snapshots.

    ``dwell`` and ``line_cross`` need tracked detections (``tracker_id`` set); the other kinds do not.
    """

    def __init__(self, rules: Sequence[Rule], snapshot: bool = True, jpeg_quality: int = 85) -> None:
        names = [r.name for r in rules]
        if len(set(names)) != len(names):
            raise ConfigError(f"rule names must be unique, got {names}")
        self.rules = list(rules)
        self.snapshot, self.jpeg_quality = snapshot, jpeg_quality
        self._zones = {
            r.name: PolygonZone(r.zone, r.anchor) for r in self.rules if isinstance(r, ZoneRule) and r.zone is not None
        }
        self._state: dict[tuple[str, str], _StreamState] = {}

    def process(self, result: FrameResult) -> list[AlarmEvent]:
        """The alarms this frame raises (usually none), in rule order."""
        frame, det = result.frame, result.detections
        events: list[AlarmEvent] = []
        for rule in self.rules:
            if rule.streams and frame.stream not in rule.streams:
                continue
            state = self._state.get((rule.name, frame.stream))
            if state is None:
                state = self._state[(rule.name, frame.stream)] = self._new_state(rule)
            selected = self._select(rule, det)
            if isinstance(rule, LineCrossRule):
                fired = self._line_cross(rule, state, det, selected, frame.clock)
            else:
                fired = self._zone(rule, state, det, selected, frame.clock)
            snapshot = self._snapshot(result, rule, state) if fired and self.snapshot else None
            for objects, details in fired:
                events.append(
                    AlarmEvent(
                        rule=rule.name,
                        stream=frame.stream,
                        time=frame.clock,
                        kind=rule.kind,
                        severity=rule.severity,
                        objects=objects,
                        details={**details, "frame_index": frame.index},
                        snapshot_jpeg=snapshot,
                    )
                )
        return events

    def reset(self, stream: str | None = None) -> None:
        """Forget the state of one stream (say, after its source reconnected), or of every stream."""
        self._state = {k: v for k, v in self._state.items() if stream is not None and k[1] != stream}

    def replace_rules(self, rules: Sequence[Rule]) -> list[str]:
        """Swap in a new rule list (say, after a zone was redrawn); the names added, changed or removed.

        A rule whose definition is unchanged keeps its state (an ongoing situation raises no second alarm);
        a changed one starts afresh. Not thread-safe: call it from the thread that calls `process`.
        """
        names = [r.name for r in rules]
        if len(set(names)) != len(names):
            raise ConfigError(f"rule names must be unique, got {names}")
        old = {r.name: r for r in self.rules}
        changed = {r.name for r in rules if old.get(r.name) != r} | (set(old) - set(names))
        self._state = {k: v for k, v in self._state.items() if k[0] not in changed}
        self._zones = {
            r.name: PolygonZone(r.zone, r.anchor) for r in rules if isinstance(r, ZoneRule) and r.zone is not None
        }
        self.rules = list(rules)
        return sorted(changed)

    def line_counts(self, stream: str) -> dict[str, tuple[int, int]]:
        """``rule name -> (count_in, count_out)`` of the line rules that have seen ``stream`` (for displays;
        safe to call from another thread: it only reads counters)."""
        items = tuple(self._state.items())  # one C-level copy: the inference thread may add keys meanwhile
        return {
            rule: (s.counter.count_in, s.counter.count_out)
            for (rule, name), s in items
            if name == stream and s.counter is not None
        }

    def _new_state(self, rule: Rule) -> _StreamState:
        state = _StreamState(_Gate(rule.min_duration_s, rule.cooldown_s))
        if isinstance(rule, LineCrossRule):
            state.counter = LineCounter(*rule.line, anchor=rule.anchor, hysteresis_px=rule.hysteresis_px)
        return state

    def _select(self, rule: Rule, det: Detections) -> np.ndarray:
        """bool [N]: rows passing the rule's class and confidence filters."""
        keep = det.conf.detach().cpu().numpy() >= np.float32(rule.min_conf)  # compare as the model scored
        if rule.classes:
            ids = _class_ids(rule, det.names)
            keep &= np.isin(det.cls.detach().cpu().numpy(), list(ids))
        return keep

    def _zone(
        self, rule: ZoneRule, state: _StreamState, det: Detections, selected: np.ndarray, t: float
    ) -> list[tuple[tuple[AlarmObject, ...], dict[str, Any]]]:
        zone = self._zones.get(rule.name)
        inside = selected & zone.contains(det) if zone is not None else selected
        if isinstance(rule, DwellRule):
            return self._dwell(rule, state, det, selected, inside, t)
        count = int(inside.sum())
        need = rule.min_count if isinstance(rule, CountRule) else 1
        if not state.gate.step(t, count >= need):
            return []
        held = t - state.gate.true_since if state.gate.true_since is not None else 0.0
        details: dict[str, Any] = {"count": count, "held_s": held}
        if isinstance(rule, CountRule):
            details["min_count"] = rule.min_count
        return [(_objects(det, inside), details)]

    def _dwell(
        self,
        rule: DwellRule,
        state: _StreamState,
        det: Detections,
        selected: np.ndarray,
        inside: np.ndarray,
        t: float,
    ) -> list[tuple[tuple[AlarmObject, ...], dict[str, Any]]]:
        ids = _track_ids(rule, det)
        objs = _objects(det, np.ones(len(det), dtype=bool))
        for i, tid in enumerate(ids):
            if inside[i]:
                stay = state.stays.get(tid)
                if stay is None:
                    state.stays[tid] = _Stay(t, t, objs[i])
                else:
                    stay.last_seen, stay.obj = t, objs[i]
            elif selected[i]:  # seen outside the zone: the stay is over
                state.stays.pop(tid, None)
        # Unseen for longer than max_gap_s: gone (or lost by the tracker), the stay is over.
        state.stays = {k: s for k, s in state.stays.items() if t - s.last_seen <= rule.max_gap_s}
        dwelling = sorted((k, s) for k, s in state.stays.items() if s.last_seen - s.since >= rule.dwell_s)
        if not state.gate.step(t, bool(dwelling)):
            return []
        stays = [{"track_id": k, "dwell_s": round(s.last_seen - s.since, 3)} for k, s in dwelling]
        return [(tuple(s.obj for _, s in dwelling), {"dwell_s": rule.dwell_s, "stays": stays})]

    def _line_cross(
        self, rule: LineCrossRule, state: _StreamState, det: Detections, selected: np.ndarray, t: float
    ) -> list[tuple[tuple[AlarmObject, ...], dict[str, Any]]]:
        _track_ids(rule, det)
        counter = state.counter
        assert counter is not None
        before = (counter.count_in, counter.count_out)
        crossed_in, crossed_out = counter.update(det[selected])
        count_in, count_out = before
        objs = _objects(det[selected], np.ones(int(selected.sum()), dtype=bool))
        fired = []
        for i in np.flatnonzero(crossed_in | crossed_out).tolist():
            direction = "in" if crossed_in[i] else "out"
            count_in, count_out = count_in + crossed_in[i], count_out + crossed_out[i]
            if direction not in rule.directions:
                continue
            if state.last_fire is not None and t - state.last_fire < rule.cooldown_s:
                continue
            state.last_fire = t
            details = {"direction": direction, "count_in": int(count_in), "count_out": int(count_out)}
            fired.append(((objs[i],), details))
        return fired

    def _snapshot(self, result: FrameResult, rule: Rule, state: _StreamState) -> bytes:
        from yolostream.pipeline.annotate import draw_detections, encode_jpeg

        zone = self._zones.get(rule.name)
        image = draw_detections(
            result.frame.image,
            result.detections,
            zones=[zone] if zone is not None else [],
            lines=[state.counter] if state.counter is not None else [],
            title=f"{rule.name} | {result.frame.stream} | {rule.severity}",
        )
        return encode_jpeg(image, self.jpeg_quality)


def _class_ids(rule: Rule, names: Mapping[int, str]) -> set[int]:
    by_name = {v: k for k, v in names.items()}
    ids = set()
    for c in rule.classes:
        if isinstance(c, str):
            if c not in by_name:
                raise ConfigError(
                    f"rule {rule.name!r}: class {c!r} is not a class of the model; known: {sorted(by_name)}"
                )
            ids.add(int(by_name[c]))
        else:
            ids.add(int(c))
    return ids


def _track_ids(rule: Rule, det: Detections) -> list[int]:
    if det.tracker_id is None:
        if len(det) == 0:
            return []
        raise ConfigError(f"rule {rule.name!r} ({rule.kind}) needs tracked detections: enable tracking")
    return det.tracker_id.tolist()


def _objects(det: Detections, mask: np.ndarray) -> tuple[AlarmObject, ...]:
    """The rows of ``det`` under ``mask`` as `AlarmObject`s."""
    rows = det.to_list()
    return tuple(
        AlarmObject(
            track_id=r.get("track_id"),
            cls=r["cls"],
            name=r["name"],
            conf=r["conf"],
            xyxy=tuple(r["xyxy"]),
        )
        for r, m in zip(rows, mask.tolist(), strict=True)
        if m
    )
