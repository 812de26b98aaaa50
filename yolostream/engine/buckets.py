"""Shape buckets: the fixed (batch, height, width) network inputs a compiled engine serves."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from yolostream.errors import ConfigError, ShapeError


class Bucket(NamedTuple):
    """One compiled input shape: ``batch`` images of ``height`` x ``width`` (multiples of 32)."""

    batch: int
    height: int
    width: int

    def __str__(self) -> str:
        return f"{self.batch}x{self.height}x{self.width}"

    def fits(self, batch: int, height: int, width: int) -> bool:
        return batch <= self.batch and height <= self.height and width <= self.width


def parse_bucket(value: str | Sequence[int] | Bucket) -> Bucket:
    """``"8x640x640"``, ``(8, 640, 640)`` or a `Bucket` -> `Bucket`, checked."""
    if isinstance(value, str):
        parts = value.lower().replace(",", "x").split("x")
        try:
            b, h, w = (int(p) for p in parts)
        except ValueError:
            raise ConfigError(f"bucket {value!r} is not BATCHxHEIGHTxWIDTH, e.g. 1x640x640") from None
    else:
        if len(value) != 3:
            raise ConfigError(f"bucket {value!r} must have three values (batch, height, width)")
        b, h, w = (int(v) for v in value)
    if b < 1 or h < 32 or w < 32 or h % 32 or w % 32:
        raise ConfigError(f"bucket {b}x{h}x{w}: batch must be >= 1 and height/width positive multiples of 32")
    return Bucket(b, h, w)


def parse_buckets(values: Iterable[str | Sequence[int] | Bucket]) -> tuple[Bucket, ...]:
    """Several buckets, duplicates removed, sorted by size (smallest first, so the first fit is the cheapest)."""
    buckets = sorted({parse_bucket(v) for v in values}, key=lambda k: (k.batch * k.height * k.width, k))
    if not buckets:
        raise ConfigError("at least one bucket is needed")
    return tuple(buckets)


def choose_bucket(buckets: Sequence[Bucket], batch: int, height: int, width: int) -> Bucket | None:
    """The bucket for a [batch, 3, height, width] input, or None when none holds it.

    A bucket of exactly that height and width wins (padding only the batch leaves every image's result as
    eager would give it); otherwise the smallest that holds the input (extra rows/columns of grey change the
    network's view near the border slightly). ``buckets`` are sorted by size.
    """
    fitting = [k for k in buckets if k.fits(batch, height, width)]
    exact = [k for k in fitting if (k.height, k.width) == (height, width)]
    return (exact or fitting or [None])[0]


def pad_to_bucket(images: torch.Tensor, bucket: Bucket, value: int = 114) -> torch.Tensor:
    """Fit uint8 [B, 3, H, W] into the bucket: extra rows/columns bottom/right with the letterbox grey (box
    coordinates stay valid, since the picture does not move), extra batch slots filled the same way."""
    b, _, h, w = images.shape
    if (b, h, w) == tuple(bucket):
        return images
    if not bucket.fits(b, h, w):
        raise ShapeError(f"input {b}x{h}x{w} does not fit bucket {bucket}")
    out = F.pad(images, (0, bucket.width - w, 0, bucket.height - h), value=value)
    if b < bucket.batch:
        out = torch.cat((out, out.new_full((bucket.batch - b, *out.shape[1:]), value)))
    return out
