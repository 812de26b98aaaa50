"""The resume file: everything needed to continue a run after it was killed, written atomically per epoch.

Saved with `torch.save` and read back with ``weights_only=True``: tensors and plain containers only, so a
resume file, like a checkpoint, can never execute code when loaded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from yolostream.errors import CheckpointError

STATE_NAME = "last.state.pt"


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` through a temporary file and a rename, fsync'd: a kill -9 at any moment
    leaves either the previous complete file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_state(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"nothing to resume: {path} does not exist (run without --resume first)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise CheckpointError(f"{path}: unreadable resume file ({type(e).__name__}: {e})") from e
