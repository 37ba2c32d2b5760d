"""Whom Foshan asks a partner to certify, and when (lifecert.domain.assistance_requests)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest

from lifecert.domain import assistance
from lifecert.domain.assistance_requests import (
    Request,
    Standing,
    case_id,
    request_event,
    requests_due,
)
from lifecert.domain.policy import PolicyError, load_policy
from lifecert.events.interchange import parse_event, to_json
from lifecert.events.time import SHANGHAI

POLICY = load_policy("foshan-2017")
RETIREES = [
    Standing("R-MO-1", "MACAU", "NOT_CERTIFIED"),
    Standing("R-MO-2", "MACAU", "SUSPENDED"),
    Standing("R-MO-3", "MACAU", "CERTIFIED"),
    Standing("R-MO-4", "MACAU", "PENDING_DOCUMENTS"),
    Standing("R-MO-5", "MACAU", "DECEASED"),
    Standing("R-MO-6", "MACAU", "EXEMPT"),
    Standing("R-FS-1", "FOSHAN", "NOT_CERTIFIED"),
    Standing("R-HK-1", "HONG_KONG", "NOT_CERTIFIED"),  # no partner asked in Hong Kong
    Standing("R-GD-1", "GUANGDONG", "NOT_CERTIFIED"),  # the provincial system
    Standing("R-GD-2", "GUANGDONG", "CERTIFIED"),
]


def test_nobody_is_asked_before_the_policys_day() -> None:
    assert requests_due(RETIREES, POLICY, date(2017, 5, 14)) == []


def test_retirees_on_a_partners_side_who_have_not_certified_are_asked() -> None:
    due = requests_due(RETIREES, POLICY, date(2017, 5, 15))
    assert due == [Request("GD-XREGION", "FS-2017-R-GD-1", "R-GD-1"),
                   Request("MACAU-SSF", "FS-2017-R-MO-1", "R-MO-1"),
                   Request("MACAU-SSF", "FS-2017-R-MO-2", "R-MO-2")]


def test_a_case_already_opened_is_not_asked_again() -> None:
    opened = {("MACAU-SSF", case_id(POLICY, "R-MO-1"))}
    assert [r.retiree_id for r in requests_due(RETIREES, POLICY, date(2017, 6, 1), opened)] \
        == ["R-GD-1", "R-MO-2"]


def test_a_policy_without_the_table_asks_nobody() -> None:
    assert requests_due(RETIREES, load_policy("foshan-2021"), date(2021, 6, 1)) == []


def test_the_request_is_due_in_working_days_and_has_a_fixed_id() -> None:
    at = datetime(2017, 5, 15, 9, 0, tzinfo=SHANGHAI)
    (request,) = requests_due(RETIREES[:1], POLICY, at.date())
    event = request_event(request, POLICY, at)
    # 20 working days from Monday 15 May: Dragon Boat holidays 29-30 May, make-up 27 May
    assert event["due_on"] == POLICY.working_days.add_working_days(date(2017, 5, 15), 20)
    assert event["due_on"] == date(2017, 6, 13)
    later = request_event(request, POLICY, datetime(2017, 5, 16, 9, 0, tzinfo=SHANGHAI))
    assert later["event_id"] == event["event_id"]
    # a valid event of the catalogue, which opens an OUTBOUND case
    parsed = parse_event(to_json(event), allowed=("AssistanceRequested",))
    case = assistance.fold([parsed, parsed])[("MACAU-SSF", "FS-2017-R-MO-1")]
    assert (case.direction, case.status, case.due_on) == ("OUTBOUND", "REQUESTED",
                                                          date(2017, 6, 13))
    with pytest.raises(ValueError, match="UTC offset"):
        request_event(request, POLICY, datetime(2017, 5, 15, 9, 0))


@pytest.mark.parametrize(("table", "words"), [
    ("ask_on = 2017-07-01\npartners = { MACAU = \"MACAU-SSF\" }", "within the window"),
    ("ask_on = \"soon\"\npartners = { MACAU = \"MACAU-SSF\" }", "must be a date"),
    ("ask_on = 2017-05-15\ndue_working_days = 0\npartners = { MACAU = \"M\" }", "1 to 120"),
    ("ask_on = 2017-05-15\npartners = { MARS = \"MACAU-SSF\" }", "not one of GUANGDONG"),
    ("ask_on = 2017-05-15\npartners = { FOSHAN = \"FS\" }", "'FOSHAN', not one of"),
    ("ask_on = 2017-05-15\npartners = { MACAU = \"\" }", "must name a partner"),
    ("ask_on = 2017-05-15", "RESIDENCE = \"PARTNER\""),
])
def test_bad_assistance_tables_are_refused(tmp_path: Path, table: str, words: str) -> None:
    text = Path("lifecert/policies/foshan-2017.toml").read_text(encoding="utf-8")
    start, end = text.index("[assistance]"), text.index("[switches]")
    bad = tmp_path / "bad.toml"
    bad.write_text(text[:start] + "[assistance]\n" + table + "\n\n" + text[end:])
    with pytest.raises(PolicyError) as caught:
        load_policy(str(bad))
    assert words in str(caught.value) and str(bad) in str(caught.value)
