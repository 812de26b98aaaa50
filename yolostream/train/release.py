"""Prepare a trained checkpoint for shipping: fp16 tensors (half the file, read back as float32) and
metadata that says what it is. ``python -m yolostream.train.release IN.safetensors OUT.safetensors``."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from yolostream.weights import read_checkpoint, save_native

LICENSE = "Apache-2.0: trained from scratch by yolostream on its own generated demo scene"


def release(src: str, dst: str) -> None:
    raw = read_checkpoint(src)
    base = str(raw.meta.get("base_model", ""))
    if Path(base).suffix in (".pt", ".safetensors"):  # fine-tuned from a file, not trained from scratch
        raise SystemExit(f"{src} was fine-tuned from {base}: its licence is that model's, not ours to set")
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in raw.state_dict.items()}
    save_native(replace(raw, state_dict=state, meta={**raw.meta, "license": LICENSE}), dst)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    release(sys.argv[1], sys.argv[2])
