"""Checkpoint readers: Ultralytics `.pt` files (read without torch.load) and yolostream's `.safetensors`."""

from __future__ import annotations

import os

from yolostream.errors import CheckpointError
from yolostream.weights.native import read_native, save_native
from yolostream.weights.raw import RawCheckpoint
from yolostream.weights.sniff import describe, kind_of, read_head
from yolostream.weights.ultralytics_pickle import read_ultralytics_checkpoint


def read_checkpoint(path: str | os.PathLike) -> RawCheckpoint:
    """Read any checkpoint yolostream understands, chosen by the file's first bytes, not its name.

    A zip is an Ultralytics torch.save checkpoint (a `.pt2` AOTInductor package is refused with a pointer to
    `yolostream.load`); a safetensors header is yolostream's native format. CheckpointError otherwise.
    """
    p, head = read_head(path)
    kind = kind_of(head)
    if kind == "zip" and p.suffix == ".pt2":
        raise CheckpointError(f"{p}: is an AOTInductor package; load it with yolostream.load")
    if kind in ("zip", "legacy_torch"):
        return read_ultralytics_checkpoint(p)
    if kind == "safetensors":
        return read_native(p)
    raise CheckpointError(
        f"{p}: is not a checkpoint yolostream can read (an Ultralytics .pt or a yolostream .safetensors); "
        f"it looks like {describe(head)}"
    )


__all__ = ["RawCheckpoint", "read_checkpoint", "read_native", "read_ultralytics_checkpoint", "save_native"]
