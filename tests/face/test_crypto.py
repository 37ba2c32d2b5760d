"""Face encodings are sealed with AES-GCM and a key from LIFECERT_FACE_KEY."""

from __future__ import annotations

import base64
import os

import pytest

from lifecert.face import FaceKeyError, SealError, generate_key, key_from_env, seal, unseal

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


def test_key_from_env_reads_base64_of_32_bytes() -> None:
    key = generate_key()
    assert key_from_env({"LIFECERT_FACE_KEY": key}) == base64.b64decode(key)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "LIFECERT_FACE_KEY is not set"),
        ("", "LIFECERT_FACE_KEY is not set"),
        ("not base64!", "is not valid base64"),
        (base64.b64encode(b"short").decode(), "decodes to 5 bytes, not 32"),
    ],
)
def test_key_from_env_says_what_is_wrong_and_how_to_fix_it(value: str | None, message: str) -> None:
    env = {} if value is None else {"LIFECERT_FACE_KEY": value}
    with pytest.raises(FaceKeyError, match=message) as error:
        key_from_env(env)
    assert "base64 of 32 random bytes" in str(error.value)


def test_seal_refuses_a_key_of_the_wrong_length() -> None:
    with pytest.raises(FaceKeyError, match="32 bytes"):
        seal(ENCODING, b"0" * 16)
