"""The video's timeline: which parts ride the belt, where each is at time t, and the scripted rejects.

Parts move with the belt at ``layout.speed`` px/s; the belt is already full at t = 0. A *reject* takes the
part that reaches the pusher nearest a scripted time: the paddle comes down onto it, pushes it across the
belt into the reject tray (``push_s``), it lies there ``hold_s``, then drops out of the bottom of the frame
(``leave_s``), and the paddle goes back up. Parts that would be in the paddle's way are left off the belt.
A scripted hold longer than the dwell time makes a dwell alarm; a shorter one must not.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from yolostream.demo.layout import SceneLayout
from yolostream.demo.render import Placement
from yolostream.demo.sprites import Sprite

__all__ = ["Part", "RejectPlan", "Script", "default_rejects", "make_script"]

APPROACH_S = 0.25  # paddle coming down before the push
RETRACT_S = 0.3  # paddle going back up after it


@dataclass(frozen=True)
class RejectPlan:
    """Push starts at ``t_push`` (the part's centre under the pusher); times in seconds."""

    t_push: float
    hold_s: float
    push_s: float = 0.5
    leave_s: float = 0.7

    @property
    def t_end(self) -> float:
        return self.t_push + self.push_s + self.hold_s + self.leave_s


@dataclass(frozen=True)
class Part:
    """A part on the belt: centre ``x = u + speed * t`` at height ``lane_y`` until a reject takes it."""

    part_id: int
    cls: int
    sprite: int
    shade: tuple[float, float, float]
    u: float
    lane_y: float
    half: tuple[float, float]  # half width, half height of its box
    reject: RejectPlan | None = None


def _smooth(f: float) -> float:
    f = min(max(f, 0.0), 1.0)
    return f * f * (3 - 2 * f)


@dataclass(frozen=True)
class Script:
    """Everything that happens in a video of ``seconds`` at ``fps``, on ``layout``."""

    layout: SceneLayout
    seconds: float
    fps: float
    parts: tuple[Part, ...]

    @property
    def n_frames(self) -> int:
        return max(1, round(self.seconds * self.fps))

    def centre(self, part: Part, t: float) -> tuple[float, float] | None:
        """Centre of ``part`` at ``t``, or None once it has dropped out of the tray."""
        lay, r = self.layout, part.reject
        if r is None or t < r.t_push:
            return part.u + lay.speed * t, part.lane_y
        zone_y = lay.zone_centre[1]
        phase = t - r.t_push
        if phase < r.push_s:
            return lay.push_x, part.lane_y + (zone_y - part.lane_y) * _smooth(phase / r.push_s)
        phase -= r.push_s
        if phase < r.hold_s:
            return lay.push_x, zone_y
        phase -= r.hold_s
        if phase < r.leave_s:  # falls: accelerates out of the bottom of the frame
            drop = lay.height + 2 * part.half[1] - zone_y
            return lay.push_x, zone_y + drop * (phase / r.leave_s) ** 2
        return None

    def placements(self, t: float) -> list[Placement]:
        """The parts to draw at ``t`` (anything at least partly inside the frame)."""
        out = []
        for p in self.parts:
            c = self.centre(p, t)
            if (
                c is not None
                and -p.half[0] < c[0] < self.layout.width + p.half[0]
                and c[1] < self.layout.height + p.half[1]
            ):
                out.append(Placement(p.part_id, p.cls, p.sprite, c[0], c[1], p.shade))
        return out

    def paddle(self, t: float) -> float | None:
        """Bottom edge of the pusher's paddle at ``t`` (None: at rest inside its housing)."""
        lay = self.layout
        rest = float(lay.belt_top - lay.rail)
        for p in self.parts:
            r = p.reject
            if r is None or not r.t_push - APPROACH_S <= t <= r.t_push + r.push_s + RETRACT_S:
                continue
            lane_top = p.lane_y - p.half[1] - 1
            if t < r.t_push:
                return rest + (lane_top - rest) * _smooth((t - r.t_push + APPROACH_S) / APPROACH_S)
            c = self.centre(p, min(t, r.t_push + r.push_s))
            bottom = c[1] - p.half[1] - 1 if c is not None else rest
            if t <= r.t_push + r.push_s:
                return bottom
            return bottom + (rest - bottom) * _smooth((t - r.t_push - r.push_s) / RETRACT_S)
        return None


def default_rejects(seconds: float, dwell_s: float = 2.0) -> list[tuple[float, float]]:
    """``(time, hold_s)`` every 4.5 s from t = 2 s, alternating a long hold (dwell + 1 s, an alarm) and a
    short one (dwell - 1.2 s, no alarm), as many as finish inside the video."""
    out, k = [], 0
    while True:
        t, hold = 2.0 + 4.5 * k, dwell_s + 1.0 if k % 2 == 0 else max(0.3, dwell_s - 1.2)
        if t + 0.5 + hold + 0.7 + RETRACT_S > seconds - 0.5:
            return out
        out.append((t, hold))
        k += 1


def _overlaps(a: Part, b: Part, margin: float) -> bool:
    return abs(a.u - b.u) < a.half[0] + b.half[0] + margin and abs(a.lane_y - b.lane_y) < a.half[1] + b.half[1] + margin


def make_script(
    layout: SceneLayout,
    bank: tuple[tuple[Sprite, ...], ...],
    seconds: float,
    fps: float,
    seed: int = 0,
    rejects: list[tuple[float, float]] | None = None,
) -> Script:
    """A seeded timeline: parts spaced along the belt (in bursts now and then), and the ``rejects``
    (``(time, hold_s)``; default `default_rejects`)."""
    rng = np.random.default_rng([seed, 303])
    lay, u = layout, layout.unit
    margin = 6 * u
    parts: list[Part] = []
    pos = lay.width + 40 * u
    bag: list[int] = []
    while pos > -lay.speed * seconds - 40 * u:
        if not bag:  # classes in shuffled rounds: every class as often as the others
            bag = [int(c) for c in rng.permutation(len(bank))]
        cls = bag.pop()
        sprite = int(rng.integers(len(bank[cls])))
        w, h = bank[cls][sprite].size
        shade = tuple(float(v) for v in rng.uniform(0.86, 1.1) * rng.uniform(0.96, 1.04, 3))
        while True:  # the first lane where it fits, else a little further back (large parts are not lost)
            for lane in rng.permutation(len(lay.lanes)):
                y = lay.lanes[lane] + rng.uniform(-0.05, 0.05) * (lay.belt_bottom - lay.belt_top)
                y = min(max(y, lay.belt_top + h / 2 + 2), lay.belt_bottom - h / 2 - 2)
                part = Part(len(parts) + 1, cls, sprite, shade, pos, y, (w / 2, h / 2))  # type: ignore[arg-type]
                if not any(_overlaps(part, q, margin) for q in parts[-8:]):
                    break
            else:
                pos -= 0.02 * lay.width
                continue
            break
        parts.append(part)
        burst = rng.random() < 0.2
        pos -= (rng.uniform(0.015, 0.04) if burst else rng.uniform(0.05, 0.15)) * lay.width
    for k, (t_r, hold) in enumerate(default_rejects(seconds) if rejects is None else rejects):
        parts = _take_reject(parts, lay, t_r, hold, prefer=k % len(bank))
    return Script(lay, seconds, fps, tuple(parts))


def _take_reject(parts: list[Part], lay: SceneLayout, t_r: float, hold: float, prefer: int) -> list[Part]:
    """Give a part reaching the pusher near ``t_r`` a reject plan (class ``prefer`` if one arrives within
    1.5 s, else the nearest in time); drop the parts that would be in the paddle's way."""
    free = [p for p in parts if p.reject is None]
    if not free:
        return parts
    arrival = {p.part_id: (lay.push_x - p.u) / lay.speed for p in free}
    pick = min(
        free, key=lambda p: (p.cls != prefer or abs(arrival[p.part_id] - t_r) > 1.5, abs(arrival[p.part_id] - t_r))
    )
    plan = RejectPlan(t_push=arrival[pick.part_id], hold_s=hold)
    # Belt positions that pass under the paddle (half width 29 px) while it is below its housing.
    t0, t1 = plan.t_push - APPROACH_S, plan.t_push + plan.push_s + RETRACT_S
    reach = 29 * lay.unit + 4 * lay.unit
    kept = []
    for p in parts:
        if p.part_id == pick.part_id:
            kept.append(replace(p, reject=plan))
            continue
        lo, hi = p.u + lay.speed * t0 - p.half[0], p.u + lay.speed * t1 + p.half[0]
        if p.reject is None and lo < lay.push_x + reach and hi > lay.push_x - reach:
            continue  # would be hit by the paddle
        kept.append(p)
    return kept
