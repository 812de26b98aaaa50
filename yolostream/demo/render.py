"""Compositing a demo picture: backdrop, shadows, parts, then light, sensor noise and blur over it all.

Each part's ground-truth box is measured on what was drawn: the pixels its sprite covers at least half
(alpha >= 0.5, where an antialiased edge really is; the fainter fringe may spill one pixel past it) inside
the frame, in pixel-edge coordinates (``x2`` is one past the last column). A part cut by the frame
edge gets the box of its visible pixels and its ``visible`` fraction (of its alpha mass, 1.0 when whole);
one entirely outside gets none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from yolostream.demo.backdrop import Backdrop
from yolostream.demo.layout import SceneLayout
from yolostream.demo.sprites import Sprite, sprite_bank

__all__ = ["Look", "Placement", "Renderer"]

_NOISE_BANK = 4
_NOISE_SIGMA = 3.0


@dataclass(frozen=True)
class Placement:
    """One part to draw: its sprite (``bank[cls][sprite]``), centre ``(x, y)`` in pixels, colour gains."""

    part_id: int
    cls: int
    sprite: int
    x: float
    y: float
    shade: tuple[float, float, float] = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class Look:
    """Photometric variation of one picture (ignored by a flat renderer).

    ``gain``: overall light; ``grad_x``, ``grad_y``: relative change of light across the frame;
    ``vignette``: darkening at the corners; ``noise``: sensor noise in units of 3 grey levels;
    ``noise_index``: which stored noise pattern; ``blur``: Gaussian blur radius in pixels (0: none).
    """

    gain: float = 1.0
    grad_x: float = 0.0
    grad_y: float = 0.0
    vignette: float = 0.1
    noise: float = 1.0
    noise_index: int = 0
    blur: float = 0.0


class Renderer:
    """Draws pictures of one scene layout. ``flat=True``: a uniform grey backdrop, no shadows, no light or
    noise: every pixel that is not exactly `FLAT_GREY` belongs to a part."""

    def __init__(self, layout: SceneLayout, seed: int = 0, flat: bool = False) -> None:
        self.layout, self.flat = layout, flat
        self.bank = sprite_bank(layout.unit)
        self.backdrop = Backdrop(layout, seed, flat)
        h, w = layout.height, layout.width
        if not flat:
            rng = np.random.default_rng([seed, 202])
            self._noise = rng.normal(0, _NOISE_SIGMA, (_NOISE_BANK, h, w, 3)).astype(np.float32)
            self._xs = np.linspace(-0.5, 0.5, w, dtype=np.float32)
            self._ys = np.linspace(-0.5, 0.5, h, dtype=np.float32)
            self._r2 = 2 * (self._xs[None, :] ** 2 + self._ys[:, None] ** 2)

    def sprite(self, cls: int, index: int) -> Sprite:
        return self.bank[cls][index]

    def render(
        self, t: float, parts: list[Placement], paddle_bottom: float | None = None, look: Look | None = None
    ) -> tuple[np.ndarray, list[tuple[int, int, int, int, int, int, float]]]:
        """The picture at time ``t`` (belt position) with ``parts``, uint8 [H, W, 3] RGB, and the boxes
        ``(part_id, cls, x1, y1, x2, y2, visible)`` of the parts that show, in drawing order."""
        img = self.backdrop.at(t, paddle_bottom)
        u = self.layout.unit
        boxes = []
        for p in parts:
            spr = self.bank[p.cls][p.sprite]
            w, h = spr.size
            x0, y0 = round(p.x - w / 2), round(p.y - h / 2)
            if not self.flat:
                self._paste(img, spr.alpha * 0.45, None, x0 + round(2 * u), y0 + round(3 * u))  # shadow
            box = self._paste(img, spr.alpha, spr.rgb * np.asarray(p.shade, np.float32), x0, y0)
            if box is not None:
                boxes.append((p.part_id, p.cls, *box[:4], box[4]))
        if not self.flat:
            lk = look or Look()
            light = lk.gain * (1 + lk.grad_x * self._xs)[None, :] * (1 + lk.grad_y * self._ys)[:, None]
            img *= (light * (1 - lk.vignette * self._r2))[..., None]
            if lk.noise:
                noise = self._noise[lk.noise_index % _NOISE_BANK]
                img += noise if lk.noise == 1 else noise * np.float32(lk.noise)
        out = np.clip(img, 0, 255).astype(np.uint8)
        if not self.flat and look is not None and look.blur > 0:
            out = np.asarray(Image.fromarray(out).filter(ImageFilter.GaussianBlur(look.blur)))
        return out, boxes

    @staticmethod
    def _paste(
        img: np.ndarray, alpha: np.ndarray, rgb: np.ndarray | None, x0: int, y0: int
    ) -> tuple[int, int, int, int, float] | None:
        """Blend ``rgb`` (None: black, a shadow) over ``img`` at top-left ``(x0, y0)``; box of what shows and
        the fraction of the alpha mass that shows (rounded to 0.01)."""
        H, W = img.shape[:2]
        h, w = alpha.shape
        c1, r1, c2, r2 = max(0, x0), max(0, y0), min(W, x0 + w), min(H, y0 + h)
        if c2 <= c1 or r2 <= r1:
            return None
        a = alpha[r1 - y0 : r2 - y0, c1 - x0 : c2 - x0]
        region = img[r1:r2, c1:c2]
        if rgb is None:
            region *= (1 - a)[..., None]
            return None
        region += (rgb[r1 - y0 : r2 - y0, c1 - x0 : c2 - x0] - region) * a[..., None]
        solid = a >= 0.5
        rows, cols = np.nonzero(solid.any(axis=1))[0], np.nonzero(solid.any(axis=0))[0]
        if len(rows) == 0:
            return None
        visible = 1.0 if a.shape == alpha.shape else round(float(a.sum() / alpha.sum()), 2)
        return c1 + int(cols[0]), r1 + int(rows[0]), c1 + int(cols[-1]) + 1, r1 + int(rows[-1]) + 1, visible
