"""The mailroom's fields of a returned form through the partner API (STAFF, COUNTER): the
agency of the certification, the form number, the postmark and the scan's SHA-256 reach
CertificationDocumentsReceived; each bad value is refused naming its field; an item
without them is what it was before (same key, same digest)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from lifecert.api import authz
from lifecert.api.partner import ItemError, prepare
from lifecert.api.protos import partner_exchange_pb2 as px
from lifecert.events import bounds
from lifecert.events.interchange import MalformedEvent

NOW = dt.datetime(2017, 5, 6, tzinfo=dt.UTC)
RECEIVED = Timestamp(seconds=int(dt.datetime(2017, 5, 4, 16, tzinfo=dt.UTC).timestamp()))


def _form(**overrides: Any) -> px.SubmitItem:
    fields: dict[str, Any] = {"certification_id": "C-77120", "retiree_id": "FS000104729",
                              "received_at": RECEIVED}
    fields.update(overrides)
    return px.SubmitItem(documents_received=px.DocumentsReceived(**fields))


def test_the_mailroom_fields_reach_the_event() -> None:
    prepared = prepare(0, _form(agency_id="CC-ZUMIAO-03", form_number=1,
                                postmarked_on="2017-05-02", scan_sha256="ab" * 32),
                       "FS-SIB-MAILROOM", NOW)
    event = prepared.event
    assert (event.agency_id, event.form_number, event.postmarked_on, event.scan_sha256) == \
        ("CC-ZUMIAO-03", 1, dt.date(2017, 5, 2), "ab" * 32)
    assert prepared.key == "CC-ZUMIAO-03|C-77120"  # another agency's C-77120 is another form


def test_a_form_without_them_is_as_before() -> None:
    prepared = prepare(0, _form(), "FS-SIB-MAILROOM", NOW)
    assert prepared.key == "C-77120"
    assert (prepared.event.agency_id, prepared.event.form_number, prepared.event.scan_sha256) \
        == (None, None, None)
    again = prepare(0, _form(), "FS-SIB-MAILROOM", NOW)
    assert again.digest == prepared.digest


@pytest.mark.parametrize(("overrides", "words"), [
    ({"form_number": 5}, "form_number 5 is not a form"),
    ({"form_number": -1}, "form_number -1 is not a form"),
    ({"postmarked_on": "20170502"}, "postmarked_on must be a date"),
    ({"postmarked_on": "2017-02-30"}, "postmarked_on must be a date"),
    ({"postmarked_on": "2017-05-06"}, "postmarked_on is after the day the form was received"),
    ({"scan_sha256": "AB" * 32}, "scan_sha256 must be 64 lower-case hex digits"),
    ({"scan_sha256": "../etc/passwd"}, "scan_sha256"),
    ({"agency_id": "CC ZUMIAO"}, "agency_id"),
    ({"agency_id": "CC-\x00"}, "agency_id"),
])
def test_each_bad_value_is_refused_naming_its_field(overrides: dict[str, Any],
                                                    words: str) -> None:
    with pytest.raises((ItemError, MalformedEvent)) as caught:
        prepare(0, _form(**overrides), "FS-SIB-MAILROOM", NOW)
    exc = caught.value
    text = exc.describe() if isinstance(exc, MalformedEvent) else str(exc)
    assert words in text, text


@settings(max_examples=200, deadline=None)
@given(value=st.text(max_size=80), number=st.integers(-(2**31), 2**31 - 1))
def test_hostile_values_are_refused_or_arrive_valid(value: str, number: int) -> None:
    """Any value is refused with an ItemError or MalformedEvent (never another exception),
    or arrives in the event as a valid one."""
    for overrides in ({"postmarked_on": value}, {"scan_sha256": value}, {"agency_id": value},
                      {"form_number": number}):
        try:
            event = prepare(0, _form(**overrides), "FS-SIB-MAILROOM", NOW).event
        except (ItemError, MalformedEvent):
            continue
        assert event.form_number in (None, 1, 2, 3, 4)
        assert event.scan_sha256 is None or re.fullmatch(r"[0-9a-f]{64}", event.scan_sha256)
        assert event.agency_id is None or bounds.AGENCY_ID.fullmatch(event.agency_id)
        assert event.postmarked_on is None or event.postmarked_on <= dt.date(2017, 5, 5)


def test_staff_and_counters_may_report_forms_others_may_not() -> None:
    for role in ("STAFF", "COUNTER"):
        authz.check_kind(role, authz.DOCUMENTS, None)
    with pytest.raises(authz.Refusal, match="may not report returned paper forms"):
        authz.check_kind("EMPLOYER", authz.DOCUMENTS, None)
