"""Where things are in the demo scene: the belt, its lanes, the counting line, the pusher and the reject tray.

Top view of a conveyor running left to right across the frame. Every size is a fraction of the frame so
a scene of any size looks the same; ``unit`` is one pixel of the 640-wide reference frame.

- belt: rows ``belt_top`` to ``belt_bottom``, with a steel rail above and below;
- counting line: the vertical segment ``line`` across the belt at ``line_x``, drawn from the bottom rail
  to the top one, so that in `yolostream.pipeline` terms a part moving right crosses it "in";
- pusher: above the belt at ``push_x``; it pushes a part down across the belt into the reject tray;
- reject tray (``zone``): a rectangle below the belt centred on ``push_x``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CLASS_NAMES", "SceneLayout", "scene_layout"]

CLASS_NAMES = ("bolt", "nut", "gear", "bracket")

Point = tuple[float, float]


@dataclass(frozen=True)
class SceneLayout:
    """The fixed geometry of a demo scene of ``width x height`` pixels (x right, y down)."""

    width: int
    height: int
    unit: float
    belt_top: int
    belt_bottom: int
    rail: int
    lanes: tuple[float, ...]
    line_x: float
    push_x: float
    zone: tuple[Point, Point, Point, Point]
    speed: float

    @property
    def line(self) -> tuple[Point, Point]:
        """Counting line ``(start, end)``: bottom rail to top rail, so moving right is "in"."""
        return (self.line_x, float(self.belt_bottom + self.rail)), (self.line_x, float(self.belt_top - self.rail))

    @property
    def zone_box(self) -> tuple[float, float, float, float]:
        """The reject tray as ``x1, y1, x2, y2``."""
        (x1, y1), _, (x2, y2), _ = self.zone
        return x1, y1, x2, y2

    @property
    def zone_centre(self) -> Point:
        x1, y1, x2, y2 = self.zone_box
        return (x1 + x2) / 2, (y1 + y2) / 2


def scene_layout(width: int = 640, height: int = 384) -> SceneLayout:
    """The layout of a ``width x height`` scene (any size; 640 x 384 is the reference)."""
    if width < 64 or height < 48:
        raise ValueError(f"demo scene must be at least 64x48 pixels, got {width}x{height}")
    u = width / 640
    top, bottom = round(0.25 * height), round(0.71 * height)
    belt = bottom - top
    push_x = 0.36 * width
    zx1, zx2 = push_x - 0.085 * width, push_x + 0.085 * width
    zy1, zy2 = bottom + 0.05 * height, 0.99 * height
    return SceneLayout(
        width=width,
        height=height,
        unit=u,
        belt_top=top,
        belt_bottom=bottom,
        rail=max(2, round(0.035 * height)),
        lanes=tuple(top + f * belt for f in (0.2, 0.5, 0.8)),
        line_x=0.68 * width,
        push_x=push_x,
        zone=((zx1, zy1), (zx2, zy1), (zx2, zy2), (zx1, zy2)),
        speed=0.125 * width,
    )
