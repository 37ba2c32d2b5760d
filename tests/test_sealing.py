"""Sealing (face encodings, personal fields, data keys): AES-GCM, bound to its associated
data, refusing a wrong key, a changed byte and a key of the wrong length."""

from __future__ import annotations

import os

import pytest

from lifecert.sealing import SealError, SealingKeyError, seal, unseal

ENCODING = bytes(range(256)) * 4  # 1024 bytes, like a 128-d float64 encoding


def test_seal_round_trips_and_hides_the_encoding() -> None:
    key = os.urandom(32)
    blob = seal(ENCODING, key)
    assert ENCODING not in blob and ENCODING[:64] not in blob
    assert blob.startswith(b"LCF1") and len(blob) == 4 + 12 + len(ENCODING) + 16
    assert unseal(blob, key) == ENCODING
    assert seal(ENCODING, key) != blob  # a fresh nonce each time


def test_a_wrong_key_or_a_changed_byte_is_refused() -> None:
    key = os.urandom(32)
    blob = seal(ENCODING, key)
    with pytest.raises(SealError, match="failed authentication"):
        unseal(blob, os.urandom(32))
    tampered = bytearray(blob)
    tampered[40] ^= 1
    with pytest.raises(SealError, match="failed authentication"):
        unseal(bytes(tampered), key)
    with pytest.raises(SealError, match="bad header"):
        unseal(b"XXXX" + blob[4:], key)


def test_associated_data_binds_a_blob_to_its_retiree() -> None:
    key = os.urandom(32)
    blob = seal(ENCODING, key, b"retiree-1")
    assert unseal(blob, key, b"retiree-1") == ENCODING
    with pytest.raises(SealError):
        unseal(blob, key, b"retiree-2")


def test_seal_refuses_a_key_of_the_wrong_length() -> None:
    with pytest.raises(SealingKeyError, match="32 bytes"):
        seal(ENCODING, b"0" * 16)
