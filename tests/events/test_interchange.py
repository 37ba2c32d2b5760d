"""The JSON interchange form: every malformed input names its line and field."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from lifecert.events.catalogue import INPUT_TYPES
from lifecert.events.interchange import MalformedEvent, dumps, parse_event, parse_line

CERT = {
    "type": "CertificationRecorded",
    "event_id": "e-1",
    "recorded_at": "2017-05-01T10:00:00Z",
    "certification_id": "C1",
    "retiree_id": "R1",
    "channel": "FACE_APP",
    "agency_id": "FS-APP",
    "performed_at": "2017-03-31T16:20:00Z",
}
ENROLL = {
    "type": "RetireeEnrolled",
    "recorded_at": "2017-01-03T09:00:00+08:00",
    "retiree_id": "R1",
    "name": "陈大文",
    "birth_date": "1937-06-20",
    "scheme": "URBAN_EMPLOYEE",
    "category": "REGULAR",
    "residence": "FOSHAN",
    "district": "NANHAI",
    "country": None,
    "pension_start": "1997-07-01",
    "monthly_amount_fen": 312345,
    "disabled": False,
    "managing_unit": None,
}


def line(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=False)


def test_parses_and_converts_values() -> None:
    event = parse_line(line(CERT), 1)
    assert event["performed_at"] == datetime(2017, 3, 31, 16, 20, tzinfo=UTC)
    assert event["source_agency"] is None
    enrolled = parse_line(line(ENROLL), 2)
    assert enrolled["birth_date"] == date(1937, 6, 20)
    # Instants are kept in UTC (one tzinfo object makes comparisons cheap).
    assert enrolled["recorded_at"] == datetime(2017, 1, 3, 9, tzinfo=timezone(timedelta(hours=8)))
    assert enrolled["recorded_at"].tzinfo is UTC


def test_round_trip_through_dumps_keeps_the_instants() -> None:
    event = parse_line(line(CERT))
    again = parse_line(dumps(event))
    assert again == event
    assert json.loads(dumps(event))["performed_at"] == "2017-04-01T00:20:00+08:00"


def test_extra_fields_are_kept() -> None:
    event = parse_line(line({**CERT, "signature": "abc"}))
    assert event["signature"] == "abc"


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"performed_at": "2017-05-01T10:00:00"}, "performed_at", "no UTC offset"),
        ({"performed_at": "yesterday"}, "performed_at", "ISO 8601"),
        ({"channel": "FACE_PHONE"}, "channel", "not one of FACE_APP"),
        ({"channel": ["FACE_APP"]}, "channel", "not one of"),
        ({"retiree_id": 17}, "retiree_id", "expected a string"),
        ({"recorded_at": None}, "recorded_at", "missing or null"),
        ({"type": "CertificationMade"}, "type", "unknown event type"),
        ({"event_id": 5}, "event_id", "expected a string"),
    ],
)
def test_bad_fields_are_named(change: dict, field: str, words: str) -> None:
    with pytest.raises(MalformedEvent) as caught:
        parse_line(line({**CERT, **change}), 12)
    assert caught.value.field == field
    assert caught.value.line == 12
    assert words in str(caught.value)
    assert str(caught.value).startswith(f"line 12, field {field!r}: ")


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"monthly_amount_fen": 3123.45}, "monthly_amount_fen", "integer fen"),
        ({"monthly_amount_fen": "312345"}, "monthly_amount_fen", "expected an integer"),
        ({"monthly_amount_fen": True}, "monthly_amount_fen", "expected an integer"),
        ({"disabled": 0}, "disabled", "true or false"),
        ({"birth_date": "1937-6-20"}, "birth_date", "YYYY-MM-DD"),
        ({"birth_date": "1937-02-30"}, "birth_date", "YYYY-MM-DD"),
        ({"district": "FOSHAN"}, "district", "not one of CHANCHENG"),
    ],
)
def test_bad_enrollment_fields(change: dict, field: str, words: str) -> None:
    with pytest.raises(MalformedEvent) as caught:
        parse_line(line({**ENROLL, **change}), 3)
    assert caught.value.field == field
    assert words in caught.value.reason


def test_missing_field_and_missing_nullable_field() -> None:
    without_name = {k: v for k, v in ENROLL.items() if k != "name"}
    with pytest.raises(MalformedEvent, match="field 'name': missing or null"):
        parse_line(line(without_name), 4)
    without_district = {k: v for k, v in ENROLL.items() if k != "district"}
    assert parse_line(line(without_district))["district"] is None


def test_bad_months() -> None:
    change = {
        "type": "PensionAmountChanged",
        "recorded_at": "2017-07-03T09:00:00+08:00",
        "retiree_id": "R1",
        "monthly_amount_fen": 330000,
        "effective_month": "2017-07",
    }
    assert parse_line(line(change))["effective_month"] == "2017-07"
    for bad in ("2017-13", "2017-00", "2017-7", "17-07", "2017/07"):
        with pytest.raises(MalformedEvent) as caught:
            parse_line(line({**change, "effective_month": bad}))
        assert caught.value.field == "effective_month"


def test_not_json_and_not_an_object() -> None:
    with pytest.raises(MalformedEvent, match=r"^line 9: not valid JSON"):
        parse_line('{"type": "DeathRecorded",', 9)
    with pytest.raises(MalformedEvent, match="expected a JSON object"):
        parse_line("[1, 2]", 9)
    with pytest.raises(MalformedEvent, match="field 'type': missing"):
        parse_line("{}", 9)


def test_output_types_are_not_inputs() -> None:
    held = {
        "type": "PaymentHoldPlaced",
        "recorded_at": "2017-06-21T00:00:00+08:00",
        "retiree_id": "R1",
        "effective_month": "2017-07",
        "reason": "NOT_CERTIFIED",
    }
    with pytest.raises(MalformedEvent, match="unknown event type"):
        parse_event(dict(held))
    assert parse_event(dict(held), allowed=("PaymentHoldPlaced",))["effective_month"] == "2017-07"
    assert "DeathRecorded" in INPUT_TYPES
