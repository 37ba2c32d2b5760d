"""The pension master connector's mapping, outbox row -> lifecert event, without a database:
what each row becomes, and the reason for every row that cannot become an event."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.pension_master import codes
from connectors.pension_master.mapping import OutboxRow, to_events
from connectors.sdk.errors import RecordRejected
from lifecert.events.interchange import MalformedEvent, parse_event
from lifecert_dev.partners.pension_master.simulator import master_change

AT = datetime(2017, 1, 3, 1, 0, 0, 123456, tzinfo=UTC)  # 09:00:00.123456 in Foshan

ENROLLED: dict[str, Any] = {
    "person_no": "FS000104729", "full_name": "梁国强", "birth_date": "19360229",
    "insurance_type": "120", "personnel_class": "2", "residence_type": "6",
    "district_code": None, "country_code": "CA", "start_date": "19960101",
    "monthly_amount_fen": 512345, "disability_flag": "1", "unit_name": "佛山市教育局",
}
CHANGED: dict[str, Any] = {"person_no": "FS000104729", "amount_fen": 530000,
                           "effective_month": "201707", "previous_amount_fen": 512345}


def row(kind: str, payload: Any, *, aggregate: str = "FS000104729", raw: str | None = None,
        id_: int = 41) -> OutboxRow:
    text = raw if raw is not None else json.dumps(payload, ensure_ascii=False)
    return OutboxRow(id_, 7301, aggregate, kind, text, AT)


def test_an_enrolment_becomes_one_retiree_enrolled() -> None:
    [event] = to_events(row(codes.ENROLLED, ENROLLED))
    assert event == {
        "type": "RetireeEnrolled", "recorded_at": "2017-01-03T09:00:00.123456+08:00",
        "retiree_id": "FS000104729", "name": "梁国强", "birth_date": "1936-02-29",
        "scheme": "GOV_INSTITUTION", "category": "CADRE_RETIREE", "residence": "ABROAD",
        "district": None, "country": "CA", "pension_start": "1996-01-01",
        "monthly_amount_fen": 512345, "disabled": True, "managing_unit": "佛山市教育局",
    }
    parse_event(event)  # valid for lifecert


def test_an_amount_change_becomes_one_pension_amount_changed() -> None:
    [event] = to_events(row(codes.AMOUNT_CHANGED, CHANGED))
    assert event == {"type": "PensionAmountChanged",
                     "recorded_at": "2017-01-03T09:00:00.123456+08:00",
                     "retiree_id": "FS000104729", "monthly_amount_fen": 530000,
                     "effective_month": "2017-07"}
    parse_event(event)


@pytest.mark.parametrize(("code", "scheme"), sorted(codes.SCHEME.items()))
def test_every_insurance_type_code_maps(code: str, scheme: str) -> None:
    [event] = to_events(row(codes.ENROLLED, {**ENROLLED, "insurance_type": code}))
    assert event["scheme"] == scheme


@pytest.mark.parametrize(("code", "district"), sorted(codes.DISTRICT.items()))
def test_every_district_code_maps(code: str, district: str) -> None:
    payload = {**ENROLLED, "residence_type": "1", "district_code": code, "country_code": None}
    [event] = to_events(row(codes.ENROLLED, payload))
    assert (event["residence"], event["district"], event["country"]) == ("FOSHAN", district,
                                                                         None)


def test_simulator_and_connector_are_inverse_on_every_code() -> None:
    """Every lifecert value the master can carry comes back unchanged through the master's
    codes (the simulator maps one way, the connector the other)."""
    base = {"type": "RetireeEnrolled", "recorded_at": "2017-02-01T10:00:00+08:00",
            "retiree_id": "FS1", "name": "陈伟", "birth_date": "1950-12-31",
            "scheme": "URBAN_EMPLOYEE", "category": "REGULAR", "residence": "FOSHAN",
            "district": None, "country": None, "pension_start": "2010-01-01",
            "monthly_amount_fen": 0, "disabled": False, "managing_unit": None}
    variants = ([{"scheme": s} for s in codes.SCHEME.values()]
                + [{"category": c} for c in codes.CATEGORY.values()]
                + [{"residence": r} for r in codes.RESIDENCE.values()]
                + [{"district": d} for d in codes.DISTRICT.values()]
                + [{"disabled": True, "country": "HK", "managing_unit": "单位"}])
    for variant in variants:
        event = {**base, **variant}
        change = master_change(event)
        [back] = to_events(OutboxRow(1, 1, "FS1", codes.ENROLLED,
                                     json.dumps(change["record"]),
                                     datetime.fromisoformat(change["at"])))
        assert parse_event(dict(back)) == parse_event(dict(event)), variant


def test_the_raw_record_keeps_the_row_and_the_payload_verbatim() -> None:
    r = row(codes.AMOUNT_CHANGED, None, raw='{"odd": [1, 2]}')
    raw = json.loads(r.raw())
    assert raw == {"id": 41, "xid": 7301, "aggregate_id": "FS000104729",
                   "event_kind": codes.AMOUNT_CHANGED, "occurred_at": AT.isoformat(),
                   "payload": {"odd": [1, 2]}}


def test_master_change_refuses_what_the_master_does_not_carry() -> None:
    with pytest.raises(MalformedEvent, match="unknown event type"):
        master_change({"type": "DeathRecorded", "recorded_at": "2017-05-01T00:00:00+08:00",
                       "retiree_id": "X", "date_of_death": "2017-04-01", "source": "X"})
    with pytest.raises(MalformedEvent, match="effective_month"):
        master_change({"type": "PensionAmountChanged", "recorded_at": "2017-05-01T00:00:00Z",
                       "retiree_id": "X", "monthly_amount_fen": 1, "effective_month": "2017-13"})


def rejected(kind: str, payload: Any, **kwargs: Any) -> str:
    with pytest.raises(RecordRejected) as caught:
        to_events(row(kind, payload, **kwargs))
    return caught.value.reason


# (kind, payload change, words the reason must contain); None as a value deletes the field
REJECTIONS: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    (codes.ENROLLED, {"birth_date": None}, ("'birth_date'", "missing")),
    (codes.ENROLLED, {"full_name": ...}, ("'full_name'", "is null")),
    (codes.ENROLLED, {"full_name": "  "}, ("'full_name'", "non-empty string")),
    (codes.ENROLLED, {"birth_date": "1936-02-29"}, ("'birth_date'", "YYYYMMDD")),
    (codes.ENROLLED, {"birth_date": "19370229"}, ("'birth_date'", "YYYYMMDD")),
    (codes.ENROLLED, {"start_date": 19960101}, ("'start_date'", "YYYYMMDD")),
    (codes.ENROLLED, {"insurance_type": "130"}, ("'insurance_type'", '"130"', "110")),
    (codes.ENROLLED, {"insurance_type": 110}, ("'insurance_type'", "codes")),
    (codes.ENROLLED, {"personnel_class": "3"}, ("'personnel_class'", "REGULAR")),
    (codes.ENROLLED, {"residence_type": "7"}, ("'residence_type'",)),
    (codes.ENROLLED, {"district_code": "440600"}, ("'district_code'", "440604")),
    (codes.ENROLLED, {"country_code": "can"}, ("'country_code'", "ISO 3166-1")),
    (codes.ENROLLED, {"monthly_amount_fen": 5123.45}, ("'monthly_amount_fen'", "integer")),
    (codes.ENROLLED, {"monthly_amount_fen": "512345"}, ("'monthly_amount_fen'", "integer")),
    (codes.ENROLLED, {"monthly_amount_fen": -1}, ("'monthly_amount_fen'", "0 fen or more")),
    (codes.ENROLLED, {"disability_flag": True}, ("'disability_flag'", '"1" or "0"')),
    (codes.ENROLLED, {"disability_flag": ["1"]}, ("'disability_flag'",)),
    (codes.ENROLLED, {"unit_name": 7}, ("'unit_name'", "string")),
    (codes.AMOUNT_CHANGED, {"amount_fen": None}, ("'amount_fen'", "missing")),
    (codes.AMOUNT_CHANGED, {"amount_fen": -50000}, ("'amount_fen'", "-50000")),
    (codes.AMOUNT_CHANGED, {"amount_fen": True}, ("'amount_fen'", "integer")),
    (codes.AMOUNT_CHANGED, {"effective_month": "2017-07"}, ("'effective_month'", "YYYYMM")),
    (codes.AMOUNT_CHANGED, {"effective_month": "201713"}, ("'effective_month'", "YYYYMM")),
    (codes.AMOUNT_CHANGED, {"person_no": None}, ("'person_no'", "missing")),
]


@pytest.mark.parametrize(("kind", "change", "words"), REJECTIONS,
                         ids=[f"{k}-{next(iter(c))}-{i}" for i, (k, c, _w)
                              in enumerate(REJECTIONS)])
def test_a_bad_payload_field_is_rejected_naming_it(
    kind: str, change: dict[str, Any], words: tuple[str, ...]
) -> None:
    payload = dict(ENROLLED if kind == codes.ENROLLED else CHANGED)
    for key, value in change.items():
        if value is None:
            del payload[key]
        else:
            payload[key] = None if value is ... else value
    reason = rejected(kind, payload)
    assert reason.startswith(f"{kind}: payload field"), reason
    for word in words:
        assert word in reason, reason
    assert "correct it in the master system" in reason


def test_an_unknown_event_kind_is_rejected() -> None:
    reason = rejected("retiree.address_changed", {"person_no": "FS000104729"})
    assert "unknown event_kind 'retiree.address_changed'" in reason
    assert codes.ENROLLED in reason and codes.AMOUNT_CHANGED in reason


@pytest.mark.parametrize(("raw", "words"), [
    ("[1, 2]", "a JSON list, expected an object"),
    ('"text"', "a JSON str, expected an object"),
    ("{not json", "payload is not JSON"),
])
def test_a_payload_that_is_not_an_object_is_rejected(raw: str, words: str) -> None:
    assert words in rejected(codes.ENROLLED, None, raw=raw)


def test_a_payload_about_another_person_than_the_row_is_rejected() -> None:
    reason = rejected(codes.AMOUNT_CHANGED, CHANGED, aggregate="FS000000001")
    assert "'FS000104729'" in reason and "aggregate_id 'FS000000001'" in reason
