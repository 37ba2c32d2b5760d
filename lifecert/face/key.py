"""The face-encoding key: face encodings rest sealed (:mod:`lifecert.sealing`) under the
32-byte key the API server reads from ``LIFECERT_FACE_KEY`` (base64)."""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping

from lifecert.sealing import KEY_BYTES

KEY_ENV = "LIFECERT_FACE_KEY"
_HOW = (
    f"set {KEY_ENV} to the base64 of {KEY_BYTES} random bytes, e.g. the output of "
    '`python -c "import base64, os; print(base64.b64encode(os.urandom(32)).decode())"`'
)


class FaceKeyError(RuntimeError):
    """The face-encoding key is missing or malformed; the message says how to fix it."""


def key_from_env(environ: Mapping[str, str] | None = None) -> bytes:
    """The 32-byte key from ``LIFECERT_FACE_KEY`` (base64)."""
    env = os.environ if environ is None else environ
    value = env.get(KEY_ENV, "").strip()
    if not value:
        raise FaceKeyError(f"{KEY_ENV} is not set: {_HOW}")
    try:
        key = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FaceKeyError(f"{KEY_ENV} is not valid base64: {_HOW}") from exc
    if len(key) != KEY_BYTES:
        raise FaceKeyError(f"{KEY_ENV} decodes to {len(key)} bytes, not {KEY_BYTES}: {_HOW}")
    return key
