"""The `Detections` type: validation, selection, conversions."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
import torch

from yolostream.detections import Detections

NAMES = {0: "box", 1: "disc"}


def _det() -> Detections:
    return Detections(
        xyxy=torch.tensor([[1.0, 2.0, 30.5, 40.25], [5.0, 5.0, 9.0, 9.0]]),
        conf=torch.tensor([0.9, 0.4]),
        cls=torch.tensor([1, 7]),
        names=NAMES,
        image_shape=(48, 64),
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"xyxy": torch.zeros(2, 3)}, "xyxy must be"),  # 3 columns
        ({"conf": torch.zeros(3)}, "conf and cls"),  # 3 confidences for 2 boxes
        ({"cls": torch.zeros(1, dtype=torch.int64)}, "conf and cls"),
        ({"tracker_id": torch.zeros(5, dtype=torch.int64)}, "tracker_id"),
    ],
)
def test_shapes_are_checked(kwargs, message):
    base = {"xyxy": torch.zeros(2, 4), "conf": torch.zeros(2), "cls": torch.zeros(2, dtype=torch.int64)}
    with pytest.raises(ValueError, match=message):
        Detections(**{**base, **kwargs})


def test_selection_and_names():
    d = _det()
    assert len(d) == 2 and d.class_names == ["disc", "7"]  # unknown ids fall back to the number
    strong = d[d.conf > 0.5]
    assert len(strong) == 1 and strong.cls.tolist() == [1] and strong.image_shape == (48, 64)
    assert d[-1].conf.tolist() == pytest.approx([0.4]) and d[0].conf.tolist() == pytest.approx([0.9])
    tracked = d.with_tracker_id(torch.tensor([3, 4]))
    assert tracked[1:].tracker_id.tolist() == [4]
    assert len(Detections.empty(NAMES, (10, 10))) == 0


def test_dict_json_numpy():
    d = _det().with_tracker_id(torch.tensor([3, 4]))
    as_dict = json.loads(d.to_json())
    assert as_dict["height"] == 48 and as_dict["width"] == 64
    assert as_dict["detections"][0] == {
        "xyxy": [1.0, 2.0, 30.5, 40.25],
        "conf": 0.9,
        "cls": 1,
        "name": "disc",
        "track_id": 3,
    }
    arrays = d.numpy()
    assert arrays["xyxy"].dtype == np.float32 and arrays["cls"].dtype == np.int64
    assert arrays["tracker_id"].tolist() == [3, 4]


def test_to_supervision_maps_fields(monkeypatch):
    # supervision is optional (it pulls in GUI OpenCV); check the mapping against a stand-in module that
    # records what it is given, the way supervision.Detections stores its fields.
    class FakeSvDetections:
        def __init__(self, xyxy, confidence, class_id, tracker_id=None, data=None):
            self.xyxy, self.confidence, self.class_id, self.tracker_id, self.data = (
                xyxy,
                confidence,
                class_id,
                tracker_id,
                data,
            )

    monkeypatch.setitem(sys.modules, "supervision", types.SimpleNamespace(Detections=FakeSvDetections))
    sv = _det().to_supervision()
    assert sv.xyxy.shape == (2, 4) and sv.class_id.tolist() == [1, 7] and sv.tracker_id is None
    assert sv.data["class_name"].tolist() == ["disc", "7"]


def test_to_supervision_without_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "supervision", None)  # import fails as if not installed
    with pytest.raises(ImportError, match="pip install supervision"):
        _det().to_supervision()
