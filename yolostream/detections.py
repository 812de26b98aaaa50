"""`Detections`: the one type that travels between every stage (model -> rules -> sinks)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class Detections:
    """Detections of one image.

    Attributes:
        xyxy: float32 [N, 4], boxes as ``[x1, y1, x2, y2]`` in pixels of the *original* image
            (before letterboxing), clipped to it.
        conf: float32 [N], confidence in [0, 1].
        cls: int64 [N], class index into ``names``.
        names: class index -> class name, shared by every image of a model.
        image_shape: ``(height, width)`` of the original image.
        tracker_id: int64 [N] track IDs when a tracker ran, else ``None``.

    Tensors live on the CPU unless a caller moves them; rows are sorted by ``conf``, highest first,
    as the postprocessing leaves them.
    """

    xyxy: torch.Tensor
    conf: torch.Tensor
    cls: torch.Tensor
    names: Mapping[int, str] = field(default_factory=dict)
    image_shape: tuple[int, int] = (0, 0)
    tracker_id: torch.Tensor | None = None

    def __post_init__(self) -> None:
        n = self.xyxy.shape[0]
        if self.xyxy.ndim != 2 or self.xyxy.shape[1] != 4:
            raise ValueError(f"xyxy must be [N, 4], got {tuple(self.xyxy.shape)}")
        if tuple(self.conf.shape) != (n,) or tuple(self.cls.shape) != (n,):
            raise ValueError(f"conf and cls must be [N={n}], got {tuple(self.conf.shape)} and {tuple(self.cls.shape)}")
        if self.tracker_id is not None and tuple(self.tracker_id.shape) != (n,):
            raise ValueError(f"tracker_id must be [N={n}], got {tuple(self.tracker_id.shape)}")

    @classmethod
    def empty(cls, names: Mapping[int, str] | None = None, image_shape: tuple[int, int] = (0, 0)) -> Detections:
        """No detections (for an image where nothing passed the threshold)."""
        return cls(
            xyxy=torch.zeros((0, 4), dtype=torch.float32),
            conf=torch.zeros((0,), dtype=torch.float32),
            cls=torch.zeros((0,), dtype=torch.int64),
            names=names or {},
            image_shape=image_shape,
        )

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __getitem__(self, index: torch.Tensor | slice | Sequence[int] | int) -> Detections:
        """Select rows with a boolean mask, an index tensor/list, a slice or one integer."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return replace(
            self,
            xyxy=self.xyxy[index],
            conf=self.conf[index],
            cls=self.cls[index],
            tracker_id=None if self.tracker_id is None else self.tracker_id[index],
        )

    @property
    def class_names(self) -> list[str]:
        """Name of each row's class (``str(cls)`` where the model has no name for it)."""
        return [self.names.get(int(c), str(int(c))) for c in self.cls.tolist()]

    def cpu(self) -> Detections:
        """The same detections with every tensor on the CPU."""
        return replace(
            self,
            xyxy=self.xyxy.cpu(),
            conf=self.conf.cpu(),
            cls=self.cls.cpu(),
            tracker_id=None if self.tracker_id is None else self.tracker_id.cpu(),
        )

    def with_tracker_id(self, tracker_id: torch.Tensor) -> Detections:
        """A copy carrying track IDs (int64 [N])."""
        return replace(self, tracker_id=tracker_id.to(torch.int64))

    def numpy(self) -> dict[str, np.ndarray]:
        """Arrays ``xyxy`` [N,4] float32, ``conf`` [N] float32, ``cls`` [N] int64 (+ ``tracker_id``)."""
        out = {
            "xyxy": self.xyxy.detach().cpu().numpy().astype(np.float32, copy=False),
            "conf": self.conf.detach().cpu().numpy().astype(np.float32, copy=False),
            "cls": self.cls.detach().cpu().numpy().astype(np.int64, copy=False),
        }
        if self.tracker_id is not None:
            out["tracker_id"] = self.tracker_id.detach().cpu().numpy().astype(np.int64, copy=False)
        return out

    def to_list(self) -> list[dict[str, Any]]:
        """One dict per row: ``{"xyxy": [x1, y1, x2, y2], "conf": c, "cls": k, "name": s}``."""
        rows = []
        names = self.class_names
        track = None if self.tracker_id is None else self.tracker_id.tolist()
        rows_in = zip(self.xyxy.tolist(), self.conf.tolist(), self.cls.tolist(), strict=True)
        for i, (box, conf, cls) in enumerate(rows_in):
            row: dict[str, Any] = {
                "xyxy": [round(v, 2) for v in box],
                "conf": round(conf, 5),
                "cls": int(cls),
                "name": names[i],
            }
            if track is not None:
                row["track_id"] = int(track[i])
            rows.append(row)
        return rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: image ``height``/``width`` and the ``detections`` rows of `to_list`."""
        return {"height": self.image_shape[0], "width": self.image_shape[1], "detections": self.to_list()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def to_supervision(self) -> Any:
        """A ``supervision.Detections`` (needs the optional ``supervision`` package)."""
        try:
            import supervision as sv
        except ImportError as e:  # optional dependency
            raise ImportError("to_supervision() needs: pip install supervision") from e
        arrays = self.numpy()
        return sv.Detections(
            xyxy=arrays["xyxy"],
            confidence=arrays["conf"],
            class_id=arrays["cls"],
            tracker_id=arrays.get("tracker_id"),
            data={"class_name": np.array(self.class_names, dtype=object)},
        )
