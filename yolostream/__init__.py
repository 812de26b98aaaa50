"""yolostream: clean-room YOLO detection in plain PyTorch, compiled inference, multi-camera pipelines."""

# First: it reads the CPU mask before torch is imported (OpenMP binding may pin this thread when torch loads).
from yolostream import cpus as _cpus  # noqa: F401
from yolostream.api import load
from yolostream.detections import Detections
from yolostream.detector import Detector, DetectorConfig

__all__ = ["Detections", "Detector", "DetectorConfig", "load"]
__version__ = "0.1.0"
