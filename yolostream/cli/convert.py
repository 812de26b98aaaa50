"""Convert an Ultralytics .pt checkpoint into yolostream's own format: a .safetensors file holding the
tensors plus JSON metadata (architecture description, class names, strides). The .pt is read without
running any code from it; the result loads with `yolostream.load()` and every command that takes MODEL.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="Ultralytics .pt checkpoint")
    p.add_argument("output", help="output .safetensors path")


def run(args: argparse.Namespace) -> int:
    from yolostream.models.load import model_from_checkpoint
    from yolostream.weights import read_checkpoint, save_native

    raw = read_checkpoint(args.input)
    _, spec = model_from_checkpoint(raw, fold_bn=False)  # refuse files we could not load later
    save_native(raw, args.output)
    print(
        f"{args.input} -> {args.output}: {spec.family}{spec.scale}, "
        f"{len(raw.names)} classes, {len(raw.state_dict)} tensors"
    )
    return 0
