"""Per-retiree state of a certification cycle, as the fold keeps it.

One :class:`RetireeState` per enrolled retiree; it holds only what the rules need (no name,
no id numbers). States are plain slotted objects so that a million fit comfortably in
memory and a faust table can serialise them (``to_dict`` / ``from_dict``).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from lifecert.events.time import Month

# Statuses of a retiree for a cycle, in the order the first applicable one is chosen.
DECEASED = "DECEASED"
EXEMPT = "EXEMPT"
SUSPENDED = "SUSPENDED"
CERTIFIED = "CERTIFIED"
PENDING_DOCUMENTS = "PENDING_DOCUMENTS"
NOT_CERTIFIED = "NOT_CERTIFIED"
STATUSES = (DECEASED, EXEMPT, SUSPENDED, CERTIFIED, PENDING_DOCUMENTS, NOT_CERTIFIED)


class Certification:
    """A certification kept for a retiree (counting or not: rule 8 needs them all)."""

    __slots__ = (
        "agency_id", "certification_id", "channel", "complete", "counting", "fraud_flagged",
        "performed_on", "revoked",
    )

    def __init__(
        self,
        certification_id: str,
        channel: str,
        performed_on: date,
        counting: bool,
        complete: bool,
        agency_id: str = "",
    ):
        self.certification_id = certification_id
        self.agency_id = agency_id
        self.channel = channel
        self.performed_on = performed_on
        # Whether rules 2-3 let it count (also when recorded while a death stood: rule 13
        # counts it once that death is retracted); a revoked one counts no more (rule 12).
        self.counting = counting
        self.complete = complete
        self.fraud_flagged = False
        self.revoked = False

    @property
    def counts(self) -> bool:
        return self.counting and not self.revoked

    def to_dict(self) -> dict[str, Any]:
        return {
            "certification_id": self.certification_id,
            "channel": self.channel,
            "performed_on": self.performed_on.isoformat(),
            "counting": self.counting,
            "complete": self.complete,
            "fraud_flagged": self.fraud_flagged,
            "agency_id": self.agency_id,
            "revoked": self.revoked,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Certification:
        cert = cls(
            data["certification_id"], data["channel"], date.fromisoformat(data["performed_on"]),
            data["counting"], data["complete"], data.get("agency_id", ""),
        )
        cert.fraud_flagged = data["fraud_flagged"]
        cert.revoked = data.get("revoked", False)
        return cert


class RetireeState:
    __slots__ = (
        "amount_changes",
        "birth_date",
        "certifications",
        "complete",
        "completed_at",
        "completed_by",
        "completed_performed_on",
        "corrections",
        "date_of_death",
        "deadline_passed",
        "death_memory",
        "death_report",
        "district",
        "early_documents",
        "employer_only",
        "enrolled_amount_fen",
        "event_ids",
        "hold_extra_months",
        "hold_month",
        "home_visit_candidate",
        "in_scope",
        "known_at",
        "pending_documents",
        "pension_start_month",
        "residence",
        "retiree_id",
        "retractions",
    )

    def __init__(
        self,
        retiree_id: str,
        in_scope: bool,
        employer_only: bool,
        home_visit_candidate: bool,
        pension_start_month: Month,
        enrolled_amount_fen: int,
        residence: str,
        district: str | None,
        birth_date: date | None = None,
    ):
        self.retiree_id = retiree_id
        # Only to tell an impossible death date (before birth); None in states saved
        # before it was kept.
        self.birth_date = birth_date
        self.in_scope = in_scope
        self.employer_only = employer_only
        self.home_visit_candidate = home_visit_candidate
        self.pension_start_month = pension_start_month
        self.enrolled_amount_fen = enrolled_amount_fen
        self.residence = residence
        self.district = district
        # (effective month, amount) in the order decided.
        self.amount_changes: list[tuple[Month, int]] | None = None
        self.event_ids: list[str] | None = None
        # In the order recorded; a list, not a dict: a retiree has one or two, and a
        # million small dicts cost twice the memory.
        self.certifications: list[Certification] | None = None
        # Documents received before their certification was recorded:
        # (agency_id or None, certification_id) -> recorded_at.
        self.early_documents: dict[tuple[str | None, str], datetime] | None = None
        self.complete = False
        # Channel and recorded_at of the event that completed the counting certification.
        self.completed_by: str | None = None
        self.completed_at: datetime | None = None
        # The day (Asia/Shanghai) that certification was performed: when the person was
        # seen, which may be days before lifecert received it (completed_at).
        self.completed_performed_on: date | None = None
        self.pending_documents = 0
        # First held month of the open hold; None when no hold is open.
        self.hold_month: Month | None = None
        # Months before hold_month that a release of the open hold also back-pays (the
        # unpaid months of a retracted death, rule 13); None when there are none.
        self.hold_extra_months: list[Month] | None = None
        self.date_of_death: date | None = None
        # Whether the policy's deadline moment was decided: a campaign-wide fact the
        # campaign sets on every state (at the moment, at enrollment, on restore); not
        # part of the snapshot, so a state written before the moment never goes stale.
        self.deadline_passed = False
        # Applied corrections (revocations, retractions): outputs decided after the n-th
        # carry it in their id key, so a second hold or termination has its own id.
        self.corrections = 0
        # How many of them were death retractions (the rest are revocations): the status
        # reports both, for the read models' corrections view.
        self.retractions = 0
        # What the standing death did to payments, for its retraction (rule 13):
        # (first unpaid month, extra unpaid months before it, months paid after the death,
        # the amount of its OverpaymentDetected or 0 when none, months settled to the estate).
        self.death_memory: tuple[Month, list[Month], list[Month], int, list[Month]] | None = (
            None
        )
        # Who reported the standing death (DeathRecorded.source) and when the hub recorded
        # it: the report splits deaths by register. None while no death stands.
        self.death_report: tuple[str, datetime] | None = None
        # The retiree's knowledge moment K without the deadline (docs/rules.md,
        # "Late-logged events"): the latest recorded_at of its events read so far, the
        # enrollment's included, whatever their verdict. An event recorded before it is
        # judged as of it. The deadline moment's part of K comes from deadline_passed.
        self.known_at: datetime | None = None

    @property
    def revocations(self) -> int:
        """Certifications of this retiree revoked (rule 12)."""
        return self.corrections - self.retractions

    @property
    def deceased(self) -> bool:
        return self.date_of_death is not None

    def status(self) -> str:
        if self.date_of_death is not None:
            return DECEASED
        if not self.in_scope:
            return EXEMPT
        if self.hold_month is not None:
            return SUSPENDED
        if self.complete:
            return CERTIFIED
        if self.pending_documents:
            return PENDING_DOCUMENTS
        return NOT_CERTIFIED

    def certification(
        self, certification_id: str, agency_id: str | None = None
    ) -> Certification | None:
        """The certification (agency_id, certification_id) (rule 11); without an agency,
        the earliest-recorded one with that id."""
        for cert in self.certifications or ():
            if cert.certification_id == certification_id and (
                agency_id is None or cert.agency_id == agency_id
            ):
                return cert
        return None

    def recount(self) -> None:
        """Recompute ``complete`` and ``pending_documents`` from the certifications."""
        complete, pending = False, 0
        for cert in self.certifications or ():
            if cert.counts:
                if cert.complete:
                    complete = True
                else:
                    pending += 1
        self.complete = complete
        self.pending_documents = pending
        if not complete:
            self.completed_by = self.completed_at = self.completed_performed_on = None

    def amount_in_force(self, month: Month) -> int:
        """The monthly amount in force in ``month`` (see docs/rules.md, Amounts)."""
        amount, best = self.enrolled_amount_fen, -1
        for effective, changed in self.amount_changes or ():
            if best <= effective <= month:
                amount, best = changed, effective
        return amount

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able snapshot, for changelogs and for resuming a replay."""
        return {
            "retiree_id": self.retiree_id,
            "in_scope": self.in_scope,
            "employer_only": self.employer_only,
            "home_visit_candidate": self.home_visit_candidate,
            "pension_start_month": self.pension_start_month,
            "enrolled_amount_fen": self.enrolled_amount_fen,
            "residence": self.residence,
            "district": self.district,
            "birth_date": self.birth_date.isoformat() if self.birth_date else None,
            "amount_changes": [list(c) for c in self.amount_changes or ()],
            "event_ids": list(self.event_ids or ()),
            "certifications": [cert.to_dict() for cert in self.certifications or ()],
            "early_documents": [
                [cid, at.isoformat()] for cid, at in (self.early_documents or {}).items()
            ],
            "complete": self.complete,
            "completed_by": self.completed_by,
            "completed_at": self.completed_at.isoformat() if self.completed_at else None,
            "completed_performed_on": (self.completed_performed_on.isoformat()
                                       if self.completed_performed_on else None),
            "pending_documents": self.pending_documents,
            "hold_month": self.hold_month,
            "date_of_death": self.date_of_death.isoformat() if self.date_of_death else None,
            "hold_extra_months": list(self.hold_extra_months or ()),
            "corrections": self.corrections,
            "retractions": self.retractions,
            "death_memory": (
                [self.death_memory[0], *(list(x) if isinstance(x, list) else x
                                          for x in self.death_memory[1:])]
                if self.death_memory else None
            ),
            "death_report": (
                [self.death_report[0], self.death_report[1].isoformat()]
                if self.death_report else None
            ),
            "known_at": self.known_at.isoformat() if self.known_at else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RetireeState:
        state = cls(
            data["retiree_id"],
            in_scope=data["in_scope"],
            employer_only=data["employer_only"],
            home_visit_candidate=data["home_visit_candidate"],
            pension_start_month=data["pension_start_month"],
            enrolled_amount_fen=data["enrolled_amount_fen"],
            residence=data["residence"],
            district=data["district"],
        )
        birth = data.get("birth_date")
        state.birth_date = date.fromisoformat(birth) if birth else None
        state.amount_changes = [(m, a) for m, a in data["amount_changes"]] or None
        state.event_ids = list(data["event_ids"]) or None
        state.certifications = [
            Certification.from_dict(c) for c in data["certifications"]
        ] or None
        early = data["early_documents"]
        pairs = early.items() if isinstance(early, dict) else early
        state.early_documents = {
            (tuple(cid) if isinstance(cid, list) else (None, cid)): datetime.fromisoformat(at)
            for cid, at in pairs
        } or None
        state.complete = data["complete"]
        state.completed_by = data["completed_by"]
        completed_at = data["completed_at"]
        state.completed_at = datetime.fromisoformat(completed_at) if completed_at else None
        # absent from states saved before it was kept
        performed = data.get("completed_performed_on")
        state.completed_performed_on = date.fromisoformat(performed) if performed else None
        state.pending_documents = data["pending_documents"]
        state.hold_month = data["hold_month"]
        death = data["date_of_death"]
        state.date_of_death = date.fromisoformat(death) if death else None
        state.hold_extra_months = list(data.get("hold_extra_months", ())) or None
        state.corrections = data.get("corrections", 0)
        state.retractions = data.get("retractions", 0)
        memory = data.get("death_memory")
        state.death_memory = (
            (memory[0], list(memory[1]), list(memory[2]), memory[3], list(memory[4]))
            if memory else None
        )
        report = data.get("death_report")  # absent in states saved before it was kept
        state.death_report = (report[0], datetime.fromisoformat(report[1])) if report else None
        known = data.get("known_at")
        state.known_at = datetime.fromisoformat(known) if known else state.derived_known_at()
        return state

    def derived_known_at(self) -> datetime | None:
        """K for a state saved before it was kept: the latest recorded_at the state still
        holds (the completing event's, the standing death report's, early forms'). Never
        later than the true K, so a log in recorded_at order is judged as before; an event
        recorded before the true K but after this one is judged as of its own recorded_at,
        as the fold that wrote the state judged it. The deadline's part of K needs no
        deriving (deadline_passed is set on restore)."""
        death_at = self.death_report[1] if self.death_report else None
        held = [at for at in (self.completed_at, death_at) if at is not None]
        held.extend((self.early_documents or {}).values())
        return max(held, default=None)
