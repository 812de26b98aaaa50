"""Generated test media: moving shapes on a noisy gray background, with per-frame ground truth.

The pictures resemble the fixture training pictures (``fixtures/datasets/shapes``): filled boxes, discs
(ellipses) and apex-up triangles of distinct flat colours on a gray background with static pixel noise.
Shapes move along scripted piecewise-linear paths, so a test can say "the box enters the right half at
t = 1.0 s" and read the exact boxes per frame from `ground_truth`.

Coordinates: path points and sizes are fractions of the picture width/height (so one scene renders at any
resolution); `ground_truth` returns ``xyxy`` in pixels of the rendered picture, clipped to it.

Video writers need PyAV (``av``), imported lazily.
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

CLASS_NAMES = {0: "box", 1: "disc", 2: "triangle"}
_CLASS_OF = {name: cls for cls, name in CLASS_NAMES.items()}

# Access-unit clip format read by tests/gst_rtsp_serve.py: magic, fps as (num, den), then per frame a
# big-endian uint32 length and one H.264 access unit in Annex B form (SPS/PPS in band on keyframes).
AU_MAGIC = b"YSAU"


@dataclass(frozen=True)
class Shape:
    """One object of a scene.

    ``path`` is ``((t_s, cx, cy), ...)`` with strictly increasing times; the centre moves linearly between
    points and the shape exists only within ``[path[0][0], path[-1][0]]``. ``size`` is ``(w, h)``; both are
    fractions of the picture width/height.
    """

    kind: str  # "box" | "disc" | "triangle"
    color: tuple[int, int, int]
    size: tuple[float, float]
    path: tuple[tuple[float, float, float], ...]

    @property
    def cls(self) -> int:
        return _CLASS_OF[self.kind]

    def centre(self, t: float) -> tuple[float, float] | None:
        """Normalised centre at time ``t`` seconds, or None when the shape is not in the scene."""
        pts = self.path
        if t < pts[0][0] or t > pts[-1][0]:
            return None
        for (t0, x0, y0), (t1, x1, y1) in itertools.pairwise(pts):
            if t <= t1:
                a = (t - t0) / (t1 - t0)
                return x0 + a * (x1 - x0), y0 + a * (y1 - y0)
        return pts[-1][1], pts[-1][2]


@dataclass(frozen=True)
class GroundTruth:
    """Where one shape is in one frame: ``xyxy`` float pixels, clipped to the picture."""

    cls: int
    name: str
    xyxy: tuple[float, float, float, float]


@dataclass(frozen=True)
class Scene:
    """A clip: size in pixels, frame rate, length and the shapes that move in it."""

    width: int = 640
    height: int = 360
    fps: int = 25
    n_frames: int = 50
    shapes: tuple[Shape, ...] = field(default_factory=lambda: default_shapes())
    background: int = 124
    noise_sigma: float = 8.0
    seed: int = 0

    def time(self, index: int) -> float:
        """Media time of frame ``index`` in seconds."""
        return index / self.fps


def default_shapes() -> tuple[Shape, ...]:
    """Three shapes with scripted paths (times in seconds, positions as fractions).

    - box (purple): crosses left to right at mid height, x = 0.1 at t = 0 to 0.9 at t = 2; its centre passes
      x = 0.5 at t = 1.0.
    - disc (teal): falls top to bottom on the left third, y = 0.15 to 0.85 over t = 0..2.
    - triangle (orange): enters at t = 0.5, moves diagonally, leaves the scene after t = 1.5.
    """
    return (
        Shape("box", (130, 30, 140), (0.12, 0.25), ((0.0, 0.1, 0.5), (2.0, 0.9, 0.5))),
        Shape("disc", (40, 170, 160), (0.10, 0.18), ((0.0, 0.25, 0.15), (2.0, 0.25, 0.85))),
        Shape("triangle", (230, 150, 50), (0.14, 0.22), ((0.5, 0.6, 0.2), (1.5, 0.8, 0.8))),
    )


def _box_px(scene: Scene, shape: Shape, t: float) -> tuple[float, float, float, float] | None:
    c = shape.centre(t)
    if c is None:
        return None
    cx, cy = c[0] * scene.width, c[1] * scene.height
    w, h = shape.size[0] * scene.width, shape.size[1] * scene.height
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


def ground_truth(scene: Scene, index: int) -> list[GroundTruth]:
    """Boxes of the shapes visible in frame ``index`` (scene order), ``xyxy`` pixels clipped to the picture."""
    out = []
    for shape in scene.shapes:
        box = _box_px(scene, shape, scene.time(index))
        if box is None:
            continue
        x1, y1 = max(box[0], 0.0), max(box[1], 0.0)
        x2, y2 = min(box[2], float(scene.width)), min(box[3], float(scene.height))
        if x2 > x1 and y2 > y1:
            out.append(GroundTruth(shape.cls, shape.kind, (x1, y1, x2, y2)))
    return out


def _background(scene: Scene) -> np.ndarray:
    # Static noise: like the fixture pictures, but cheap for the encoder after the first keyframe.
    rng = np.random.default_rng(scene.seed)
    noise = rng.normal(0.0, scene.noise_sigma, (scene.height, scene.width, 3))
    return np.clip(scene.background + noise, 0, 255).astype(np.uint8)


def _draw(img: np.ndarray, shape: Shape, box: tuple[float, float, float, float]) -> None:
    """Fill ``shape`` inside ``box`` (pixels; pixel centres at +0.5) on ``img`` in place."""
    h, w = img.shape[:2]
    x0, y0 = max(int(np.floor(box[0])), 0), max(int(np.floor(box[1])), 0)
    x1, y1 = min(int(np.ceil(box[2])), w), min(int(np.ceil(box[3])), h)
    if x1 <= x0 or y1 <= y0:
        return
    xs = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5
    ys = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5
    bw, bh = box[2] - box[0], box[3] - box[1]
    if shape.kind == "box":
        mask = (xs >= box[0]) & (xs < box[2]) & (ys >= box[1]) & (ys < box[3])
    elif shape.kind == "disc":
        u = (xs - (box[0] + bw / 2)) / (bw / 2)
        v = (ys - (box[1] + bh / 2)) / (bh / 2)
        mask = u * u + v * v <= 1.0
    else:  # apex-up isosceles triangle: the half-width grows linearly from the apex to the base
        rel = (ys - box[1]) / bh
        half = rel * bw / 2
        mask = (rel >= 0) & (rel <= 1) & (np.abs(xs - (box[0] + bw / 2)) <= half)
    img[y0:y1, x0:x1][mask] = shape.color


def render(scene: Scene, index: int, background: np.ndarray | None = None) -> np.ndarray:
    """Frame ``index`` as HxWx3 uint8 RGB. Pass ``background`` (from a previous call) to save work."""
    img = (_background(scene) if background is None else background).copy()
    for shape in scene.shapes:
        box = _box_px(scene, shape, scene.time(index))
        if box is not None:
            _draw(img, shape, box)
    return img


def frames(scene: Scene):
    """Yield every frame of the scene in order (HxWx3 uint8 RGB)."""
    bg = _background(scene)
    for i in range(scene.n_frames):
        yield render(scene, i, bg)


def _encoder_options(scene: Scene) -> dict[str, str]:
    # A keyframe every second bounds how long a reconnecting client waits for a decodable picture;
    # zerolatency turns B-frames off, so decode order equals display order.
    return {"preset": "ultrafast", "tune": "zerolatency", "g": str(scene.fps), "crf": "23"}


def write_mp4(path: str | Path, scene: Scene, faststart: bool = True) -> Path:
    """Encode the scene as H.264 (yuv420p) in MP4; ``faststart`` puts the index first (so a truncated copy
    still opens). Returns the path."""
    import av

    path = Path(path)
    opts = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=opts) as out:
        stream = out.add_stream("libx264", rate=scene.fps, options=_encoder_options(scene))
        stream.width, stream.height, stream.pix_fmt = scene.width, scene.height, "yuv420p"
        for img in frames(scene):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(stream.encode(None))
    return path


def write_au_clip(path: str | Path, scene: Scene) -> Path:
    """Encode the scene as H.264 access units for the RTSP test server (format: see ``AU_MAGIC``)."""
    import av

    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = scene.width, scene.height, "yuv420p"
    ctx.time_base = Fraction(1, scene.fps)
    ctx.framerate = Fraction(scene.fps, 1)
    # No global header: x264 then repeats SPS/PPS before every keyframe, so each loop (and each client)
    # can start decoding at a keyframe.
    ctx.options = _encoder_options(scene)
    units = []
    for i, img in enumerate(frames(scene)):
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = i
        units += [bytes(p) for p in ctx.encode(frame)]
    units += [bytes(p) for p in ctx.encode(None)]
    path = Path(path)
    with path.open("wb") as f:
        f.write(AU_MAGIC + struct.pack(">II", scene.fps, 1))
        for unit in units:
            f.write(struct.pack(">I", len(unit)) + unit)
    return path


def truncated_copy(src: str | Path, dst: str | Path, keep: float = 0.5) -> Path:
    """Copy the first ``keep`` fraction of the bytes of ``src`` (a recording cut short)."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * keep)])
    return Path(dst)


def corrupted_copy(src: str | Path, dst: str | Path, frames: tuple[int, int] = (10, 15), seed: int = 0) -> Path:
    """Copy ``src`` with random bytes over the middle half of the packets of frames ``[first, last)``.

    Aimed at packets (found with PyAV) rather than at a byte offset, so a test knows what is damaged: by
    default P-frames of the first second, with the keyframe at 1 s intact for the decoder to recover at.
    """
    import av

    data = bytearray(Path(src).read_bytes())
    rng = np.random.default_rng(seed)
    with av.open(str(src)) as container:
        for i, packet in enumerate(p for p in container.demux(video=0) if p.size):
            if frames[0] <= i < frames[1]:
                a, n = packet.pos + packet.size // 4, packet.size // 2
                data[a : a + n] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    Path(dst).write_bytes(bytes(data))
    return Path(dst)
