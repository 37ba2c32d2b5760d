"""The bureau's review of consular cases (issue 13): due day in working days, each refusal,
the events of an approval, and the policy switch that lets an approval complete the
certification without the mailed form 2 (replayed, as live decides)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pytest

from lifecert.domain import consular
from lifecert.domain.consular import ConsularCase, ReviewRefused, review
from lifecert.domain.policy import load_policy
from lifecert.domain.working_days import WorkingCalendarError
from lifecert.events.interchange import parse_event, to_json
from lifecert.events.time import SHANGHAI
from lifecert.replay import replay_lines

P2017 = load_policy("foshan-2017")
P2021 = load_policy("foshan-2021")


def _case(year: int = 2017, **changes: object) -> ConsularCase:
    received = datetime(year, 4, 25, 10, 0, tzinfo=SHANGHAI)
    fields = dict(case_id="LS2017-000001", retiree_id="FS000000001",
                  mission_id="CN-TO-PORTMORESBY", mission_kind="TRADE_OFFICE",
                  passport_checked=True, residence_permit_checked=True, face_checked=True,
                  performed_at=received - timedelta(hours=20), received_at=received)
    fields.update(changes)
    return ConsularCase(**fields)  # type: ignore[arg-type]


def test_due_on_is_the_tenth_working_day_with_the_labour_day_holiday() -> None:
    # Tuesday 25 April 2017: 26, 27, 28 April, (1 May off), 2-5 May, 8, 9, 10 May.
    assert consular.due_on(_case().received_at, P2017) == date(2017, 5, 10)
    # Wednesday 28 April 2021: the make-up Saturday 8 May counts, 3-5 May do not.
    assert consular.due_on(datetime(2021, 4, 28, 9, tzinfo=SHANGHAI), P2021) == \
        date(2021, 5, 14)


def test_overdue_only_when_open_and_past_the_due_day() -> None:
    case = _case()
    assert not consular.is_overdue(case, date(2017, 5, 10), P2017)
    assert consular.is_overdue(case, date(2017, 5, 11), P2017)
    reviewed = _case(decision="APPROVED", reviewer="S1",
                     reviewed_at=datetime(2017, 5, 2, tzinfo=SHANGHAI))
    assert not consular.is_overdue(reviewed, date(2017, 6, 1), P2017)


def test_an_approval_is_audited_and_becomes_a_consulate_certification() -> None:
    at = datetime(2017, 5, 11, 15, 0, tzinfo=SHANGHAI)
    events = review(_case(), "APPROVED", None, "STAFF-017", at, P2017)
    assert [e["type"] for e in events] == ["ConsularCaseReviewed", "CertificationRecorded"]
    audit, cert = events
    assert (audit["reviewer"], audit["reviewed_at"], audit["due_on"], audit["overdue"]) == \
        ("STAFF-017", at, date(2017, 5, 10), True)
    assert (cert["channel"], cert["certification_id"], cert["agency_id"]) == \
        ("CONSULATE", "LS2017-000001", "CN-TO-PORTMORESBY")
    for event in events:  # valid events of the catalogue
        parse_event(to_json(event), allowed=(event["type"],))
    again = review(_case(), "APPROVED", None, "STAFF-017", at, P2017)
    assert [e["event_id"] for e in again] == [e["event_id"] for e in events]


@pytest.mark.parametrize(("case", "decision", "reason", "reviewer", "words"), [
    (_case(decision="REJECTED", reviewer="S2", reviewed_at=datetime(2017, 5, 2, tzinfo=SHANGHAI)),
     "APPROVED", None, "S1", "already rejected by S2"),
    (_case(), "REJECTED", "  ", "S1", "a rejection needs its reason"),
    (_case(residence_permit_checked=False), "APPROVED", None, "S1",
     "did not check the residence permit"),
    (_case(face_checked=False), "APPROVED", None, "S1", "did not check the face check"),
    (_case(), "MAYBE", None, "S1", "decision must be APPROVED or REJECTED"),
    (_case(), "APPROVED", None, "Chen Wei", "reviewer"),
    (_case(), "REJECTED", "x" * 5000, "S1", "reason: 5000 characters"),
])
def test_each_refusal_says_why(case: ConsularCase, decision: str, reason: str | None,
                               reviewer: str, words: str) -> None:
    at = datetime(2017, 5, 2, 9, 0, tzinfo=SHANGHAI)
    with pytest.raises(ReviewRefused, match=words):
        review(case, decision, reason, reviewer, at, P2017)


def test_a_review_before_the_case_arrived_or_outside_the_calendar_is_refused() -> None:
    with pytest.raises(ReviewRefused, match="before the case arrived"):
        review(_case(), "APPROVED", None, "S1", datetime(2017, 4, 1, tzinfo=SHANGHAI), P2017)
    with pytest.raises(WorkingCalendarError, match="add that year's holidays"):
        review(_case(2019), "APPROVED", None, "S1", datetime(2019, 5, 1, tzinfo=SHANGHAI),
               P2017)


def test_a_rejection_certifies_nothing() -> None:
    events = review(_case(), "REJECTED", "residence permit expired", "S1",
                    datetime(2017, 5, 2, tzinfo=SHANGHAI), P2017)
    assert [e["type"] for e in events] == ["ConsularCaseReviewed"]
    assert events[0]["reason"] == "residence permit expired"


def _replayed(policy_name: str, year: int) -> str:
    policy = load_policy(policy_name)
    enrolled = {"type": "RetireeEnrolled", "recorded_at": f"{year}-03-01T09:00:00+08:00",
                "retiree_id": "FS000000001", "name": "陈伟", "birth_date": "1950-02-01",
                "scheme": "URBAN_EMPLOYEE", "category": "REGULAR", "residence": "ABROAD",
                "district": None, "country": "PG", "pension_start": "2008-03-01",
                "monthly_amount_fen": 300000, "disabled": False, "managing_unit": None}
    at = datetime(year, 5, 2, 10, 0, tzinfo=SHANGHAI)
    events = review(_case(year), "APPROVED", None, "S1", at, policy)[1:]
    lines = [json.dumps(enrolled, ensure_ascii=False)]
    lines += [json.dumps(to_json(e), ensure_ascii=False) for e in events]
    return replay_lines(lines, policy_name, until=date(year, 12, 31)).statuses["FS000000001"]


def test_2017_still_needs_the_mailed_form_2_and_2021_does_not() -> None:
    assert _replayed("foshan-2017", 2017) == "SUSPENDED"  # pending documents at the deadline
    assert _replayed("foshan-2021", 2021) == "CERTIFIED"
