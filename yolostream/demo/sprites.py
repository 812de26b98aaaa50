"""The parts, drawn once with PIL: every class at a few sizes and 24 rotations, lit from the top left.

A sprite is drawn 4x larger than needed, shrunk 2:1, rotated, shrunk 2:1 again (box filters), which
antialiases its edges; it is cropped to the pixels it covers, so its array's extent *is* the part's tight box. Colour
and alpha are kept apart (colour is valid where alpha > 0): compositing is ``bg * (1 - a) + rgb * a``.

Shapes (sizes in 640-frame pixels): bolt, a hex head beside a threaded shank (58 long); nut, a hexagon
with a bore (30 across corners); gear, twelve teeth round a hub (48 across); bracket, an L-shaped plate
with two holes (50 x 38). Each class has its own material colour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from yolostream.demo.layout import CLASS_NAMES

__all__ = ["ANGLES", "BASE_COLOURS", "SIZES", "Sprite", "sprite_bank"]

BASE_COLOURS = {  # RGB per class: steel, brass, copper, blue paint
    "bolt": (182, 186, 192),
    "nut": (200, 160, 62),
    "gear": (186, 112, 72),
    "bracket": (62, 106, 186),
}
SIZES = (0.88, 1.0, 1.12)
ANGLES = tuple(range(0, 360, 15))
_SS = 4  # supersampling factor


@dataclass(frozen=True)
class Sprite:
    """One drawn part: ``rgb`` float32 [h, w, 3] (0..255) and ``alpha`` float32 [h, w] (0..1), cropped tight."""

    cls: int
    rgb: np.ndarray
    alpha: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        """``(w, h)`` in pixels: the part's box."""
        return self.alpha.shape[1], self.alpha.shape[0]


def _shade(colour: tuple[int, int, int], f: float) -> tuple[int, int, int]:
    return tuple(int(max(0, min(255, round(c * f)))) for c in colour)  # type: ignore[return-value]


def _hexagon(cx: float, cy: float, r: float, phase: float = 0.0) -> list[tuple[float, float]]:
    return [(cx + r * math.cos(phase + k * math.pi / 3), cy + r * math.sin(phase + k * math.pi / 3)) for k in range(6)]


def _disc(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, fill: int | tuple[int, ...]) -> None:
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)


def _draw(name: str, s: float) -> tuple[Image.Image, Image.Image]:
    """The upright part at ``s`` supersampled pixels per 640-frame pixel: RGB and its alpha mask."""
    base = BASE_COLOURS[name]
    side = math.ceil(64 * s)
    rgb = Image.new("RGB", (side, side), base)
    mask = Image.new("L", (side, side), 0)
    d, m = ImageDraw.Draw(rgb), ImageDraw.Draw(mask)
    c = side / 2
    edge = _shade(base, 0.62)
    if name == "bolt":  # head [c-29, c-15] x [c-12, c+12], shank [c-15, c+29] x [c-5.5, c+5.5]
        head = (c - 29 * s, c - 12 * s, c - 15 * s, c + 12 * s)
        shank = (c - 15 * s, c - 5.5 * s, c + 29 * s, c + 5.5 * s)
        for box in (head, shank):
            m.rectangle(box, fill=255)
        d.rectangle(head, fill=base, outline=edge, width=max(1, round(s)))
        d.rectangle((head[0], c - 4 * s, head[2], c + 4 * s), fill=_shade(base, 1.12))  # the facet facing up
        d.rectangle(shank, fill=_shade(base, 0.95))
        for k in range(12):  # thread crests
            x = c - 12 * s + k * 3.4 * s
            d.line((x, shank[1], x + 1.2 * s, shank[3]), fill=_shade(base, 0.7), width=max(1, round(s)))
    elif name == "nut":
        hexagon = _hexagon(c, c, 15 * s, math.pi / 6)
        m.polygon(hexagon, fill=255)
        d.polygon(hexagon, fill=base, outline=edge, width=max(1, round(s)))
        _disc(d, c, c, 10 * s, _shade(base, 1.15))  # chamfer ring
        _disc(m, c, c, 6.5 * s, 0)  # the bore: the belt shows through
    elif name == "gear":
        teeth = 12
        for k in range(teeth):
            a = 2 * math.pi * k / teeth
            pts = [(19 * s, -2.6 * s), (24 * s, -1.8 * s), (24 * s, 1.8 * s), (19 * s, 2.6 * s)]
            tooth = [(c + x * math.cos(a) - y * math.sin(a), c + x * math.sin(a) + y * math.cos(a)) for x, y in pts]
            m.polygon(tooth, fill=255)
            d.polygon(tooth, fill=_shade(base, 0.9))
        _disc(m, c, c, 20 * s, 255)
        _disc(d, c, c, 20 * s, base)
        d.ellipse((c - 20 * s, c - 20 * s, c + 20 * s, c + 20 * s), outline=edge, width=max(1, round(s)))
        _disc(d, c, c, 10 * s, _shade(base, 1.18))  # hub
        for k in range(4):  # lightening holes
            a = math.pi / 4 + k * math.pi / 2
            _disc(m, c + 14.5 * s * math.cos(a), c + 14.5 * s * math.sin(a), 3 * s, 0)
        _disc(m, c, c, 5 * s, 0)  # shaft bore
    else:  # bracket: an L, long arm along x, short arm down the left
        poly = [(c - 25 * s, c - 19 * s), (c + 25 * s, c - 19 * s), (c + 25 * s, c - 3 * s), (c - 9 * s, c - 3 * s)]
        poly += [(c - 9 * s, c + 19 * s), (c - 25 * s, c + 19 * s)]
        m.polygon(poly, fill=255)
        d.polygon(poly, fill=base, outline=edge, width=max(1, round(s)))
        d.line((c - 9 * s, c - 3 * s, c - 25 * s, c - 3 * s), fill=_shade(base, 0.75), width=max(1, round(s)))
        for hx, hy in ((c + 17 * s, c - 11 * s), (c - 17 * s, c + 11 * s)):
            _disc(m, hx, hy, 3.5 * s, 0)
    return rgb, mask


def _finish(rgba: Image.Image, angle: float, base: tuple[int, int, int]) -> tuple[np.ndarray, ...]:
    """Rotate, shrink 4:1, light from the top left, crop to the covered pixels.

    ``rgba`` comes already halved (drawn at 4x, shrunk to 2x): a bilinear turn at 2x then a 2:1 shrink
    antialiases well enough at a quarter of the cost of turning at 4x. Colour and mask turn together as
    one RGBA picture (PIL stores RGB in 4 bytes a pixel anyway): one resampling per angle.
    """
    turned = rgba.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=(*base, 0))
    arr = np.asarray(turned.reduce(_SS // 2), dtype=np.float32)
    a = arr[..., 3] / 255
    a[a < 0.1] = 0  # faint rotation fringe: not part of the part's box
    ys, xs = np.nonzero(a)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    colour = arr[y0:y1, x0:x1, :3]
    h, w = y1 - y0, x1 - x0
    ramp = (np.arange(w)[None, :] / max(w - 1, 1) + np.arange(h)[:, None] / max(h - 1, 1)) / 2  # 0 top-left
    colour = colour * (1.12 - 0.24 * ramp)[..., None].astype(np.float32)
    return np.clip(colour, 0, 255), np.ascontiguousarray(a[y0:y1, x0:x1])


@lru_cache(maxsize=4)
def sprite_bank(unit: float) -> tuple[tuple[Sprite, ...], ...]:
    """Per class (in `CLASS_NAMES` order): every size x angle, ``len(SIZES) * len(ANGLES)`` sprites.

    ``unit`` is the scene's pixels per 640-frame pixel (`SceneLayout.unit`). Drawn once per unit.
    """
    bank = []
    for cls, name in enumerate(CLASS_NAMES):
        sprites = []
        for size in SIZES:
            rgb, mask = _draw(name, _SS * unit * size)
            rgba = rgb.copy()
            rgba.putalpha(mask)
            rgba = rgba.reduce(2)
            for angle in ANGLES:
                colour, alpha = _finish(rgba, angle, BASE_COLOURS[name])
                sprites.append(Sprite(cls, colour, alpha))
        bank.append(tuple(sprites))
    return tuple(bank)
