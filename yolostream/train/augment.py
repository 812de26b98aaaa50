"""Training augmentations on one picture: random affine (with mosaic's canvas), colour jitter, flips.

Geometry is one affine map per sample, a 3x3 matrix ``M`` taking *source* pixel coordinates to *output*
pixel coordinates (continuous frame: pixel ``i`` covers ``[i, i + 1)``, so a box ``[x1, x2)`` maps with
its edges). The picture is warped once with PIL (bilinear, grey 114 where nothing maps), and every label
box goes through the same ``M``: its four corners are mapped, their bounding box taken, clipped to the
output, and dropped when it became too thin or mostly left the picture (`keep_boxes`).

``M = T_out @ Shear @ RotScale @ T_centre``: the source's centre goes to the output's centre, is rotated
and scaled about it, then moved by the random translation (a fraction of the output side).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

__all__ = [
    "PAD_VALUE",
    "AugmentConfig",
    "flip_boxes",
    "hsv_jitter",
    "hsv_matrix",
    "is_axis_aligned",
    "keep_boxes",
    "paste_scaled",
    "random_affine",
    "transform_boxes",
    "warp",
]

PAD_VALUE = 114  # grey where the warp reaches outside the source, as letterboxing pads


@dataclass(frozen=True)
class AugmentConfig:
    """Strengths of the training augmentations (0 switches one off).

    Attributes:
        hsv_h: hue shift, up to this fraction of the hue circle either way.
        hsv_s, hsv_v: saturation / value gain in ``[1 - x, 1 + x]``.
        degrees: rotation up to this many degrees either way.
        translate: shift up to this fraction of the output side, per axis, either way.
        scale: zoom factor in ``[1 - scale, 1 + scale]``.
        shear: shear up to this many degrees either way, per axis.
        fliplr, flipud: probability of a horizontal / vertical flip.
        mosaic: probability that a sample is a mosaic of four pictures (while mosaic is enabled).
        min_side: boxes thinner than this (output pixels) after the warp are dropped.
        min_visible: boxes keeping less than this fraction of their warped area inside the picture are dropped.
    """

    hsv_h: float = 0.015
    hsv_s: float = 0.7
    hsv_v: float = 0.4
    degrees: float = 0.0
    translate: float = 0.1
    scale: float = 0.5
    shear: float = 0.0
    fliplr: float = 0.5
    flipud: float = 0.0
    mosaic: float = 1.0
    min_side: float = 2.0
    min_visible: float = 0.1


def _translation(tx: float, ty: float) -> np.ndarray:
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def random_affine(
    rng: np.random.Generator, cfg: AugmentConfig, centre_xy: tuple[float, float], out_size: int
) -> tuple[np.ndarray, float]:
    """A random source -> output matrix (float64 [3, 3]) and its zoom factor.

    ``centre_xy`` is the source point that lands at the output centre before the random translation:
    the centre of the letterboxed picture, or of mosaic's ``2S x 2S`` canvas (whose middle ``S x S`` is
    then what an unzoomed, untranslated sample shows). Always draws the same six numbers from ``rng``.
    """
    u = rng.uniform(-1.0, 1.0, size=6)
    angle = math.radians(u[0] * cfg.degrees)
    zoom = 1.0 + u[1] * cfg.scale
    shx, shy = (math.tan(math.radians(v * cfg.shear)) for v in u[2:4])
    tx, ty = (v * cfg.translate * out_size for v in u[4:6])
    cos, sin = math.cos(angle) * zoom, math.sin(angle) * zoom
    rot_scale = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
    shear = np.array([[1.0, shx, 0.0], [shy, 1.0, 0.0], [0.0, 0.0, 1.0]])
    centre = _translation(-centre_xy[0], -centre_xy[1])
    out = _translation(out_size / 2 + tx, out_size / 2 + ty)
    return out @ shear @ rot_scale @ centre, zoom


def is_axis_aligned(matrix: np.ndarray) -> bool:
    """True when ``matrix`` only scales (the same positive factor on both axes) and translates."""
    return matrix[0, 1] == 0 and matrix[1, 0] == 0 and matrix[0, 0] > 0 and matrix[0, 0] == matrix[1, 1]


def paste_scaled(
    out: Image.Image, img: Image.Image, matrix: np.ndarray, src: tuple[float, float, float, float] | None = None
) -> None:
    """Draw the ``src`` rectangle of ``img`` (``x1, y1, x2, y2``; default all of it) into ``out`` under an
    axis-aligned ``matrix``, with PIL's resize (separable, antialiased when shrinking).

    The destination is cut to whole output pixels inside both ``out`` and the mapped rectangle; the resize
    ``box`` is exactly the source of those pixels, so the map stays the continuous one boxes go through.
    At most one pixel along each cut edge stays ``out``'s own colour instead of a partial blend.
    """
    s, tx, ty = float(matrix[0, 0]), float(matrix[0, 2]), float(matrix[1, 2])
    x1, y1, x2, y2 = src if src is not None else (0.0, 0.0, float(img.width), float(img.height))
    ox1, oy1 = max(0, math.ceil(x1 * s + tx)), max(0, math.ceil(y1 * s + ty))
    ox2, oy2 = min(out.width, math.floor(x2 * s + tx)), min(out.height, math.floor(y2 * s + ty))
    if ox2 <= ox1 or oy2 <= oy1:
        return
    box = (
        max(x1, (ox1 - tx) / s),
        max(y1, (oy1 - ty) / s),
        min(x2, (ox2 - tx) / s),
        min(y2, (oy2 - ty) / s),
    )
    out.paste(img.resize((ox2 - ox1, oy2 - oy1), Image.Resampling.BILINEAR, box=box), (ox1, oy1))


def warp(img: Image.Image, matrix: np.ndarray, out_size: int) -> Image.Image:
    """The ``out_size`` square picture of ``img`` under ``matrix`` (source -> output), bilinear, pad 114.

    Scale + translation (the default augmentation) goes through `paste_scaled`, 2x cheaper; anything else
    through PIL's affine transform, which wants the inverse (output -> source) map and samples at pixel
    centres, matching the continuous frame boxes are mapped in.
    """
    if is_axis_aligned(matrix):
        out = Image.new("RGB", (out_size, out_size), (PAD_VALUE,) * 3)
        paste_scaled(out, img, matrix)
        return out
    inv = np.linalg.inv(matrix)
    coeffs = tuple(float(v) for v in inv[:2].reshape(-1))
    return img.transform(
        (out_size, out_size),
        Image.Transform.AFFINE,
        coeffs,
        resample=Image.Resampling.BILINEAR,
        fillcolor=(PAD_VALUE,) * 3,
    )


def transform_boxes(xyxy: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Boxes float [N, 4] ``x1 y1 x2 y2`` -> the bounding boxes of their mapped corners, float64 [N, 4]."""
    if len(xyxy) == 0:
        return np.zeros((0, 4))
    x1, y1, x2, y2 = (xyxy[:, i].astype(np.float64) for i in range(4))
    corners = np.stack([np.stack([x1, y1]), np.stack([x2, y1]), np.stack([x2, y2]), np.stack([x1, y2])])  # [4, 2, N]
    mapped = np.einsum("ij,kjn->kin", matrix[:2, :2], corners) + matrix[:2, 2][None, :, None]
    return np.concatenate([mapped.min(axis=0), mapped.max(axis=0)]).T


def keep_boxes(
    warped: np.ndarray, size: int, cfg: AugmentConfig, whole: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Clip warped boxes [N, 4] to the ``size`` square; return them and a bool [N] mask of those kept.

    Dropped: thinner than ``cfg.min_side`` pixels on either axis once clipped, or keeping less than
    ``cfg.min_visible`` of their whole warped area inside the picture (what remains is a sliver of the
    object). ``whole``: the warped boxes before any earlier cut (mosaic crops pictures at its canvas
    edge), by default ``warped`` itself.
    """
    clipped = warped.clip(0.0, float(size))
    w, h = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    ref = warped if whole is None else whole
    full = (ref[:, 2] - ref[:, 0]) * (ref[:, 3] - ref[:, 1])
    visible = w * h / np.maximum(full, 1e-9)
    keep = (w >= cfg.min_side) & (h >= cfg.min_side) & (visible >= cfg.min_visible)
    return clipped, keep


def hsv_matrix(hue: float, saturation: float, value: float) -> np.ndarray:
    """The 3x3 colour matrix (on RGB column vectors) of a hue turn, a saturation gain and a value gain.

    Hue: a rotation by ``hue`` turns (1.0 = the full circle) about the grey axis ``r = g = b``; saturation:
    each pixel's distance from its own grey (the mean of its channels) times ``saturation``; value: every
    channel times ``value``. Greys stay grey under the first two. The three commute.
    """
    k = np.full(3, 1 / np.sqrt(3))
    theta = 2 * np.pi * hue
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    turn = np.cos(theta) * np.eye(3) + (1 - np.cos(theta)) * np.outer(k, k) + np.sin(theta) * cross
    grey = np.full((3, 3), 1 / 3)
    return value * (grey + saturation * (np.eye(3) - grey)) @ turn


def hsv_jitter(img: Image.Image, rng: np.random.Generator, cfg: AugmentConfig) -> Image.Image:
    """Random hue turn (up to ``hsv_h`` of the circle) and saturation / value gains (``1 +- hsv_s``, ``hsv_v``).

    Applied as one colour matrix (`hsv_matrix`) by PIL in a single pass, clipped to 0..255: about 10x
    cheaper than converting to HSV and back, and the same kind of jitter. Always draws three numbers.
    """
    u = rng.uniform(-1.0, 1.0, size=3)
    if cfg.hsv_h == 0 and cfg.hsv_s == 0 and cfg.hsv_v == 0:
        return img
    m = hsv_matrix(u[0] * cfg.hsv_h, 1 + u[1] * cfg.hsv_s, 1 + u[2] * cfg.hsv_v)
    coeffs = tuple(float(v) for row in m for v in (*row, 0.0))
    return img.convert("RGB", matrix=coeffs)


def flip_boxes(xyxy: np.ndarray, size: int, horizontal: bool, vertical: bool) -> np.ndarray:
    """Boxes [N, 4] in a ``size`` square after mirroring the picture left-right and/or top-bottom."""
    out = xyxy.copy()
    if horizontal:
        out[:, [0, 2]] = size - xyxy[:, [2, 0]]
    if vertical:
        out[:, [1, 3]] = size - xyxy[:, [3, 1]]
    return out
