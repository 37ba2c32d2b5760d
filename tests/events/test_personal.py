"""Personal fields sealed per retiree (lifecert.events.personal) with an in-process key
store; the PostgreSQL key store is tested in tests/keystore/test_keystore.py."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from lifecert.events import codec, personal
from lifecert.events.catalogue import ALL_TYPES, personal_field_names, raw_schema
from lifecert.events.interchange import dumps, parse_line
from lifecert.keystore import CachedKeyStore
from lifecert.keystore.memory import MemoryKeyStore
from tests.helpers import enroll

NAME = "欧阳娜娜"


def _enrolled(rid: str = "R1", name: str = NAME) -> dict:
    return parse_line(enroll(rid, name=name))


def test_name_is_the_declared_personal_field_and_the_fingerprint_did_not_move() -> None:
    assert personal_field_names("RetireeEnrolled") == ("name",)
    declared = {t: personal_field_names(t) for t in ALL_TYPES if personal_field_names(t)}
    assert declared == {"RetireeEnrolled": ("name",),
                        "ContactDetailsUpdated": ("phone", "address")}
    # The annotation is not part of the Parsing Canonical Form: records written before it
    # decode as they did, and older readers see a string.
    schema = raw_schema("RetireeEnrolled")
    assert [f["name"] for f in schema["fields"] if f.get("lifecert.personal")] == ["name"]
    bare = {**schema, "fields": [{k: v for k, v in f.items() if k != "lifecert.personal"}
                                 for f in schema["fields"]]}
    assert codec.SchemaStore(catalogue=False).prepare(bare).fingerprint == \
        codec.default_store().by_type("RetireeEnrolled").fingerprint


def test_sealed_name_is_opaque_on_the_wire_and_opens_with_the_retiree_key() -> None:
    keys = MemoryKeyStore()
    event = _enrolled()
    sealed = personal.seal_personal(event, keys)
    assert event["name"] == NAME  # the caller's event is left alone
    assert personal.is_sealed(sealed["name"]) and NAME not in sealed["name"]
    value = codec.encode(sealed)
    assert NAME.encode() not in value and NAME.encode("utf-16-le") not in value
    decoded = codec.decode(value)
    assert personal.reveal(decoded, "name", keys) == NAME
    # The interchange form (replay, exports) carries the sealed text and parses back.
    assert parse_line(dumps(decoded)) == decoded
    # Two seals of one name differ (random nonce): equal names are not linkable.
    assert personal.seal_personal(event, keys)["name"] != sealed["name"]
    # Events without personal fields pass through unchanged.
    other = {"type": "DeathRecorded", "retiree_id": "R1"}
    assert personal.seal_personal(other, keys) == other


def test_a_sealed_name_moved_to_another_retiree_or_field_does_not_open() -> None:
    keys = MemoryKeyStore()
    sealed = personal.seal_personal(_enrolled("R1"), keys)
    personal.seal_personal(_enrolled("R2", "李四"), keys)
    assert personal.reveal({**sealed, "retiree_id": "R2"}, "name", keys) == personal.UNREADABLE
    assert personal.reveal({**sealed, "address": sealed["name"]}, "address", keys) == \
        personal.UNREADABLE
    head, key_id, body = sealed["name"].split(".")
    blob = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    blob[-1] ^= 1
    tampered = f"{head}.{key_id}.{base64.urlsafe_b64encode(bytes(blob)).decode().rstrip('=')}"
    assert personal.reveal({**sealed, "name": tampered}, "name", keys) == personal.UNREADABLE
    forged = "lcp1.0123456789abcdef.AAAA"
    assert personal.reveal({**sealed, "name": forged}, "name", keys) == personal.UNREADABLE


def test_after_erasure_readers_show_the_marker_and_never_fail() -> None:
    keys = MemoryKeyStore()
    sealed = personal.seal_personal(_enrolled(), keys)
    assert keys.destroy("R1") == 1
    assert keys.destroy("R1") == 0  # idempotent
    assert personal.reveal(sealed, "name", keys) == personal.ERASED
    # New data after an erasure gets a new key; the old seal stays shredded.
    again = personal.seal_personal(_enrolled(), keys)
    assert personal.reveal(again, "name", keys) == NAME
    assert personal.reveal(sealed, "name", keys) == personal.ERASED
    # A clear name written before sealing existed is shown as it is.
    assert personal.reveal(_enrolled(), "name", keys) == NAME


def test_a_value_that_looks_sealed_is_sealed_again_not_passed_through() -> None:
    keys = MemoryKeyStore()
    smuggled = "lcp1.0123456789abcdef.bG9va3MgbGlrZSBhIHNlYWw"
    sealed = personal.seal_personal(_enrolled(name=smuggled), keys)
    assert sealed["name"] != smuggled
    assert personal.reveal(sealed, "name", keys) == smuggled


@pytest.mark.parametrize("rid", [None, "", "dead-letters/2017-05"])
def test_personal_fields_without_a_usable_retiree_id_are_refused(rid: str | None) -> None:
    event = {**_enrolled(), "retiree_id": rid}
    with pytest.raises(personal.PersonalDataError, match="retiree"):
        personal.seal_personal(event, MemoryKeyStore())


def test_raw_dead_letters_are_sealed_under_the_retiree_or_the_month() -> None:
    keys = MemoryKeyStore()
    at = datetime(2017, 5, 3, tzinfo=UTC)
    raw = f'{{"retiree_id": "R1", "name": "{NAME}", oops'.encode()
    mine = personal.seal_raw(raw, keys, at, "R1")
    nobody = personal.seal_raw(raw, keys, at)
    spoofed = personal.seal_raw(raw, keys, at, "dead-letters/1999-01")
    for sealed in (mine, nobody, spoofed):
        assert NAME.encode() not in sealed and personal.open_raw(sealed, keys) == raw
    assert personal.open_raw(b"not sealed", keys) == b"not sealed"
    keys.destroy("R1")
    assert personal.open_raw(mine, keys) is None
    assert personal.open_raw(nobody, keys) == raw and personal.open_raw(spoofed, keys) == raw
    keys.destroy(personal.dead_letter_subject(at))
    assert personal.open_raw(nobody, keys) is None and personal.open_raw(spoofed, keys) is None


def test_the_cache_forgets_a_key_destroyed_through_it_at_once_and_others_after_ttl() -> None:
    inner = MemoryKeyStore()
    now = [0.0]
    cached = CachedKeyStore(inner, ttl=30, clock=lambda: now[0])
    sealed = personal.seal_personal(_enrolled(), cached)
    assert personal.reveal(sealed, "name", cached) == NAME
    inner.destroy("R1")  # erased by another process
    assert personal.reveal(sealed, "name", cached) == NAME  # still within the ttl
    now[0] = 31.0
    assert personal.reveal(sealed, "name", cached) == personal.ERASED
    again = personal.seal_personal(_enrolled(), cached)
    assert personal.reveal(again, "name", cached) == NAME
    cached.destroy("R1")
    assert personal.reveal(again, "name", cached) == personal.ERASED
