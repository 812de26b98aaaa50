"""The preprocessing Ultralytics' validation loader applies, and the mapping of predictions back.

Validation differs from prediction (``letterbox.py``) in three ways, each reproduced here:

1. **Load-time resize.** The picture is first scaled so its long side equals ``imgsz``:
   ``r = imgsz / max(h0, w0)``; if ``r != 1`` the size becomes
   ``(min(ceil(h0 * r), imgsz), min(ceil(w0 * r), imgsz))`` -- ``ceil``, not ``round``, so the two axes
   can get slightly different ratios. Ultralytics 8.4 resizes with ``INTER_LINEAR`` both ways; older
   releases used ``INTER_AREA`` when shrinking outside training (``downscale="area"`` selects that).
2. **Batch shape.** With ``rect=True`` every batch gets one shape from its pictures' aspect ratios
   ``ar = h0 / w0``: ``[max_ar, 1]`` if all are wide (``max_ar < 1``), ``[1, 1 / min_ar]`` if all are tall
   (``min_ar > 1``), else ``[1, 1]``; then ``ceil(shape * imgsz / stride + pad) * stride`` with
   ``pad = 0.5`` for validation. The half-stride pad means even the long side gets ``imgsz + stride``
   when ``imgsz`` is a stride multiple (640 -> 672). With ``rect=False`` the shape is ``imgsz x imgsz``.
3. **Letterbox without enlarging.** The loaded picture is centred in the batch shape with the predict
   letterbox rules but ``scaleup=False``; it normally fits, so it is only padded (114).

Predictions are mapped back with Ultralytics' ``ratio_pad``: subtract the pad ``(left, top)``, divide by
the load-time ratio (the height ratio for both axes, or each axis' own ratio with ``per_axis=True``,
as Ultralytics does since PR #25855, 2026-08), then clip to the original picture.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from yolostream.errors import ShapeError
from yolostream.preprocess.letterbox import Letterbox, apply_letterbox, plan_letterbox
from yolostream.preprocess.resize import resize_area_u8, resize_linear_u8

__all__ = [
    "ValLetterbox",
    "apply_val_letterbox",
    "plan_val_letterbox",
    "rect_batch_shape",
    "val_boxes_to_original",
]


@dataclass(frozen=True)
class ValLetterbox:
    """The two steps of validation preprocessing for one picture (sizes ``(height, width)``).

    Attributes:
        orig_hw: the original picture.
        loaded_hw: after the load-time resize (long side ``imgsz``).
        load_interpolation: ``"linear"`` or ``"area"`` for the load-time resize (unused if not resized).
        letterbox: the letterbox of the loaded picture into the batch shape (``letterbox.orig_hw`` is
            ``loaded_hw``; ``letterbox.input_hw`` is the network input).
    """

    orig_hw: tuple[int, int]
    loaded_hw: tuple[int, int]
    load_interpolation: Literal["linear", "area"]
    letterbox: Letterbox

    @property
    def input_hw(self) -> tuple[int, int]:
        return self.letterbox.input_hw

    @property
    def ratio_hw(self) -> tuple[float, float]:
        """Input pixels per original pixel along ``(h, w)``: the load ratio times any letterbox resize."""
        lb = self.letterbox
        return (
            self.loaded_hw[0] / self.orig_hw[0] * (lb.resized_hw[0] / lb.orig_hw[0]),
            self.loaded_hw[1] / self.orig_hw[1] * (lb.resized_hw[1] / lb.orig_hw[1]),
        )

    @property
    def pad_xy(self) -> tuple[int, int]:
        """Padding ``(left, top)`` in input pixels (Ultralytics' ``ratio_pad[1]``)."""
        return self.letterbox.pad_left, self.letterbox.pad_top


def rect_batch_shape(
    orig_hws: Sequence[Sequence[int]], imgsz: int = 640, stride: int = 32, pad: float = 0.5
) -> tuple[int, int]:
    """The ``(height, width)`` input shared by one rect validation batch (rule 2 in the module doc).

    Ultralytics first sorts the whole dataset by aspect ratio and cuts it into batches in that order;
    pass one such batch here (for ``batch=1``, one picture).
    """
    if not orig_hws:
        raise ShapeError("rect_batch_shape needs at least one picture size, got an empty list")
    ars = [int(h) / int(w) for h, w in orig_hws]
    lo, hi = min(ars), max(ars)
    if hi < 1:
        shape = (hi, 1.0)
    elif lo > 1:
        shape = (1.0, 1 / lo)
    else:
        shape = (1.0, 1.0)
    # Same operation order as Ultralytics (s * imgsz / stride + pad) so float rounding agrees.
    h, w = (math.ceil(s * imgsz / stride + pad) * stride for s in shape)
    return h, w


def plan_val_letterbox(
    orig_hw: Sequence[int],
    imgsz: int = 640,
    rect: bool = True,
    stride: int = 32,
    pad: float = 0.5,
    batch_shape: Sequence[int] | None = None,
    downscale: Literal["linear", "area"] = "linear",
) -> ValLetterbox:
    """Plan validation preprocessing of one picture.

    Args:
        orig_hw: ``(h0, w0)`` of the picture.
        imgsz: validation image size (an int, as Ultralytics' validator requires).
        rect: rectangular batch shapes (Ultralytics' ``val`` default) or ``imgsz x imgsz``.
        stride: grid stride for batch shapes (Ultralytics uses ``max(model stride, 32)``).
        pad: batch-shape padding in strides (0.5 for validation).
        batch_shape: the shape of this picture's batch when ``rect`` and batch > 1
            (``rect_batch_shape`` of the batch); by default the picture's own (batch 1).
        downscale: interpolation when the load-time resize shrinks (``"linear"`` in Ultralytics 8.4).
    """
    h0, w0 = (int(v) for v in orig_hw)
    if h0 < 1 or w0 < 1 or imgsz < 1:
        raise ShapeError(f"sizes must be positive, got orig_hw={(h0, w0)} imgsz={imgsz}")
    if downscale not in ("linear", "area"):
        raise ShapeError(f"downscale must be 'linear' or 'area', got {downscale!r}")
    r = imgsz / max(h0, w0)
    loaded = (h0, w0) if r == 1 else (min(math.ceil(h0 * r), imgsz), min(math.ceil(w0 * r), imgsz))
    interp: Literal["linear", "area"] = downscale if r < 1 else "linear"
    if rect:
        target = tuple(batch_shape) if batch_shape is not None else rect_batch_shape([(h0, w0)], imgsz, stride, pad)
    else:
        target = (imgsz, imgsz)
    lb = plan_letterbox(loaded, target, mode="square", stride=stride, scaleup=False)
    return ValLetterbox(orig_hw=(h0, w0), loaded_hw=loaded, load_interpolation=interp, letterbox=lb)


def apply_val_letterbox(img_u8: torch.Tensor, plan: ValLetterbox, pad_value: int = 114) -> torch.Tensor:
    """Load-time resize then letterbox, OpenCV-exact.

    Args:
        img_u8: uint8 ``[..., 3, h0, w0]``.
        plan: from ``plan_val_letterbox`` for this picture's size.

    Returns:
        uint8 ``[..., 3, Hin, Win]``.
    """
    hw = (int(img_u8.shape[-2]), int(img_u8.shape[-1])) if isinstance(img_u8, torch.Tensor) else None
    if hw != plan.orig_hw:
        raise ShapeError(f"picture is {hw} (h, w) but the validation plan was made for {plan.orig_hw}")
    x = img_u8
    if plan.loaded_hw != plan.orig_hw:
        resize = resize_area_u8 if plan.load_interpolation == "area" else resize_linear_u8
        x = resize(img_u8, plan.loaded_hw)
    return apply_letterbox(x, plan.letterbox, pad_value)


def val_boxes_to_original(xyxy: torch.Tensor, plan: ValLetterbox, per_axis: bool = False) -> torch.Tensor:
    """Map ``[x1, y1, x2, y2]`` predictions from the validation input frame to the original picture.

    ``(box - (left, top, left, top)) / gain``, then x clipped to ``[0, w0]`` and y to ``[0, h0]``; ``gain``
    is the height ratio for every axis (Ultralytics' ``ratio_pad[0][0]``), or ``(w ratio, h ratio)`` per
    axis when ``per_axis``.

    Args:
        xyxy: float ``[..., 4]`` in input pixels.
        plan: the picture's validation plan.
        per_axis: divide x by the width ratio and y by the height ratio.
    """
    gh, gw = plan.ratio_hw
    gx = gw if per_axis else gh
    left, top = plan.pad_xy
    h0, w0 = plan.orig_hw
    dev, dt = xyxy.device, xyxy.dtype
    pad = torch.tensor([left, top, left, top], dtype=dt, device=dev)
    gain = torch.tensor([gx, gh, gx, gh], dtype=dt, device=dev)
    hi = torch.tensor([w0, h0, w0, h0], dtype=dt, device=dev)
    return torch.minimum(((xyxy - pad) / gain).clamp_min(0), hi)
