"""The pixel cap is checked from the image header, before anything is decoded."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from lifecert.face.images import BadImage, check_pixels, decode


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` but carries a few bytes of garbage as
    pixel data: decoding it fails, so a refusal that names the size came from the header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"garbage")
            + chunk(b"IEND", b""))


def test_a_header_over_the_cap_is_refused_without_decoding() -> None:
    with pytest.raises(BadImage, match="5000x4000 pixels, more than 12000000"):
        check_pixels(png_header(5000, 4000), 12_000_000)
    with pytest.raises(BadImage, match="5000x4000 pixels, more than 12000000"):
        decode(png_header(5000, 4000), max_width=640, max_pixels=12_000_000)
    # 2.5 billion pixels: Pillow's own guard fires while reading the header
    with pytest.raises(BadImage, match="more pixels than any camera frame"):
        check_pixels(png_header(50000, 50000), 12_000_000)


def test_a_header_under_the_cap_passes_and_garbage_then_fails_to_decode() -> None:
    assert check_pixels(png_header(640, 480), 12_000_000) == (640, 480)
    with pytest.raises(BadImage, match="cannot decode"):
        decode(png_header(640, 480), max_width=640, max_pixels=12_000_000)
    out = io.BytesIO()
    Image.new("RGB", (64, 48)).save(out, "PNG")
    assert decode(out.getvalue(), max_width=640).size == (64, 48)
    with pytest.raises(BadImage, match="format GIF is not accepted"):
        gif = io.BytesIO()
        Image.new("RGB", (8, 8)).save(gif, "GIF")
        check_pixels(gif.getvalue(), 12_000_000)
