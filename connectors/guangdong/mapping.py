"""Pure mapping between the province's records and lifecert's events (no I/O).

``record_to_event``: a feed record -> a CertificationRecorded (interchange form, without
``event_id``), or :class:`RecordRejected` naming the province's field and what is wrong.
``result_body``: an AssistanceResult -> the body the province takes.
``case_record_to_event``: a case's feed record (``recordType`` ASSIST_CASE, its receipt,
its answer) -> AssistanceRequested INBOUND, AssistanceAcknowledged REQUEST, AssistanceResult
OUTBOUND (partner GD-XREGION). ``case_body`` and ``answer_body``: Foshan's case
(AssistanceRequested OUTBOUND) and Foshan's answer to the province's case (AssistanceResult
INBOUND with its case_id) -> the province's bodies.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from connectors.guangdong import province as gd
from connectors.sdk.errors import RecordRejected
from connectors.sdk.fields import coded
from lifecert.domain.assistance import GUANGDONG, due_date
from lifecert.domain.working_days import WorkingCalendar, WorkingCalendarError
from lifecert.events import bounds
from lifecert.events.catalogue import Event
from lifecert.events.interchange import MalformedEvent, parse_event
from lifecert.events.time import isoformat_local, to_utc

_RECORD_TEXT_FIELDS = ("certNo", "insuredId", "insuredCity", "certType", "handlerOrgCode")
# The province's id fields and the lifecert ids they become (checked against their patterns).
_RECORD_IDS = {"certNo": "certification_id", "insuredId": "retiree_id",
               "handlerOrgCode": "agency_id"}
_CERT_TYPE_LIST = ", ".join(f"{code} ({channel})" for code, channel in gd.CERT_TYPES.items())


def record_to_event(record: Any, city: str) -> Event:
    """The CertificationRecorded a feed record of ``city``'s feed reports."""
    if not isinstance(record, dict):
        raise RecordRejected(f"the feed record is not a JSON object but "
                             f"{type(record).__name__}; nothing can be read from it")
    for name in _RECORD_TEXT_FIELDS:
        value = _required(record, name)
        if not isinstance(value, str) or not value.strip():
            raise RecordRejected(f"field {name} must be a non-empty string, got "
                                 f"{bounds.show(value)}")
    for name, id_field in _RECORD_IDS.items():
        problem = bounds.id_problem(id_field, record[name])
        if problem is not None:
            raise RecordRejected(f"field {name}: {problem}")
    if record["insuredCity"] != city:
        shown = record["insuredCity"]
        shown = gd.city_label(shown) if shown in gd.CITY_NAMES else bounds.show(shown)
        raise RecordRejected(
            f"field insuredCity is {shown}, not this feed's "
            f"city {gd.city_label(city)}: the province routed another city's record here")
    channel = gd.CERT_TYPES.get(record["certType"])
    if channel is None:
        raise RecordRejected(f"field certType {bounds.show(record['certType'])} is not a "
                             f"known certification type; expected one of {_CERT_TYPE_LIST}")
    performed = _time(record, "certTime")
    reported = _time(record, "reportTime")
    if performed > reported:
        raise RecordRejected(
            f"field certTime {bounds.show(record['certTime'])} is after reportTime "
            f"{bounds.show(record['reportTime'])}: a certification cannot be reported before it is "
            f"performed; ask the province to correct the record")
    event: Event = {
        "type": "CertificationRecorded",
        "recorded_at": isoformat_local(reported),
        "certification_id": record["certNo"],
        "retiree_id": record["insuredId"],
        "channel": channel,
        "agency_id": record["handlerOrgCode"],
        "performed_at": isoformat_local(performed),
    }
    try:
        parse_event(dict(event))
    except MalformedEvent as exc:  # a guard: the checks above should make this unreachable
        raise RecordRejected(f"the record maps to an invalid event: {exc.describe()}") from None
    return event


def _required(record: Mapping[str, Any], name: str) -> Any:
    value = record.get(name)
    if value is None:
        raise RecordRejected(f"field {name} is missing; every certification record of the "
                             f"province carries it")
    return value


def _time(record: Mapping[str, Any], name: str) -> datetime:
    value = _required(record, name)
    try:
        at = gd.parse_time(value)
    except ValueError as exc:
        raise RecordRejected(f"field {name}: {exc}") from None
    try:
        problem = bounds.year_problem(at) or bounds.year_problem(to_utc(at))
    except OverflowError:  # 0001-01-01 00:00:00+08:00 is before year 1 in UTC
        problem = bounds.year_problem(1) or ""
    if problem:
        raise RecordRejected(f"field {name}: {bounds.show(value)}: {problem}")
    return at


def result_body(event: Mapping[str, Any], assisting_city: str) -> dict[str, str]:
    """The province's body for an AssistanceResult that ``assisting_city`` (a division
    code) performed; :class:`RecordRejected` for one the province cannot take."""
    missing = [name for name in ("event_id", "certification_id", "retiree_id", "home_region",
                                 "method", "agency_id", "performed_at")
               if event.get(name) in (None, "")]
    if missing:
        raise RecordRejected(f"AssistanceResult lacks {', '.join(missing)}")
    home = gd.CITY_CODES.get(event["home_region"])
    if home is None:
        raise RecordRejected(
            f"home_region {event['home_region']!r} is not a Guangdong city (known: "
            f"{', '.join(sorted(gd.CITY_CODES))}); the provincial system relays results only "
            f"between Guangdong cities: send it through the ministry's off-site system")
    if home == assisting_city:
        raise RecordRejected(
            f"home_region {event['home_region']!r} is the assisting city itself "
            f"({gd.city_label(assisting_city)}): its own retirees are not cross-region results")
    method = gd.ASSIST_METHODS.get(event["method"])
    if method is None:
        raise RecordRejected(f"method {event['method']!r} has no assistMethod code; expected "
                             f"one of {', '.join(gd.ASSIST_METHODS)}")
    performed = event["performed_at"]
    try:
        performed_dt = (performed if isinstance(performed, datetime)
                        else gd.parse_time(performed))
        cert_time = gd.format_time(performed_dt)
    except ValueError as exc:
        raise RecordRejected(f"performed_at: {exc}") from None
    return {
        "certNo": event["certification_id"],
        "insuredId": event["retiree_id"],
        "insuredCity": home,
        "assistCity": assisting_city,
        "assistMethod": method,
        "handlerOrgCode": event["agency_id"],
        "certTime": cert_time,
    }


def event_to_record(event: Mapping[str, Any], city: str) -> dict[str, str]:
    """The feed record carrying a CertificationRecorded of ``city``'s retiree, as the
    province reports it (the province adds its ``itemId`` when the record enters the
    feed). Used by the harness; ``ValueError`` for an event the province does not carry."""
    if event.get("type") != "CertificationRecorded":
        raise ValueError(f"the province's feed carries CertificationRecorded only, got "
                         f"{event.get('type')!r}")
    code = gd.CERT_TYPE_OF_CHANNEL.get(event.get("channel", ""))
    if code is None:
        raise ValueError(f"channel {event.get('channel')!r} does not come through the "
                         f"province; it carries {', '.join(gd.CERT_TYPE_OF_CHANNEL)}")
    record = {
        "certNo": event["certification_id"],
        "insuredId": event["retiree_id"],
        "insuredCity": city,
        "certType": code,
        "handlerOrgCode": event["agency_id"],
        "certTime": gd.format_time(_instant(event["performed_at"], "performed_at")),
        "reportTime": gd.format_time(_instant(event["recorded_at"], "recorded_at")),
    }
    residence = _residence_city(event["agency_id"])
    if residence is not None:
        record["residenceCity"] = residence
    return record


def _instant(value: Any, name: str) -> datetime:
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise ValueError(f"{name} {value.isoformat()} has no UTC offset")
        return value
    try:
        return gd.parse_time(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def _residence_city(agency_id: str) -> str | None:
    """The city in an agency code such as ``GD-GUANGZHOU-SIB`` (where the retiree lives)."""
    parts = agency_id.split("-")
    return gd.CITY_CODES.get(parts[1]) if len(parts) > 1 and parts[0] == "GD" else None


# ---------------------------------------------------------------- assistance cases


def record_type(record: Any) -> str:
    """A feed record's ``recordType`` (none: a certification, CERT)."""
    kind = record.get("recordType", gd.CERT) if isinstance(record, dict) else gd.CERT
    if kind not in gd.RECORD_TYPES:
        raise RecordRejected(f"field recordType {bounds.show(kind)} is not one of "
                             f"{', '.join(gd.RECORD_TYPES)}")
    return str(kind)


def _text(record: Mapping[str, Any], name: str, id_field: str) -> str:
    value = _required(record, name)
    if not isinstance(value, str) or not value.strip():
        raise RecordRejected(f"field {name} must be a non-empty string, got "
                             f"{bounds.show(value)}")
    problem = bounds.id_problem(id_field, value)
    if problem is not None:
        raise RecordRejected(f"field {name}: {problem}")
    return value


def case_record_to_event(record: Any, city: str, calendar: WorkingCalendar,
                         due_working_days: int) -> Event:
    """The case event a feed record of ``city``'s feed reports (``recordType`` other than
    CERT): an ASSIST_CASE another city registered with ``city`` (due ``due_working_days``
    working days of ``calendar`` after it was registered), the province's receipt of
    ``city``'s case, or the answer to it."""
    kind = record_type(record)
    if kind == gd.ASSIST_CASE:
        insured_city = _text(record, "insuredCity", "agency_id")
        if insured_city not in gd.CITY_NAMES or insured_city == city:
            raise RecordRejected(f"field insuredCity {bounds.show(insured_city)} is not "
                                 f"another Guangdong city's division code")
        if record.get("assistCity") != city:
            raise RecordRejected(f"field assistCity {bounds.show(record.get('assistCity'))} is "
                                 f"not this feed's city {gd.city_label(city)}")
        registered = _time(record, "registerTime")
        try:
            due = due_date(registered, due_working_days, calendar)
        except WorkingCalendarError as exc:
            raise RecordRejected(f"field registerTime: {exc}") from None
        return {"type": "AssistanceRequested", "recorded_at": isoformat_local(registered),
                "case_id": _text(record, "caseNo", "certification_id"),
                "retiree_id": _text(record, "insuredId", "retiree_id"),
                "partner": GUANGDONG, "direction": "INBOUND",
                "requested_at": isoformat_local(registered), "due_on": due.isoformat()}
    if kind == gd.ASSIST_CASE_RECEIPT:
        at = _time(record, "receiveTime")
        return {"type": "AssistanceAcknowledged", "recorded_at": isoformat_local(at),
                "case_id": _text(record, "caseNo", "certification_id"),
                "retiree_id": _text(record, "insuredId", "retiree_id"),
                "partner": GUANGDONG, "acknowledges": "REQUEST",
                "acknowledged_at": isoformat_local(at),
                "receipt": _text(record, "receiptNo", "certification_id")}
    if kind == gd.ASSIST_CASE_ANSWER:
        return _case_answer(record)
    raise ValueError(f"a certification record, not a case's: {kind}")


_METHOD_OF = {code: method for method, code in gd.ASSIST_METHODS.items()}


def _case_answer(record: Mapping[str, Any]) -> Event:
    outcome = coded(record, "result", gd.CASE_RESULTS,
                    ", ".join(f"{c} ({o})" for c, o in gd.CASE_RESULTS.items()))
    method = coded(record, "assistMethod", _METHOD_OF)
    died = record.get("deathDate")
    if (outcome == "DECEASED") != (died is not None):
        raise RecordRejected("field deathDate must be given exactly when result is 3 "
                             "(DECEASED)")
    if died is not None:
        try:
            if not isinstance(died, str) or len(died) != 10:
                raise ValueError
            died = date.fromisoformat(died).isoformat()
        except ValueError:
            raise RecordRejected(f"field deathDate must be YYYY-MM-DD, got "
                                 f"{bounds.show(record.get('deathDate'))}") from None
    performed, reported = _time(record, "certTime"), _time(record, "reportTime")
    return {"type": "AssistanceResult", "recorded_at": isoformat_local(reported),
            "certification_id": _text(record, "certNo", "certification_id"),
            "retiree_id": _text(record, "insuredId", "retiree_id"),
            "home_region": "FOSHAN", "method": method,
            "agency_id": _text(record, "handlerOrgCode", "agency_id"),
            "performed_at": isoformat_local(performed), "partner": GUANGDONG,
            "case_id": _text(record, "caseNo", "certification_id"), "outcome": outcome,
            "direction": "OUTBOUND", "date_of_death": died}


def is_case_request(event: Mapping[str, Any]) -> bool:
    """Foshan's case for the province (AssistanceRequested OUTBOUND of GD-XREGION)."""
    return (event.get("type") == "AssistanceRequested" and event.get("partner") == GUANGDONG
            and event.get("direction") == "OUTBOUND")


def is_case_answer(event: Mapping[str, Any]) -> bool:
    """Foshan's answer to one of the province's cases (AssistanceResult INBOUND of
    GD-XREGION with its case_id), not the answer the province gave Foshan (OUTBOUND)."""
    return (event.get("type") == "AssistanceResult" and event.get("partner") == GUANGDONG
            and event.get("direction") in (None, "INBOUND") and bool(event.get("case_id")))


def case_body(event: Mapping[str, Any], city: str) -> dict[str, str]:
    """The province's body for ``city``'s case about its retiree (an AssistanceRequested
    OUTBOUND): the province finds where the retiree lives and routes it there."""
    return {"caseNo": event["case_id"], "insuredId": event["retiree_id"],
            "insuredCity": city, "registerTime": gd.format_time(event["requested_at"]),
            "dueDate": event["due_on"].isoformat()}


def answer_body(event: Mapping[str, Any], assisting_city: str) -> dict[str, str]:
    """The province's body for ``assisting_city``'s answer to one of the province's cases
    (the path names the case; the province knows whose retiree it is)."""
    method = gd.ASSIST_METHODS.get(event.get("method", ""))
    if method is None:
        raise RecordRejected(f"method {event.get('method')!r} has no assistMethod code; "
                             f"expected one of {', '.join(gd.ASSIST_METHODS)}")
    outcome = event.get("outcome") or "CERTIFIED_ALIVE"
    died = event.get("date_of_death")
    if (outcome == "DECEASED") != (died is not None):
        raise RecordRejected("date_of_death must be given exactly when outcome is DECEASED")
    body = {"result": gd.CASE_RESULT_OF_OUTCOME[outcome],
            "certNo": event["certification_id"], "assistCity": assisting_city,
            "assistMethod": method, "handlerOrgCode": event["agency_id"],
            "certTime": gd.format_time(_instant(event["performed_at"], "performed_at"))}
    if died is not None:
        body["deathDate"] = died.isoformat() if isinstance(died, date) else str(died)
    return body
