"""The key store of personal data: one AES-256 data key per subject (a retiree id).

Personal fields travel and rest sealed under their retiree's data key
(:mod:`lifecert.events.personal`); destroying the key (``lifecert erase``) makes every
copy unreadable at once, wherever it lies: topics, changelogs, dead letters, backups.

:class:`lifecert.datakeys.KeyStore` is all the rest of lifecert knows of it, small enough
for a real KMS (AWS KMS, Vault transit, an HSM) to implement: ``create`` a subject's live
key, ``get`` a key by id, ``destroy`` a subject's keys.
:class:`~lifecert.keystore.postgres.PostgresKeyStore` implements it in PostgreSQL, each
key wrapped with a master key kept outside the database; :class:`CachedKeyStore` keeps
keys a short while in the process (see docs/personal-data.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from lifecert.datakeys import DataKey, KeyStore

__all__ = ["CachedKeyStore"]


class CachedKeyStore:
    """A :class:`KeyStore` that remembers answers for ``ttl`` seconds (a producer seals
    many events of one retiree, a consumer opens them): a key destroyed elsewhere stays
    usable here at most that long. ``destroy`` through this object forgets at once."""

    def __init__(self, inner: KeyStore, *, ttl: float = 30.0, max_entries: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._live: dict[str, tuple[float, DataKey]] = {}
        self._by_id: dict[tuple[str, str], tuple[float, DataKey | None]] = {}

    def _fresh(self, stamp: float) -> bool:
        return self._clock() - stamp < self.ttl

    def _trim(self) -> None:
        if len(self._live) + len(self._by_id) > self.max_entries:
            self._live.clear()
            self._by_id.clear()

    def create(self, subject: str) -> DataKey:
        with self._lock:
            hit = self._live.get(subject)
        if hit is not None and self._fresh(hit[0]):
            return hit[1]
        key = self.inner.create(subject)
        with self._lock:
            self._trim()
            now = self._clock()
            self._live[subject] = (now, key)
            self._by_id[(subject, key.key_id)] = (now, key)
        return key

    def prefetch(self, subjects: Iterable[str]) -> None:
        """Make or fetch the live keys of ``subjects`` not cached yet, in one call to the
        inner store when it can (``create_many``), so that a producer about to seal many
        retirees' fields waits for one commit, not one per retiree."""
        with self._lock:
            missing = [s for s in dict.fromkeys(subjects)
                       if not ((hit := self._live.get(s)) and self._fresh(hit[0]))]
        if not missing:
            return
        many = getattr(self.inner, "create_many", None)
        keys = many(missing) if many is not None else [self.inner.create(s) for s in missing]
        with self._lock:
            self._trim()
            now = self._clock()
            for key in keys:
                self._live[key.subject] = (now, key)
                self._by_id[(key.subject, key.key_id)] = (now, key)

    def get(self, subject: str, key_id: str) -> DataKey | None:
        with self._lock:
            hit = self._by_id.get((subject, key_id))
        if hit is not None and self._fresh(hit[0]):
            return hit[1]
        key = self.inner.get(subject, key_id)  # UnknownKey is not cached: rare, and loud
        with self._lock:
            self._trim()
            self._by_id[(subject, key_id)] = (self._clock(), key)
        return key

    def close(self) -> None:
        """Close the inner store, if it holds a connection."""
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()

    def destroy(self, subject: str) -> int:
        with self._lock:
            self._live.pop(subject, None)
            for cached in [k for k in self._by_id if k[0] == subject]:
                del self._by_id[cached]
        return self.inner.destroy(subject)
