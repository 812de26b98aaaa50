"""Reading training pictures fast: a cheap integrity probe, and decoding straight to the training size.

Pictures are decoded as `yolostream.preprocess.inputs.read_image` does (EXIF orientation applied, grey
and palette expanded, alpha dropped) but with PIL all the way: a JPEG much larger than the training size
is decoded by libjpeg at 1/2, 1/4 or 1/8 scale (``draft``), which is several times faster than decoding
it whole and shrinking it after. The size it is brought to is Ultralytics' load-time size (long side
``imgsz``, see `yolostream.preprocess.val_letterbox`).
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from yolostream.errors import ImageReadError
from yolostream.preprocess.val_letterbox import ValLetterbox, plan_val_letterbox

__all__ = ["load_resized", "probe_image"]

_DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def probe_image(path: Path) -> str | None:
    """None if ``path`` decodes to a picture, else why not (empty file, not an image, truncated data).

    JPEGs are decoded at 1/8 scale: libjpeg still reads every byte of the entropy-coded data, so a
    truncated file fails, at a fraction of a full decode's cost.
    """
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w < 1 or h < 1:
                return f"picture has no pixels ({w}x{h})"
            im.draft("RGB", (max(1, w // 8), max(1, h // 8)))
            im.load()
    except FileNotFoundError:
        return "file not found"
    except UnidentifiedImageError:
        return "not a readable image (empty or unknown format)"
    except _DECODE_ERRORS as e:
        return f"cannot decode: {e}"
    return None


def load_resized(path: Path, imgsz: int) -> tuple[Image.Image, ValLetterbox]:
    """Decode ``path`` to RGB at its load-time size (long side ``imgsz``); also its square letterbox plan.

    Returns:
        the picture (PIL RGB, ``plan.loaded_hw`` in size) and ``plan_val_letterbox(orig_hw, imgsz,
        rect=False)``: where that picture sits, centred, in the ``imgsz`` square (``plan.pad_xy``).

    Raises:
        ImageReadError: naming the file, when it cannot be decoded.
    """
    try:
        with Image.open(path) as im:
            w, h = im.size
            r = imgsz / max(w, h)
            if r < 1:  # JPEG only; other formats ignore the request
                im.draft("RGB", (math.ceil(w * r), math.ceil(h * r)))
            im.load()
            ImageOps.exif_transpose(im, in_place=True)  # in place: no copy of the (usual) upright picture
            rgb = im if im.mode == "RGB" else im.convert("RGB")
    except FileNotFoundError as e:
        raise ImageReadError(f"image file not found: {path}") from e
    except UnidentifiedImageError as e:
        raise ImageReadError(f"not a readable image: {path}") from e
    except _DECODE_ERRORS as e:
        raise ImageReadError(f"cannot decode image {path}: {e}") from e
    # The plan needs the size the whole picture has (draft may have decoded it smaller); the EXIF
    # rotation swaps axes, so take the oriented aspect from the decoded picture.
    dw, dh = rgb.size
    orig_hw = (h, w) if (dh >= dw) == (h >= w) else (w, h)
    plan = plan_val_letterbox(orig_hw, imgsz, rect=False)
    lh, lw = plan.loaded_hw
    if (dw, dh) != (lw, lh):
        rgb = rgb.resize((lw, lh), Image.Resampling.BILINEAR)
    return rgb, plan
