"""Assistance cases: "please certify this person for us", both directions, any partner.

A case is one person one party asks the other to certify: Macau's SSF asks Foshan about
an SSF beneficiary living in Foshan (form 3; INBOUND), the province's other cities ask
Foshan about their retirees living in Foshan (INBOUND), Foshan asks a partner about a
Foshan retiree living on its side (OUTBOUND). Its life::

    REQUESTED --ack REQUEST--> ACKNOWLEDGED --result--> ANSWERED --ack RESULT--> RECEIVED
        \\------------------------result-------------------^

A case is named by (partner, case_id). A result may come without a request: the Guangdong
results Foshan already sends (AssistanceResult before cases existed) open their case
ANSWERED, named by their certification_id. The first result stands: a second, different
one is refused (the partner must be told by a person, not by a silent overwrite); the same
one again changes nothing. Every transition is idempotent, so a redelivered event has one
effect. Due dates count working days of the policy's calendar (holidays and make-up
working days included); a case with no result by the end of its due day is overdue.

Pure functions: events in, state out. The projections writer folds each batch with
:func:`apply` in its transaction; :func:`fold` over the topic's records offline gives the
same cases (live == replay, tests/connectors/macau_ssf/test_macau_ssf_end_to_end.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from lifecert.domain.working_days import WorkingCalendar
from lifecert.events.time import SHANGHAI

REQUESTED = "REQUESTED"
ACKNOWLEDGED = "ACKNOWLEDGED"
ANSWERED = "ANSWERED"
RECEIVED = "RECEIVED"
STATUSES = (REQUESTED, ACKNOWLEDGED, ANSWERED, RECEIVED)
_RANK = {s: n for n, s in enumerate(STATUSES)}

CERTIFIED_ALIVE = "CERTIFIED_ALIVE"
OUTCOMES = (CERTIFIED_ALIVE, "NOT_FOUND", "DECEASED")

# The partner of an AssistanceResult written before cases existed (partner null).
GUANGDONG = "GD-XREGION"
# Macau's Social Security Fund (the macau-ssf connector's agency): form-3 cases
MACAU_SSF = "MACAU-SSF"


@dataclass(frozen=True, slots=True)
class InboundPartner:
    """A partner whose people living in Foshan the counters certify and answer for (its
    INBOUND cases): its name in messages and the ``home_region`` of the answers."""

    name: str
    home_region: str


#: partner -> what an answer to its INBOUND cases says of it. The Guangdong provincial
#: system's cases name the other city themselves (the province routes an answer by its case
#: number), so its answers say GUANGDONG, the province.
INBOUND_PARTNERS: dict[str, InboundPartner] = {
    MACAU_SSF: InboundPartner("Macau SSF", "MACAU"),
    GUANGDONG: InboundPartner("the Guangdong provincial system", "GUANGDONG"),
}
CASE_TYPES = ("AssistanceRequested", "AssistanceAcknowledged", "AssistanceResult")

# Rejection reasons (what a dead letter or the read model's refusal column says).
UNKNOWN_CASE = "UNKNOWN_CASE"
CONFLICTING_REQUEST = "CONFLICTING_REQUEST"
ALREADY_ANSWERED = "ALREADY_ANSWERED"
RESULT_NOT_SENT = "RESULT_NOT_SENT"


@dataclass(frozen=True, slots=True)
class Case:
    partner: str
    case_id: str
    retiree_id: str
    direction: str  # INBOUND: the partner asks Foshan; OUTBOUND: Foshan asks the partner
    status: str
    requested_at: datetime | None = None  # None: opened by its result (no request seen)
    due_on: date | None = None
    acknowledged_at: datetime | None = None
    answered_at: datetime | None = None  # the result's performed_at
    outcome: str | None = None
    result_id: str | None = None  # the result's certification_id
    received_at: datetime | None = None
    receipt: str | None = None  # the asking side's receipt of the result

    @property
    def key(self) -> tuple[str, str]:
        return (self.partner, self.case_id)

    @property
    def is_open(self) -> bool:
        """No result yet."""
        return _RANK[self.status] < _RANK[ANSWERED]


@dataclass(frozen=True, slots=True)
class Decision:
    case: Case | None  # the case after the event (unchanged when rejected or repeated)
    changed: bool
    rejected: str | None = None  # a reason code when the event cannot apply


def due_date(requested_at: datetime, working_days: int, calendar: WorkingCalendar) -> date:
    """The last day to answer a request made at ``requested_at``: that day (Asia/Shanghai)
    plus ``working_days`` working days of the calendar."""
    return calendar.add_working_days(requested_at.astimezone(SHANGHAI).date(), working_days)


def case_key(event: dict[str, Any]) -> tuple[str, str]:
    """(partner, case_id) of a case event; a result without them is a Guangdong case
    named by its certification_id."""
    if event["type"] == "AssistanceResult":
        return (event.get("partner") or GUANGDONG,
                event.get("case_id") or event["certification_id"])
    return (event["partner"], event["case_id"])


def apply(case: Case | None, event: dict[str, Any]) -> Decision:
    """The case after ``event`` (one of :data:`CASE_TYPES`, of this case's key)."""
    kind = event["type"]
    if kind == "AssistanceRequested":
        return _requested(case, event)
    if kind == "AssistanceResult":
        return _result(case, event)
    if kind == "AssistanceAcknowledged":
        if case is None:
            return Decision(None, False, UNKNOWN_CASE)
        if event["acknowledges"] == "REQUEST":
            return _acknowledged(case, event)
        return _received(case, event)
    raise ValueError(f"not an assistance case event: {kind!r}")


def _requested(case: Case | None, event: dict[str, Any]) -> Decision:
    partner, case_id = case_key(event)
    if case is None:
        return Decision(Case(partner, case_id, event["retiree_id"], event["direction"],
                             REQUESTED, requested_at=event["requested_at"],
                             due_on=event["due_on"]), True)
    if case.retiree_id != event["retiree_id"] or case.direction != event["direction"]:
        return Decision(case, False, CONFLICTING_REQUEST)
    if case.requested_at is not None:
        return Decision(case, False)  # the same request again
    # The result came first (another partition's order, or a late list): keep it.
    return Decision(replace(case, requested_at=event["requested_at"], due_on=event["due_on"]),
                    True)


def _acknowledged(case: Case, event: dict[str, Any]) -> Decision:
    if case.status != REQUESTED:
        return Decision(case, False)  # repeated, or the result already came
    return Decision(replace(case, status=ACKNOWLEDGED,
                            acknowledged_at=event["acknowledged_at"]), True)


def _outcome(event: dict[str, Any]) -> str:
    return event.get("outcome") or CERTIFIED_ALIVE


def _result(case: Case | None, event: dict[str, Any]) -> Decision:
    outcome, at = _outcome(event), event["performed_at"]
    if case is None:
        partner, case_id = case_key(event)
        return Decision(Case(partner, case_id, event["retiree_id"],
                             event.get("direction") or "INBOUND", ANSWERED,
                             answered_at=at, outcome=outcome,
                             result_id=event["certification_id"]), True)
    if not case.is_open:
        same = (case.outcome, case.result_id) == (outcome, event["certification_id"])
        return Decision(case, False, None if same else ALREADY_ANSWERED)
    return Decision(replace(case, status=ANSWERED, answered_at=at, outcome=outcome,
                            result_id=event["certification_id"]), True)


def _received(case: Case, event: dict[str, Any]) -> Decision:
    if case.status == RECEIVED:
        return Decision(case, False)
    if case.status != ANSWERED:
        return Decision(case, False, RESULT_NOT_SENT)
    return Decision(replace(case, status=RECEIVED, received_at=event["acknowledged_at"],
                            receipt=event["receipt"]), True)


def fold(events: Iterable[dict[str, Any]]) -> dict[tuple[str, str], Case]:
    """Every case after ``events`` (in log order); rejected events change nothing."""
    cases: dict[tuple[str, str], Case] = {}
    for event in events:
        if event.get("type") not in CASE_TYPES:
            continue
        key = case_key(event)
        decision = apply(cases.get(key), event)
        if decision.case is not None:
            cases[key] = decision.case
    return cases


def is_overdue(case: Case, today: date) -> bool:
    """No result by the end of its due day (a case opened by its result has no due day)."""
    return case.is_open and case.due_on is not None and today > case.due_on


def answered_late(case: Case) -> bool:
    return (case.due_on is not None and case.answered_at is not None
            and case.answered_at.astimezone(SHANGHAI).date() > case.due_on)


def age_working_days(case: Case, today: date, calendar: WorkingCalendar) -> int | None:
    """Working days since the request (None for a case opened by its result)."""
    if case.requested_at is None:
        return None
    return calendar.working_days_between(case.requested_at.astimezone(SHANGHAI).date(), today)


@dataclass(frozen=True, slots=True)
class PartnerSummary:
    partner: str
    direction: str
    requested: int
    open: int
    answered: int
    overdue: int


def summary(cases: Iterable[Case], today: date) -> list[PartnerSummary]:
    """Case counts by (partner, direction): all, open, answered (with a result), overdue."""
    rows: dict[tuple[str, str], list[int]] = {}
    for case in cases:
        row = rows.setdefault((case.partner, case.direction), [0, 0, 0, 0])
        row[0] += 1
        row[1] += case.is_open
        row[2] += not case.is_open
        row[3] += is_overdue(case, today)
    return [PartnerSummary(p, d, *row) for (p, d), row in sorted(rows.items())]
