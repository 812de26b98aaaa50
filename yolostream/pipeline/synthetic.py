"""A generated demo clip: flat-coloured shapes (box, disc, triangle) moving over a noisy gray background.

The shapes are the classes of the small ``shapes`` models used in tests and demos, so a clip made here
is something those models detect. Every path is periodic with the clip's length, so the clip loops
without a jump. What happens in one period (``u`` = time / length, positions as fractions of the frame):

- box: moves right from x = 0.15 to 0.85 (u 0 -> 0.5) and back, at y = 0.7: it crosses the vertical
  centre line once each way, and enters and leaves the right third of the frame once;
- disc: rises and falls between y = 0.17 and 0.45 at x = 0.22;
- triangle: circles around (0.65, 0.25).

No two paths meet, so every shape stays fully visible.

`examples/pipeline.yaml` places its zone and line on these paths. Writing needs PyAV.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np

# (kind, RGB colour, (w, h) as fractions of the frame)
SHAPES = (
    ("box", (130, 30, 140), (0.10, 0.18)),
    ("disc", (40, 170, 160), (0.12, 0.20)),
    ("triangle", (230, 150, 50), (0.09, 0.16)),
)


def _bounce(u: float, a: float, b: float) -> float:
    """a -> b -> a as u goes 0 -> 0.5 -> 1 (linear)."""
    f = 1.0 - abs(1.0 - 2.0 * (u % 1.0))
    return a + (b - a) * f


def centres(u: float) -> list[tuple[float, float]]:
    """Centre of each of `SHAPES` at clip phase ``u`` in [0, 1), fractions of the frame."""
    angle = 2.0 * math.pi * u
    return [
        (_bounce(u, 0.15, 0.85), 0.7),
        (0.22, _bounce(u + 0.25, 0.17, 0.45)),
        (0.65 + 0.12 * math.cos(angle), 0.25 + 0.1 * math.sin(angle)),
    ]


def boxes(u: float, width: int, height: int) -> list[tuple[str, tuple[float, float, float, float]]]:
    """``(kind, xyxy pixels)`` of each shape at phase ``u``."""
    out = []
    for (kind, _, (w, h)), (cx, cy) in zip(SHAPES, centres(u), strict=True):
        out.append((kind, ((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height)))
    return out


def background(width: int, height: int, seed: int = 0, level: int = 124, sigma: float = 8.0) -> np.ndarray:
    """Gray with static noise, HxWx3 uint8."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, sigma, (height, width, 3)).astype(np.float32)
    return np.clip(level + noise, 0, 255).astype(np.uint8)


def render(u: float, bg: np.ndarray) -> np.ndarray:
    """The frame at phase ``u`` on a copy of ``bg`` (HxWx3 uint8 RGB)."""
    img = bg.copy()
    height, width = img.shape[:2]
    for (kind, colour, _), (_, box) in zip(SHAPES, boxes(u, width, height), strict=True):
        x0, y0 = max(int(box[0]), 0), max(int(box[1]), 0)
        x1, y1 = min(math.ceil(box[2]), width), min(math.ceil(box[3]), height)
        if x1 <= x0 or y1 <= y0:
            continue
        xs = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5  # pixel centres
        ys = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5
        bw, bh = box[2] - box[0], box[3] - box[1]
        if kind == "box":
            mask = np.ones((y1 - y0, x1 - x0), dtype=bool)
        elif kind == "disc":
            mask = ((xs - box[0] - bw / 2) / (bw / 2)) ** 2 + ((ys - box[1] - bh / 2) / (bh / 2)) ** 2 <= 1.0
        else:  # apex up: the half width grows linearly from the apex to the base
            rel = (ys - box[1]) / bh
            mask = (rel >= 0) & (rel <= 1) & (np.abs(xs - box[0] - bw / 2) <= rel * bw / 2)
        img[y0:y1, x0:x1][mask] = colour
    return img


def write_demo_clip(
    path: str | Path, width: int = 1280, height: int = 720, fps: int = 25, seconds: float = 8.0, seed: int = 0
) -> Path:
    """Write one period of the scene as H.264 MP4 (keyframe every second, no B-frames). Returns the path."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = max(1, round(fps * seconds))
    bg = background(width, height, seed)
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(fps), "crf": "23"}
        stream = out.add_stream("libx264", rate=Fraction(fps), options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(render(i / n, bg), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path
