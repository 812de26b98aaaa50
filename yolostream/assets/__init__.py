"""Files shipped inside the package: the demo model, the default wherever a command takes a model."""

from __future__ import annotations

from pathlib import Path

from yolostream.errors import CheckpointError

DEMO_MODEL = Path(__file__).with_name("demo.safetensors")
# How the shipped file was made (kept in sync with examples/train_demo_model.sh).
DEMO_RECIPE = "examples/train_demo_model.sh"


def demo_model() -> Path:
    """The bundled demo model: yolo11 at yolostream's tiny scale, trained by `yolostream train` from scratch
    on `yolostream demo`'s conveyor scene (classes bolt, nut, gear, bracket; imgsz 320). Ours: Apache-2.0."""
    if not DEMO_MODEL.is_file():
        raise CheckpointError(f"the bundled demo model is missing from this installation ({DEMO_MODEL})")
    return DEMO_MODEL
