"""Personal data on the log: sealed per retiree, so that destroying a key shreds it.

The rules need no name, phone or address. A field declared personal in its schema
(``"lifecert.personal": true``, listed by
:func:`lifecert.events.catalogue.personal_field_names`, the one declaration: today
RetireeEnrolled.name and ContactDetailsUpdated.phone and address) leaves the hub's edge only as a
*sealed value*: AES-256-GCM under the retiree's data key from the key store
(:mod:`lifecert.keystore`), the associated data binding it to the retiree id, the field
name and the key id, so a sealed name copied onto another retiree or field does not open.
On the topic the Avro field stays a ``string`` holding the text form::

    lcp1.<key id: 16 hex>.<base64url of the sealed bytes (lifecert.sealing.seal)>

so the schema (and its fingerprint), older readers and the interchange JSON are unchanged:
they see an opaque string. Every producer calls :func:`seal_personal` before encoding;
readers that show a personal field call :func:`reveal`, which gives :data:`ERASED` once
``lifecert erase`` destroyed the key, and never raises for a value it cannot open.

Raw bytes kept in a dead letter at the edge (a malformed line, a partner's record) may
hold the same data in any shape; :func:`seal_raw` seals them whole, under the retiree's
key when the caller knows the retiree, else under the key of the dead letter's month,
which the dead-letter retention destroys (``lifecert dead-letters purge``).
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar, overload

import msgspec

from lifecert.datakeys import DataKey, KeyStore, UnknownKey
from lifecert.events.catalogue import PERSONAL_PROPERTY, personal_field_names
from lifecert.events.record import EventRecord
from lifecert.sealing import SealError, seal, unseal

__all__ = [
    "ERASED",
    "PERSONAL_PROPERTY",
    "UNREADABLE",
    "PersonalDataError",
    "dead_letter_subject",
    "is_sealed",
    "open_raw",
    "reveal",
    "seal_personal",
    "seal_raw",
]

log = logging.getLogger("lifecert.personal")

PREFIX = "lcp1."
RAW_PREFIX = b"LCP1."
ERASED = "[erased]"
UNREADABLE = "[unreadable]"
DEAD_LETTERS_SUBJECT = "dead-letters/"  # never a retiree id (seal_personal refuses it)
_TOKEN = re.compile(r"lcp1\.([0-9a-f]{16})\.([A-Za-z0-9_-]+)")
_RAW = re.compile(rb"LCP1\.([^\x00.]{1,200})\.([0-9a-f]{16})\.", re.DOTALL)


class PersonalDataError(ValueError):
    """An event with personal fields cannot be sealed (no usable retiree id)."""


def is_sealed(value: Any) -> bool:
    return isinstance(value, str) and _TOKEN.fullmatch(value) is not None


def _aad(subject: str, field: str, key_id: str) -> bytes:
    return b"\x00".join((b"lifecert.personal", subject.encode("utf-8", "surrogatepass"),
                         field.encode(), key_id.encode()))


def _seal_text(value: str, key: DataKey, field: str) -> str:
    blob = seal(value.encode("utf-8", "surrogatepass"), key.secret,
                _aad(key.subject, field, key.key_id))
    return f"{PREFIX}{key.key_id}.{base64.urlsafe_b64encode(blob).decode().rstrip('=')}"


_Typed = TypeVar("_Typed", bound=EventRecord)


@overload
def seal_personal(event: _Typed, keys: KeyStore) -> _Typed: ...
@overload
def seal_personal(event: Mapping[str, Any], keys: KeyStore) -> dict[str, Any]: ...
def seal_personal(event: Mapping[str, Any] | EventRecord, keys: KeyStore) -> Any:
    """``event`` with its personal fields sealed under its retiree's key (made on first
    use): the one function every producer calls before encoding. A value is sealed even
    if it already looks sealed (a partner cannot smuggle text past it that way). A typed
    event comes back typed (a copy when sealed), a mapping as a new ``dict``."""
    fields = personal_field_names(event.get("type", ""))
    if isinstance(event, EventRecord):
        if not fields or all(event.get(f) is None for f in fields):
            return event
        sealed = _sealed(event, fields, keys)
        return msgspec.structs.replace(event, **{f: sealed[f] for f in fields})
    out = dict(event)
    if not fields or all(out.get(f) is None for f in fields):
        return out
    return _sealed(out, fields, keys)


def _sealed(
    event: Mapping[str, Any] | EventRecord, fields: tuple[str, ...], keys: KeyStore
) -> dict[str, Any]:
    out = dict(event)
    subject = out.get("retiree_id")
    if not isinstance(subject, str) or not subject:
        raise PersonalDataError(
            f"{out.get('type')} has personal fields but no retiree id to seal them under")
    if subject.startswith(DEAD_LETTERS_SUBJECT):
        raise PersonalDataError(
            f"retiree_id may not start with {DEAD_LETTERS_SUBJECT!r} (reserved for the keys "
            "of dead letters)")
    key = keys.create(subject)
    for field in fields:
        value = out.get(field)
        if value is not None:
            if not isinstance(value, str):
                raise PersonalDataError(f"personal field {field!r} must be text to be sealed")
            out[field] = _seal_text(value, key, field)
    return out


def reveal(event: Mapping[str, Any], field: str, keys: KeyStore) -> str | None:
    """The clear value of personal field ``field`` of a decoded event: :data:`ERASED` once
    its key is destroyed, :data:`UNREADABLE` if it does not open (a key this store never
    made, a tampered value). A clear value written before sealing existed is returned as
    is. Only an unreachable key store raises (KeyStoreError): that is an outage."""
    value = event.get(field)
    if value is None or not isinstance(value, str):
        return value
    match = _TOKEN.fullmatch(value)
    if match is None:
        return value
    subject = event.get("retiree_id")
    if not isinstance(subject, str):
        return UNREADABLE
    key_id, text = match.groups()
    try:
        key = keys.get(subject, key_id)
    except UnknownKey:
        log.warning("a sealed %s does not open: its key is unknown to this key store", field)
        return UNREADABLE
    if key is None:
        return ERASED
    try:
        blob = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return unseal(blob, key.secret, _aad(subject, field, key_id)).decode(
            "utf-8", "surrogatepass")
    except (SealError, binascii.Error, ValueError):
        log.warning("a sealed %s does not authenticate (tampered, or bound to another "
                    "retiree or field)", field)
        return UNREADABLE


def dead_letter_subject(at: datetime) -> str:
    """The key-store subject of the raw dead letters of ``at``'s month (UTC)."""
    return f"{DEAD_LETTERS_SUBJECT}{at:%Y-%m}"


def seal_raw(raw: bytes, keys: KeyStore, at: datetime, retiree_id: str | None = None) -> bytes:
    """The raw bytes of a dead letter, sealed whole: under the retiree's key when the caller
    knows whose record it is (``lifecert erase`` then shreds it; never a reserved
    dead-letter subject), else under the key of the month of ``at`` (destroyed once the
    dead-letter retention has passed)."""
    subject = retiree_id if retiree_id and not retiree_id.startswith(
        DEAD_LETTERS_SUBJECT) else dead_letter_subject(at)
    key = keys.create(subject)
    blob = seal(raw, key.secret, _aad(subject, "raw", key.key_id))
    return RAW_PREFIX + subject.encode("utf-8", "surrogatepass") + b"." + \
        key.key_id.encode() + b"." + blob


def open_raw(value: bytes, keys: KeyStore) -> bytes | None:
    """The raw bytes sealed by :func:`seal_raw`; None once their key is destroyed or if
    they do not open. Bytes that are not sealed are returned as they are."""
    match = _RAW.match(value)
    if match is None:
        return value
    subject = match.group(1).decode("utf-8", "surrogatepass")
    key_id = match.group(2).decode()
    try:
        key = keys.get(subject, key_id)
        if key is None:
            return None
        return unseal(value[match.end():], key.secret, _aad(subject, "raw", key_id))
    except (UnknownKey, SealError):
        return None
