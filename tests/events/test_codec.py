"""Tests of the Avro single-object codec, against real fastavro and Apache's ``avro``."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import io
import json
from typing import Any
from zoneinfo import ZoneInfo

import avro.io
import avro.schema
import fastavro
import pytest
from fastavro.schema import fingerprint as fastavro_fingerprint
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lifecert.events import bounds
from lifecert.events.catalogue import (
    ALL_TYPES,
    EVENT_TYPES,
    enum_symbols,
    previous_schemas,
    raw_schema,
)
from lifecert.events.codec import (
    HEADER_SIZE,
    MARKER,
    BadMarker,
    CodecError,
    CorruptRecord,
    DecodeError,
    InvalidEvent,
    SchemaError,
    SchemaMismatch,
    SchemaStore,
    TruncatedRecord,
    UnknownEventType,
    UnknownFingerprint,
    decode,
    default_store,
    encode,
    from_datum,
    to_datum,
)
from tests.helpers import examples

CST = dt.timezone(dt.timedelta(hours=8), "CST")
UTC = dt.UTC


def at(*args: int, tz: dt.tzinfo = CST) -> dt.datetime:
    return dt.datetime(*args, tzinfo=tz)


def sample_events() -> dict[str, dict[str, Any]]:
    """One realistic event of every catalogue type, keyed by type."""
    events: list[dict[str, Any]] = [
        {
            "type": "RetireeEnrolled",
            "event_id": "3f1c2a9e-0b7d-4f7e-9a51-6a1e3c0d2b11",
            "recorded_at": at(2016, 12, 30, 9, 0, 0),
            "source_agency": "FS-SIB",
            "retiree_id": "R-440604-000123",
            "name": "陈美玲",
            "birth_date": dt.date(1936, 2, 11),
            "scheme": "URBAN_EMPLOYEE",
            "category": "REGULAR",
            "residence": "FOSHAN",
            "district": "CHANCHENG",
            "country": None,
            "pension_start": dt.date(1996, 3, 1),
            "monthly_amount_fen": 321_450,
            "disabled": False,
            "managing_unit": None,
        },
        {
            "type": "PensionAmountChanged",
            "event_id": "5b0e8f8c-6f0e-4a3c-8c55-1f4f3e7d9a02",
            "recorded_at": at(2017, 1, 20, 16, 45, 12, 500),
            "source_agency": "FS-SIB",
            "retiree_id": "R-440604-000123",
            "monthly_amount_fen": 335_000,
            "effective_month": "2017-01",
        },
        {
            "type": "CertificationRecorded",
            "event_id": "9d4e1b77-2c3a-4c55-b0a1-8e2f6d7c3b40",
            "recorded_at": at(2017, 5, 3, 9, 15, 30, 1),
            "source_agency": "FS-FACE-APP",
            "certification_id": "CERT-2017-0004711",
            "retiree_id": "R-440604-000123",
            "channel": "FACE_APP",
            "agency_id": "FS-FACE-APP",
            "performed_at": at(2017, 5, 3, 9, 15, 27, 123456),
        },
        {
            "type": "CertificationDocumentsReceived",
            "event_id": "0c7a3d21-9e8f-4b6a-a2d3-5f1e0b9c8d77",
            "recorded_at": at(2017, 6, 12, 11, 2, 0),
            "source_agency": "FS-SIB-MAILROOM",
            "certification_id": "CERT-2017-0009001",
            "retiree_id": "R-440605-004242",
            "received_at": at(2017, 6, 12, 10, 30, 0, tz=UTC),
            "agency_id": "FS-COMMUNITY-12",
            "form_number": 1,
            "postmarked_on": dt.date(2017, 6, 9),
            "scan_sha256": "9f" * 32,
        },
        {
            "type": "DeathRecorded",
            "event_id": "e2b9c4a0-7d1f-4e3b-9c8a-2a6f5d4e3c21",
            "recorded_at": at(2017, 5, 22, 8, 0, 0),
            "source_agency": "FS-CIVIL-AFFAIRS",
            "retiree_id": "R-440606-000777",
            "date_of_death": dt.date(2017, 3, 14),
            "source": "FS-CIVIL-AFFAIRS",
        },
        {
            "type": "PaymentHoldPlaced",
            "event_id": "hold:R-440605-004242:2017",
            "recorded_at": at(2017, 6, 21, 0, 0, 0),
            "source_agency": None,
            "retiree_id": "R-440605-004242",
            "effective_month": "2017-07",
            "reason": "NOT_CERTIFIED",
        },
        {
            "type": "PaymentHoldReleased",
            "event_id": "release:R-440605-004242:2017",
            "recorded_at": at(2017, 8, 15, 14, 3, 9),
            "source_agency": None,
            "retiree_id": "R-440605-004242",
            "effective_month": "2017-09",
            "backpay_months": ["2017-07", "2017-08"],
            "backpay_amount_fen": 642_900,
        },
        {
            "type": "PaymentTerminated",
            "event_id": "terminate:R-440606-000777",
            "recorded_at": at(2017, 5, 22, 8, 0, 0),
            "source_agency": None,
            "retiree_id": "R-440606-000777",
            "effective_month": "2017-04",
            "reason": "DECEASED",
        },
        {
            "type": "OverpaymentDetected",
            "event_id": "overpayment:R-440606-000777",
            "recorded_at": at(2017, 5, 22, 8, 0, 0),
            "source_agency": None,
            "retiree_id": "R-440606-000777",
            "months": ["2017-04", "2017-05"],
            "amount_fen": 570_000,
        },
        {
            "type": "FraudSuspected",
            "event_id": "fraud:CERT-2017-0005555",
            "recorded_at": at(2017, 5, 22, 8, 0, 0),
            "source_agency": None,
            "retiree_id": "R-440606-000777",
            "certification_id": "CERT-2017-0005555",
            "reason": "CERTIFIED_AFTER_DEATH",
        },
        {
            "type": "HomeVisitDue",
            "event_id": "visit:R-440604-000999:2017",
            "recorded_at": at(2017, 6, 1, 0, 0, 0),
            "source_agency": None,
            "retiree_id": "R-440604-000999",
            "due_date": dt.date(2017, 6, 20),
        },
        {
            "type": "CertificationRevoked",
            "event_id": "revoke:CERT-2017-0009001",
            "recorded_at": at(2017, 8, 2, 9, 0, 0),
            "source_agency": "FS-SIB-STAFF",
            "retiree_id": "R-440605-004242",
            "certification_id": "CERT-2017-0009001",
            "agency_id": "FS-COMMUNITY-12",
            "reason": "MISATTRIBUTED",
        },
        {
            "type": "DeathReportRetracted",
            "event_id": "retract:R-440606-000777",
            "recorded_at": at(2017, 9, 1, 10, 0, 0),
            "source_agency": "FS-SIB-STAFF",
            "retiree_id": "R-440606-000777",
            "source": "FS-SIB-STAFF",
            "reason": "wrong person: namesake in Nanhai",
        },
        {
            "type": "ContactDetailsUpdated",
            "event_id": "contact:R-440605-004242:1",
            "recorded_at": at(2017, 5, 3, 9, 0, 0),
            "source_agency": "FS-COMMUNITY-12",
            "retiree_id": "R-440605-004242",
            "phone": "+86 757 0000 0000",
            "address": None,
            "channel": "COUNTER",
            "agency_id": "FS-COMMUNITY-12",
        },
        {
            "type": "PaymentReinstated",
            "event_id": "reinstate:R-440606-000777",
            "recorded_at": at(2017, 9, 1, 10, 0, 0),
            "source_agency": None,
            "retiree_id": "R-440606-000777",
            "effective_month": "2017-10",
            "backpay_months": ["2017-06", "2017-07", "2017-08", "2017-09"],
            "backpay_amount_fen": 1_140_000,
        },
        {
            "type": "OverpaymentCancelled",
            "event_id": "cancel:R-440606-000777",
            "recorded_at": at(2017, 9, 1, 10, 0, 0),
            "source_agency": None,
            "retiree_id": "R-440606-000777",
            "months": ["2017-04", "2017-05"],
            "amount_fen": 570_000,
        },
        {
            "type": "PaymentEstateSettled",
            "event_id": "estate:R-440605-004242",
            "recorded_at": at(2017, 9, 3, 8, 0, 0),
            "source_agency": None,
            "retiree_id": "R-440605-004242",
            "months": ["2017-07", "2017-08"],
            "amount_fen": 642_900,
        },
        {
            "type": "EventRejected",
            "event_id": "verdict:CERT-2017-0001234",
            "recorded_at": at(2017, 5, 2, 9, 30, 0),
            "source_agency": "lifecert",
            "retiree_id": "R-440605-001234",
            "policy": "foshan-2017",
            "reason": "CHANNEL_NOT_ALLOWED",
            "judged_type": "CertificationRecorded",
            "judged_event_id": "cert:CERT-2017-0001234",
            "reported_by": "FS-COMMUNITY-12",
            "certification_id": "CERT-2017-0001234",
            "agency_id": "FS-COMMUNITY-12",
            "performed_at": at(2017, 5, 1, 10, 0, 0),
        },
    ]
    return {e["type"]: e for e in events}


SAMPLES = sample_events()


def cert(**changes: Any) -> dict[str, Any]:
    return {**SAMPLES["CertificationRecorded"], **changes}


def spec_crc64(data: bytes) -> int:
    """CRC-64-AVRO exactly as the Avro specification writes it (independent of lifecert)."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def apache_schema(type_name: str) -> avro.schema.Schema:
    return avro.schema.parse(json.dumps(default_store().by_type(type_name).schema))


def v2_certification_schema() -> dict[str, Any]:
    """CertificationRecorded with two fields added, both with defaults."""
    schema = copy.deepcopy(raw_schema("CertificationRecorded"))
    schema["fields"] += [
        {"name": "device_id", "type": ["null", "string"], "default": None},
        {"name": "match_score_permille", "type": "long", "default": -1},
    ]
    return schema


def with_field_type(type_name: str, path: tuple[str, ...], new_type: Any) -> dict[str, Any]:
    """The standalone schema of ``type_name`` with the field at ``path`` retyped, to write
    bodies that the real schema's writer never would."""
    schema = copy.deepcopy(default_store().by_type(type_name).schema)
    fields = schema["fields"]
    for name in path[:-1]:
        fields = next(f for f in fields if f["name"] == name)["type"]["fields"]
    field = next(f for f in fields if f["name"] == path[-1])
    field["type"] = new_type
    field.pop("default", None)
    return schema


def raw_record(type_name: str, schema: dict[str, Any], datum: dict[str, Any]) -> bytes:
    """Header of the real ``type_name`` schema + a body written by fastavro with ``schema``."""
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema, {}), datum)
    return default_store().by_type(type_name).header + buf.getvalue()


# ------------------------------------------------------------------- the store


def test_samples_cover_the_catalogue() -> None:
    assert set(SAMPLES) == set(EVENT_TYPES)
    assert len(EVENT_TYPES) == 18


def test_default_store_holds_every_catalogue_schema_once() -> None:
    store = default_store()
    assert store is default_store()
    assert set(store.type_names()) == set(ALL_TYPES)
    previous = len(previous_schemas())  # earlier versions, readable
    assert len(store) == len(ALL_TYPES) + previous
    fingerprints = store.fingerprints()
    assert len(set(fingerprints)) == len(ALL_TYPES) + previous
    for type_name in ALL_TYPES:
        rs = store.by_type(type_name)
        assert rs.type_name == type_name
        assert rs.full_name == f"lifecert.events.{type_name}"
        assert fingerprints[rs.fingerprint] == rs.full_name
        assert store.by_fingerprint(rs.fingerprint) is rs
        assert store.by_fingerprint(rs.header[2:]) is rs
        assert rs.fingerprint in store
        # The Envelope reference is resolved: the stored schema stands alone.
        envelope = rs.schema["fields"][0]
        assert envelope["type"]["name"] == "Envelope"
        assert envelope["type"]["namespace"] == "lifecert.events"


def test_store_reports_fingerprints_of_registered_schemas() -> None:
    store = SchemaStore()
    v1 = store.by_type("CertificationRecorded")
    v2 = store.register(v2_certification_schema())
    assert v2.fingerprint != v1.fingerprint
    assert store.fingerprints()[v2.fingerprint] == "lifecert.events.CertificationRecorded"
    assert store.versions("CertificationRecorded") == (v1, v2)
    assert store.by_type("CertificationRecorded") is v1  # not made current
    assert store.register(json.dumps(v2_certification_schema())) is v2  # idempotent
    assert store.register(v2_certification_schema(), current=True) is v2
    assert store.by_type("CertificationRecorded") is v2
    # other stores are untouched
    assert len(default_store()) == len(ALL_TYPES) + len(previous_schemas())


@pytest.mark.parametrize(
    ("schema", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ('"string"', "must be a JSON object"),
        ({"type": "enum", "name": "E", "symbols": ["A"]}, "must be an Avro record"),
        (
            {"type": "record", "name": "X", "fields": [{"name": "a", "type": "no.Such"}]},
            "invalid Avro schema 'X'",
        ),
        (
            {"type": "record", "name": "X", "fields": [{"name": "a", "type": "long"}]},
            "X: an event schema needs an 'envelope' field",
        ),
    ],
)
def test_register_rejects_bad_schemas(schema: Any, fragment: str) -> None:
    with pytest.raises(SchemaError, match=fragment):
        SchemaStore(catalogue=False).register(schema)


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("type_name", EVENT_TYPES)
def test_round_trip(type_name: str) -> None:
    event = SAMPLES[type_name]
    data = encode(event)
    decoded = decode(data)
    assert decoded == event
    assert list(decoded) == list(event)  # the flat field order of the catalogue
    for key, value in decoded.items():
        if isinstance(value, dt.datetime):
            assert value.tzinfo is UTC, key
            assert value == event[key]  # the same instant


@pytest.mark.parametrize("type_name", EVENT_TYPES)
def test_datum_conversion(type_name: str) -> None:
    event = SAMPLES[type_name]
    datum = to_datum(event)
    assert datum["envelope"] == {
        "event_id": event["event_id"],
        "type": type_name,
        "recorded_at": event["recorded_at"],
        "source_agency": event["source_agency"],
    }
    assert set(datum) - {"envelope"} == set(event) - {
        "type",
        "event_id",
        "recorded_at",
        "source_agency",
    }
    assert from_datum(type_name, datum) == event


def test_missing_defaulted_fields_take_their_defaults() -> None:
    event = dict(SAMPLES["RetireeEnrolled"])
    for name in ("source_agency", "district", "country", "managing_unit"):
        del event[name]
    decoded = decode(encode(event))
    assert decoded["source_agency"] is None
    assert decoded["district"] is None
    assert decoded["country"] is None
    assert decoded["managing_unit"] is None


def test_decode_accepts_bytearray_and_memoryview() -> None:
    data = encode(SAMPLES["HomeVisitDue"])
    assert decode(bytearray(data)) == SAMPLES["HomeVisitDue"]
    assert decode(memoryview(data)) == SAMPLES["HomeVisitDue"]


# ------------------------------------------------- single-object encoding, fingerprints


def test_fingerprint_function_matches_spec_test_vectors() -> None:
    # From the Avro spec's test data (schema-tests.txt) and Apache avro's Python tests.
    assert spec_crc64(b'"null"') == 7195948357588979594
    assert spec_crc64(b'"int"').to_bytes(8, "little").hex() == "8f5c393f1ad57572"


@pytest.mark.parametrize("type_name", EVENT_TYPES)
def test_header_is_marker_and_little_endian_fingerprint(type_name: str) -> None:
    rs = default_store().by_type(type_name)
    data = encode(SAMPLES[type_name])
    assert data[:2] == MARKER == b"\xc3\x01"
    expected = spec_crc64(rs.canonical_form.encode()).to_bytes(8, "little")
    assert data[2:HEADER_SIZE] == expected == rs.header[2:]
    # fastavro's hex fingerprint is of the same little-endian bytes.
    assert fastavro_fingerprint(rs.canonical_form, "CRC-64-AVRO") == expected.hex()
    assert rs.fingerprint == int.from_bytes(expected, "little")
    assert rs.fingerprint_hex == f"{rs.fingerprint:016x}"


def collapse_primitives(schema: Any) -> Any:
    """``{"type": "long"}`` -> ``"long"`` throughout a canonical-form JSON value."""
    if isinstance(schema, list):
        return [collapse_primitives(s) for s in schema]
    if isinstance(schema, dict):
        if set(schema) == {"type"} and isinstance(schema["type"], str):
            return schema["type"]
        return {k: collapse_primitives(v) for k, v in schema.items()}
    return schema


@pytest.mark.parametrize("type_name", EVENT_TYPES)
def test_apache_avro_agrees_on_the_fingerprint(type_name: str) -> None:
    rs = default_store().by_type(type_name)
    # Apache avro's own CRC-64-AVRO, on lifecert's canonical form (a schema of its own).
    assert avro.schema.parse(rs.canonical_form).fingerprint("CRC-64-AVRO") == rs.header[2:]
    # Apache avro's canonical form of the full schema keeps a logical-typed primitive as
    # {"type":"long"} where Java's SchemaNormalization (and fastavro, and Rust) write
    # "long", so its fingerprint of the full schema differs; lifecert follows Java.
    apache_form = apache_schema(type_name).canonical_form
    if apache_form != rs.canonical_form:
        collapsed = collapse_primitives(json.loads(apache_form))
        assert json.dumps(collapsed, separators=(",", ":")) == rs.canonical_form
    expected = spec_crc64(rs.canonical_form.encode()).to_bytes(8, "little")
    assert expected == rs.header[2:]


@pytest.mark.parametrize("type_name", EVENT_TYPES)
def test_apache_avro_decodes_a_lifecert_record(type_name: str) -> None:
    event = SAMPLES[type_name]
    data = encode(event)
    schema = apache_schema(type_name)
    body = io.BytesIO(data[HEADER_SIZE:])
    datum = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(body))
    assert body.tell() == len(data) - HEADER_SIZE  # the whole body, nothing more
    assert datum == to_datum(event)
    assert from_datum(type_name, datum) == event


@pytest.mark.parametrize("type_name", EVENT_TYPES)
def test_lifecert_decodes_an_apache_avro_record(type_name: str) -> None:
    event = SAMPLES[type_name]
    schema = apache_schema(type_name)
    body = io.BytesIO()
    avro.io.DatumWriter(schema).write(to_datum(event), avro.io.BinaryEncoder(body))
    data = default_store().by_type(type_name).header + body.getvalue()
    assert decode(data) == event
    assert data == encode(event)


# ------------------------------------------------------------- schema evolution


def test_reader_schema_with_added_fields_reads_older_records() -> None:
    event = SAMPLES["CertificationRecorded"]
    data = encode(event)
    v2 = v2_certification_schema()
    decoded = decode(data, reader_schema=v2)
    assert decoded == {**event, "device_id": None, "match_score_permille": -1}
    assert decode(data, reader_schema=json.dumps(v2)) == decoded
    assert decode(data, reader_schema=default_store().prepare(v2)) == decoded
    # Prepared once: the same dict object hits the reader cache.
    assert default_store().reader(v2) is default_store().reader(v2)


def test_newer_writer_is_decoded_once_registered() -> None:
    store = SchemaStore()
    v2 = store.register(v2_certification_schema(), current=True)
    event = cert(device_id="HUAWEI-P10-88d1", match_score_permille=973)
    data = encode(event, store)
    assert data[:HEADER_SIZE] == v2.header
    assert decode(data, store) == event
    # An older reader drops the added fields.
    assert decode(data, store, reader_schema=raw_schema("CertificationRecorded")) == cert()
    # A store that does not know the newer writer says so.
    with pytest.raises(UnknownFingerprint, match=v2.fingerprint_hex):
        decode(data)


def test_incompatible_reader_schema_is_a_schema_mismatch() -> None:
    reader = copy.deepcopy(raw_schema("CertificationRecorded"))
    channel = next(f for f in reader["fields"] if f["name"] == "channel")
    channel["type"]["symbols"].remove("HOME_VISIT")
    data = encode(cert(channel="HOME_VISIT"))
    with pytest.raises(SchemaMismatch) as info:
        decode(data, reader_schema=reader)
    message = str(info.value)
    assert "HOME_VISIT" in message
    assert "lifecert.events.CertificationRecorded" in message

    no_default = copy.deepcopy(raw_schema("CertificationRecorded"))
    no_default["fields"].append({"name": "device_id", "type": "string"})
    with pytest.raises(SchemaMismatch, match="device_id"):
        decode(data, reader_schema=no_default)


# ------------------------------------------------------------------ decode errors


def test_unknown_fingerprint() -> None:
    data = bytearray(encode(SAMPLES["CertificationRecorded"]))
    data[2:HEADER_SIZE] = bytes.fromhex("0123456789abcdef")
    with pytest.raises(UnknownFingerprint) as info:
        decode(bytes(data))
    message = str(info.value)
    assert info.value.fingerprint == 0xEFCDAB8967452301
    assert "efcdab8967452301" in message  # the fingerprint as a number
    assert "0123456789abcdef" in message  # and as it appears in the header
    assert "register the writer's schema with SchemaStore.register()" in message
    assert (
        f"CertificationRecorded {default_store().by_type('CertificationRecorded').fingerprint_hex}"
        in message
    )


def test_truncated_body_says_where_and_how_much() -> None:
    data = encode(cert(agency_id="AGENCY-0042"))
    start = data.index(b"AGENCY-0042")
    with pytest.raises(TruncatedRecord) as info:
        decode(data[: start + 4])
    assert str(info.value) == (
        "CertificationRecorded record (writer fingerprint "
        f"{default_store().by_type('CertificationRecorded').fingerprint_hex}): expected 11 "
        f"more byte(s) for field 'agency_id' at byte {start} of {start + 4}, got 4; "
        "record truncated or corrupt"
    )


@pytest.mark.parametrize("type_name", EVENT_TYPES)
def test_every_truncation_is_a_truncated_record(type_name: str) -> None:
    data = encode(SAMPLES[type_name])
    for end in range(len(data)):
        with pytest.raises(TruncatedRecord, match=r"expected \d+ .*got \d+; record truncated"):
            decode(data[:end])


def test_truncated_header() -> None:
    data = encode(SAMPLES["HomeVisitDue"])
    with pytest.raises(
        TruncatedRecord, match=r"expected 10 header bytes .*got 6; record truncated"
    ):
        decode(data[:6])


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b'{"type": "CertificationRecorded"}', "expected marker c3 01, got 7b 22"),
        (b"\x00\x00\x00\x00\x07payload", "got 00 00 (a Confluent Schema Registry frame"),
        (b"\xc3\x02" + bytes(20), "expected marker c3 01, got c3 02"),
    ],
)
def test_wrong_marker(data: bytes, fragment: str) -> None:
    with pytest.raises(BadMarker) as info:
        decode(data)
    assert fragment in str(info.value)
    assert "not an Avro single-object encoded record" in str(info.value)


def test_trailing_bytes_are_corrupt() -> None:
    data = encode(SAMPLES["PaymentHoldPlaced"])
    with pytest.raises(CorruptRecord, match=r"1 byte\(s\) after its body"):
        decode(data + b"\x00")


def test_enum_index_out_of_range_on_decode() -> None:
    # The enum's index is a zigzag int on the wire, like a long: write 12 for 12 symbols.
    schema = with_field_type("CertificationRecorded", ("channel",), "long")
    datum = {**to_datum(cert()), "channel": 12}
    with pytest.raises(CorruptRecord) as info:
        decode(raw_record("CertificationRecorded", schema, datum))
    message = str(info.value)
    assert not isinstance(info.value, TruncatedRecord)
    assert "field 'channel'" in message
    assert "enum index 12 out of range: lifecert.events.Channel has 12 symbols (0..11" in message
    assert isinstance(info.value.__cause__, IndexError)  # fastavro's, chained, not escaping


def test_union_index_out_of_range_on_decode() -> None:
    schema = with_field_type("CertificationRecorded", ("envelope", "source_agency"), "long")
    datum = to_datum(cert())
    datum["envelope"]["source_agency"] = 2
    with pytest.raises(
        CorruptRecord, match=r"field 'envelope.source_agency'.*union branch index 2"
    ):
        decode(raw_record("CertificationRecorded", schema, datum))


def test_envelope_type_must_match_writer_schema() -> None:
    datum = to_datum(cert())
    datum["envelope"]["type"] = "DeathRecorded"
    schema = default_store().by_type("CertificationRecorded").schema
    with pytest.raises(CorruptRecord, match="envelope type 'DeathRecorded' does not match"):
        decode(raw_record("CertificationRecorded", schema, datum))


def test_invalid_utf8_is_corrupt() -> None:
    data = encode(cert(agency_id="AGENCY-0042"))
    bad = data.replace(b"AGENCY-0042", b"AGENCY-\xff\xfe42")
    with pytest.raises(CorruptRecord, match=r"field 'agency_id'.*invalid UTF-8"):
        decode(bad)


@settings(max_examples=examples(300), suppress_health_check=[HealthCheck.too_slow])
@given(
    type_name=st.sampled_from(["CertificationRecorded", "OverpaymentDetected", "RetireeEnrolled"]),
    position=st.integers(min_value=HEADER_SIZE, max_value=200),
    replacement=st.binary(min_size=1, max_size=4),
)
def test_corrupted_bodies_only_raise_codec_errors(
    type_name: str, position: int, replacement: bytes
) -> None:
    data = encode(SAMPLES[type_name])
    position = min(position, len(data) - 1)
    corrupted = data[:position] + replacement + data[position + len(replacement) :]
    with contextlib.suppress(DecodeError):
        decode(corrupted)


# ------------------------------------------------------------------ encode errors


def test_wrong_enum_symbol_on_encode() -> None:
    with pytest.raises(InvalidEvent) as info:
        encode(cert(channel="FACE_PHONE"))
    message = str(info.value)
    assert message.startswith("invalid CertificationRecorded event: field 'channel' must be")
    assert "'FACE_PHONE'" in message
    assert ", ".join(enum_symbols("Channel")) in message


def test_naive_datetime_is_rejected() -> None:
    with pytest.raises(InvalidEvent) as info:
        encode(cert(performed_at=dt.datetime(2017, 5, 3, 9, 15)))
    message = str(info.value)
    assert "field 'performed_at' must be a timezone-aware datetime" in message
    assert "naive" in message
    assert "datetime.datetime(2017, 5, 3, 9, 15)" in message
    with pytest.raises(InvalidEvent, match="field 'recorded_at' must be a timezone-aware"):
        encode(cert(recorded_at=dt.datetime(2017, 5, 3)))


@pytest.mark.parametrize(
    ("event", "fragment"),
    [
        (cert(certification_id=4711), "field 'certification_id' must be a str; got 4711 (int)"),
        (cert(source_agency=7), "field 'source_agency' must be a str, or None; got 7"),
        (cert(performed_at="2017-05-03T09:15:27+08:00"), "must be a timezone-aware datetime"),
        (
            {k: v for k, v in cert().items() if k != "agency_id"},
            "invalid CertificationRecorded event: missing field 'agency_id'",
        ),
        (cert(agnecy_id="x"), "unknown field(s) agnecy_id"),
        (
            {**SAMPLES["DeathRecorded"], "date_of_death": at(2017, 3, 14, 23, 30)},
            "field 'date_of_death' must be a datetime.date (not a datetime)",
        ),
        (
            {**SAMPLES["PaymentHoldPlaced"], "effective_month": "2017-13"},
            "field 'effective_month' must be a month string 'YYYY-MM'; got '2017-13'",
        ),
        (
            {**SAMPLES["PaymentHoldReleased"], "backpay_months": ["2017-07", "2017/08"]},
            "item 1 is '2017/08'",
        ),
        (
            {**SAMPLES["RetireeEnrolled"], "monthly_amount_fen": 3214.5},
            "field 'monthly_amount_fen' must be an int in the Avro long range",
        ),
        (
            {**SAMPLES["RetireeEnrolled"], "monthly_amount_fen": 2**63},
            "field 'monthly_amount_fen' must be an int in the Avro long range",
        ),
        ({**SAMPLES["RetireeEnrolled"], "disabled": 0}, "field 'disabled' must be a bool"),
        ({**SAMPLES["RetireeEnrolled"], "district": "FOSHAN"}, "CHANCHENG, NANHAI"),
    ],
)
def test_invalid_events(event: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        encode(event)
    assert fragment in str(info.value)


def test_unknown_or_missing_type() -> None:
    with pytest.raises(UnknownEventType, match="no schema for event type 'CertificationDone'"):
        encode(cert(type="CertificationDone"))
    with pytest.raises(InvalidEvent, match="event has no 'type' field"):
        encode({k: v for k, v in cert().items() if k != "type"})


def test_errors_form_one_hierarchy() -> None:
    for error in (
        BadMarker,
        UnknownFingerprint,
        TruncatedRecord,
        CorruptRecord,
        SchemaMismatch,
        InvalidEvent,
        UnknownEventType,
        SchemaError,
    ):
        assert issubclass(error, CodecError)
    assert issubclass(CodecError, ValueError)
    assert issubclass(TruncatedRecord, CorruptRecord)


# ------------------------------------------------------------- round-trip property

_ZONES = [ZoneInfo(k) for k in ("Asia/Shanghai", "Asia/Macau", "Europe/London", "America/Lima")]
_OFFSETS = st.builds(
    dt.timezone,
    st.timedeltas(
        min_value=dt.timedelta(hours=-23, minutes=-59), max_value=dt.timedelta(hours=23, minutes=59)
    ),
)
_TIMESTAMPS = st.datetimes(
    min_value=dt.datetime(1901, 1, 1),
    max_value=dt.datetime(2200, 12, 31),
    timezones=st.one_of(st.just(UTC), _OFFSETS, st.sampled_from(_ZONES)),
)
_IDS = st.from_regex(bounds.EVENT_ID, fullmatch=True)
_RETIREE_IDS = st.from_regex(bounds.RETIREE_ID, fullmatch=True)
_CERTIFICATION_IDS = st.from_regex(bounds.CERTIFICATION_ID, fullmatch=True)
_AGENCY_IDS = st.from_regex(bounds.AGENCY_ID, fullmatch=True)

_CERTIFICATIONS = st.fixed_dictionaries(
    {
        "type": st.just("CertificationRecorded"),
        "event_id": _IDS,
        "recorded_at": _TIMESTAMPS,
        "source_agency": st.none() | _AGENCY_IDS,
        "certification_id": _CERTIFICATION_IDS,
        "retiree_id": _RETIREE_IDS,
        "channel": st.sampled_from(enum_symbols("Channel")),
        "agency_id": _AGENCY_IDS,
        "performed_at": _TIMESTAMPS,
    }
)


@settings(max_examples=examples(300))
@given(_CERTIFICATIONS)
def test_round_trip_property(event: dict[str, Any]) -> None:
    data = encode(event)
    decoded = decode(data)
    assert data[:HEADER_SIZE] == default_store().by_type("CertificationRecorded").header
    for key in ("recorded_at", "performed_at"):
        assert decoded[key].tzinfo is UTC
        # Compared in UTC: PEP 495 makes inter-zone == false for times in a DST fold.
        assert decoded[key] == event[key].astimezone(UTC)
    plain = {k: v for k, v in event.items() if k not in ("recorded_at", "performed_at")}
    assert {k: v for k, v in decoded.items() if k in plain} == plain
    assert list(decoded) == list(SAMPLES["CertificationRecorded"])


def test_pipeline_records_round_trip() -> None:
    at = dt.datetime(2017, 6, 20, 16, tzinfo=UTC)
    records = [
        {"type": "ClockTick", "event_id": "t1", "recorded_at": at, "source_agency": "clock",
         "policy": "foshan-2017", "moment": "DEADLINE", "at": at},
        {"type": "RetireeStatus", "event_id": "s1", "recorded_at": at, "source_agency": None,
         "retiree_id": "R1", "policy": "foshan-2017", "status": "CERTIFIED",
         "district": "NANHAI", "residence": "FOSHAN", "completed_by": "FACE_APP",
         "completed_at": at, "revocations": 1, "retractions": 0,
         "performed_on": dt.date(2017, 6, 19), "death_source": None,
         "death_recorded_at": None},
        {"type": "RetireeStatus", "event_id": "s2", "recorded_at": at, "source_agency": None,
         "retiree_id": "R2", "policy": "foshan-2017", "status": "DECEASED",
         "district": None, "residence": "MACAU", "completed_by": None, "completed_at": None,
         "revocations": 0, "retractions": 1, "performed_on": None, "death_source": "MACAU_SSF",
         "death_recorded_at": at},
        {"type": "DeadLetter", "event_id": "d1", "recorded_at": at, "source_agency": None,
         "stage": "worker", "source_topic": "lifecert.events", "source_partition": 3,
         "source_offset": 17, "key": b"R1", "value": b"\xc3\x01\x00", "source_position": None,
         "reason": "truncated"},
    ]
    for record in records:
        assert decode(encode(record)) == record


def test_fraud_suspected_written_before_the_face_reason_still_decodes() -> None:
    """FraudReason gained FACE_MATCH_AFTER_NOT_LIVE (issue 11): alerts written with the
    earlier schema (another fingerprint) stay readable, and new ones use the new schema."""
    [old] = [s for s in previous_schemas() if s["name"] == "FraudSuspected"]
    writer = SchemaStore(catalogue=False)
    registered = writer.register(old, current=True)
    event = {
        "type": "FraudSuspected", "event_id": "fraud-old",
        "recorded_at": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "source_agency": "lifecert",
        "retiree_id": "R1", "certification_id": "C1", "reason": "CERTIFIED_AFTER_DEATH",
    }
    data = encode(event, store=writer)
    assert data[2:10] == registered.fingerprint.to_bytes(8, "little")
    assert registered.fingerprint != default_store().by_type("FraudSuspected").fingerprint
    assert decode(data) == event
    new = {**event, "event_id": "fraud-new", "reason": "FACE_MATCH_AFTER_NOT_LIVE"}
    assert decode(encode(new)) == new


def _old(name: str, version: int = 1) -> dict[str, Any]:
    """The schema ``name`` as it was in version ``version`` (previous/NAME.vN.avsc)."""
    return [s for s in previous_schemas() if s["name"] == name][version - 1]


def test_statuses_written_before_performed_on_still_decode() -> None:
    """RetireeStatus gained performed_on (issue 18: when the person was seen): a status
    written with v2 decodes with it null under the current schema; a reader on v2 reads a
    new status without it."""
    at = dt.datetime(2017, 6, 20, 16, tzinfo=UTC)
    status = {"type": "RetireeStatus", "event_id": "s1", "recorded_at": at,
              "source_agency": "lifecert", "retiree_id": "R1", "policy": "foshan-2017",
              "status": "CERTIFIED", "district": None, "residence": "MACAU",
              "completed_by": "MACAU_SSF", "completed_at": at, "revocations": 0,
              "retractions": 0}
    writer = SchemaStore(catalogue=False)
    writer.register(_old("RetireeStatus", 2), current=True)
    data = encode(status, store=writer)
    assert decode(data) == status
    assert decode(data, reader_schema=raw_schema("RetireeStatus")) == {
        **status, "performed_on": None, "death_source": None, "death_recorded_at": None}
    new = {**status, "performed_on": dt.date(2017, 6, 18), "death_source": None,
           "death_recorded_at": None}
    assert decode(encode(new)) == new
    assert decode(encode(new), reader_schema=_old("RetireeStatus", 2)) == status


def test_records_written_before_rules_11_to_14_still_decode() -> None:
    """CertificationDocumentsReceived gained an optional agency_id and HoldReason gained
    CERTIFICATION_REVOKED (issue 16): records written with the earlier schemas decode, the
    missing agency_id as null (docs/events.md, Evolution)."""
    writer = SchemaStore(catalogue=False)
    writer.register(_old("CertificationDocumentsReceived"), current=True)
    writer.register(_old("PaymentHoldPlaced"), current=True)
    docs = {k: v for k, v in SAMPLES["CertificationDocumentsReceived"].items()
            if k not in ("agency_id", "form_number", "postmarked_on", "scan_sha256")}
    data = encode(docs, store=writer)
    assert decode(data) == docs  # as written; the fold reads a missing agency_id as null
    current = raw_schema("CertificationDocumentsReceived")
    assert decode(data, reader_schema=current) == {
        **docs, "agency_id": None, "form_number": None, "postmarked_on": None,
        "scan_sha256": None}
    hold = SAMPLES["PaymentHoldPlaced"]
    assert decode(encode(hold, store=writer)) == hold


def test_statuses_written_before_the_death_source_still_decode() -> None:
    """RetireeStatus gained optional death_source and death_recorded_at (issue 15, the
    report's deaths by register): statuses written with the second schema decode, the new
    fields as null for a reader on the current schema."""
    writer = SchemaStore(catalogue=False)
    writer.register(_old("RetireeStatus", 2), current=True)
    at = dt.datetime(2017, 6, 20, 16, tzinfo=UTC)
    status = {"type": "RetireeStatus", "event_id": "s3", "recorded_at": at,
              "source_agency": None, "retiree_id": "R3", "policy": "foshan-2017",
              "status": "DECEASED", "district": None, "residence": "FOSHAN",
              "completed_by": None, "completed_at": None, "revocations": 0, "retractions": 0}
    data = encode(status, store=writer)
    assert decode(data) == status
    assert decode(data, reader_schema=raw_schema("RetireeStatus")) == {
        **status, "performed_on": None, "death_source": None, "death_recorded_at": None}


def test_documents_written_before_the_mailroom_still_decode() -> None:
    """CertificationDocumentsReceived gained optional form_number, postmarked_on and
    scan_sha256 (issue 14, the mailroom): records written with the second schema decode,
    the new fields as null; a reader on the second schema reads new records without them."""
    writer = SchemaStore(catalogue=False)
    writer.register(_old("CertificationDocumentsReceived", 2), current=True)
    docs = {k: v for k, v in SAMPLES["CertificationDocumentsReceived"].items()
            if k not in ("form_number", "postmarked_on", "scan_sha256")}
    data = encode(docs, store=writer)
    current = raw_schema("CertificationDocumentsReceived")
    assert decode(data, reader_schema=current) == {
        **docs, "form_number": None, "postmarked_on": None, "scan_sha256": None}
    full = {**docs, "form_number": 1, "postmarked_on": dt.date(2017, 5, 2),
            "scan_sha256": "ab" * 32}
    assert decode(encode(full)) == full
    assert decode(encode(full), reader_schema=_old("CertificationDocumentsReceived", 2)) == docs


def test_a_reader_with_the_old_hold_schema_reads_old_symbols_and_names_a_new_one() -> None:
    """A consumer still on the earlier HoldReason reads NOT_CERTIFIED holds written with the
    new schema, and fails with a SchemaMismatch naming the symbol for CERTIFICATION_REVOKED
    (no default symbol: a payment instruction is never silently read as another)."""
    old = _old("PaymentHoldPlaced")
    hold = SAMPLES["PaymentHoldPlaced"]
    assert decode(encode(hold), reader_schema=old) == hold
    revoked = {**hold, "reason": "CERTIFICATION_REVOKED"}
    with pytest.raises(SchemaMismatch, match="CERTIFICATION_REVOKED"):
        decode(encode(revoked), reader_schema=old)


def test_personal_fields_of_contact_details_are_declared_in_the_schema() -> None:
    fields = {f["name"]: f for f in raw_schema("ContactDetailsUpdated")["fields"]}
    assert fields["phone"].get("lifecert.personal") is True
    assert fields["address"].get("lifecert.personal") is True
    assert not any(
        f.get("lifecert.personal") for f in raw_schema("CertificationRevoked")["fields"]
    )


def test_docs_events_md_names_every_event_type() -> None:
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "events.md").read_text(encoding="utf-8")
    missing = [name for name in ALL_TYPES if f"#### {name}\n" not in text]
    assert not missing, f"docs/events.md lacks {missing}"
