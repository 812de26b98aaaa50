"""Preprocessing: pictures in, OpenCV-exact letterboxed uint8 network inputs out (torch, any device)."""

from yolostream.preprocess.inputs import read_image, to_rgb_chw
from yolostream.preprocess.letterbox import (
    Letterbox,
    apply_letterbox,
    boxes_to_original,
    boxes_to_original_batched,
    inverse_params,
    plan_batch,
    plan_letterbox,
)
from yolostream.preprocess.resize import resize_area_u8, resize_linear_u8
from yolostream.preprocess.val_letterbox import (
    ValLetterbox,
    apply_val_letterbox,
    plan_val_letterbox,
    rect_batch_shape,
    val_boxes_to_original,
)

__all__ = [
    "Letterbox",
    "ValLetterbox",
    "apply_letterbox",
    "apply_val_letterbox",
    "boxes_to_original",
    "boxes_to_original_batched",
    "inverse_params",
    "plan_batch",
    "plan_letterbox",
    "plan_val_letterbox",
    "read_image",
    "rect_batch_shape",
    "resize_area_u8",
    "resize_linear_u8",
    "to_rgb_chw",
    "val_boxes_to_original",
]
