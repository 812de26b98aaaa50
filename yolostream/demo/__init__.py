"""The demo scene: a generated conveyor with parts of four kinds, a counting line and a reject zone.

`make_video` writes the clip the Quickstart runs on, with the ground truth of every box and event;
`make_dataset` writes labelled stills of the same scene for training; `score_video` scores a detector's
boxes on the video against that ground truth. ``python -m yolostream.demo --help`` or
``yolostream demo --help`` on the command line.
"""

from yolostream.demo.layout import CLASS_NAMES, SceneLayout, scene_layout
from yolostream.demo.score import score_video
from yolostream.demo.stills import make_dataset
from yolostream.demo.video import make_video

__all__ = ["CLASS_NAMES", "SceneLayout", "make_dataset", "make_video", "scene_layout", "score_video"]
