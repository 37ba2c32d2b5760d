"""The Guangdong mapping, both directions, without I/O: a feed record -> a
CertificationRecorded (and every reason a record is rejected), an AssistanceResult -> the
body the province takes, and the harness's event -> feed record."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.guangdong import province as gd
from connectors.guangdong.mapping import event_to_record, record_to_event, result_body
from connectors.sdk.errors import RecordRejected
from lifecert.domain.policy import load_policy
from lifecert.events.interchange import parse_event

FOSHAN = "440600"


def record(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "itemId": "GDXT000000000042", "certNo": "GDXR-17-00000042",
        "insuredId": "FS000123456", "insuredCity": "440600", "residenceCity": "440100",
        "certType": "01", "handlerOrgCode": "GD-GUANGZHOU-SIB",
        "certTime": "2017-05-02 09:30:00+08:00", "reportTime": "2017-05-02 10:12:45+08:00",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def rejection(rec: Any) -> str:
    with pytest.raises(RecordRejected) as info:
        record_to_event(rec, FOSHAN)
    return info.value.reason


def test_a_feed_record_becomes_a_certification() -> None:
    assert record_to_event(record(), FOSHAN) == {
        "type": "CertificationRecorded",
        "recorded_at": "2017-05-02T10:12:45+08:00",
        "certification_id": "GDXR-17-00000042",
        "retiree_id": "FS000123456",
        "channel": "PROVINCIAL_XREGION",
        "agency_id": "GD-GUANGZHOU-SIB",
        "performed_at": "2017-05-02T09:30:00+08:00",
    }


@pytest.mark.parametrize(("code", "channel"), [("01", "PROVINCIAL_XREGION"),
                                               ("02", "ASSISTED_OFFICE"),
                                               ("03", "ASSISTING_AGENCY")])
def test_each_cert_type_code_names_its_channel(code: str, channel: str) -> None:
    assert record_to_event(record(certType=code), FOSHAN)["channel"] == channel


def test_times_in_other_offsets_keep_their_instant_and_are_written_in_beijing_time() -> None:
    event = record_to_event(record(certTime="2017-05-01T16:30:00.250000Z",
                                   reportTime="2017-05-01T17:00:00+00:00"), FOSHAN)
    assert event["performed_at"] == "2017-05-02T00:30:00.250000+08:00"
    assert event["recorded_at"] == "2017-05-02T01:00:00+08:00"
    parsed = parse_event(dict(event))
    assert parsed["performed_at"] == datetime(2017, 5, 1, 16, 30, 0, 250000, tzinfo=UTC)


def test_fields_the_mapping_does_not_need_are_ignored() -> None:
    event = record_to_event(record(residenceCity=..., itemId=..., extra={"x": 1}), FOSHAN)
    assert event["certification_id"] == "GDXR-17-00000042"


@pytest.mark.parametrize("field", ["certNo", "insuredId", "insuredCity", "certType",
                                   "handlerOrgCode", "certTime", "reportTime"])
def test_a_missing_field_is_rejected_naming_it(field: str) -> None:
    assert rejection(record(**{field: ...})).startswith(f"field {field} is missing")
    assert f"field {field}" in rejection(record(**{field: None}))


@pytest.mark.parametrize("value", ["", "   ", 42, ["FS1"]])
def test_an_empty_or_non_string_id_is_rejected(value: Any) -> None:
    assert rejection(record(insuredId=value)).startswith(
        "field insuredId must be a non-empty string")


def test_a_record_that_is_not_an_object_is_rejected() -> None:
    assert "not a JSON object but list" in rejection(["GDXR-17-1"])
    assert "not a JSON object but NoneType" in rejection(None)


def test_an_unknown_cert_type_is_rejected_listing_the_known_ones() -> None:
    reason = rejection(record(certType="09"))
    assert reason.startswith("field certType '09' is not a known certification type")
    assert "01 (PROVINCIAL_XREGION), 02 (ASSISTED_OFFICE), 03 (ASSISTING_AGENCY)" in reason
    assert "certType" in rejection(record(certType="PROVINCIAL_XREGION"))


def test_another_citys_record_is_rejected() -> None:
    reason = rejection(record(insuredCity="440100"))
    assert reason.startswith("field insuredCity is 440100 (GUANGZHOU), not this feed's city "
                             "440600 (FOSHAN)")


@pytest.mark.parametrize(("field", "value", "says"), [
    ("certTime", "2017-05-02 09:30:00", "has no UTC offset"),
    ("reportTime", "2017-05-02T10:12:45", "has no UTC offset"),
    ("certTime", "2017-05-02", "has no UTC offset"),
    ("certTime", "02/05/2017 09:30", "expected a time like 2017-05-02 09:30:00+08:00"),
    ("reportTime", 1493691165, "expected a time like"),
])
def test_a_bad_time_is_rejected_naming_the_field(field: str, value: Any, says: str) -> None:
    reason = rejection(record(**{field: value}))
    assert reason.startswith(f"field {field}: ") and says in reason


def test_a_certification_reported_before_it_was_performed_is_rejected() -> None:
    reason = rejection(record(certTime="2017-05-02 11:00:00+08:00"))
    assert reason.startswith("field certTime '2017-05-02 11:00:00+08:00' is after reportTime")


# -- event -> feed record (the harness) ----------------------------------------------------

def test_event_to_record_round_trips_through_the_connectors_mapping() -> None:
    events = [
        {"type": "CertificationRecorded", "recorded_at": "2017-06-20T23:59:59.5+08:00",
         "certification_id": "AOFF-17-1", "retiree_id": "FS1", "channel": "ASSISTED_OFFICE",
         "agency_id": "GD-ZHUHAI-SIB", "performed_at": "2017-06-20T15:00:00Z"},
        parse_event({"type": "CertificationRecorded", "recorded_at": "2017-04-01T00:00:00Z",
                     "certification_id": "FORM1-17-9", "retiree_id": "FS2",
                     "channel": "ASSISTING_AGENCY", "agency_id": "HN-CHANGSHA-POLICE-007",
                     "performed_at": "2017-03-31T23:00:00Z"}),
    ]
    for event in events:
        rec = event_to_record(event, FOSHAN)
        back = record_to_event(rec, FOSHAN)
        want = parse_event(dict(event)) if isinstance(event["recorded_at"], str) else event
        assert parse_event(dict(back)) == {**want, "source_agency": None}
    assert event_to_record(events[0], FOSHAN)["residenceCity"] == "440400"
    assert event_to_record(events[0], FOSHAN)["certTime"] == "2017-06-20 23:00:00+08:00"
    assert "residenceCity" not in event_to_record(events[1], FOSHAN)


def test_event_to_record_refuses_what_the_province_does_not_carry() -> None:
    event = {"type": "CertificationRecorded", "recorded_at": "2017-05-02T10:00:00+08:00",
             "certification_id": "C1", "retiree_id": "FS1", "channel": "MINISTRY_OFFSITE",
             "agency_id": "X", "performed_at": "2017-05-02T09:00:00+08:00"}
    with pytest.raises(ValueError, match="channel 'MINISTRY_OFFSITE' does not come through"):
        event_to_record(event, FOSHAN)
    with pytest.raises(ValueError, match="carries CertificationRecorded only"):
        event_to_record({**event, "type": "DeathRecorded"}, FOSHAN)
    with pytest.raises(ValueError, match="performed_at: time '2017-05-02T09:00:00' has no"):
        event_to_record({**event, "channel": "ASSISTED_OFFICE",
                         "performed_at": "2017-05-02T09:00:00"}, FOSHAN)


# -- AssistanceResult -> the province's body -------------------------------------------------

def result(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "AssistanceResult", "event_id": "5f0c6a52-0000-5000-8000-000000000001",
        "recorded_at": datetime(2017, 5, 2, 3, 0, tzinfo=UTC), "source_agency": "FS-SIB",
        "certification_id": "FSAR-17-1", "retiree_id": "440100000000017",
        "home_region": "GUANGZHOU", "method": "HOME_VISIT", "agency_id": "FS-NANHAI-HOMEVISIT",
        "performed_at": datetime(2017, 5, 2, 1, 30, tzinfo=UTC),
    }
    base.update(changes)
    return base


def test_an_assistance_result_becomes_the_provinces_body() -> None:
    assert result_body(result(), FOSHAN) == {
        "certNo": "FSAR-17-1", "insuredId": "440100000000017", "insuredCity": "440100",
        "assistCity": "440600", "assistMethod": "3", "handlerOrgCode": "FS-NANHAI-HOMEVISIT",
        "certTime": "2017-05-02 09:30:00+08:00",
    }
    assert result_body(result(method="COUNTER", performed_at="2017-05-02T01:30:00Z"),
                       FOSHAN)["assistMethod"] == "1"
    assert set(gd.ASSIST_METHODS) == {"COUNTER", "FACE_COUNTER", "HOME_VISIT"}


def test_a_result_for_a_region_outside_guangdong_is_refused() -> None:
    with pytest.raises(RecordRejected, match="home_region 'HN-CHANGSHA' is not a Guangdong"):
        result_body(result(home_region="HN-CHANGSHA"), FOSHAN)


def test_a_result_for_the_assisting_citys_own_retiree_is_refused() -> None:
    with pytest.raises(RecordRejected, match="is the assisting city itself"):
        result_body(result(home_region="FOSHAN"), FOSHAN)


def test_a_result_missing_fields_is_refused_naming_them() -> None:
    with pytest.raises(RecordRejected, match="lacks event_id, agency_id"):
        result_body(result(event_id=None, agency_id=""), FOSHAN)


def test_a_result_with_an_unknown_method_or_a_naive_time_is_refused() -> None:
    with pytest.raises(RecordRejected, match="method 'POST' has no assistMethod code"):
        result_body(result(method="POST"), FOSHAN)
    with pytest.raises(RecordRejected, match="performed_at: naive datetime"):
        result_body(result(performed_at=datetime(2017, 5, 2, 9, 30)), FOSHAN)


# ---------------------------------------------------------------- assistance cases

CAL = load_policy("foshan-2017").working_days


def case_record(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "itemId": "GDXT000000000043", "recordType": "ASSIST_CASE",
        "caseNo": "GDXC-440100-17-000042", "insuredId": "GZ000000017",
        "insuredCity": "440100", "assistCity": "440600",
        "registerTime": "2017-05-15 09:00:00+08:00"}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def case_rejection(rec: Any) -> str:
    from connectors.guangdong.mapping import case_record_to_event

    with pytest.raises(RecordRejected) as info:
        case_record_to_event(rec, FOSHAN, CAL, 20)
    return info.value.reason


def test_a_case_record_becomes_a_request_a_receipt_or_an_answer() -> None:
    from connectors.guangdong.mapping import case_record_to_event

    requested = case_record_to_event(case_record(), FOSHAN, CAL, 20)
    assert (requested["type"], requested["partner"], requested["direction"],
            requested["case_id"], requested["retiree_id"], requested["due_on"]) == (
        "AssistanceRequested", "GD-XREGION", "INBOUND", "GDXC-440100-17-000042",
        "GZ000000017", "2017-06-13")
    receipt = case_record_to_event({
        "recordType": "ASSIST_CASE_RECEIPT", "caseNo": "FS-2017-FS000123",
        "insuredId": "FS000123", "receiptNo": "GDXR-00000001",
        "receiveTime": "2017-05-15 09:00:01+08:00"}, FOSHAN, CAL, 20)
    assert (receipt["type"], receipt["acknowledges"], receipt["receipt"]) == (
        "AssistanceAcknowledged", "REQUEST", "GDXR-00000001")
    answer = case_record_to_event({
        "recordType": "ASSIST_CASE_ANSWER", "caseNo": "FS-2017-FS000123",
        "insuredId": "FS000123", "result": "3", "certNo": "GDXA-17-00000001",
        "assistMethod": "3", "handlerOrgCode": "GD-GUANGZHOU-SIB",
        "certTime": "2017-06-13 17:00:00+08:00", "deathDate": "2017-06-01",
        "reportTime": "2017-06-13 17:00:00+08:00"}, FOSHAN, CAL, 20)
    assert (answer["type"], answer["direction"], answer["outcome"], answer["method"],
            answer["date_of_death"], answer["home_region"]) == (
        "AssistanceResult", "OUTBOUND", "DECEASED", "HOME_VISIT", "2017-06-01", "FOSHAN")
    for event in (requested, receipt, answer):
        parse_event({**event, "event_id": "e"}, allowed=(event["type"],))


@pytest.mark.parametrize(("changes", "words"), [
    ({"recordType": "CASE?"}, "field recordType 'CASE?' is not one of CERT, ASSIST_CASE"),
    ({"caseNo": ...}, "field caseNo is missing"),
    ({"insuredCity": "440600"}, "is not another Guangdong city's division code"),
    ({"assistCity": "440100"}, "is not this feed's city 440600 (FOSHAN)"),
    ({"registerTime": "2017-05-15 09:00:00"}, "field registerTime: time '2017-05-15 "
                                              "09:00:00' has no UTC offset"),
    ({"registerTime": "2031-05-15 09:00:00+08:00"}, "field registerTime:"),
    ({"insuredId": "GZ 1\n"}, "field insuredId:"),
])
def test_each_unreadable_case_record_is_refused_naming_its_field(
        changes: dict[str, Any], words: str) -> None:
    assert words in case_rejection(case_record(**changes))


@pytest.mark.parametrize("field", ["result", "assistMethod"])
@pytest.mark.parametrize("value", [["1"], {"1": 1}, 1, None])
def test_an_answer_whose_code_is_not_a_code_string_is_refused(field: str, value: Any) -> None:
    # A list or an object once raised TypeError (unhashable) out of the connector.
    record = {"recordType": "ASSIST_CASE_ANSWER", "caseNo": "FS-2017-FS000123",
              "insuredId": "FS000123", "result": "1", "certNo": "GDXA-17-00000001",
              "assistMethod": "1", "handlerOrgCode": "GD-GUANGZHOU-SIB",
              "certTime": "2017-06-13 17:00:00+08:00",
              "reportTime": "2017-06-13 17:00:00+08:00", field: value}
    assert f"field {field} " in case_rejection(record)
    assert "is not one of" in case_rejection(record)


def test_an_answer_with_a_death_date_but_not_deceased_is_refused() -> None:
    reason = case_rejection({
        "recordType": "ASSIST_CASE_ANSWER", "caseNo": "FS-2017-FS000123",
        "insuredId": "FS000123", "result": "1", "certNo": "GDXA-17-00000001",
        "assistMethod": "1", "handlerOrgCode": "GD-GUANGZHOU-SIB",
        "certTime": "2017-06-13 17:00:00+08:00", "deathDate": "2017-06-01",
        "reportTime": "2017-06-13 17:00:00+08:00"})
    assert "deathDate must be given exactly when result is 3" in reason
