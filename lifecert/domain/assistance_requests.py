"""Foshan's OUTBOUND assistance requests: whom Foshan asks a partner to certify, and when.

The notice lets a Foshan retiree living in Macau certify at Macau's Social Security Fund
(form 4). Foshan does not wait for the deadline: from the policy's ``[assistance] ask_on``
day, each retiree living on a partner's side (``[assistance.partners]``: residence ->
partner) who has not certified (NOT_CERTIFIED, or SUSPENDED after the deadline) is the
subject of one request per campaign, an :class:`AssistanceRequested` (OUTBOUND) on the
assistance topic, due ``due_working_days`` working days of the policy's calendar after it
is made. Certified, exempt and deceased retirees, and those with a form still to come
(PENDING_DOCUMENTS: they did certify), are not asked.

A request's case id and event id are fixed by (policy cycle, partner, retiree): asking
again (a second run before the read model shows the first) publishes the same event,
which the case fold and the partner's idempotency key apply once.

Pure: the standings in (from the status read model, or a replay's states), requests out;
``lifecert assistance request`` publishes them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from lifecert.domain.assistance import due_date
from lifecert.domain.fold import uuid5
from lifecert.domain.policy import Policy
from lifecert.domain.state import NOT_CERTIFIED, SUSPENDED

#: the statuses of a retiree who has not certified this campaign
ASKED_ABOUT = frozenset({NOT_CERTIFIED, SUSPENDED})
#: the asking side: the bureau's assistance desk
SOURCE_AGENCY = "FS-SIB"


@dataclass(frozen=True, slots=True)
class Standing:
    """What the decision needs of one retiree this campaign."""

    retiree_id: str
    residence: str
    status: str


@dataclass(frozen=True, slots=True)
class Request:
    partner: str
    case_id: str
    retiree_id: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.partner, self.case_id)


def case_id(policy: Policy, retiree_id: str) -> str:
    """The case id of the campaign's request about ``retiree_id`` (one per cycle)."""
    return f"FS-{policy.cycle}-{retiree_id}"


def requests_due(retirees: Iterable[Standing], policy: Policy, today: date,
                 opened: Collection[tuple[str, str]] = ()) -> list[Request]:
    """The requests to make on ``today`` (an Asia/Shanghai day): none before the policy's
    ``ask_on``; then one per retiree living on a partner's side who has not certified,
    unless its case (partner, case id) is in ``opened`` already. By partner, then id."""
    ask_on = policy.assistance_ask_on
    if ask_on is None or today < ask_on:
        return []
    partners = dict(policy.assistance_partners)
    due = []
    for retiree in retirees:
        partner = partners.get(retiree.residence)
        if partner is None or retiree.status not in ASKED_ABOUT:
            continue
        request = Request(partner, case_id(policy, retiree.retiree_id), retiree.retiree_id)
        if request.key not in opened:
            due.append(request)
    return sorted(due, key=lambda r: (r.partner, r.retiree_id))


def request_event(request: Request, policy: Policy, at: datetime) -> dict[str, Any]:
    """The AssistanceRequested (OUTBOUND) of ``request`` made at ``at`` (aware)."""
    if at.tzinfo is None:
        raise ValueError("a request's time needs a UTC offset")
    return {
        "type": "AssistanceRequested",
        "event_id": uuid5(f"assistance-request|{request.partner}|{request.case_id}"),
        "recorded_at": at, "source_agency": SOURCE_AGENCY,
        "case_id": request.case_id, "retiree_id": request.retiree_id,
        "partner": request.partner, "direction": "OUTBOUND", "requested_at": at,
        "due_on": due_date(at, policy.assistance_due_working_days, policy.working_days),
    }
