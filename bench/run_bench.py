"""Run the benchmark of the compiled-engine issue and keep its results under bench/results/.

    python bench/run_bench.py            # CPU acceptance: yolov8n-random 640x640, batch 1, eager/compiled/AOT,
                                         # fp32 + bf16, ONNX Runtime + OpenVINO, shapes models' detections checked
    python bench/run_bench.py gpu        # CUDA: fp16, eager vs reduce-overhead, batch 1/8/32/64
    python bench/run_bench.py gpu --batch 1,8    # the same in parts (results named by batch)
    python bench/run_bench.py gpu --model yolov8s.pt   # another model than the preset's
    python bench/run_bench.py cpu --iters 50   # anything else after the preset goes to `yolostream bench` as is
    python bench/run_bench.py backends   # CPU backends issue: yolov8n-random 640, batch 1, inductor / openvino /
                                         # onnxruntime x fp32 / int8, interleaved, calibrated on the fixture images
    python bench/run_bench.py backends --model /tmp/yolov8s-random.safetensors   # (bench/make_random_scale.py)

Needs the reference fixtures ($YOLOSTREAM_FIXTURES, else ../shared/fixtures beside the repo) and a quiet
machine: the CPU figures are worthless while anything else is running.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def fixtures() -> Path:
    path = Path(os.environ.get("YOLOSTREAM_FIXTURES") or REPO.parent / "shared" / "fixtures")
    if not (path / "checkpoints").is_dir():
        raise SystemExit(f"fixtures not found at {path}: set YOLOSTREAM_FIXTURES")
    return path


def preset(name: str, fx: Path) -> list[str]:
    checkpoints, images = fx / "checkpoints", fx / "images"
    pictures = [str(p) for p in [*sorted(images.glob("scene_*.jpg")), *sorted((images / "synth").glob("*.jpg"))]]
    if name == "cpu":
        return [
            str(checkpoints / "yolov8n-random.pt"),
            *("--device", "cpu", "--imgsz", "640", "--batch", "1"),
            *("--modes", "eager,default,aoti", "--dtype", "fp32,bf16", "--iters", "200", "--warmup", "10"),
            *("--baseline", "onnxruntime,openvino"),
            *("--check-images", *pictures),
            *("--check-models", str(checkpoints / "yolo11n-shapes.pt"), str(checkpoints / "yolo26n-shapes.pt")),
        ]
    if name == "gpu":
        return [
            str(checkpoints / "yolov8n-random.pt"),
            *("--device", "cuda", "--imgsz", "640", "--batch", "1,8,32,64"),
            *("--modes", "eager,reduce-overhead", "--dtype", "fp16", "--iters", "200", "--warmup", "20"),
            *("--check-images", *pictures),
            *("--check-models", str(checkpoints / "yolo11n-shapes.pt"), str(checkpoints / "yolo26n-shapes.pt")),
        ]
    if name == "backends":
        return [
            str(checkpoints / "yolov8n-random.pt"),
            *("--device", "cpu", "--imgsz", "640", "--batch", "1"),
            *("--backends", "inductor-fp32,inductor-int8,openvino-fp32,openvino-int8,onnxruntime-fp32"),
            *("--calib", str(images), "--rounds", "10", "--iters", "100", "--warmup", "3"),
            *("--check-images", *(str(p) for p in sorted(images.glob("scene_*.jpg")))),
        ]
    raise SystemExit(f"unknown preset {name!r}: cpu, gpu or backends")


def main(argv: list[str]) -> int:
    name = argv[0] if argv and not argv[0].startswith("-") else "cpu"
    extra = argv[1:] if argv and not argv[0].startswith("-") else list(argv)
    args = preset(name, fixtures())
    if "--model" in extra:  # another model than the preset's (e.g. a yolov8s checkpoint on the GPU)
        i = extra.index("--model")
        args[0] = extra[i + 1]
        del extra[i : i + 2]
    sys.path.insert(0, str(REPO))  # run from a checkout without installing
    from yolostream.cli.main import main as cli

    return cli(["bench", *args, "--out-dir", str(RESULTS), *extra])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
