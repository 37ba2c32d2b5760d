"""The typed event classes: generated from the schemas, fresh, and faithful to the mapping
form (equal to the flat dict, encoded to the same bytes)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lifecert.events import build_types, codec, types
from lifecert.events.catalogue import ALL_TYPES, envelope_spec, event_spec, personal_field_names
from lifecert.events.interchange import MalformedEvent, parse_line
from lifecert.events.typed import from_event, parse_typed
from tests.helpers import amount, cert, contact, death, docs, enroll, retract, revoke

AT = "2017-05-02T09:30:00+08:00"
LINES = {
    "RetireeEnrolled": enroll("R1"),
    "PensionAmountChanged": amount("R1", 312_000, "2017-06", recorded_at=AT),
    "CertificationRecorded": cert("C1", "R1", "FACE_APP", performed_at=AT),
    "CertificationDocumentsReceived": docs("C1", "R1", recorded_at=AT),
    "DeathRecorded": death("R1", date_of_death="2017-04-30", recorded_at=AT),
    "CertificationRevoked": revoke("C1", "R1", recorded_at=AT),
    "DeathReportRetracted": retract("R1", recorded_at=AT),
    "ContactDetailsUpdated": contact("R1", recorded_at=AT),
}


def test_types_module_is_what_the_schemas_generate() -> None:
    assert build_types.OUT.read_text(encoding="utf-8") == build_types.render(), (
        "lifecert/events/types.py is stale: run python -m lifecert.events.build_types")


@pytest.mark.parametrize("type_name", ALL_TYPES)
def test_every_class_has_the_fields_of_its_schema(type_name: str) -> None:
    cls = types.BY_NAME[type_name]
    envelope = [s.name for s in envelope_spec() if s.name != "type"]
    assert cls.__struct_fields__ == (*envelope, *(s.name for s in event_spec(type_name).fields))
    assert personal_field_names(type_name) == cls.PERSONAL


@pytest.mark.parametrize("type_name", sorted(LINES))
def test_a_typed_event_reads_and_encodes_as_its_dict(type_name: str) -> None:
    event: dict[str, Any] = parse_line(LINES[type_name])
    typed = from_event(event)
    assert typed == event and event == typed
    assert typed["type"] == type_name and dict(typed) == {**typed}
    assert codec.encode(typed) == codec.encode(event)
    assert codec.decode(codec.encode(typed)) == typed


def test_parse_typed_parses_once_and_refuses_what_the_schema_lacks() -> None:
    typed = parse_typed(json.loads(enroll("R1", birth_date="1937-06-20")))
    assert isinstance(typed, types.RetireeEnrolled)
    assert typed.birth_date.isoformat() == "1937-06-20"
    certification = json.loads(LINES["CertificationRecorded"])
    with pytest.raises(MalformedEvent) as bad:
        parse_typed({**certification, "channel": "FAX"})
    assert bad.value.field == "channel"
    with pytest.raises(codec.InvalidEvent, match=r"unknown field\(s\) signature"):
        parse_typed({**certification, "signature": "x"})
