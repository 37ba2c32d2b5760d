"""Assistance cases: the state machine, due dates in working days, overdue flags."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lifecert.domain import assistance as a
from lifecert.domain.policy import load_policy
from lifecert.events.time import SHANGHAI

CAL = load_policy("foshan-2017").working_days
T0 = datetime(2017, 5, 25, 10, 0, tzinfo=SHANGHAI)


def request(case_id: str = "SSF-1", retiree: str = "MO-1", at: datetime = T0,
            days: int = 10) -> dict[str, Any]:
    return {"type": "AssistanceRequested", "case_id": case_id, "retiree_id": retiree,
            "partner": "MACAU-SSF", "direction": "INBOUND", "requested_at": at,
            "due_on": a.due_date(at, days, CAL)}


def ack(step: str, case_id: str = "SSF-1", at: datetime = T0, receipt: str = "R1"
        ) -> dict[str, Any]:
    return {"type": "AssistanceAcknowledged", "case_id": case_id, "retiree_id": "MO-1",
            "partner": "MACAU-SSF", "acknowledges": step,
            "acknowledged_at": at + timedelta(days=1), "receipt": receipt}


def result(case_id: str | None = "SSF-1", outcome: str | None = "CERTIFIED_ALIVE",
           cert: str = "FS-1", partner: str | None = "MACAU-SSF",
           at: datetime = T0) -> dict[str, Any]:
    return {"type": "AssistanceResult", "certification_id": cert, "retiree_id": "MO-1",
            "home_region": "MACAU", "method": "COUNTER", "agency_id": "FS-SIB-CC01",
            "performed_at": at + timedelta(days=3), "partner": partner, "case_id": case_id,
            "outcome": outcome, "date_of_death": None}


def test_the_whole_life_of_a_case() -> None:
    cases = a.fold([request(), ack("REQUEST"), result(), ack("RESULT", receipt="SSF-R9")])
    case = cases[("MACAU-SSF", "SSF-1")]
    assert case.status == a.RECEIVED and case.outcome == "CERTIFIED_ALIVE"
    assert case.receipt == "SSF-R9" and case.result_id == "FS-1"
    # Thursday 25 May 2017 + 10 working days, across the Dragon Boat Festival.
    assert case.due_on == date(2017, 6, 9)


def test_overdue_is_judged_on_working_days_with_holidays() -> None:
    case = a.fold([request()])[("MACAU-SSF", "SSF-1")]
    assert not a.is_overdue(case, date(2017, 6, 9))  # due by the end of that day
    assert a.is_overdue(case, date(2017, 6, 10))
    assert a.age_working_days(case, date(2017, 6, 9), CAL) == 10
    answered = a.fold([request(), result(at=T0 + timedelta(days=20))])[("MACAU-SSF", "SSF-1")]
    assert not a.is_overdue(answered, date(2017, 7, 1)) and a.answered_late(answered)


def test_a_guangdong_result_sent_before_cases_is_an_answered_case() -> None:
    legacy = result(case_id=None, outcome=None, partner=None, cert="FS-A7")
    case = a.fold([legacy])[("GD-XREGION", "FS-A7")]
    assert case.status == a.ANSWERED and case.outcome == "CERTIFIED_ALIVE"
    assert case.direction == "INBOUND" and case.requested_at is None
    assert not a.is_overdue(case, date(2018, 1, 1))


def test_refusals_say_why() -> None:
    assert a.apply(None, ack("REQUEST")).rejected == a.UNKNOWN_CASE
    opened = a.apply(None, request()).case
    assert a.apply(opened, request(retiree="MO-2")).rejected == a.CONFLICTING_REQUEST
    assert a.apply(opened, ack("RESULT")).rejected == a.RESULT_NOT_SENT
    answered = a.apply(opened, result()).case
    second = a.apply(answered, result(outcome="NOT_FOUND", cert="FS-2"))
    assert second.rejected == a.ALREADY_ANSWERED and second.case == answered
    with pytest.raises(ValueError, match="not an assistance case event"):
        a.apply(None, {"type": "DeathRecorded"})


def test_summary_counts_by_partner() -> None:
    cases = a.fold([request("S1"), request("S2"), result("S2"),
                    result(case_id=None, partner=None, cert="G1")])
    rows = {r.partner: r for r in a.summary(cases.values(), date(2017, 7, 1))}
    assert rows["MACAU-SSF"].requested == 2 and rows["MACAU-SSF"].open == 1
    assert rows["MACAU-SSF"].overdue == 1 and rows["MACAU-SSF"].answered == 1
    assert rows["GD-XREGION"].answered == 1 and rows["GD-XREGION"].overdue == 0


# -- properties ----------------------------------------------------------------------

_EVENTS = st.sampled_from([
    request(), ack("REQUEST"), ack("RESULT"), result(), result(outcome="DECEASED", cert="FS-2"),
    result(outcome="NOT_FOUND", cert="FS-3"), ack("RESULT", receipt="R2"),
])


@settings(max_examples=300)
@given(st.lists(_EVENTS, max_size=12))
def test_status_never_goes_back_and_a_result_never_changes(events: list[dict[str, Any]]
                                                           ) -> None:
    case: a.Case | None = None
    for event in events:
        before = case
        case = a.apply(case, event).case or case
        if before is not None and case is not None:
            assert a._RANK[case.status] >= a._RANK[before.status]
            if not before.is_open:
                assert (case.outcome, case.result_id) == (before.outcome, before.result_id)


@settings(max_examples=300)
@given(st.lists(_EVENTS, max_size=12), st.data())
def test_every_event_delivered_twice_has_one_effect(events: list[dict[str, Any]],
                                                    data: st.DataObject) -> None:
    doubled: list[dict[str, Any]] = []
    applied: list[dict[str, Any]] = []
    case: a.Case | None = None
    for event in events:
        decision = a.apply(case, event)
        case = decision.case or case
        if decision.changed:
            applied.append(event)
        doubled.append(event)
        if data.draw(st.booleans()):
            doubled.append(event)  # redelivered at once
    if applied:
        doubled.append(data.draw(st.sampled_from(applied)))  # an applied step, much later
    assert a.fold(doubled) == a.fold(events)


@given(st.lists(_EVENTS, max_size=12))
def test_the_answer_is_the_first_result_whatever_comes_after(events: list[dict[str, Any]]
                                                             ) -> None:
    results = [e for e in events if e["type"] == "AssistanceResult"]
    case = a.fold(events).get(("MACAU-SSF", "SSF-1"))
    if results:
        assert case is not None and case.result_id == results[0]["certification_id"]
        assert not case.is_open
    elif case is not None:
        assert case.is_open


def test_an_ssf_beneficiary_never_gets_a_foshan_payment_instruction(replay_impl: Any) -> None:
    """SSF's beneficiaries living in Foshan exist as assistance cases only, never enrolled:
    a form-3 certification recorded by mistake on the input log is rejected as an unknown
    retiree and decides nothing (the case events go to lifecert.assistance-results, which
    the fold never reads); the Foshan retiree in Macau certified by SSF is certified, and
    the one who did not is held."""
    from tests.helpers import cert, enroll

    foreign = "MO-SSF-41000001"  # connectors.macau_ssf.ssf.beneficiary_id
    lines = [
        enroll("FS-MO-1", residence="MACAU", district=None, country="MO"),
        enroll("FS-MO-2", residence="MACAU", district=None, country="MO"),
        cert("FSS-P4-1", "FS-MO-1", "MACAU_SSF", performed_at="2017-05-02T09:30:00+08:00"),
        cert("FS-F3-1", foreign, "COUNTER", performed_at="2017-05-03T09:30:00+08:00"),
    ]
    result = replay_impl(lines, until=date(2017, 12, 31))
    named = {i["retiree_id"] for i in result.instructions}
    assert named == {"FS-MO-2"}  # held: it never certified
    assert foreign not in result.statuses
    assert result.statuses["FS-MO-1"] == "CERTIFIED"
    reasons = " ".join(str(r["reason"]) for r in result.rejections)
    assert "UNKNOWN_RETIREE" in reasons
