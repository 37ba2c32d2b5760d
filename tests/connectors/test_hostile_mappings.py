"""Each connector's mapping against hostile values in every field of a partner record: a
RecordRejected naming the partner's field, or an event the SDK runner's own check takes,
never another exception (issue 11, item 7). The contract tests
(``test_hostile_records_are_dead_lettered_and_the_connector_keeps_running``) run the same
kinds of records through the real connector processes."""

from __future__ import annotations

import contextlib
import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.guangdong import province as gd
from connectors.guangdong.mapping import record_to_event
from connectors.ministry_offsite import batchfile as bf
from connectors.ministry_offsite.connector import map_line
from connectors.pension_master import codes
from connectors.pension_master.mapping import OutboxRow, to_events
from connectors.sdk.errors import RecordRejected
from lifecert.events import codec
from lifecert.events.interchange import MalformedEvent, parse_event
from tests.helpers import examples

FAST = settings(max_examples=examples(200), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

_DEEP = json.loads("[" * 600 + "]" * 600)
HOSTILE_JSON = st.one_of(
    st.sampled_from([
        "", " ", "\x00", "FS\x00001", "FS 1", "\ud800", "a\udfffb", "\x1b[2J", "\u202eX",
        "X" * 100_000, "0001-01-01 00:00:00+08:00", "9999-12-31 23:59:59-10:00",
        "2017-05-02 09:30:00", "2017-05-02 09:30:00+25:00", "00000101", "99991231", "000001",
        "201713", "١٢٣٤٥٦٧٨", "NaN", 2**63, 2**70, -(2**63) - 1, -1, True, None, math.nan,
        math.inf, 1.5, [], {}, _DEEP,
    ]),
    st.text(max_size=30),
    st.integers(),
)


def _sdk_check(event: dict[str, Any]) -> None:
    """What the SDK runner does with a mapped event: parse and encode it; its refusals
    become RecordRejected there."""
    candidate = {**event, "event_id": "e-1", "source_agency": "X"}
    with contextlib.suppress(MalformedEvent, codec.CodecError):
        codec.encode(parse_event(candidate))


# ---------------------------------------------------------------------------- Guangdong

GD_RECORD = {
    "itemId": "GDX17-1", "certNo": "GDXR-17-1", "insuredId": "FS000000001",
    "insuredCity": gd.FOSHAN, "certType": "01", "handlerOrgCode": "GD-GUANGZHOU-SIB",
    "certTime": "2017-05-02 09:30:00+08:00", "reportTime": "2017-05-02 10:00:00+08:00",
}


@pytest.mark.parametrize("field", [f for f in GD_RECORD if f != "itemId"])
@FAST
@given(value=HOSTILE_JSON)
def test_guangdong_record(field: str, value: Any) -> None:
    try:
        event = record_to_event({**GD_RECORD, field: value}, gd.FOSHAN)
    except RecordRejected as exc:
        assert field in exc.reason, exc.reason
        exc.reason.encode("utf-8")
        return
    _sdk_check(event)


@FAST
@given(record=HOSTILE_JSON)
def test_guangdong_record_that_is_not_a_record(record: Any) -> None:
    with pytest.raises(RecordRejected):
        record_to_event(record, gd.FOSHAN)


# ------------------------------------------------------------------------ pension master

ENROLLED = {"person_no": "FS000104729", "full_name": "王建国", "birth_date": "19500101",
            "insurance_type": "110", "personnel_class": "1", "residence_type": "1",
            "district_code": "440604", "country_code": None, "start_date": "20080301",
            "monthly_amount_fen": 320000, "disability_flag": "0", "unit_name": None}
CHANGED = {"person_no": "FS000104729", "amount_fen": 530000, "effective_month": "201707",
           "previous_amount_fen": 512345}
AT = datetime(2017, 5, 2, 1, 30, tzinfo=UTC)


@pytest.mark.parametrize(("kind", "field"), [(codes.ENROLLED, f) for f in ENROLLED]
                         + [(codes.AMOUNT_CHANGED, f) for f in CHANGED])
@FAST
@given(value=HOSTILE_JSON)
def test_pension_master_payload(kind: str, field: str, value: Any) -> None:
    payload = {**(ENROLLED if kind == codes.ENROLLED else CHANGED), field: value}
    try:
        text = json.dumps(payload, ensure_ascii=False)
    except ValueError:
        return
    try:
        events = to_events(OutboxRow(1, 1, "FS000104729", kind, text, AT))
    except RecordRejected as exc:
        assert field in exc.reason or "person_no" in exc.reason, exc.reason
        exc.reason.encode("utf-8")
        return
    for event in events:
        _sdk_check(event)


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000,
                                  '{"person_no": ' + "[" * 5000 + "]" * 5000 + "}",
                                  "NaN", "\"\\ud800\"", "{" * 10])
def test_pension_master_payload_that_is_hardly_json(text: str) -> None:
    with pytest.raises(RecordRejected):
        to_events(OutboxRow(1, 1, "FS000104729", codes.ENROLLED, text, AT))


# ------------------------------------------------------------------------------ ministry

MINISTRY_OK = ["MOHRSS-17-1", "FS000000001", "张三", "2017-04-28T09:30:00+08:00",
               "HB-WUHAN-SIB", "2017-05-02T10:00:00+08:00"]
_HOSTILE_BYTES = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"", b"\x00", b"FS 1", b"\x80\xff", b"\x1b[2J", b'"a,b"', b'"',
                     b"0001-01-01T00:00:00+08:00", b"9999-12-31T23:59:59-10:00",
                     b"2017-04-28T09:30:00+24:00", "张".encode(bf.ENCODING) * 60, b"X" * 5000]),
    st.text(max_size=30).map(lambda t: t.encode(bf.ENCODING, errors="ignore")),
)


@pytest.mark.parametrize("column", range(len(bf.COLUMNS)))
@FAST
@given(value=_HOSTILE_BYTES)
def test_ministry_line(column: int, value: bytes) -> None:
    fields = [f.encode(bf.ENCODING) for f in MINISTRY_OK]
    fields[column] = value
    try:
        event = map_line(bf.Line(9, b",".join(fields) + b"\r\n"))
    except RecordRejected as exc:
        assert "line 9" in exc.reason, exc.reason
        exc.reason.encode("utf-8")
        return
    _sdk_check(event)


@FAST
@given(raw=st.binary(max_size=300))
def test_ministry_any_line(raw: bytes) -> None:
    try:
        map_line(bf.Line(3, raw))
    except RecordRejected as exc:
        assert "line 3" in exc.reason
