"""The data keys personal data is sealed under, and what a store of them must do.

The event vocabulary (:mod:`lifecert.events.personal`) seals and opens personal fields with
any :class:`KeyStore`; where the keys live (PostgreSQL, a KMS, memory) is the key store's
business (:mod:`lifecert.keystore`), which implements this contract. Neither imports the
other: both import this module, which imports no other part of lifecert.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["DataKey", "KeyStore", "KeyStoreError", "UnknownKey"]


class KeyStoreError(RuntimeError):
    """The key store cannot answer (unreachable, misconfigured); the message says why."""


class UnknownKey(LookupError):
    """No key with this id was ever made for this subject (another key store's, or forged)."""


@dataclass(frozen=True, slots=True)
class DataKey:
    """A subject's data key: ``key_id`` names it in every sealed value; ``secret`` is the
    32-byte AES key (never shown by repr)."""

    subject: str
    key_id: str
    secret: bytes = field(repr=False)


class KeyStore(Protocol):
    def create(self, subject: str) -> DataKey:
        """The subject's live key, made now if it has none (a subject whose keys were
        destroyed gets a new key: data received after an erasure is new data)."""
        ...

    def get(self, subject: str, key_id: str) -> DataKey | None:
        """The key ``key_id`` of ``subject``; None once destroyed; :class:`UnknownKey` if
        it never existed."""
        ...

    def destroy(self, subject: str) -> int:
        """Destroy every key of ``subject``; returns how many were live (0: nothing left
        to destroy, the call is idempotent)."""
        ...
