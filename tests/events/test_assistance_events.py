"""The assistance case events: AssistanceResult v1 records (the Guangdong results sent
before cases existed) still decode and become answered cases; the new types round-trip."""

from __future__ import annotations

from datetime import date, datetime

from lifecert.domain import assistance
from lifecert.events.catalogue import previous_schemas, raw_schema
from lifecert.events.codec import SchemaStore, decode, encode
from lifecert.events.interchange import parse_event
from lifecert.events.time import SHANGHAI

AT = datetime(2017, 5, 2, 9, 30, tzinfo=SHANGHAI)
V1 = {"type": "AssistanceResult", "event_id": "e-1", "recorded_at": AT,
      "source_agency": "FS-SIB-XREGION", "certification_id": "FSAR-17-1",
      "retiree_id": "440100000000001", "home_region": "GUANGZHOU", "method": "COUNTER",
      "agency_id": "FS-CHANCHENG-OFFICE01", "performed_at": AT}


def test_a_result_written_with_the_v1_schema_is_an_answered_guangdong_case() -> None:
    [old] = [s for s in previous_schemas() if s["name"] == "AssistanceResult"]
    writer = SchemaStore(catalogue=False)
    writer.register(old, current=True)
    data = encode(dict(V1), store=writer)
    assert decode(data) == V1
    current = decode(data, reader_schema=raw_schema("AssistanceResult"))
    assert current == {**V1, "partner": None, "case_id": None, "outcome": None,
                       "date_of_death": None, "direction": None}
    for event in (decode(data), current):
        case = assistance.fold([event])[("GD-XREGION", "FSAR-17-1")]
        assert case.status == assistance.ANSWERED and case.outcome == "CERTIFIED_ALIVE"


def test_the_case_events_round_trip() -> None:
    request = parse_event({
        "type": "AssistanceRequested", "event_id": "r-1", "recorded_at": AT.isoformat(),
        "source_agency": "MACAU-SSF", "case_id": "FSS-P3-1", "retiree_id": "MO-SSF-1001",
        "partner": "MACAU-SSF", "direction": "INBOUND", "requested_at": AT.isoformat(),
        "due_on": "2017-05-31"}, allowed=assistance.CASE_TYPES)
    ack = parse_event({
        "type": "AssistanceAcknowledged", "event_id": "a-1", "recorded_at": AT.isoformat(),
        "source_agency": "MACAU-SSF", "case_id": "FSS-P3-1", "retiree_id": "MO-SSF-1001",
        "partner": "MACAU-SSF", "acknowledges": "RESULT", "acknowledged_at": AT.isoformat(),
        "receipt": "FSS-R1"}, allowed=assistance.CASE_TYPES)
    dead = parse_event({**{k: (v.isoformat() if isinstance(v, datetime) else v)
                           for k, v in V1.items()}, "event_id": "e-2", "partner": "MACAU-SSF",
                        "case_id": "FSS-P3-1", "outcome": "DECEASED",
                        "date_of_death": "2017-04-20"}, allowed=assistance.CASE_TYPES)
    for event in (request, ack, dead):
        assert decode(encode(event)) == event
    assert decode(encode(dead))["date_of_death"] == date(2017, 4, 20)
