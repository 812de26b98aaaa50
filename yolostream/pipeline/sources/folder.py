"""`ImageFolderSource`: the pictures of a folder in name order, as a stream of frames."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from yolostream.errors import ConfigError
from yolostream.pipeline.sources.base import Source

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


class ImageFolderSource(Source):
    """Image files of ``path`` (not recursive), sorted by name, decoded with Pillow as HxWx3 uint8 RGB.

    ``fps=None`` reads them as fast as the consumer takes them and loses none; ``fps=N`` plays them at N
    pictures per second like a camera (a lossy buffer of ``queue_size``). Unreadable pictures are counted
    in ``decode_errors`` and skipped. ``loop`` starts again after the last picture.
    """

    def __init__(
        self, name: str, path: str | Path, loop: bool = False, fps: float | None = None, queue_size: int = 2
    ) -> None:
        if fps is not None and not fps > 0:
            raise ConfigError(f"source {name!r}: fps must be > 0 or None, got {fps!r}")
        super().__init__(name, queue_size=queue_size, lossless=fps is None)
        self.path = Path(path)
        if not self.path.is_dir():
            raise ConfigError(f"source {name!r}: image folder not found: {self.path}")
        self.files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise ConfigError(f"source {name!r}: no images ({', '.join(IMAGE_SUFFIXES)}) in folder {self.path}")
        self.loop = loop
        self.rate = fps

    def _run(self) -> None:
        due = time.monotonic()
        while not self._stopping():
            delivered = 0
            for file in self.files:
                try:
                    image = _read_rgb(file)
                except (OSError, ValueError, SyntaxError) as e:  # what Pillow raises on bad files
                    self._decode_error(f"{file}: {e}")
                    continue
                if self.rate is not None:
                    now = time.monotonic()
                    if self._sleep(due - now):
                        return
                    due = max(due, now) + 1.0 / self.rate  # late: the next one a full period from now
                if not self._offer(lambda im=image: im):
                    return
                delivered += 1
            if not self.loop:
                return
            if delivered == 0:
                raise ConfigError(f"source {self.name!r}: no readable image in folder {self.path}")
