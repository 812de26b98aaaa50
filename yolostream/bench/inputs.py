"""Inputs of a bench run: the frames it times and the pictures its accuracy check uses."""

from __future__ import annotations

import numpy as np

from yolostream.preprocess import to_rgb_chw


def noise_frames(count: int, height: int, width: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` uint8 RGB frames [height, width, 3] of uniform noise, the same for the same seed.

    Noise is as costly to run through the network as a real picture (dense convolutions do not look at
    content); only the number of candidates reaching NMS differs, which the check pictures cover.
    """
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def picture_frames(path: str, count: int) -> list[np.ndarray]:
    """A picture file as ``count`` uint8 RGB frames [H, W, 3] (copies, so no call shares a buffer)."""
    hwc = to_rgb_chw(path).permute(1, 2, 0).contiguous().numpy()
    return [hwc.copy() for _ in range(count)]


def timing_frames(count: int, imgsz: int, picture: str | None, seed: int = 0) -> list[np.ndarray]:
    """The frames timed end to end: ``picture`` when given, else noise of imgsz x imgsz."""
    return picture_frames(picture, count) if picture else noise_frames(count, imgsz, imgsz, seed)
