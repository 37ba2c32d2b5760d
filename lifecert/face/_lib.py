"""Loading face_recognition (dlib) without its ``quit()`` trap.

face_recognition 1.3.0 imports ``face_recognition_models`` (which imports
``pkg_resources`` from setuptools < 81); when that fails it prints a hint and calls
``quit()``, so the process exits with status 0 and a broken install looks like a passing
run. This module imports the pieces one by one first and raises
:class:`FaceLibraryUnavailable` (an ``ImportError``) that names what to install.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from types import ModuleType

INSTALL_HINT = (
    'pip install dlib-bin "setuptools<81" face_recognition_models Pillow numpy Click '
    "cryptography && pip install --no-deps face_recognition==1.3.0"
)

# (module, what is missing in plain words, what to install)
_PREREQUISITES: tuple[tuple[str, str, str], ...] = (
    ("numpy", "numpy", "numpy"),
    ("PIL", "Pillow", "Pillow"),
    (
        "pkg_resources",
        "pkg_resources (removed from setuptools 82; face_recognition_models imports it)",
        '"setuptools<81"',
    ),
    ("dlib", "dlib", "dlib-bin (a wheel of dlib; no 14-minute source build)"),
    (
        "face_recognition_models",
        "face_recognition_models (the dlib model files)",
        "face_recognition_models",
    ),
)


class FaceLibraryUnavailable(ImportError):
    """face_recognition or one of its prerequisites cannot be imported."""


@functools.cache
def load() -> ModuleType:
    """Import and return ``face_recognition``, or raise :class:`FaceLibraryUnavailable`."""
    with warnings.catch_warnings():
        # face_recognition_models triggers setuptools' pkg_resources deprecation warning.
        warnings.simplefilter("ignore")
        for module, missing, package in _PREREQUISITES:
            try:
                importlib.import_module(module)
            except Exception as exc:  # ImportError, or an error raised while importing
                raise FaceLibraryUnavailable(
                    f"face verification needs {missing}, which cannot be imported "
                    f"({type(exc).__name__}: {exc}). Install {package}; the full set is: "
                    f"{INSTALL_HINT}"
                ) from exc
        try:
            return importlib.import_module("face_recognition")
        except SystemExit as exc:  # face_recognition's quit() on a missing model package
            raise FaceLibraryUnavailable(
                "face_recognition quit while importing (its model package is unusable); "
                f"install: {INSTALL_HINT}"
            ) from exc
        except Exception as exc:
            raise FaceLibraryUnavailable(
                f"face_recognition cannot be imported ({type(exc).__name__}: {exc}); "
                f"install: {INSTALL_HINT}"
            ) from exc
