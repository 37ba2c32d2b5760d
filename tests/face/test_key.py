"""The face-encoding key is read from LIFECERT_FACE_KEY, and a bad one is refused saying
what is wrong and how to fix it."""

from __future__ import annotations

import base64

import pytest

from lifecert.face.key import FaceKeyError, key_from_env
from lifecert.sealing import generate_key


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
