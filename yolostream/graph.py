"""`InferenceGraph`: uint8 letterboxed batch -> fixed-size candidate detections, as one pure module.

This is the unit that `yolostream.engine` compiles once per shape bucket: normalisation, the network,
box decoding and the first (fixed-size) stage of postprocessing. NMS, which is data-dependent, and the
mapping back to original pixels follow outside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from yolostream.models.head import decode_best
from yolostream.models.yolo import YOLO
from yolostream.postprocess.boxes import xywh_to_xyxy
from yolostream.postprocess.candidates import Candidates, select_best, select_candidates, topk_one_to_one


@dataclass(frozen=True)
class GraphConfig:
    """What the compiled graph bakes in. Changing any of these builds a new graph.

    one2one: use the end-to-end head's one-to-one branch and its top-k (``nms=False``), else the
        one-to-many branch and NMS candidates.
    max_candidates: NMS candidates kept per image (Ultralytics' ``max_nms``).
    multi_label: one candidate per (anchor, class) above conf instead of per anchor (validation).
    max_det: rows of the one-to-one top-k.
    amp: run the network under autocast to ``"bf16"`` or ``"fp16"`` (None: the weights' dtype). Boxes and
        scores leave the graph as float32 either way.
    channels_last: convert the input to channels-last memory order (CUDA: cuDNN's fast layout; on CPU
        Inductor's freezing picks layouts itself).
    """

    one2one: bool = False
    max_candidates: int = 30000
    multi_label: bool = False
    max_det: int = 300
    amp: str | None = None
    channels_last: bool = False


_AMP = {"bf16": torch.bfloat16, "fp16": torch.float16}


class InferenceGraph(nn.Module):
    """[B, 3, H, W] uint8 RGB letterboxed images, conf threshold -> `Candidates` in input pixels."""

    def __init__(self, model: YOLO, config: GraphConfig = GraphConfig(), dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.model = model
        self.config = config
        self.dtype = dtype  # the network's input dtype (its weights' dtype)
        # An INT8 network whose input quantization was exact takes the uint8 pixels as they are
        # (`yolostream.quant.pt2e.QuantizedNetwork`); every other network takes pixels / 255.
        self.pixels_in = bool(getattr(model, "takes_pixels", False))

    def forward(self, images: Tensor, conf: Tensor) -> Candidates:
        x = self.network_input(images)
        if hasattr(self.model, "levels") and not (self.config.one2one or self.config.multi_label):
            return self.best_per_anchor(x, conf)
        return self.all_scores(x, conf)

    def network_input(self, images: Tensor) -> Tensor:
        """uint8 [B, 3, H, W] -> what the network takes: pixels / 255 in its dtype (or the pixels themselves)."""
        # Division (not multiplication by 1/255) is what the reference does; it rounds differently.
        x = images if self.pixels_in else images.to(self.dtype) / 255
        return x.contiguous(memory_format=torch.channels_last) if self.config.channels_last else x

    def _autocast(self, device: torch.device) -> torch.autocast:
        amp = _AMP.get(self.config.amp)
        return torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None)

    def best_per_anchor(self, x: Tensor, conf: Tensor) -> Candidates:
        """NMS candidates from each anchor's best class only (`decode_best`: per level, one sigmoid per
        anchor), decoded in float32 outside autocast. Needs a network with per-level outputs (``levels``,
        ``strides``, ``reg_max``: `YOLO`, `yolostream.quant.pt2e.QuantizedNetwork`); one-to-many only."""
        with self._autocast(x.device):
            levels = self.model.levels(x)
        best = decode_best(levels, self.model.strides, self.model.reg_max)
        return select_best(best.boxes, best.scores, best.classes, conf, self.config.max_candidates)

    def all_scores(self, x: Tensor, conf: Tensor) -> Candidates:
        """Candidates from the network's decoded [B, 4 + nc, A] output: every path, every network kind."""
        with self._autocast(x.device):
            y = self.model(x, self.config.one2one)
        y = y.transpose(1, 2).float()  # [B, A, 4 + nc]
        boxes, scores = xywh_to_xyxy(y[..., :4]), y[..., 4:]
        if self.config.one2one:
            return topk_one_to_one(boxes, scores, self.config.max_det, conf)
        return select_candidates(boxes, scores, conf, self.config.max_candidates, multi_label=self.config.multi_label)
