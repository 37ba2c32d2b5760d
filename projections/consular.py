"""Queries of the consular cases read model (``consular_cases``, migration 0005): the cases
for the bureau's review, each with its due day and whether it is overdue (10 working days
of the policy's calendar, :mod:`lifecert.domain.consular`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from lifecert.domain import consular
from lifecert.domain.policy import Policy
from lifecert.domain.working_days import WorkingCalendarError
from lifecert.events.time import local_date

_COLUMNS = ("case_id, retiree_id, mission_id, mission_kind, passport_checked, "
            "residence_permit_checked, face_checked, performed_at, received_at, decision, "
            "reviewer, reviewed_at, country, deliveries, reason")
STATES = ("open", "overdue", "reviewed", "all")


@dataclass(frozen=True, slots=True)
class CaseView:
    case: consular.ConsularCase
    country: str
    deliveries: int
    reason: str | None
    due_on: date | None  # None when the policy's calendar does not cover the case's days
    overdue: bool

    def as_json(self) -> dict[str, Any]:
        c = self.case
        return {"case_id": c.case_id, "retiree_id": c.retiree_id, "mission_id": c.mission_id,
                "mission_kind": c.mission_kind, "country": self.country,
                "passport_checked": c.passport_checked,
                "residence_permit_checked": c.residence_permit_checked,
                "face_checked": c.face_checked, "performed_at": c.performed_at.isoformat(),
                "received_at": c.received_at.isoformat(), "deliveries": self.deliveries,
                "due_on": self.due_on.isoformat() if self.due_on else None,
                "overdue": self.overdue, "decision": c.decision, "reviewer": c.reviewer,
                "reviewed_at": c.reviewed_at.isoformat() if c.reviewed_at else None,
                "reason": self.reason}


def _view(row: tuple[Any, ...], policy: Policy, today: date) -> CaseView:
    case = consular.ConsularCase(*row[:12])
    try:
        due: date | None = consular.due_on(case.received_at, policy)
        overdue = consular.is_overdue(case, today, policy)
    except WorkingCalendarError:
        due, overdue = None, False
    return CaseView(case, row[12], row[13], row[14], due, overdue)


def load_case(conn: Any, case_id: str) -> consular.ConsularCase | None:
    with conn.cursor() as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM consular_cases WHERE case_id = %s", (case_id,))
        row = cur.fetchone()
    conn.rollback()
    return None if row is None else consular.ConsularCase(*row[:12])


def list_cases(conn: Any, policy: Policy, today: date, state: str = "open",
               limit: int = 1000) -> list[CaseView]:
    """Cases in the order they arrived: ``open`` (not reviewed), ``overdue`` (open and past
    their due day on ``today``), ``reviewed`` or ``all``."""
    if state not in STATES:
        raise ValueError(f"state must be one of {', '.join(STATES)}, got {state!r}")
    where = {"open": "WHERE decision IS NULL", "overdue": "WHERE decision IS NULL",
             "reviewed": "WHERE decision IS NOT NULL", "all": ""}[state]
    with conn.cursor() as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM consular_cases {where} "
                    f"ORDER BY received_at, case_id LIMIT %s",
                    (limit if state != "overdue" else 1_000_000,))
        rows = cur.fetchall()
    conn.rollback()
    views = [_view(row, policy, today) for row in rows]
    if state == "overdue":
        views = [v for v in views if v.overdue][:limit]
    return views


def counts(conn: Any, policy: Policy, today: date) -> dict[str, int]:
    """How many cases are open, overdue, approved and rejected (for summaries)."""
    views = list_cases(conn, policy, today, "all", limit=10_000_000)
    return {"received": len(views),
            "open": sum(1 for v in views if v.case.decision is None),
            "overdue": sum(1 for v in views if v.overdue),
            "approved": sum(1 for v in views if v.case.decision == consular.APPROVED),
            "rejected": sum(1 for v in views if v.case.decision == consular.REJECTED),
            "reviewed_late": sum(1 for v in views if v.case.decision is not None
                                 and v.case.reviewed_at is not None and v.due_on is not None
                                 and local_date(v.case.reviewed_at) > v.due_on)}
