"""The pixel cap is checked from the image header, before anything is decoded: refusing a
frame that declares 20 million pixels never calls Pillow's ``load`` (the decoder), which is
watched, not replaced. Pillow's own guard only starts at 89 million pixels, with a
warning."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image, ImageFile

from lifecert.face.images import BadImage, check_pixels, decode


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` but carries a few bytes of garbage as
    pixel data (face_recognition makes Pillow load truncated images, so decoding it would
    still allocate the whole image)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"garbage")
            + chunk(b"IEND", b""))


def test_a_header_over_the_cap_is_refused_without_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loads: list[tuple[int, int]] = []
    real_load = ImageFile.ImageFile.load

    def watched(self: ImageFile.ImageFile) -> object:
        loads.append(self.size)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", watched)
    with pytest.raises(BadImage, match="5000x4000 pixels, more than 12000000"):
        check_pixels(png_header(5000, 4000), 12_000_000)
    with pytest.raises(BadImage, match="5000x4000 pixels, more than 12000000"):
        decode(png_header(5000, 4000), max_width=640, max_pixels=12_000_000)
    # 2.5 billion pixels: Pillow's own guard fires while reading the header
    with pytest.raises(BadImage, match="more pixels than any camera frame"):
        check_pixels(png_header(50000, 50000), 12_000_000)
    assert loads == []  # nothing was decoded
    small = io.BytesIO()
    Image.new("RGB", (64, 48)).save(small, "PNG")
    decode(small.getvalue(), max_width=640)
    assert loads and set(loads) == {(64, 48)}  # the watch sees a decode when there is one


def test_a_header_under_the_cap_passes() -> None:
    assert check_pixels(png_header(640, 480), 12_000_000) == (640, 480)
    out = io.BytesIO()
    Image.new("RGB", (64, 48)).save(out, "PNG")
    assert decode(out.getvalue(), max_width=640).size == (64, 48)
    with pytest.raises(BadImage, match="format GIF is not accepted"):
        gif = io.BytesIO()
        Image.new("RGB", (8, 8)).save(gif, "GIF")
        check_pixels(gif.getvalue(), 12_000_000)
