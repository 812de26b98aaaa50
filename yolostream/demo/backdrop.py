"""The scene behind the parts: concrete floor, moving rubber belt with cleats, rails, reject tray, pusher.

Everything static is drawn once per scene into a float32 picture; the belt is a texture periodic along x
(one period of noise and cleats, tiled), so the belt at time t is a slice of it shifted by the distance
travelled. The pusher's paddle is the only other moving thing. ``flat=True`` makes a featureless scene
(one grey everywhere, no paddle) for tests that need to tell part pixels from background pixels.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from yolostream.demo.layout import SceneLayout

__all__ = ["FLAT_GREY", "Backdrop"]

FLAT_GREY = 60.0
_BELT = (46.0, 48.0, 52.0)
_CLEAT = (64.0, 66.0, 70.0)
_STEEL = (150.0, 153.0, 158.0)
_FLOOR = (104.0, 104.0, 99.0)
_TRAY = (84.0, 88.0, 94.0)
_YELLOW = (214.0, 176.0, 40.0)
_HOUSING = (72.0, 74.0, 78.0)
_PADDLE = (168.0, 140.0, 52.0)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int, amp: float) -> np.ndarray:
    """Low-frequency mottling: random values on a coarse grid, bilinearly enlarged. float32 [h, w]."""
    coarse = rng.uniform(-amp, amp, size=(max(2, h // cell), max(2, w // cell))).astype(np.float32)
    return np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BILINEAR))


def _fill(img: np.ndarray, x1: float, y1: float, x2: float, y2: float, colour: tuple[float, ...]) -> None:
    h, w = img.shape[:2]
    r1, r2 = max(0, round(y1)), min(h, round(y2))
    c1, c2 = max(0, round(x1)), min(w, round(x2))
    if r2 > r1 and c2 > c1:
        img[r1:r2, c1:c2] = colour


class Backdrop:
    """The background of one scene; `at(t)` gives a fresh float32 [H, W, 3] picture of it at time ``t``."""

    def __init__(self, layout: SceneLayout, seed: int = 0, flat: bool = False) -> None:
        self.layout, self.flat = layout, flat
        h, w, u = layout.height, layout.width, layout.unit
        if flat:
            self.static = np.full((h, w, 3), FLAT_GREY, np.float32)
            return
        rng = np.random.default_rng([seed, 101])
        floor = np.empty((h, w, 3), np.float32)
        floor[:] = _FLOOR
        floor += (_smooth_noise(rng, h, w, max(4, round(24 * u)), 9.0) + rng.normal(0, 2.5, (h, w)))[..., None]
        self.static = floor
        self._draw_tray(rng)
        lay = layout
        for y1, y2 in ((lay.belt_top - lay.rail, lay.belt_top), (lay.belt_bottom, lay.belt_bottom + lay.rail)):
            _fill(floor, 0, y1, w, y2, _STEEL)
            _fill(floor, 0, y1 + 1, w, y1 + 2, (185.0, 188.0, 192.0))  # highlight along the rail edge
            for x in np.arange(12 * u, w, 48 * u):  # rail bolts
                _fill(floor, x - 1.5 * u, (y1 + y2) / 2 - 1.5 * u, x + 1.5 * u, (y1 + y2) / 2 + 1.5 * u, (96.0,) * 3)
        for y in (lay.belt_top - lay.rail - 6 * u, lay.belt_bottom + lay.rail):  # light barrier on the line
            _fill(floor, lay.line_x - 5 * u, y, lay.line_x + 5 * u, y + 6 * u, (36.0, 36.0, 40.0))
            _fill(floor, lay.line_x - 1.5 * u, y + 2 * u, lay.line_x + 1.5 * u, y + 4 * u, (200.0, 40.0, 30.0))
        px, hw = lay.push_x, 34 * u
        _fill(floor, px - hw, 0.06 * h, px + hw, lay.belt_top - lay.rail, _HOUSING)  # pusher housing
        _fill(floor, px - hw, 0.06 * h, px + hw, 0.06 * h + 3 * u, _YELLOW)
        self._belt_texture(rng)

    def _draw_tray(self, rng: np.random.Generator) -> None:
        """Steel tray with a yellow-and-black hazard border, in the reject zone."""
        u, img = self.layout.unit, self.static
        x1, y1, x2, y2 = self.layout.zone_box
        b = max(2.0, 4 * u)
        _fill(img, x1 - b, y1 - b, x2 + b, y2 + b, _YELLOW)
        r1, r2, c1, c2 = (max(0, round(v)) for v in (y1 - b, y2 + b, x1 - b, x2 + b))
        yy, xx = np.mgrid[r1 : min(r2, img.shape[0]), c1 : min(c2, img.shape[1])]
        stripes = ((xx + yy) // max(2, round(8 * u))) % 2 == 0
        img[r1 : r1 + stripes.shape[0], c1 : c1 + stripes.shape[1]][stripes] = (30.0, 30.0, 30.0)
        _fill(img, x1, y1, x2, y2, _TRAY)
        r1, r2, c1, c2 = round(y1), round(y2), round(x1), round(x2)
        img[r1:r2, c1:c2] += rng.normal(0, 2.0, (r2 - r1, c2 - c1, 1)).astype(np.float32)

    def _belt_texture(self, rng: np.random.Generator) -> None:
        lay, u = self.layout, self.layout.unit
        rows = lay.belt_bottom - lay.belt_top
        spacing = max(4, round(40 * u))
        self.period = spacing * 8
        tile = np.empty((rows, self.period, 3), np.float32)
        tile[:] = _BELT
        tile += rng.normal(0, 3.0, (rows, self.period, 1)).astype(np.float32)
        cleat = max(1, round(3 * u))
        for x in range(0, self.period, spacing):
            tile[:, x : x + cleat] = _CLEAT
        reps = -(-(lay.width + self.period) // self.period)
        self.belt = np.tile(tile, (1, reps, 1))[:, : lay.width + self.period]

    def at(self, t: float, paddle_bottom: float | None = None) -> np.ndarray:
        """The background at ``t`` seconds (belt moved by ``speed * t``), paddle down to ``paddle_bottom``."""
        img = self.static.copy()
        if self.flat:
            return img
        lay = self.layout
        shift = round(lay.speed * t) % self.period
        img[lay.belt_top : lay.belt_bottom] = self.belt[:, self.period - shift : self.period - shift + lay.width]
        if paddle_bottom is not None:
            u, px = lay.unit, lay.push_x
            rest = lay.belt_top - lay.rail
            _fill(img, px - 3 * u, rest, px + 3 * u, paddle_bottom - 4 * u, (120.0, 122.0, 126.0))  # the rod
            _fill(img, px - 29 * u, paddle_bottom - 6 * u, px + 29 * u, paddle_bottom, _PADDLE)
        return img
