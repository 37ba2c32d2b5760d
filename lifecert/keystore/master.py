"""The master key that wraps every data key of the PostgreSQL key store.

It never enters the database (nor its dumps and backups): ``$LIFECERT_PERSONAL_KEY``
(base64 of 32 random bytes), else the file ``personal-data.key`` of the keys folder
(``$LIFECERT_KEYS_DIR``, else ``data/keys`` of the project), made with mode 0600 only by
an explicit step (:func:`create_master_key`: ``lifecert keys create``, ``lifecert stack
up``); without it the key store refuses (lifecert/keyfiles.py says why).
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from pathlib import Path

from lifecert import keyfiles
from lifecert.endpoints import project_data_dir
from lifecert.sealing import KEY_BYTES, generate_key

KEY_ENV = "LIFECERT_PERSONAL_KEY"
KEYS_DIR_ENV = "LIFECERT_KEYS_DIR"
KEY_FILE = "personal-data.key"


class MasterKeyError(keyfiles.MissingKeyError):
    """The master key is malformed or cannot be read; the message says how to fix it."""


def keys_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$LIFECERT_KEYS_DIR``, else ``data/keys`` of the project (or of the working folder)."""
    env = os.environ if environ is None else environ
    if env.get(KEYS_DIR_ENV):
        return Path(env[KEYS_DIR_ENV]).expanduser().resolve()
    return project_data_dir("keys")


def _decode(text: str, where: str) -> bytes:
    how = f"it must be the base64 of {KEY_BYTES} random bytes (lifecert.sealing.generate_key())"
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise MasterKeyError(f"{where} is not valid base64: {how}") from None
    if len(key) != KEY_BYTES:
        raise MasterKeyError(f"{where} decodes to {len(key)} bytes, not {KEY_BYTES}: {how}")
    return key


def master_key(folder: Path | None = None, environ: Mapping[str, str] | None = None) -> bytes:
    """The 32-byte master key: ``$LIFECERT_PERSONAL_KEY``, else ``FOLDER/personal-data.key``
    (``FOLDER`` defaults to :func:`keys_dir`); :class:`MasterKeyError` when neither is
    there (never made here)."""
    env = os.environ if environ is None else environ
    if env.get(KEY_ENV, "").strip():
        return _decode(env[KEY_ENV], KEY_ENV)
    path = (folder or keys_dir(env)) / KEY_FILE
    if not path.exists():
        raise MasterKeyError(str(keyfiles.missing("personal-data master key", KEY_ENV, path)))
    try:
        return _decode(path.read_text(encoding="ascii"), str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise MasterKeyError(f"cannot read the master key {path}: {exc}") from None


def create_master_key(folder: Path | None = None,
                      environ: Mapping[str, str] | None = None) -> Path | None:
    """Make ``FOLDER/personal-data.key`` unless it exists; the path made, else None
    (also when ``$LIFECERT_PERSONAL_KEY`` gives the key: nothing to make)."""
    env = os.environ if environ is None else environ
    if env.get(KEY_ENV, "").strip():
        return None
    path = (folder or keys_dir(env)) / KEY_FILE
    return path if keyfiles.create(path, generate_key()) else None
