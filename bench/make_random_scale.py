"""Write a random-weight checkpoint of another scale of a reference model's description (e.g. yolov8s from
the yolov8n-random fixture), as a yolostream .safetensors file, for benchmarks at that size.

    python bench/make_random_scale.py ../shared/fixtures/checkpoints/yolov8n-random.pt s /tmp/yolov8s-random.safetensors

Weights: PyTorch's default init, BatchNorm statistics randomised as the fixtures' random models are (so the
folded convolutions are not identities). Speed does not depend on the values; detections on it mean nothing.
"""

from __future__ import annotations

import copy
import sys

import torch

from yolostream.models.builder import build
from yolostream.models.spec import parse_arch
from yolostream.weights import read_checkpoint, save_native


def main(src: str, scale: str, out: str, seed: int = 0) -> None:
    raw = read_checkpoint(src)
    spec = parse_arch(raw.arch, nc=len(raw.names)).with_scale(scale)
    torch.manual_seed(seed)
    model, paths = build(spec)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    prefix = {path: i for i, path in paths.items()}
    state = {}
    for key, value in model.state_dict().items():
        path = max((p for p in prefix if key.startswith(p + ".")), key=len)  # the innermost layer holding it
        state[f"model.{prefix[path]}.{key[len(path) + 1 :]}"] = value.detach().clone()
    out_raw = copy.copy(raw)
    out_raw.state_dict = state
    out_raw.arch = {**raw.arch, "scale": scale}
    save_native(out_raw, out)
    print(f"{out}: {spec.family}{scale}, {sum(v.numel() for v in model.parameters()):,} parameters")


if __name__ == "__main__":
    main(*sys.argv[1:4])
