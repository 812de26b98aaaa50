"""Letterboxing for prediction, as Ultralytics' predictor does it, and the mapping of boxes back.

Coordinate frames used throughout:

* **original**: pixels of the decoded picture, ``(h0, w0)``; ``Detections.xyxy`` live here.
* **resized**: the original scaled by one gain ``r`` to ``(round(h0 * r), round(w0 * r))``.
* **input**: the network input ``(Hin, Win)``: the resized picture with ``pad_top`` rows above and
  ``pad_left`` columns left of it, the rest filled with 114. Model boxes come out in this frame.

A point ``x_in`` in the input frame maps back as ``x0 = (x_in - pad_left) / gain`` (likewise y with
``pad_top``), then clipped to the original picture.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral
from typing import Literal

import torch
import torch.nn.functional as F

from yolostream.errors import ShapeError
from yolostream.preprocess.resize import resize_linear_u8

__all__ = [
    "Letterbox",
    "apply_letterbox",
    "boxes_to_original",
    "boxes_to_original_batched",
    "inverse_params",
    "plan_batch",
    "plan_letterbox",
]

LetterboxMode = Literal["square", "rect"]


@dataclass(frozen=True)
class Letterbox:
    """Where a picture lands in the network input (all sizes ``(height, width)`` in pixels).

    Attributes:
        orig_hw: the original picture.
        resized_hw: the picture after scaling, before padding (equal to ``orig_hw`` if not resized).
        input_hw: the padded network input.
        pad_top: rows of padding above the picture in the input frame.
        pad_left: columns of padding left of the picture in the input frame.
    """

    orig_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    input_hw: tuple[int, int]
    pad_top: int
    pad_left: int


def _hw(value: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(value, Integral):  # also numpy integers
        return int(value), int(value)
    if len(value) != 2:
        raise ShapeError(f"{name} must be an int or (height, width), got {value!r}")
    return int(value[0]), int(value[1])


def _split(total: float) -> tuple[int, int]:
    """Ultralytics splits an odd padding with the extra pixel after the picture: round(d/2 -+ 0.1)."""
    half = total / 2
    return round(half - 0.1), round(half + 0.1)


def plan_letterbox(
    orig_hw: Sequence[int],
    imgsz: int | Sequence[int] = 640,
    mode: LetterboxMode = "square",
    stride: int = 32,
    scaleup: bool = True,
) -> Letterbox:
    """Plan the letterbox of one picture with Ultralytics' predict rules.

    * ``r = min(new_h / h0, new_w / w0)``, capped at 1 when ``scaleup`` is False;
    * resized size ``(round(h0 * r), round(w0 * r))`` with Python's round (half to even);
    * ``"square"`` pads to ``imgsz``; ``"rect"`` (Ultralytics' ``auto``) pads only to the next multiple
      of ``stride`` (the remaining padding modulo ``stride``);
    * the padding is split ``round(d/2 - 0.1)`` before and ``round(d/2 + 0.1)`` after the picture.

    Args:
        orig_hw: ``(h0, w0)`` of the picture.
        imgsz: target size, an int for a square or ``(height, width)``.
        mode: ``"square"`` or ``"rect"``.
        stride: the model's largest stride (rect mode only).
        scaleup: allow enlarging small pictures.
    """
    h0, w0 = _hw(orig_hw, "orig_hw")
    new_h, new_w = _hw(imgsz, "imgsz")
    if h0 < 1 or w0 < 1 or new_h < 1 or new_w < 1:
        raise ShapeError(f"sizes must be positive, got orig_hw={(h0, w0)} imgsz={(new_h, new_w)}")
    if mode not in ("square", "rect"):
        raise ShapeError(f"mode must be 'square' or 'rect', got {mode!r}")
    r = min(new_h / h0, new_w / w0)
    if not scaleup:
        r = min(r, 1.0)
    rh, rw = round(h0 * r), round(w0 * r)
    dh, dw = new_h - rh, new_w - rw
    if mode == "rect":
        dh, dw = dh % stride, dw % stride  # Python's % is non-negative like np.mod
    top, bottom = _split(dh)
    left, right = _split(dw)
    return Letterbox(
        orig_hw=(h0, w0),
        resized_hw=(rh, rw),
        input_hw=(rh + top + bottom, rw + left + right),
        pad_top=top,
        pad_left=left,
    )


def plan_batch(
    orig_hws: Sequence[Sequence[int]],
    imgsz: int | Sequence[int] = 640,
    mode: LetterboxMode = "square",
    stride: int = 32,
) -> list[Letterbox]:
    """Plan a batch: Ultralytics uses rect only when every picture has the same size, else square.

    All returned plans share one ``input_hw``, so the inputs stack into one batch tensor.
    """
    if not orig_hws:
        raise ShapeError("plan_batch needs at least one picture size, got an empty list")
    same = len({tuple(int(v) for v in hw) for hw in orig_hws}) == 1
    batch_mode: LetterboxMode = "rect" if mode == "rect" and same else "square"
    return [plan_letterbox(hw, imgsz, batch_mode, stride) for hw in orig_hws]


def apply_letterbox(img_u8: torch.Tensor, plan: Letterbox, pad_value: int = 114) -> torch.Tensor:
    """Resize (OpenCV-exact bilinear) and pad a picture as ``plan`` says.

    Args:
        img_u8: uint8 ``[..., 3, h0, w0]`` RGB (or BGR: channels are treated alike), any device.
        plan: from ``plan_letterbox`` for this picture's size.
        pad_value: fill of the padding.

    Returns:
        uint8 ``[..., 3, Hin, Win]`` on ``img_u8``'s device.
    """
    if not isinstance(img_u8, torch.Tensor) or img_u8.dtype != torch.uint8 or img_u8.ndim < 3:
        got = (tuple(img_u8.shape), img_u8.dtype) if isinstance(img_u8, torch.Tensor) else type(img_u8)
        raise ShapeError(f"apply_letterbox expects a uint8 tensor [..., C, H, W], got {got}")
    hw = (int(img_u8.shape[-2]), int(img_u8.shape[-1]))
    if hw != plan.orig_hw:
        raise ShapeError(f"picture is {hw} (h, w) but the letterbox plan was made for {plan.orig_hw}")
    x = img_u8 if plan.resized_hw == hw else resize_linear_u8(img_u8, plan.resized_hw)
    bottom = plan.input_hw[0] - plan.resized_hw[0] - plan.pad_top
    right = plan.input_hw[1] - plan.resized_hw[1] - plan.pad_left
    if plan.pad_top == plan.pad_left == bottom == right == 0:
        return x
    return F.pad(x, (plan.pad_left, right, plan.pad_top, bottom), mode="constant", value=pad_value)


def _gain_pad(
    input_hw: Sequence[int], orig_hw: Sequence[int], legacy_pad: bool = False, per_axis: bool = True
) -> tuple[float, float, int, int]:
    """Ultralytics' ``scale_boxes`` parameters ``(gain_x, gain_y, pad_x, pad_y)``, from the two shapes alone.

    ``g = min(Hin / h0, Win / w0)``; the picture was resized to ``(round(h0 * g), round(w0 * g))``. Ultralytics
    8.4 divides x by that width ratio and y by that height ratio (``per_axis``; the fixtures show it: a single
    ``g`` puts boxes of a 600x900 picture up to 0.3 px off); older releases divided both by ``g``. The pad is
    ``round((Win - round(w0 * g)) / 2 - 0.1)``, exactly the ``pad_left`` the letterbox applied; before March
    2026 (PR #23967) it was ``round((Win - w0 * g) / 2 - 0.1)``, 1 px off for some sizes (``legacy_pad``).
    """
    in_h, in_w = int(input_hw[0]), int(input_hw[1])
    h0, w0 = int(orig_hw[0]), int(orig_hw[1])
    gain = min(in_h / h0, in_w / w0)
    new_w, new_h = round(w0 * gain), round(h0 * gain)
    gain_x, gain_y = (new_w / w0, new_h / h0) if per_axis else (gain, gain)
    if legacy_pad:
        pad_x = round((in_w - w0 * gain) / 2 - 0.1)
        pad_y = round((in_h - h0 * gain) / 2 - 0.1)
    else:
        pad_x = round((in_w - new_w) / 2 - 0.1)
        pad_y = round((in_h - new_h) / 2 - 0.1)
    return gain_x, gain_y, pad_x, pad_y


def boxes_to_original(
    xyxy: torch.Tensor,
    input_hw: Sequence[int],
    orig_hw: Sequence[int],
    legacy_pad: bool = False,
    per_axis: bool = True,
) -> torch.Tensor:
    """Map ``[x1, y1, x2, y2]`` boxes from the input frame to the original picture, then clip.

    Args:
        xyxy: float ``[..., 4]`` in input pixels.
        input_hw: ``(Hin, Win)`` of the network input.
        orig_hw: ``(h0, w0)`` of the original picture.
        legacy_pad, per_axis: see ``_gain_pad`` (defaults: Ultralytics 8.4).

    Returns:
        A new tensor like ``xyxy`` in original pixels, x in ``[0, w0]`` and y in ``[0, h0]``.
    """
    gx, gy, pad_x, pad_y = _gain_pad(input_hw, orig_hw, legacy_pad, per_axis)
    h0, w0 = int(orig_hw[0]), int(orig_hw[1])
    pad = torch.tensor([pad_x, pad_y, pad_x, pad_y], dtype=xyxy.dtype, device=xyxy.device)
    gain = torch.tensor([gx, gy, gx, gy], dtype=xyxy.dtype, device=xyxy.device)
    hi = torch.tensor([w0, h0, w0, h0], dtype=xyxy.dtype, device=xyxy.device)
    out = (xyxy - pad) / gain
    return torch.minimum(out.clamp_min(0), hi)


def inverse_params(
    plans: Sequence[Letterbox],
    device: torch.device | str | None = None,
    legacy_pad: bool = False,
    per_axis: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-picture ``(gain [B, 2] float32 as (x, y), pad [B, 2] float32 as (x, y), orig_hw [B, 2] int64)``.

    The values are Ultralytics' ``scale_boxes`` parameters for each plan's input and original sizes,
    for ``boxes_to_original_batched``.
    """
    params = [_gain_pad(p.input_hw, p.orig_hw, legacy_pad, per_axis) for p in plans]
    gain = torch.tensor([[gx, gy] for gx, gy, _, _ in params], dtype=torch.float32, device=device)
    pad = torch.tensor([[px, py] for _, _, px, py in params], dtype=torch.float32, device=device)
    orig = torch.tensor([list(p.orig_hw) for p in plans], dtype=torch.int64, device=device)
    return gain, pad, orig


def boxes_to_original_batched(
    xyxy: torch.Tensor, gain: torch.Tensor, pad: torch.Tensor, orig_hw: torch.Tensor
) -> torch.Tensor:
    """Batched ``boxes_to_original`` with per-picture parameters (see ``inverse_params``).

    Args:
        xyxy: float ``[B, K, 4]`` in input pixels.
        gain: ``[B, 2]`` input pixels per original pixel along (x, y) (a ``[B]`` gain applies to both).
        pad: ``[B, 2]`` padding ``(left, top)`` in input pixels.
        orig_hw: ``[B, 2]`` original ``(h0, w0)``.

    Returns:
        float ``[B, K, 4]`` in original pixels, clipped per picture.
    """
    dt = xyxy.dtype
    gain = gain.to(dt).view(gain.shape[0], -1).expand(-1, 2)
    pad4 = pad.to(dt).repeat(1, 2).unsqueeze(1)  # [B, 1, 4] as (x, y, x, y)
    gain4 = gain.repeat(1, 2).unsqueeze(1)
    hi = orig_hw.flip(-1).to(dt).repeat(1, 2).unsqueeze(1)  # [B, 1, 4] as (w, h, w, h)
    out = (xyxy - pad4) / gain4
    return torch.minimum(out.clamp_min(0), hi)
