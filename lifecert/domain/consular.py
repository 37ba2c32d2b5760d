"""The bureau's review of a consular case (issue 13): pure decisions, no I/O.

The consular system pushes a verified case (ConsularCaseReceived); bureau staff approve or
reject it within :data:`REVIEW_WORKING_DAYS` working days of the policy's calendar, counted
from the day (Asia/Shanghai) the case reached the hub. :func:`review` turns a decision into
the events to publish, the same for the command line (``lifecert review consular``) and
the API's STAFF role:

- always a ConsularCaseReviewed: the audit record (who, when, why, due date, overdue);
- on approval, the CONSULATE CertificationRecorded the case becomes (its id is the case
  number, its agency the mission, performed when the app checked the face);
- on approval under a policy with ``consular_app_completes`` (2021 on), also the
  CertificationDocumentsReceived of that certification, received at the review: the app's
  checked passport and residence permit, reviewed by staff, stand for the mailed form 2.
  Under the 2017 policy the certification stays PENDING_DOCUMENTS until form 2 arrives.

Every event's id derives from the case number, so a review published twice (a retry after
a broker failure) has one effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from lifecert.domain.fold import uuid5
from lifecert.domain.policy import Policy
from lifecert.events import bounds
from lifecert.events.catalogue import Event
from lifecert.events.time import local_date

REVIEW_WORKING_DAYS = 10
APPROVED, REJECTED = "APPROVED", "REJECTED"
CHANNEL = "CONSULATE"
SOURCE_AGENCY = "lifecert-review"


class ReviewRefused(ValueError):
    """A review that cannot be made; the message says why and what to do instead."""


@dataclass(frozen=True, slots=True)
class ConsularCase:
    """A case as the read model holds it."""

    case_id: str
    retiree_id: str
    mission_id: str
    mission_kind: str
    passport_checked: bool
    residence_permit_checked: bool
    face_checked: bool
    performed_at: datetime
    received_at: datetime
    decision: str | None = None
    reviewer: str | None = None
    reviewed_at: datetime | None = None

    def missing_checks(self) -> list[str]:
        return [name for name, done in (("passport", self.passport_checked),
                                        ("residence permit", self.residence_permit_checked),
                                        ("face check", self.face_checked)) if not done]


def due_on(received_at: datetime, policy: Policy) -> date:
    """The last day of the review: the 10th working day after the day the case arrived."""
    return policy.working_days.add_working_days(local_date(received_at), REVIEW_WORKING_DAYS)


def is_overdue(case: ConsularCase, today: date, policy: Policy) -> bool:
    """Whether an open case is past its review period on ``today`` (Asia/Shanghai)."""
    return case.decision is None and today > due_on(case.received_at, policy)


def review(case: ConsularCase, decision: str, reason: str | None, reviewer: str,
           at: datetime, policy: Policy) -> list[Event]:
    """The events of one review. Raises :class:`ReviewRefused`."""
    if case.decision is not None:
        when = case.reviewed_at.isoformat() if case.reviewed_at else "earlier"
        raise ReviewRefused(f"case {case.case_id} was already {case.decision.lower()} by "
                            f"{case.reviewer} at {when}; a review is made once")
    if decision not in (APPROVED, REJECTED):
        raise ReviewRefused(f"decision must be {APPROVED} or {REJECTED}, got {decision!r}")
    if problem := bounds.id_problem("reviewer", reviewer):
        raise ReviewRefused(f"reviewer: {problem}")
    reason = (reason or "").strip() or None
    if decision == REJECTED and reason is None:
        raise ReviewRefused(f"a rejection needs its reason (case {case.case_id}): say what "
                            f"the retiree or the mission must do")
    if reason is not None and (problem := bounds.text_problem(reason)):
        raise ReviewRefused(f"reason: {problem}")
    missing = case.missing_checks()
    if decision == APPROVED and missing:
        raise ReviewRefused(f"case {case.case_id} cannot be approved: the consular system "
                            f"did not check the {', '.join(missing)}; reject it with that "
                            f"reason")
    if at < case.received_at:
        raise ReviewRefused(f"a review at {at.isoformat()} is before the case arrived "
                            f"({case.received_at.isoformat()})")
    due = due_on(case.received_at, policy)
    key = f"consular|{case.case_id}"
    events: list[Event] = [{
        "type": "ConsularCaseReviewed", "event_id": uuid5(f"{key}|review"),
        "recorded_at": at, "source_agency": SOURCE_AGENCY, "case_id": case.case_id,
        "retiree_id": case.retiree_id, "decision": decision, "reason": reason,
        "reviewer": reviewer, "reviewed_at": at, "due_on": due,
        "overdue": local_date(at) > due,
    }]
    if decision == APPROVED:
        events.append({
            "type": "CertificationRecorded", "event_id": uuid5(f"{key}|certification"),
            "recorded_at": at, "source_agency": SOURCE_AGENCY,
            "certification_id": case.case_id, "retiree_id": case.retiree_id,
            "channel": CHANNEL, "agency_id": case.mission_id,
            "performed_at": case.performed_at,
        })
        if policy.consular_app_completes:
            events.append({
                "type": "CertificationDocumentsReceived",
                "event_id": uuid5(f"{key}|documents"), "recorded_at": at,
                "source_agency": SOURCE_AGENCY, "certification_id": case.case_id,
                "retiree_id": case.retiree_id, "received_at": at,
                "agency_id": case.mission_id,
            })
    return events
