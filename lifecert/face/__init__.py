"""Face verification (face_recognition / dlib) with liveness, for the face channels.

The heavy library is imported only when a :class:`FaceEngine` is built, so this package
imports without it; a broken install raises :class:`FaceLibraryUnavailable` naming what to
install, never face_recognition's silent ``quit()``.
"""

from lifecert.face._lib import INSTALL_HINT, FaceLibraryUnavailable
from lifecert.face.engine import (
    DEFAULT_THRESHOLD,
    MODEL,
    Enrollment,
    EnrollmentRefused,
    FaceDecision,
    FaceEngine,
    FaceRefused,
    Verification,
)
from lifecert.face.liveness import LivenessPolicy

__all__ = [
    "DEFAULT_THRESHOLD",
    "INSTALL_HINT",
    "MODEL",
    "Enrollment",
    "EnrollmentRefused",
    "FaceDecision",
    "FaceEngine",
    "FaceLibraryUnavailable",
    "FaceRefused",
    "LivenessPolicy",
    "Verification",
]
