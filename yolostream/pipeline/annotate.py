"""Drawing detections, zones and lines onto frames (alarm snapshots, ``predict --save-dir``), and JPEG encoding."""

from __future__ import annotations

import colorsys
import io
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from yolostream.detections import Detections
from yolostream.errors import ShapeError

_ZONE_COLOR = (255, 196, 0)
_LINE_COLOR = (0, 220, 255)


@lru_cache(maxsize=256)
def class_color(cls: int) -> tuple[int, int, int]:
    """A stable RGB colour per class: hues a golden-ratio step apart, so neighbouring ids differ strongly."""
    h = (cls * 0.618033988749895 + 0.05) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.8, 0.95)
    return round(r * 255), round(g * 255), round(b * 255)


def _text_color(bg: tuple[int, int, int]) -> tuple[int, int, int]:
    luma = 0.299 * bg[0] + 0.587 * bg[1] + 0.114 * bg[2]  # ITU-R BT.601 weights
    return (0, 0, 0) if luma > 150 else (255, 255, 255)


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)  # scalable font, Pillow >= 10.1 with FreeType
    except (TypeError, OSError):
        return ImageFont.load_default()


def _check(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ShapeError(f"image must be an HxWx3 uint8 RGB array, got shape {shape} dtype {dtype}")


def _label(
    draw: ImageDraw.ImageDraw,
    xy: tuple[float, float],
    text: str,
    bg: tuple[int, int, int],
    font: Any,
    size: tuple[int, int],
) -> None:
    """``text`` on a filled ``bg`` box whose bottom-left sits at ``xy``, kept inside the image."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    pad = max(2, (bottom - top) // 5)
    tw, th = right - left + 2 * pad, bottom - top + 2 * pad
    x = min(max(xy[0], 0), max(size[0] - tw, 0))
    y = xy[1] - th
    if y < 0:  # no room above: go just inside the top edge
        y = xy[1] if xy[1] + th <= size[1] else 0
    draw.rectangle((x, y, x + tw, y + th), fill=bg)
    draw.text((x + pad - left, y + pad - top), text, fill=_text_color(bg), font=font)


def _polygon(zone: Any) -> list[tuple[float, float]]:
    pts = getattr(zone, "polygon", zone)
    return [(float(p[0]), float(p[1])) for p in pts]


def draw_detections(
    image: np.ndarray,
    det: Detections,
    zones: Iterable[Any] = (),
    lines: Iterable[Any] = (),
    title: str | None = None,
) -> np.ndarray:
    """A copy of ``image`` (HxWx3 uint8 RGB) with ``det`` drawn on it in its own pixel frame.

    Boxes take a per-class colour and a label ``"name conf #track"``. ``zones`` are `PolygonZone`s or
    point lists ``[(x, y), ...]``, drawn translucent under the boxes; ``lines`` are `LineCounter`s (drawn
    with their counts) or ``(start, end)`` pairs, with an arrow towards their "in" side. ``title`` goes
    in a banner at the bottom left. Line widths and text scale with the image size.
    """
    _check(image)
    h, w = image.shape[:2]
    longest = max(h, w)
    width = max(2, round(longest / 400))
    font = _font(int(np.clip(round(longest / 55), 11, 36)))
    canvas = Image.fromarray(image).convert("RGBA")

    overlay = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    polygons = [_polygon(z) for z in zones]
    for pts in polygons:
        draw.polygon(pts, fill=(*_ZONE_COLOR, 56))  # light tint: objects inside must stay visible
    canvas = Image.alpha_composite(canvas, overlay).convert("RGB")
    draw = ImageDraw.Draw(canvas)
    for pts in polygons:
        draw.line([*pts, pts[0]], fill=_ZONE_COLOR, width=width, joint="curve")

    for line in lines:
        start, end = (line.start, line.end) if hasattr(line, "start") else line
        _draw_line(draw, start, end, width, font, line, (w, h))

    arrays = det.numpy()
    names = det.class_names
    tracks = arrays.get("tracker_id")
    labels = []
    for i, (box, conf, cls) in enumerate(zip(arrays["xyxy"], arrays["conf"], arrays["cls"], strict=True)):
        color = class_color(int(cls))
        x1, y1, x2, y2 = (float(v) for v in box)
        draw.rectangle((x1, y1, x2, y2), outline=color, width=width)
        text = f"{names[i]} {conf:.2f}" + (f" #{int(tracks[i])}" if tracks is not None else "")
        labels.append(((x1 - width / 2, y1 - width / 2), text, color))
    for xy, text, color in labels:  # labels after all boxes, so no box is drawn over a label
        _label(draw, xy, text, color, font, (w, h))

    if title:
        _label(draw, (0, h), title, (24, 24, 24), font, (w, h))
    return np.array(canvas)


def _draw_line(
    draw: ImageDraw.ImageDraw,
    start: Sequence[float],
    end: Sequence[float],
    width: int,
    font: Any,
    counter: Any,
    size: tuple[int, int],
) -> None:
    (x0, y0), (x1, y1) = (float(start[0]), float(start[1])), (float(end[0]), float(end[1]))
    draw.line([(x0, y0), (x1, y1)], fill=_LINE_COLOR, width=width + 1)
    r = width * 2
    for x, y in ((x0, y0), (x1, y1)):
        draw.ellipse((x - r, y - r, x + r, y + r), fill=_LINE_COLOR)
    # Arrow from the midpoint towards the "in" side: the right of start -> end on screen is (-dy, dx).
    length = max(np.hypot(x1 - x0, y1 - y0), 1e-9)
    nx, ny = -(y1 - y0) / length, (x1 - x0) / length
    mx, my = (x0 + x1) / 2, (y0 + y1) / 2
    arrow = 8 * r
    tip = (mx + nx * arrow, my + ny * arrow)
    draw.line([(mx, my), tip], fill=_LINE_COLOR, width=width)
    side = (-ny * r * 2, nx * r * 2)
    back = (tip[0] - nx * r * 3, tip[1] - ny * r * 3)
    wings = [(back[0] + side[0], back[1] + side[1]), (back[0] - side[0], back[1] - side[1])]
    draw.polygon([tip, *wings], fill=_LINE_COLOR)
    counted = hasattr(counter, "count_in")
    text = f"in {counter.count_in} | out {counter.count_out}" if counted else "in"
    _label(draw, (x0 + r, y0 - r), text, _LINE_COLOR, font, size)


def encode_jpeg(image: np.ndarray, quality: int = 85, optimize: bool = True) -> bytes:
    """JPEG bytes of an HxWx3 uint8 RGB image; ``optimize=False`` skips the second Huffman pass (live video)."""
    _check(image)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality, optimize=optimize)
    return buf.getvalue()
