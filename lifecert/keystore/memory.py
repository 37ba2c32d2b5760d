"""A key store held in the process: for pure code paths and their tests, and for tools
that seal data nobody reads back later (nothing survives the process)."""

from __future__ import annotations

import os
import threading

from lifecert.datakeys import DataKey, UnknownKey
from lifecert.sealing import KEY_BYTES


class MemoryKeyStore:
    """:class:`~lifecert.datakeys.KeyStore` in a dict."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, str], DataKey | None] = {}
        self._live: dict[str, DataKey] = {}

    def create(self, subject: str) -> DataKey:
        with self._lock:
            key = self._live.get(subject)
            if key is None:
                key = DataKey(subject, os.urandom(8).hex(), os.urandom(KEY_BYTES))
                self._live[subject] = self._keys[(subject, key.key_id)] = key
            return key

    def get(self, subject: str, key_id: str) -> DataKey | None:
        with self._lock:
            if (subject, key_id) not in self._keys:
                raise UnknownKey(f"no key {key_id!r} for this subject in the key store")
            return self._keys[(subject, key_id)]

    def destroy(self, subject: str) -> int:
        with self._lock:
            live = [k for k, v in self._keys.items() if k[0] == subject and v is not None]
            for k in live:
                self._keys[k] = None
            self._live.pop(subject, None)
            return len(live)
