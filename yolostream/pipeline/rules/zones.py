"""Zones and lines in frame pixels: each is an object with one method taking `Detections`, giving masks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from yolostream.detections import Detections
from yolostream.errors import ConfigError

ANCHORS = ("bottom_center", "center")
Point = tuple[float, float]


def anchor_points(det: Detections, anchor: str = "bottom_center") -> np.ndarray:
    """The point of each box that stands for the object: float64 [N, 2] ``(x, y)`` in frame pixels.

    ``bottom_center`` is where an upright object meets the floor, so a floor zone drawn in a tilted
    camera view holds the people standing on it, not the ones whose heads overlap it.
    """
    xyxy = det.xyxy.detach().cpu().numpy().astype(np.float64)
    cx = (xyxy[:, 0] + xyxy[:, 2]) / 2
    if anchor == "bottom_center":
        return np.stack([cx, xyxy[:, 3]], axis=1)
    if anchor == "center":
        return np.stack([cx, (xyxy[:, 1] + xyxy[:, 3]) / 2], axis=1)
    raise ConfigError(f"anchor must be one of {ANCHORS}, got {anchor!r}")


def _points(value: Sequence[Sequence[float]], key: str, min_points: int) -> np.ndarray:
    try:
        pts = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{key} must be a list of [x, y] points, got {value!r}") from e
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < min_points or not np.isfinite(pts).all():
        raise ConfigError(f"{key} must be at least {min_points} finite [x, y] points, got {value!r}")
    return pts


class PolygonZone:
    """A polygon in frame pixels; `contains` says which detections' anchors lie inside it.

    Args:
        polygon: vertices ``[(x, y), ...]`` (3 or more, in order; the last joins the first).
        anchor: ``"bottom_center"`` or ``"center"`` of each box.
    """

    def __init__(self, polygon: Sequence[Sequence[float]], anchor: str = "bottom_center") -> None:
        if anchor not in ANCHORS:
            raise ConfigError(f"zone anchor must be one of {ANCHORS}, got {anchor!r}")
        self.polygon = _points(polygon, "zone polygon", 3)  # float64 [P, 2]
        self.anchor = anchor

    def contains(self, det: Detections) -> np.ndarray:
        """bool [N]: the anchor is inside the polygon (even-odd rule; points exactly on an edge may go either way)."""
        pts = anchor_points(det, self.anchor)
        x, y = pts[:, 0:1], pts[:, 1:2]  # [N, 1] against edges [1, P]
        x1, y1 = self.polygon[None, :, 0], self.polygon[None, :, 1]
        x2, y2 = np.roll(x1, -1, axis=1), np.roll(y1, -1, axis=1)
        straddles = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        crossings = straddles & (x < x_cross)
        return (crossings.sum(axis=1) % 2) == 1


class LineCounter:
    """Counts tracked objects crossing the segment ``start -> end``, per direction.

    Sides are taken as seen on screen (x right, y down): "in" is a crossing from the left of
    ``start -> end`` to its right, "out" the reverse. For a line drawn left to right, "in" is moving down
    the picture. An object crosses when its anchor goes from one side to the other and the path
    between its two positions meets the segment itself (not the line's extension beyond the ends).

    Jitter: a side is only taken when the anchor is more than ``hysteresis_px`` from the line; inside
    that band the object keeps its last side. A box wobbling on the line is thus counted once, when it
    leaves the band on the far side. Each track's last side is kept; a track unseen for ``forget_after``
    updates is forgotten (its next sighting sets a side without counting).
    """

    def __init__(
        self,
        start: Sequence[float],
        end: Sequence[float],
        anchor: str = "bottom_center",
        hysteresis_px: float = 2.0,
        forget_after: int = 300,
    ) -> None:
        pts = _points([start, end], "line", 2)
        if np.allclose(pts[0], pts[1]):
            raise ConfigError(f"line start and end must differ, got {start!r} and {end!r}")
        if anchor not in ANCHORS:
            raise ConfigError(f"line anchor must be one of {ANCHORS}, got {anchor!r}")
        if not hysteresis_px >= 0:
            raise ConfigError(f"line hysteresis_px must be >= 0, got {hysteresis_px!r}")
        self.start, self.end = pts[0], pts[1]
        self.anchor, self.hysteresis_px, self.forget_after = anchor, float(hysteresis_px), forget_after
        self.count_in = 0
        self.count_out = 0
        self._tracks: dict[int, tuple[int, np.ndarray, int]] = {}  # id -> (side, point on it, update no.)
        self._updates = 0

    def signed_distance(self, points: np.ndarray) -> np.ndarray:
        """float64 [N]: pixels from the line, positive on the right of ``start -> end`` (on screen)."""
        d = self.end - self.start
        rel = points - self.start
        return (d[0] * rel[:, 1] - d[1] * rel[:, 0]) / np.hypot(d[0], d[1])

    def update(self, det: Detections) -> tuple[np.ndarray, np.ndarray]:
        """``(crossed_in, crossed_out)``, bool [N] each, for this frame's tracked detections."""
        n = len(det)
        crossed_in, crossed_out = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        self._updates += 1
        if n and det.tracker_id is None:
            raise ConfigError("LineCounter needs tracked detections (tracker_id is None): run a tracker first")
        if n:
            pts = anchor_points(det, self.anchor)
            dist = self.signed_distance(pts)
            sides = np.where(dist > self.hysteresis_px, 1, np.where(dist < -self.hysteresis_px, -1, 0))
            for i, tid in enumerate(det.tracker_id.tolist()):
                prev = self._tracks.get(tid)
                if sides[i] == 0:  # in the band: keep the last side
                    if prev is not None:
                        self._tracks[tid] = (prev[0], prev[1], self._updates)
                    continue
                if prev is not None and prev[0] != sides[i] and self._on_segment(prev[1], pts[i]):
                    if sides[i] > 0:
                        crossed_in[i] = True
                        self.count_in += 1
                    else:
                        crossed_out[i] = True
                        self.count_out += 1
                self._tracks[tid] = (int(sides[i]), pts[i], self._updates)
        if self._updates % 64 == 0:  # prune now and then; a dict scan per frame is wasted work
            oldest = self._updates - self.forget_after
            self._tracks = {k: v for k, v in self._tracks.items() if v[2] >= oldest}
        return crossed_in, crossed_out

    def _on_segment(self, p0: np.ndarray, p1: np.ndarray) -> bool:
        """The path ``p0 -> p1`` (on opposite sides of the line) meets the line within the segment."""
        d0, d1 = self.signed_distance(np.stack([p0, p1]))
        q = p0 + (p1 - p0) * (d0 / (d0 - d1))
        d = self.end - self.start
        t = float(np.dot(q - self.start, d) / np.dot(d, d))
        return 0.0 <= t <= 1.0

    def reset(self) -> None:
        """Zero the counts and forget every track."""
        self.count_in = self.count_out = 0
        self._tracks.clear()
