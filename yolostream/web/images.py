"""Decoding an uploaded picture with guards: known formats only, size checked before any pixel is decoded.

A decompression bomb (a small file that claims a huge picture: a PNG of 50000 x 50000 is a few hundred
bytes) is refused from its header, before Pillow allocates anything. Pillow's own global limit
(``Image.MAX_IMAGE_PIXELS``) is left alone: this check is per call and raises a clear error instead.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from yolostream.errors import ImageReadError

# Formats an industrial camera or a client script sends; others (EPS, PSD, ICNS...) have more parser surface.
FORMATS = ("JPEG", "PNG", "BMP", "WEBP", "TIFF", "GIF")


class ImageTooLargeError(ImageReadError):
    """The picture's header announces more pixels than allowed."""


def decode_upload(data: bytes, max_pixels: int, name: str = "upload") -> Image.Image:
    """The first frame of ``data`` as a loaded RGB PIL image, EXIF orientation applied (as ``read_image``
    and so ``predict`` decode files). Raises `ImageTooLargeError` or `ImageReadError` naming ``name``."""
    if not data:
        raise ImageReadError(f"{name}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=FORMATS) as im:
                width, height = im.size
                if width < 1 or height < 1 or width * height > max_pixels:
                    raise ImageTooLargeError(
                        f"{name}: {width}x{height} is {width * height} pixels, more than the {max_pixels} allowed"
                    )
                im.load()
                oriented = ImageOps.exif_transpose(im)
                return oriented.convert("RGB") if oriented.mode != "RGB" else oriented.copy()
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(f"{name}: not an image in a supported format ({', '.join(FORMATS)})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageTooLargeError(f"{name}: {e}") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as e:
        # Pillow reports truncated or corrupt data as OSError (SyntaxError / ValueError for broken headers).
        raise ImageReadError(f"{name}: cannot decode the image ({type(e).__name__}: {e})") from None
