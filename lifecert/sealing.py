"""Sealing: AES-256-GCM under a 32-byte key, what seals face encodings at rest (their key:
lifecert/face/key.py), personal fields (lifecert/events/personal.py) and wraps data keys
(lifecert/keystore/). It imports no other part of lifecert.

A sealed blob is ``b"LCF1"`` + a 12-byte random nonce + ciphertext-and-tag. The 4-byte
header is authenticated too, and so is any ``associated_data`` the caller binds (e.g. the
retiree id, so that a blob copied onto another person's row fails to open).
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
MAGIC = b"LCF1"
NONCE_BYTES = 12


class SealingKeyError(RuntimeError):
    """A key given to :func:`seal` or :func:`unseal` is not 32 bytes."""


class SealError(ValueError):
    """A sealed blob cannot be opened: wrong key, wrong associated data, or corrupted."""


def generate_key() -> str:
    """A new key, base64-encoded (``LIFECERT_FACE_KEY``, the key store's master key)."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def _check_key(key: bytes) -> None:
    if len(key) != KEY_BYTES:
        raise SealingKeyError(f"the sealing key must be {KEY_BYTES} bytes, not {len(key)}")


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
