"""yolostream: clean-room YOLO detection in plain PyTorch, compiled inference, multi-camera pipelines."""

from yolostream.api import load
from yolostream.detections import Detections
from yolostream.detector import Detector, DetectorConfig

__all__ = ["Detections", "Detector", "DetectorConfig", "load"]
__version__ = "0.1.0"
