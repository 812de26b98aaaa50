"""`Detector`: images in, one `Detections` per image out, with Ultralytics' pre- and postprocessing."""

from __future__ import annotations

import logging
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

log = logging.getLogger("yolostream")
LetterboxMode = Literal["square", "rect"]
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# Precisions a backend quantizes to (`yolostream.engine.backends`); the float model stays fp32 beside them.
QUANTIZED_DTYPES = ("int8",)


@dataclass(frozen=True)
class DetectorConfig:
    """Thresholds, sizes and numerics, with Ultralytics' predict defaults.

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
    dtype: ``fp32``; ``bf16``/``fp16`` run the network in that precision (autocast on CPU, cast weights on
        CUDA). Worth it only where the hardware has it natively (CPU: AVX512-BF16/AMX; GPU: tensor cores).
        ``int8`` (CPU): the network quantized by a backend; the eager graph stays fp32.
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
    dtype: str = "fp32"

    def graph_config(self, end2end: bool, device: torch.device) -> GraphConfig:
        on_cuda = device.type == "cuda"
        return GraphConfig(
            one2one=end2end and not self.nms,
            max_candidates=self.max_candidates,
            multi_label=self.multi_label,
            max_det=self.max_det,
            amp=self.dtype if self.dtype in ("bf16", "fp16") and not on_cuda else None,
            channels_last=on_cuda,
        )


@dataclass
class Batch:
    """A letterboxed batch ready for the graph: uint8 [B, 3, H, W] on the device and each image's plan."""

    images: Tensor
    plans: list[Letterbox]


Runner = Callable[[Tensor, Tensor], Candidates]


class Detector:
    """A loaded model with its pre- and postprocessing. Create with `yolostream.load`.

    ``detector(images)`` takes one image or a list: file paths, HWC uint8 numpy arrays (RGB, or BGR with
    ``bgr=True``), uint8 tensors ([3, H, W] or [H, W, 3]) or PIL images; it returns one `Detections` per
    image with boxes in that image's original pixels.

    The graph (normalisation, network, decoding, candidate selection) runs eagerly, or through a compiled
    engine (`yolostream.engine`) installed as ``runner``. Calls are thread-safe; see docs/engine.md.
    """

    def __init__(
        self,
        model: YOLO | None,
        spec: ArchSpec,
        names: dict[int, str],
        config: DetectorConfig = DetectorConfig(),
        device: str | torch.device = "cpu",
        source: str = "",
        arch: dict[str, Any] | None = None,
        runner: Runner | None = None,
    ) -> None:
        if config.dtype not in (*DTYPES, *QUANTIZED_DTYPES):
            raise ValueError(f"dtype must be one of {sorted((*DTYPES, *QUANTIZED_DTYPES))}, got {config.dtype!r}")
        self.device = torch.device(device)
        if config.dtype in QUANTIZED_DTYPES and self.device.type != "cpu":
            raise ValueError(f"dtype={config.dtype!r} runs on the CPU only, not on {self.device}")
        self.spec = spec
        self.names = dict(names)
        self.config = config
        self.source = source
        self.arch = arch or {}
        self.graph_config = config.graph_config(spec.end2end, self.device)
        self.model = model
        self.graph: InferenceGraph | None = None
        if model is not None:
            dtype = DTYPES[config.dtype] if self.device.type == "cuda" else torch.float32
            self.model = model.to(self.device, dtype)
            if self.graph_config.channels_last:
                self.model = self.model.to(memory_format=torch.channels_last)
            self.graph = InferenceGraph(self.model, self.graph_config, dtype=dtype)
        if runner is None and self.graph is None:
            raise ValueError("a Detector needs a model or a runner")
        self.runner: Runner = runner if runner is not None else self.graph  # type: ignore[assignment]

    @property
    def end2end(self) -> bool:
        return self.spec.end2end

    @property
    def compiled(self) -> bool:
        """True when a compiled engine or an AOT package runs the graph."""
        return self.runner is not self.graph

    @property
    def max_batch(self) -> int | None:
        """Largest batch the engine serves in one call (None: eager, any batch)."""
        return getattr(self.runner, "max_batch", None)

    def with_config(self, **changes: Any) -> Detector:
        """A detector sharing this one's weights (and engine, when the graph is unchanged) with some
        settings changed, e.g. ``conf=0.05``. A change that alters the compiled graph falls back to eager."""
        config = replace(self.config, **changes)
        same_graph = config.graph_config(self.spec.end2end, self.device) == self.graph_config
        if not same_graph and self.model is None:
            raise ValueError(f"{changes} changes the graph baked into this package; export it again")
        if not same_graph and self.compiled:
            log.warning("%s changes the compiled graph: the new detector runs eagerly", changes)
        runner = self.runner if same_graph and self.compiled else None
        return Detector(self.model, self.spec, self.names, config, self.device, self.source, self.arch, runner)

    @torch.inference_mode()
    def preprocess(self, images: Sequence[Any], bgr: bool = False) -> Batch:
        """Decode/convert, then letterbox every image to one shared input size on the device.

        Runs in inference mode, the mode the compiled graphs were warmed up in, so the batch needs no copy.
        """
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
        if not self.graph_config.one2one:
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
        engine = type(self.runner).__name__ if self.compiled else "eager"
        return (
            f"Detector({self.spec.family}{self.spec.scale}, nc={self.spec.nc}, device={self.device}, "
            f"imgsz={self.config.imgsz}, mode={self.config.mode}, conf={self.config.conf}, iou={self.config.iou}, "
            f"dtype={self.config.dtype}, engine={engine})"
        )
