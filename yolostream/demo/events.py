"""Ground-truth events of a demo video, read off the drawn boxes frame by frame.

A part's position is its box centre (the pipeline rules' ``anchor: center``).

- ``line_cross``: on the first frame the centre is past the counting line's x, having been before it on
  the previous frame (the part seen on both), with its y within the segment. ``direction`` "in" for a
  part moving right (the line runs bottom to top), "out" the other way.
- ``zone_enter`` / ``zone_exit``: the centre comes inside / goes outside the reject polygon (or the part
  disappears); ``dwell_s`` on the exit is ``(exit frame - enter frame) / fps``.
- ``dwell``: on the first frame a stay has lasted ``dwell_s`` seconds (``(frame - enter) / fps >= dwell_s``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from yolostream.demo.layout import CLASS_NAMES, SceneLayout

__all__ = ["events_from_boxes", "inside_polygon"]

Box = Sequence[float]  # part_id, cls, x1, y1, x2, y2[, visible]


def inside_polygon(x: float, y: float, polygon: Sequence[tuple[float, float]]) -> bool:
    """Even-odd rule, the same as `yolostream.pipeline.rules.zones.PolygonZone`."""
    inside = False
    n = len(polygon)
    for i in range(n):
        (x1, y1), (x2, y2) = polygon[i], polygon[(i + 1) % n]
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def _event(kind: str, frame: int, fps: float, box: Box, **extra: Any) -> dict[str, Any]:
    pid, cls = int(box[0]), int(box[1])
    return {"type": kind, "frame": frame, "time": round(frame / fps, 4), "part_id": pid, "cls": cls,
            "name": CLASS_NAMES[cls], **extra}  # fmt: skip


def events_from_boxes(
    frames: Sequence[Sequence[Box]], layout: SceneLayout, fps: float, dwell_s: float
) -> list[dict[str, Any]]:
    """Every event, in frame order (within a frame: crossings, then zone events, each by part id)."""
    (lx, ly1), (_, ly2) = layout.line
    y_lo, y_hi = min(ly1, ly2), max(ly1, ly2)
    events: list[dict[str, Any]] = []
    prev: dict[int, tuple[float, float]] = {}
    stays: dict[int, tuple[int, bool, Box]] = {}  # part -> (enter frame, dwell reported, last box)
    for f, boxes in enumerate(frames):
        now: dict[int, tuple[float, float]] = {}
        for box in sorted(boxes, key=lambda b: b[0]):
            pid = int(box[0])
            cx, cy = (box[2] + box[4]) / 2, (box[3] + box[5]) / 2
            now[pid] = (cx, cy)
            if pid in prev and y_lo <= cy <= y_hi:
                px = prev[pid][0]
                if px < lx <= cx or cx < lx <= px:
                    events.append(_event("line_cross", f, fps, box, direction="in" if cx > px else "out"))
        for box in sorted(boxes, key=lambda b: b[0]):
            pid = int(box[0])
            inside = inside_polygon(*now[pid], layout.zone)
            if inside and pid not in stays:
                stays[pid] = (f, False, box)
                events.append(_event("zone_enter", f, fps, box))
            elif not inside and pid in stays:
                enter = stays.pop(pid)[0]
                events.append(_event("zone_exit", f, fps, box, dwell_s=round((f - enter) / fps, 4)))
            if inside:
                enter, reported, _ = stays[pid]
                if not reported and (f - enter) / fps >= dwell_s:
                    events.append(_event("dwell", f, fps, box, dwell_s=dwell_s))
                stays[pid] = (enter, reported or (f - enter) / fps >= dwell_s, box)
        for pid in sorted(set(stays) - set(now)):  # gone while inside: the stay ends here
            enter, _, box = stays.pop(pid)
            events.append(_event("zone_exit", f, fps, box, dwell_s=round((f - enter) / fps, 4)))
        prev = now
    return events
