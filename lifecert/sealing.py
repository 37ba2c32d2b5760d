"""Sealing: AES-256-GCM, first written for face encodings at rest (key from
``LIFECERT_FACE_KEY``), and what seals personal fields and wraps data keys too
(lifecert/events/personal.py, lifecert/keystore/). It imports no other part of lifecert.

A sealed blob is ``b"LCF1"`` + a 12-byte random nonce + ciphertext-and-tag. The 4-byte
header is authenticated too, and so is any ``associated_data`` the caller binds (e.g. the
retiree id, so that a blob copied onto another person's row fails to open).
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_ENV = "LIFECERT_FACE_KEY"
KEY_BYTES = 32
MAGIC = b"LCF1"
NONCE_BYTES = 12
_HOW = (
    f"set {KEY_ENV} to the base64 of {KEY_BYTES} random bytes, e.g. the output of "
    '`python -c "import base64, os; print(base64.b64encode(os.urandom(32)).decode())"`'
)


class FaceKeyError(RuntimeError):
    """The face-encoding key is missing or malformed; the message says how to fix it."""


class SealError(ValueError):
    """A sealed blob cannot be opened: wrong key, wrong associated data, or corrupted."""


def generate_key() -> str:
    """A new key, base64-encoded, for ``LIFECERT_FACE_KEY``."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


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


def _check_key(key: bytes) -> None:
    if len(key) != KEY_BYTES:
        raise FaceKeyError(f"the face-encoding key must be {KEY_BYTES} bytes, not {len(key)}")


def seal(encoding: bytes, key: bytes, associated_data: bytes = b"") -> bytes:
    """Encrypt and authenticate ``encoding`` (or any bytes) with ``key``."""
    _check_key(key)
    nonce = os.urandom(NONCE_BYTES)
    return MAGIC + nonce + AESGCM(key).encrypt(nonce, encoding, MAGIC + associated_data)


def unseal(blob: bytes, key: bytes, associated_data: bytes = b"") -> bytes:
    """The bytes sealed in ``blob``; :class:`SealError` if it does not authenticate."""
    _check_key(key)
    if len(blob) < len(MAGIC) + NONCE_BYTES + 16 or not blob.startswith(MAGIC):
        raise SealError("not a sealed face encoding (bad header or too short)")
    nonce = blob[len(MAGIC) : len(MAGIC) + NONCE_BYTES]
    try:
        return AESGCM(key).decrypt(nonce, blob[len(MAGIC) + NONCE_BYTES :], MAGIC + associated_data)
    except InvalidTag as exc:
        raise SealError(
            "sealed face encoding failed authentication: wrong key, wrong associated data, "
            "or corrupted"
        ) from exc
