"""Decoding JPEG/PNG bytes into RGB arrays, in memory only (images are never stored)."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

ACCEPTED_FORMATS = frozenset({"JPEG", "PNG"})
MAX_PIXELS = 40_000_000  # larger uploads are refused before decoding (decompression bombs)
FRAME_PIXELS = 12_000_000  # a camera frame: 4000x3000 at most (the API's default cap)


class BadImage(ValueError):
    """The bytes are not a usable JPEG or PNG image; the message says why."""


@dataclass(frozen=True)
class Decoded:
    """An RGB image scaled down to at most a working width.

    ``size`` is the original (width, height) after EXIF orientation; ``scale`` is
    working pixels per original pixel (<= 1).
    """

    rgb: np.ndarray
    size: tuple[int, int]
    scale: float


def header_size(data: bytes) -> tuple[str, int, int]:
    """The format, width and height that ``data``'s header declares, read without decoding a
    pixel (Pillow's ``open`` parses the header only). A header too large for Pillow's own
    decompression-bomb guard is reported as :class:`BadImage`."""
    if not data:
        raise BadImage("empty image: send JPEG or PNG bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                fmt, (width, height) = image.format or "", image.size
    except Image.DecompressionBombError:
        raise BadImage("the image header declares more pixels than any camera frame: "
                       "send a smaller image") from None
    except Exception as exc:
        raise BadImage(f"cannot read the image header ({type(exc).__name__}): send JPEG "
                       "or PNG") from exc
    if fmt not in ACCEPTED_FORMATS:
        raise BadImage(f"image format {fmt or 'unknown'} is not accepted: send JPEG or PNG")
    return fmt, width, height


def check_pixels(data: bytes, max_pixels: int) -> tuple[int, int]:
    """``data``'s (width, height) from its header, or :class:`BadImage` when it declares
    more than ``max_pixels`` pixels: checked before anything is decoded."""
    _fmt, width, height = header_size(data)
    if width * height > max_pixels:
        raise BadImage(f"image is {width}x{height} pixels, more than {max_pixels}: send a "
                       "smaller one")
    return width, height


def decode(data: bytes, *, max_width: int, max_pixels: int = MAX_PIXELS) -> Decoded:
    """Decode ``data`` (JPEG or PNG) to RGB, honouring EXIF orientation, and scale it so
    that its width is at most ``max_width``. JPEGs are decoded at a reduced DCT scale
    when that is enough, which is much faster than decoding full size and resizing."""
    check_pixels(data, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(io.BytesIO(data))
            fmt = image.format
            if fmt not in ACCEPTED_FORMATS:
                raise BadImage(f"image format {fmt or 'unknown'} is not accepted: send JPEG or PNG")
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)
            swapped = orientation in (5, 6, 7, 8)
            upright = (height, width) if swapped else (width, height)
            if fmt == "JPEG" and upright[0] > max_width:
                ratio = max_width / upright[0]
                target = (int(width * ratio) + 1, int(height * ratio) + 1)
                image.draft("RGB", target)
            image = ImageOps.exif_transpose(image)
            image = image.convert("RGB")
    except BadImage:
        raise
    except Exception as exc:  # PIL raises many types for truncated or foreign data
        raise BadImage(f"cannot decode the image ({type(exc).__name__}): send JPEG or PNG") from exc
    if image.width > max_width:
        new_height = max(1, round(image.height * max_width / image.width))
        image = image.resize((max_width, new_height), Image.Resampling.BILINEAR, reducing_gap=2.0)
    rgb = np.asarray(image, dtype=np.uint8)
    return Decoded(rgb=rgb, size=upright, scale=image.width / upright[0])


def downscale(rgb: np.ndarray, width: int) -> tuple[np.ndarray, float]:
    """A copy at most ``width`` wide for face detection, and its scale relative to ``rgb``."""
    height, current = rgb.shape[:2]
    if current <= width:
        return rgb, 1.0
    new_height = max(1, round(height * width / current))
    small = Image.fromarray(rgb).resize((width, new_height), Image.Resampling.BILINEAR)
    return np.asarray(small), width / current
