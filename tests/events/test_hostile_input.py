"""Hostile values in every field of the interchange and of the log: each becomes the
parser's ordinary refusal naming the field (and the line), never another exception, and
never a stopped replay, publish or worker (issue 11, item 7).

Parsers covered: ``parse_line``/``parse_event`` (slow and fast paths), ``publish``'s
``prepare_line``, ``lifecert replay`` with ``--dead-letters``, ``codec.decode`` and the
worker's ``classify`` of raw Kafka records.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastavro import schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lifecert.cli import main
from lifecert.events import bounds, codec
from lifecert.events.catalogue import INPUT_TYPES, envelope_spec, event_spec
from lifecert.events.interchange import MalformedEvent, parse_event, parse_line
from lifecert.keystore.memory import MemoryKeyStore
from lifecert.pipeline.publish import prepare_line
from lifecert.pipeline.topics import PAYMENT_INSTRUCTIONS, layout
from projections.records import BatchBuilder
from streams.records import Input, Unusable, classify
from tests.helpers import cert, contact, death, docs, enroll, examples, retract, revoke

FAST = settings(max_examples=examples(250), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

GOOD: dict[str, dict[str, Any]] = {
    kind: json.loads(text) for kind, text in (
        ("RetireeEnrolled", enroll("FS000000001")),
        ("CertificationRecorded", cert("C-1", "FS000000001", "FACE_APP",
                                       performed_at="2017-05-02T10:00:00+08:00")),
        ("CertificationDocumentsReceived", docs("C-1", "FS000000001",
                                                recorded_at="2017-05-03T10:00:00+08:00")),
        ("DeathRecorded", death("FS000000001", date_of_death="2017-05-01",
                                recorded_at="2017-05-03T10:00:00+08:00")),
        ("PensionAmountChanged", json.dumps({
            "type": "PensionAmountChanged", "event_id": "e-1",
            "recorded_at": "2017-05-03T10:00:00+08:00", "source_agency": "FS-SIB",
            "retiree_id": "FS000000001", "monthly_amount_fen": 1, "effective_month": "2017-06",
        })),
        ("CertificationRevoked", revoke("C-1", "FS000000001",
                                        recorded_at="2017-05-04T10:00:00+08:00")),
        ("DeathReportRetracted", retract("FS000000001",
                                         recorded_at="2017-05-05T10:00:00+08:00")),
        ("ContactDetailsUpdated", contact("FS000000001",
                                          recorded_at="2017-05-06T10:00:00+08:00",
                                          address="Lane 9, Nanhai")),
    )
}
assert set(GOOD) == set(INPUT_TYPES)
FIELDS = [(kind, spec.name) for kind in INPUT_TYPES
          for spec in [*envelope_spec(), *event_spec(kind).fields] if spec.name != "type"]

_TEXT = st.sampled_from([
    "", " ", "FS\x00001", "FS 1", "C\n1", "\ud800", "a\udfffb", "\x1b[31m", "\u202eR1",
    "FS000000001\n", "-1", "R" * 33, "x" * 5000, "0000-01-01", "9999-12-31", "1799-12-31",
    "2017-13-01", "20170501", "2017-05-01T10:00:00", "2017-05-01T10:00:00+24:00",
    "0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59-10:00", "2999-12-31T23:00:00-10:00",
    "NaN", "2017-00", "0000-01", "3000-01", "FACE_APP", "FOSHAN", "2017-05-01",
    "2017-05-01T10:00:00+08:00", "2017-06",
])
HOSTILE = st.one_of(
    _TEXT,
    st.text(max_size=40),
    st.integers(),
    st.sampled_from([2**63, -(2**63) - 1, 2**63 - 1, 10**400 // 10**300, True, False, None,
                     math.nan, math.inf, -math.inf, 1.5, 0.0]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.integers(1, 200).map(lambda n: json.loads("[" * n + "]" * n)),
)


def _json_line(obj: dict[str, Any]) -> str:
    # allow_nan: Python's json writes NaN and Infinity, and reads them back
    return json.dumps(obj, allow_nan=True)


@pytest.mark.parametrize(("kind", "field"), FIELDS)
@FAST
@given(value=HOSTILE)
def test_any_value_in_any_field_is_parsed_or_refused_naming_it(
    kind: str, field: str, value: Any
) -> None:
    obj = {**GOOD[kind], field: value}
    try:
        event = parse_line(_json_line(obj), 7)
    except MalformedEvent as exc:
        assert (exc.field, exc.line) == (field, 7), exc.describe()
        exc.describe().encode("utf-8")  # printable anywhere: no lone surrogate
        return
    assert bounds.value_problem(field, event[field]) is None
    if isinstance(event[field], str):
        assert bounds.text_problem(event[field]) is None
    if event["event_id"] is None:  # optional in the interchange: publish assigns one
        event["event_id"] = "e-1"
    codec.decode(codec.encode(event))  # what the interchange accepts, the log carries


@pytest.mark.parametrize("kind", INPUT_TYPES)
@FAST
@given(value=HOSTILE)
def test_slow_path_agrees(kind: str, value: Any) -> None:
    """``parse_event`` on a dict (no JSON) takes the same decisions as from a line."""
    for field in [s.name for s in event_spec(kind).fields][:3]:
        obj = {**GOOD[kind], field: value}
        try:
            parse_event(obj)
        except MalformedEvent as exc:
            assert exc.field == field


@FAST
@given(raw=st.binary(max_size=300) | st.text(max_size=300))
def test_any_line_is_parsed_or_refused(raw: bytes | str) -> None:
    try:
        parse_line(raw, 3)
    except MalformedEvent as exc:
        assert exc.line == 3


@pytest.mark.parametrize(
    ("line", "field", "words"),
    [
        ("[" * 100_000 + "]" * 100_000, None, "nested too deeply"),
        ('{"type":' + "[" * 100_000 + "]" * 100_000 + "}", None, "nested too deeply"),
        (b'{"type":"DeathRecorded","retiree_id":"\xff"}', None, "not valid JSON"),
        ('{"type": ["DeathRecorded"]}', "type", "expected an event type name"),
        (json.dumps({**GOOD["DeathRecorded"], "retiree_id": "FS\u0000001"}), "retiree_id",
         "is not a valid retiree_id"),
        (json.dumps({**GOOD["DeathRecorded"], "source": "\ud800"}), "source",
         "lone surrogate"),
        (json.dumps({**GOOD["RetireeEnrolled"], "monthly_amount_fen": 2**63}),
         "monthly_amount_fen", "64-bit integer"),
        (json.dumps({**GOOD["RetireeEnrolled"], "monthly_amount_fen": True}),
         "monthly_amount_fen", "expected an integer"),
        (json.dumps({**GOOD["DeathRecorded"], "date_of_death": "9999-12-31"}),
         "date_of_death", "year 9999 is out of range"),
        (json.dumps({**GOOD["DeathRecorded"], "recorded_at": "0001-01-01T00:00:00+08:00"}),
         "recorded_at", "year 1 is out of range"),
        (json.dumps({**GOOD["PensionAmountChanged"], "effective_month": "0000-01"}),
         "effective_month", "out of range"),
        (json.dumps({**GOOD["DeathRecorded"], "source": "x" * 1001}), "source",
         "at most 1000"),
    ],
)
def test_hostile_lines_examples(line: str | bytes, field: str | None, words: str) -> None:
    with pytest.raises(MalformedEvent) as caught:
        parse_line(line, 9)
    assert (caught.value.field, caught.value.line) == (field, 9)
    assert words in caught.value.reason


@pytest.mark.parametrize(
    "raw",
    [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
     b'{"type":"DeathRecorded","retiree_id":"\xed\xa0\x80"}'],
)
def test_publish_refuses_hostile_lines(raw: bytes) -> None:
    with pytest.raises(MalformedEvent) as caught:
        prepare_line(raw, 4, keys=MemoryKeyStore())
    assert caught.value.line == 4


def test_replay_sets_hostile_lines_aside_and_goes_on(tmp_path: Path) -> None:
    lines = [
        enroll("FS000000001").encode(),
        b"[" * 100_000 + b"]" * 100_000,
        b'{"type":"DeathRecorded","retiree_id":"\xff\xfe"}',
        json.dumps({**GOOD["DeathRecorded"], "retiree_id": "FS\x00\n1"}).encode(),
        json.dumps({**GOOD["DeathRecorded"], "date_of_death": "9999-12-31"}).encode(),
        json.dumps({**GOOD["DeathRecorded"], "source": "\ud800"}).encode(),
        json.dumps({**GOOD["RetireeEnrolled"], "monthly_amount_fen": -(2**70)}).encode(),
        json.dumps({**GOOD["DeathRecorded"], "date_of_death": "1949-01-01"}).encode(),
    ]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    out, dead = tmp_path / "out", tmp_path / "dead.jsonl"
    assert main(["replay", str(events), "--out", str(out), "--dead-letters", str(dead),
                 "--quiet"]) == 0
    letters = [json.loads(x) for x in dead.read_text(encoding="utf-8").splitlines()]
    assert [(d["line"], d["field"]) for d in letters] == [
        (2, None), (3, None), (4, "retiree_id"), (5, "date_of_death"), (6, "source"),
        (7, "monthly_amount_fen")]
    rejections = [json.loads(x) for x in
                  (out / "rejections.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(r["line"], r["reason"]) for r in rejections] == [(8, "IMPOSSIBLE_DEATH_DATE")]


# ------------------------------------------------------------------ the log, decoded

_CERT = codec.default_store().by_type("CertificationRecorded")


def _record(**changes: Any) -> bytes:
    """A CertificationRecorded written with fastavro directly, past the encoder's checks
    (as a foreign or hostile producer could)."""
    event = {**parse_event(dict(GOOD["CertificationRecorded"])), **changes}
    buf = io.BytesIO()
    buf.write(_CERT.header)
    schemaless_writer(buf, _CERT.parsed, codec.to_datum(event))
    return buf.getvalue()


_STRING_FIELDS = ["event_id", "source_agency", "certification_id", "retiree_id", "agency_id"]


@pytest.mark.parametrize("field", _STRING_FIELDS)
@FAST
@given(value=st.text(st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_decoded_ids_are_checked(field: str, value: str) -> None:
    data = _record(**{field: value})
    try:
        event = codec.decode(data)
    except codec.InvalidValue as exc:
        assert exc.field == field and field in str(exc)
        got = classify(b"FS000000001", data)
        assert isinstance(got, Unusable) and repr(field) in got.reason
        return
    assert bounds.id_problem(field, event[field]) is None
    got = classify(event["retiree_id"].encode(), data)
    assert isinstance(got, Input)


@pytest.mark.parametrize("field", ["recorded_at", "performed_at"])
@FAST
@given(micros=st.integers(-(2**63), 2**63 - 1))
def test_decoded_times_out_of_range_are_unusable(field: str, micros: int) -> None:
    data = _record(**{field: micros})
    got = classify(b"FS000000001", data)
    try:
        event = codec.decode(data)
    except codec.CodecError:
        assert isinstance(got, Unusable)
        return
    assert bounds.year_problem(event[field]) is None and isinstance(got, Input)


@FAST
@given(value=st.binary(max_size=300), key=st.none() | st.binary(max_size=20))
def test_any_bytes_on_the_events_topic_are_classified(value: bytes, key: bytes | None) -> None:
    classify(key, value)
    classify(key, _CERT.header + value)


def test_examples_of_unusable_records() -> None:
    bad_utf8 = _record(retiree_id="FS1").replace(b"\x06FS1", b"\x06F\xff\xfe")
    for data, words in [
        (_record(retiree_id="FS\x00001"), "'retiree_id'"),
        (_record(agency_id=" "), "'agency_id'"),
        (_record(performed_at=253402300799 * 10**6), "'performed_at': year 9999"),
        (_record(recorded_at=-(2**62)), "out of Python's range"),
        (bad_utf8, "invalid UTF-8"),
    ]:
        got = classify(b"FS000000001", data)
        assert isinstance(got, Unusable) and words in got.reason, got


# ------------------------------------------------------------------ projections

@dataclass
class _KafkaRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def _written(type_name: str, event: dict[str, Any]) -> bytes:
    rs = codec.default_store().by_type(type_name)
    buf = io.BytesIO()
    buf.write(rs.header)
    schemaless_writer(buf, rs.parsed, codec.to_datum(event))
    return buf.getvalue()


_AT = parse_event(dict(GOOD["DeathRecorded"]))["recorded_at"]
_HOLD = {"type": "PaymentHoldPlaced", "event_id": "h-1", "recorded_at": _AT,
         "source_agency": "lifecert", "retiree_id": "FS000000001", "effective_month": "2017-07",
         "reason": "NOT_CERTIFIED"}


@pytest.mark.parametrize("field", ["event_id", "retiree_id", "source_agency"])
@FAST
@given(value=st.text(st.characters(blacklist_categories=("Cs",)), max_size=60))
def test_projections_reject_hostile_records(field: str, value: str) -> None:
    topics = layout("hostile.")
    builder = BatchBuilder(topics)
    topic = topics[PAYMENT_INSTRUCTIONS].name
    builder.add(_KafkaRecord(topic, 0, 1, b"FS000000001", _written(
        "PaymentHoldPlaced", {**_HOLD, field: value})))
    rejected = builder.batch.rejected
    if bounds.id_problem(field, value) is None:
        assert rejected == [] and len(builder.batch.ledger) == 1
    else:
        assert len(rejected) == 1 and repr(field) in rejected[0].reason
