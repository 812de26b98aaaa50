"""`Detector`: images in, one `Detections` per image out, with Ultralytics' pre- and postprocessing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
from torch import Tensor

from yolostream.detections import Detections
from yolostream.graph import GraphConfig, InferenceGraph
from yolostream.models.spec import ArchSpec
from yolostream.models.yolo import YOLO
from yolostream.postprocess.candidates import Candidates
from yolostream.postprocess.nms import nms_keep
from yolostream.preprocess import (
    Letterbox,
    apply_letterbox,
    boxes_to_original_batched,
    inverse_params,
    plan_batch,
    to_rgb_chw,
)

LetterboxMode = Literal["square", "rect"]


@dataclass(frozen=True)
class DetectorConfig:
    """Thresholds and sizes, with Ultralytics' predict defaults.

    imgsz: network input side (square mode) or long side (rect mode), multiple of 32.
    conf: keep detections whose confidence is strictly greater.
    iou: NMS suppresses a box overlapping a kept one of the same class with IoU strictly greater.
    max_det: detections kept per image.
    mode: ``square`` letterboxes to imgsz x imgsz; ``rect`` pads the short side only to a multiple of 32
        (Ultralytics' single-image default), applied when every image of a batch has the same size.
    nms: for end-to-end heads (YOLOv10, YOLO26): True uses the one-to-many head + NMS (Ultralytics 8.4's
        default), False the one-to-one head's top-k with no NMS. Single-head families always use NMS.
    agnostic: NMS across classes.
    classes: keep only these class ids (None: all).
    max_candidates: boxes entering NMS per image at most (Ultralytics' ``max_nms``).
    multi_label: an anchor may yield one candidate per class above conf (what validation uses).
    """

    imgsz: int = 640
    conf: float = 0.25
    iou: float = 0.7
    max_det: int = 300
    mode: LetterboxMode = "square"
    nms: bool = True
    agnostic: bool = False
    classes: tuple[int, ...] | None = None
    max_candidates: int = 30000
    multi_label: bool = False

    def graph_config(self, end2end: bool) -> GraphConfig:
        return GraphConfig(
            one2one=end2end and not self.nms,
            max_candidates=self.max_candidates,
            multi_label=self.multi_label,
            max_det=self.max_det,
        )


@dataclass
class Batch:
    """A letterboxed batch ready for the graph: uint8 [B, 3, H, W] on the device and each image's plan."""

    images: Tensor
    plans: list[Letterbox]


class Detector:
    """A loaded model with its pre- and postprocessing. Create with `yolostream.load`.

    ``detector(images)`` takes one image or a list: file paths, HWC uint8 numpy arrays (RGB, or BGR with
    ``bgr=True``), uint8 tensors ([3, H, W] or [H, W, 3]) or PIL images; it returns one `Detections` per
    image with boxes in that image's original pixels.
    """

    def __init__(
        self,
        model: YOLO,
        spec: ArchSpec,
        names: dict[int, str],
        config: DetectorConfig = DetectorConfig(),
        device: str | torch.device = "cpu",
        source: str = "",
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.spec = spec
        self.names = dict(names)
        self.config = config
        self.source = source
        self.graph = InferenceGraph(self.model, config.graph_config(spec.end2end))
        # What runs the graph: eager by default; `yolostream.engine` installs compiled callables.
        self.runner: Callable[[Tensor, Tensor], Candidates] = self.graph

    @property
    def end2end(self) -> bool:
        return self.spec.end2end

    def with_config(self, **changes: Any) -> Detector:
        """A detector sharing this one's weights with some settings changed (e.g. ``conf=0.05``)."""
        config = replace(self.config, **changes)
        return Detector(self.model, self.spec, self.names, config, self.device, self.source)

    def preprocess(self, images: Sequence[Any], bgr: bool = False) -> Batch:
        """Decode/convert, then letterbox every image to one shared input size on the device."""
        rgb = [to_rgb_chw(im, bgr=bgr).to(self.device, non_blocking=True) for im in images]
        plans = plan_batch([tuple(t.shape[1:]) for t in rgb], self.config.imgsz, self.config.mode)
        return Batch(torch.stack([apply_letterbox(t, p) for t, p in zip(rgb, plans, strict=True)]), plans)

    @torch.inference_mode()
    def infer(self, batch: Batch) -> Candidates:
        """Run the graph (eager or compiled) on a preprocessed batch."""
        conf = torch.tensor(self.config.conf, dtype=torch.float32, device=self.device)
        return self.runner(batch.images, conf)

    @torch.inference_mode()
    def postprocess(self, cands: Candidates, plans: Sequence[Letterbox]) -> list[Detections]:
        """NMS (unless one-to-one), class filter, boxes back to original pixels, split per image."""
        cfg = self.config
        keep = cands.valid
        if cfg.classes is not None:
            wanted = torch.tensor(cfg.classes, device=keep.device)
            keep = keep & (cands.classes.unsqueeze(-1) == wanted).any(-1)
            cands = cands._replace(valid=keep)
        if not self.graph.config.one2one:
            keep = nms_keep(cands, cfg.iou, agnostic=cfg.agnostic, max_det=cfg.max_det)
        gain, pad, orig_hw = inverse_params(plans, device=cands.boxes.device)
        boxes = boxes_to_original_batched(cands.boxes.float(), gain, pad, orig_hw)
        # Candidates are sorted by score, so the kept rows of each image come out highest first.
        img, row = keep.nonzero(as_tuple=True)
        counts = torch.bincount(img, minlength=keep.shape[0]).tolist()
        parts = zip(
            boxes[img, row].cpu().split(counts),
            cands.scores[img, row].float().cpu().split(counts),
            cands.classes[img, row].cpu().split(counts),
            plans,
            strict=True,
        )
        return [Detections(b, s, c, self.names, p.orig_hw) for b, s, c, p in parts]

    def __call__(self, images: Any, *, bgr: bool = False) -> list[Detections]:
        """Detect objects in one image or a list of images (see the class docstring)."""
        if not isinstance(images, (list, tuple)):
            images = [images]
        if not images:
            return []
        batch = self.preprocess(images, bgr=bgr)
        return self.postprocess(self.infer(batch), batch.plans)

    def __repr__(self) -> str:
        return (
            f"Detector({self.spec.family}{self.spec.scale}, nc={self.spec.nc}, device={self.device}, "
            f"imgsz={self.config.imgsz}, mode={self.config.mode}, conf={self.config.conf}, iou={self.config.iou})"
        )
