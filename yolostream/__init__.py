"""yolostream: clean-room YOLO detection in plain PyTorch, compiled inference, multi-camera pipelines."""

from yolostream.detections import Detections

__all__ = ["Detections"]
__version__ = "0.1.0"
