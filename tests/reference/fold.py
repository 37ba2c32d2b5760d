"""The reference fold: policy foshan-2017 decided the obvious, slow, readable way.

Written only from ``DESIGN.md`` (rules 1-14, "Payment semantics") and ``docs/rules.md``;
rules 11-14 were learnt again from those pages for issue 16 without reading
``lifecert/domain`` (where the pages leave a question open, the reading taken is written
beside the code, marked "Reading:"). It keeps every decided
input of every retiree and answers each question ("is a hold open?", "is there a complete
counting certification?", "which amount is in force in August?") by scanning that history
again, so there is no cached flag that could go stale. It is meant to be right, not fast.

Input: JSON lines in the interchange form. Output (:class:`RefResult`):

- ``instructions``: output events as JSON-form dicts, ``{"type", "recorded_at", <fields>}``,
  in the order decided (no ``event_id``);
- ``statuses``: retiree id -> status, for every enrolled retiree;
- ``rejections``: ``{"line" (1-based), "reason", "type", "retiree_id", "event_id"}``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")

# ---------------------------------------------------------------------------------------
# Policy foshan-2017: the campaign calendar and switches.
# ---------------------------------------------------------------------------------------
CYCLE_START = dt.date(2017, 1, 1)  # rule 1: in scope iff pension_start is before this day
WINDOW_OPENS = dt.date(2017, 4, 1)  # rule 2
DEADLINE = dt.date(2017, 6, 20)  # rule 2 (inclusive)
HOME_VISIT_MOMENT = dt.datetime(2017, 6, 1, 0, 0, tzinfo=SHANGHAI)  # rule 9
DEADLINE_MOMENT = dt.datetime(2017, 6, 21, 0, 0, tzinfo=SHANGHAI)  # rule 5
HOLD_EFFECTIVE_MONTH = "2017-07"  # rule 5
HOME_VISIT_AGE = 80  # rule 9
HOME_VISIT_RESIDENCE = "FOSHAN"  # rule 9
FORM_CHANNELS = frozenset({"ASSISTED_OFFICE", "ASSISTING_AGENCY", "CONSULATE", "HK_AGENCY"})
EMPLOYER_CHANNEL = "EMPLOYER_BATCH"  # rule 3
EMPLOYER_ONLY_SCHEMES = frozenset({"GOV_INSTITUTION"})  # rule 3
EMPLOYER_ONLY_CATEGORIES = frozenset({"CADRE_RETIREE"})  # rule 3

HOME_VISIT = "HOME_VISIT"
HOLD = "HOLD"
# The clock moments of the cycle, in time order.
MOMENTS: tuple[tuple[dt.datetime, str], ...] = (
    (HOME_VISIT_MOMENT, HOME_VISIT),
    (DEADLINE_MOMENT, HOLD),
)

INPUT_TYPES = frozenset(
    {
        "RetireeEnrolled",
        "PensionAmountChanged",
        "CertificationRecorded",
        "CertificationDocumentsReceived",
        "DeathRecorded",
        "CertificationRevoked",  # rule 12
        "DeathReportRetracted",  # rule 13
        "ContactDetailsUpdated",  # changes no status or payment
    }
)

# Rejection reasons (docs/rules.md, checked in this order).
UNKNOWN_RETIREE = "UNKNOWN_RETIREE"
DUPLICATE_EVENT = "DUPLICATE_EVENT"
ALREADY_ENROLLED = "ALREADY_ENROLLED"
DUPLICATE_CERTIFICATION = "DUPLICATE_CERTIFICATION"
RETIREE_DECEASED = "RETIREE_DECEASED"
CHANNEL_NOT_ALLOWED = "CHANNEL_NOT_ALLOWED"
OUTSIDE_WINDOW = "OUTSIDE_WINDOW"
DOCUMENTS_NOT_REQUIRED = "DOCUMENTS_NOT_REQUIRED"
CERTIFICATION_NOT_COUNTING = "CERTIFICATION_NOT_COUNTING"
DUPLICATE_DOCUMENTS = "DUPLICATE_DOCUMENTS"
DEATH_ALREADY_RECORDED = "DEATH_ALREADY_RECORDED"
IMPOSSIBLE_DEATH_DATE = "IMPOSSIBLE_DEATH_DATE"
CERTIFICATION_REVOKED = "CERTIFICATION_REVOKED"  # documents for a revoked certification
UNKNOWN_CERTIFICATION = "UNKNOWN_CERTIFICATION"  # revoking a pair not kept
ALREADY_REVOKED = "ALREADY_REVOKED"  # revoking it again
NO_DEATH_RECORDED = "NO_DEATH_RECORDED"  # retracting while no death stands

# A rejected certification is still kept (for rule 8) with these reasons.
KEPT_CERTIFICATION_REASONS = frozenset(
    {None, RETIREE_DECEASED, CHANNEL_NOT_ALLOWED, OUTSIDE_WINDOW}
)


# ---------------------------------------------------------------------------------------
# Time and months
# ---------------------------------------------------------------------------------------
def parse_instant(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"timestamp without an offset: {text!r}")
    return value


def local_date(instant: dt.datetime) -> dt.date:
    return instant.astimezone(SHANGHAI).date()


def month_of_date(day: dt.date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def month_of_instant(instant: dt.datetime) -> str:
    return month_of_date(local_date(instant))


def add_months(month: str, count: int) -> str:
    year, mon = int(month[:4]), int(month[5:7])
    index = year * 12 + (mon - 1) + count
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def months_from_to(first: str, last: str) -> list[str]:
    """Every month from ``first`` to ``last`` inclusive (empty when last < first)."""
    months = []
    month = first
    while month <= last:
        months.append(month)
        month = add_months(month, 1)
    return months


def birthday(birth: dt.date, age: int) -> dt.date:
    """The day someone born on ``birth`` turns ``age``; 29 February -> 28 February."""
    year = birth.year + age
    try:
        return birth.replace(year=year)
    except ValueError:  # 29 February in a common year
        return dt.date(year, 2, 28)


def iso(instant: dt.datetime) -> str:
    return instant.astimezone(SHANGHAI).isoformat()


# ---------------------------------------------------------------------------------------
# Inputs and what was decided about them
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Input:
    line: int
    type: str
    event_id: str | None
    recorded_at: dt.datetime
    fields: dict[str, Any]

    @property
    def retiree_id(self) -> str:
        return str(self.fields["retiree_id"])

    def date(self, name: str) -> dt.date:
        return dt.date.fromisoformat(self.fields[name])

    def instant(self, name: str) -> dt.datetime:
        return parse_instant(self.fields[name])


@dataclass(frozen=True)
class Decision:
    input: Input
    reason: str | None  # None: applied

    @property
    def applied(self) -> bool:
        return self.reason is None


def parse_line(line_no: int, text: str) -> Input:
    obj = json.loads(text)
    if not isinstance(obj, dict):
        raise ValueError(f"line {line_no}: not a JSON object")
    kind = obj.get("type")
    if kind not in INPUT_TYPES:
        raise ValueError(f"line {line_no}: not an input event type: {kind!r}")
    if "retiree_id" not in obj or "recorded_at" not in obj:
        raise ValueError(f"line {line_no}: retiree_id and recorded_at are required")
    event_id = obj.get("event_id")
    return Input(
        line=line_no,
        type=kind,
        event_id=None if event_id is None else str(event_id),
        recorded_at=parse_instant(obj["recorded_at"]),
        fields=obj,
    )


@dataclass
@dataclass
class Hold:
    """A PaymentHoldPlaced and the months it carries (rule 13: a hold placed by a death's
    retraction carries the months of U from the policy's hold month on; its release
    back-pays them before the months from its own effective month)."""

    instruction: dict[str, Any]
    carried: tuple[str, ...] = ()

    @property
    def effective_month(self) -> str:
        return str(self.instruction["effective_month"])

    def backpay_through(self, last: str) -> list[str]:
        """What a release decided in month ``last`` back-pays (rule 6; rules 12, 13)."""
        return [*self.carried, *months_from_to(self.effective_month, last)]

    def holds(self, month: str) -> bool:
        """Is ``month`` left unpaid by this hold (in force from its month, or carried)?"""
        return month >= self.effective_month or month in self.carried


@dataclass
class DeathFacts:
    """What one applied DeathRecorded decided, for its retraction (rule 13)."""

    termination_month: str
    hold: Hold | None  # the hold open when the death was recorded (it ended it)
    overpaid: list[str]  # the months of its OverpaymentDetected (empty: none issued)
    overpaid_fen: int
    estate: list[str]  # the months of its PaymentEstateSettled (empty: none issued)


@dataclass
class RetireeFile:
    """All the hub knows about one enrolled retiree: every decision, every instruction."""

    enrollment: Input
    decisions: list[Decision] = field(default_factory=list)
    instructions: list[dict[str, Any]] = field(default_factory=list)
    holds: list[Hold] = field(default_factory=list)  # every hold placed, in order
    death_facts: dict[int, DeathFacts] = field(default_factory=dict)  # by the death's line
    alerted: set[tuple[str, str]] = field(default_factory=set)  # rule 8, once per pair

    @property
    def retiree_id(self) -> str:
        return self.enrollment.retiree_id


# ---------------------------------------------------------------------------------------
# Certifications: a certification is its agency and its id (rule 11)
# ---------------------------------------------------------------------------------------
Pair = tuple[str, str]  # (agency_id, certification_id)


def pair_of(d: Decision) -> Pair:
    return (str(d.input.fields["agency_id"]), str(d.input.fields["certification_id"]))


def form_agency(ev: Input) -> str | None:
    """The agency a CertificationDocumentsReceived names (null or absent: none; records
    written before rule 11 have none, docs/rules.md)."""
    agency = ev.fields.get("agency_id")
    return None if agency is None else str(agency)


# ---------------------------------------------------------------------------------------
# Questions about one retiree, each answered by scanning the history
# ---------------------------------------------------------------------------------------
def in_scope(r: RetireeFile) -> bool:
    return r.enrollment.date("pension_start") < CYCLE_START


def pension_first_month(r: RetireeFile) -> str:
    return month_of_date(r.enrollment.date("pension_start"))


def channel_allowed(r: RetireeFile, channel: str) -> bool:
    employer_only = (
        r.enrollment.fields["scheme"] in EMPLOYER_ONLY_SCHEMES
        or r.enrollment.fields["category"] in EMPLOYER_ONLY_CATEGORIES
    )
    if employer_only:
        return channel == EMPLOYER_CHANNEL
    return channel != EMPLOYER_CHANNEL


def seen_event_ids(r: RetireeFile) -> set[str]:
    return {d.input.event_id for d in r.decisions if d.input.event_id is not None}


def standing_death(r: RetireeFile) -> Decision | None:
    """The applied DeathRecorded not retracted since (rule 13: a retraction undoes the death
    standing at that time; a new death after it is a new death)."""
    death: Decision | None = None
    for d in r.decisions:
        if not d.applied:
            continue
        if d.input.type == "DeathRecorded":
            death = d
        elif d.input.type == "DeathReportRetracted":
            death = None
    return death


def death_of(r: RetireeFile) -> Input | None:
    death = standing_death(r)
    return None if death is None else death.input


def kept_certifications(r: RetireeFile) -> list[Decision]:
    """Every kept certification (applied, or rejected but kept for rule 8), recorded order."""
    return [
        d
        for d in r.decisions
        if d.input.type == "CertificationRecorded" and d.reason in KEPT_CERTIFICATION_REASONS
    ]


def kept_pair(r: RetireeFile, pair: Pair) -> Decision | None:
    for d in kept_certifications(r):
        if pair_of(d) == pair:
            return d
    return None


def earliest_with_id(r: RetireeFile, certification_id: str) -> Decision | None:
    """The earliest-recorded kept certification with this id, whatever its agency."""
    for d in kept_certifications(r):
        if d.input.fields["certification_id"] == certification_id:
            return d
    return None


def is_revoked(r: RetireeFile, pair: Pair) -> bool:
    return any(
        d.applied
        and d.input.type == "CertificationRevoked"
        and (str(d.input.fields["agency_id"]), str(d.input.fields["certification_id"])) == pair
        for d in r.decisions
    )


def retracted_since(r: RetireeFile, cert: Decision) -> bool:
    """Was a death retracted after ``cert`` was decided? (A certification rejected as
    RETIREE_DECEASED was recorded while a death stood; rule 13: once that death is
    retracted, it counts.)"""
    after = False
    for d in r.decisions:
        if d is cert:
            after = True
        elif after and d.applied and d.input.type == "DeathReportRetracted":
            return True
    return False


def counts(r: RetireeFile, cert: Decision) -> bool:
    """Does this kept certification count now? Applied and not revoked (rule 12); or
    recorded while a death stood, that death retracted since, and rules 2-3 allowing it
    (rule 13, "one recorded while the death stood counts")."""
    if is_revoked(r, pair_of(cert)):
        return False
    if cert.applied:
        return True
    if cert.reason != RETIREE_DECEASED or not retracted_since(r, cert):
        return False
    performed_on = local_date(cert.input.instant("performed_at"))
    return channel_allowed(r, cert.input.fields["channel"]) and performed_on >= WINDOW_OPENS


def counting_certifications(r: RetireeFile) -> list[Decision]:
    return [d for d in kept_certifications(r) if counts(r, d)]


def form_belongs_to(form: Input, r: RetireeFile, cert: Decision) -> bool:
    """Rule 11: a form naming an agency belongs to that pair; one naming none to the
    earliest-recorded kept certification with its id (received before any, to the first
    one recorded with it: the same certification)."""
    agency, certification_id = pair_of(cert)
    if form.fields["certification_id"] != certification_id:
        return False
    named = form_agency(form)
    if named is not None:
        return named == agency
    return earliest_with_id(r, certification_id) is cert


def documents_received(r: RetireeFile, cert: Decision) -> bool:
    """An applied form belongs to it: received before it (kept early), or after it while
    no death stood (forms received while a death stood were rejected)."""
    return any(
        d.input.type == "CertificationDocumentsReceived"
        and d.applied
        and form_belongs_to(d.input, r, cert)
        for d in r.decisions
    )


def is_complete(r: RetireeFile, cert: Decision) -> bool:
    """A counting certification is complete: channels without a form at once, the others
    once their form came (rule 4)."""
    if not counts(r, cert):
        return False
    if cert.input.fields["channel"] not in FORM_CHANNELS:
        return True
    return documents_received(r, cert)


def has_complete_counting_certification(r: RetireeFile) -> bool:
    return any(is_complete(r, c) for c in counting_certifications(r))


def has_pending_counting_certification(r: RetireeFile) -> bool:
    return any(not is_complete(r, c) for c in counting_certifications(r))


def open_hold(r: RetireeFile) -> Hold | None:
    """The hold still in force or waiting to take effect, if any (placed, then neither
    released nor ended by a termination)."""
    hold_instruction: dict[str, Any] | None = None
    for instruction in r.instructions:
        if instruction["type"] == "PaymentHoldPlaced":
            hold_instruction = instruction
        elif instruction["type"] in ("PaymentHoldReleased", "PaymentTerminated"):
            hold_instruction = None
    if hold_instruction is None:
        return None
    return next(h for h in r.holds if h.instruction is hold_instruction)


def amount_in_force(r: RetireeFile, month: str) -> int:
    """The amount of the decided PensionAmountChanged with the greatest effective_month not
    after ``month`` (the last decided among equals), else the enrolled amount."""
    best: Input | None = None
    for d in r.decisions:
        if d.input.type != "PensionAmountChanged" or not d.applied:
            continue
        effective = d.input.fields["effective_month"]
        if effective <= month and (best is None or effective >= best.fields["effective_month"]):
            best = d.input
    if best is None:
        return int(r.enrollment.fields["monthly_amount_fen"])
    return int(best.fields["monthly_amount_fen"])


def total(r: RetireeFile, months: list[str]) -> int:
    return sum(amount_in_force(r, m) for m in months)


def due_for_home_visit(r: RetireeFile) -> bool:
    if not in_scope(r) or death_of(r) is not None:
        return False
    if r.enrollment.fields["residence"] != HOME_VISIT_RESIDENCE:
        return False
    aged = birthday(r.enrollment.date("birth_date"), HOME_VISIT_AGE) <= DEADLINE
    if not (bool(r.enrollment.fields["disabled"]) or aged):
        return False
    return not has_complete_counting_certification(r)


def due_for_hold(r: RetireeFile) -> bool:
    if not in_scope(r) or death_of(r) is not None:
        return False
    return not has_complete_counting_certification(r)


def status_of(r: RetireeFile) -> str:
    if death_of(r) is not None:
        return "DECEASED"
    if not in_scope(r):
        return "EXEMPT"
    if open_hold(r) is not None:
        return "SUSPENDED"
    if has_complete_counting_certification(r):
        return "CERTIFIED"
    if has_pending_counting_certification(r):
        return "PENDING_DOCUMENTS"
    return "NOT_CERTIFIED"


# ---------------------------------------------------------------------------------------
# Late-logged events (docs/rules.md "Late-logged events", issue 16): one separate step
# ---------------------------------------------------------------------------------------
# lifecert judges an event as of the moment it learns of it. A retiree's knowledge moment K
# is the latest of the recorded_at of every event of that retiree read before this one and,
# once the deadline has been decided, the deadline moment. An event recorded before K is
# judged as of K: the month of max(recorded_at, K) places the effective months and ends the
# back-pay ranges (M of rules 12 and 13, the end of rule 7's overpaid months, the completion
# month of rule 6), and every instruction it causes carries recorded_at = max(recorded_at,
# K). Dates describing the world (date_of_death, performed_at, postmarks, and the report's
# own day in the IMPOSSIBLE_DEATH_DATE check) are not moved. For logs in recorded_at order
# K is never after recorded_at, so nothing changes.
#
# "Every event of that retiree read" counts every line of that retiree from its
# RetireeEnrolled on, whatever its verdict (a DUPLICATE_EVENT redelivered later moves K to
# its own recorded_at); lines rejected UNKNOWN_RETIREE before the enrollment are not
# remembered and move nothing, and lines skipped by --until are not read (docs/rules.md
# "Late-logged events", whose final wording this follows; this fold first counted the
# UNKNOWN_RETIREE lines too). The home-visit sweep is not part of K.
# Switch: JUDGE_LATE_EVENTS_AS_OF_KNOWLEDGE = False gives the fold before the decision.
JUDGE_LATE_EVENTS_AS_OF_KNOWLEDGE = True


class Knowledge:
    """The knowledge moments K of every retiree id read so far."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.latest_read: dict[str, dt.datetime] = {}
        self.deadline_decided = False

    def judged_at(self, ev: Input) -> dt.datetime:
        """The instant ``ev`` is judged as of: max(recorded_at, K)."""
        if not self.enabled:
            return ev.recorded_at
        known = [ev.recorded_at]
        if ev.retiree_id in self.latest_read:
            known.append(self.latest_read[ev.retiree_id])
        if self.deadline_decided:
            known.append(DEADLINE_MOMENT)
        return max(known)

    def read(self, ev: Input, enrolled: bool) -> None:
        """``ev`` was decided: its recorded_at is known from now on, if its retiree is
        enrolled (an UNKNOWN_RETIREE line is not remembered)."""
        if not enrolled:
            return
        before = self.latest_read.get(ev.retiree_id)
        if before is None or ev.recorded_at > before:
            self.latest_read[ev.retiree_id] = ev.recorded_at


# ---------------------------------------------------------------------------------------
# The replay
# ---------------------------------------------------------------------------------------
@dataclass
class RefResult:
    instructions: list[dict[str, Any]]
    statuses: dict[str, str]
    rejections: list[dict[str, Any]]


class _Replay:
    def __init__(self, judge_late_events_as_of_knowledge: bool) -> None:
        self.retirees: dict[str, RetireeFile] = {}  # insertion order = enrollment order
        self.instructions: list[dict[str, Any]] = []
        self.rejections: list[dict[str, Any]] = []
        self.fired: set[str] = set()
        self.knowledge = Knowledge(judge_late_events_as_of_knowledge)

    # -- output ---------------------------------------------------------------------------
    def emit(
        self, r: RetireeFile, kind: str, at: dt.datetime, **fields: Any
    ) -> dict[str, Any]:
        instruction = {"type": kind, "recorded_at": iso(at), "retiree_id": r.retiree_id}
        instruction.update(fields)
        self.instructions.append(instruction)
        r.instructions.append(instruction)
        return instruction

    def place_hold(
        self,
        r: RetireeFile,
        at: dt.datetime,
        effective_month: str,
        reason: str,
        carried: list[str] | None = None,
    ) -> None:
        instruction = self.emit(
            r, "PaymentHoldPlaced", at, effective_month=effective_month, reason=reason
        )
        r.holds.append(Hold(instruction, tuple(carried or ())))

    def reject(self, ev: Input, r: RetireeFile | None, reason: str) -> None:
        self.rejections.append(
            {
                "line": ev.line,
                "reason": reason,
                "type": ev.type,
                "retiree_id": ev.retiree_id,
                "event_id": ev.event_id,
            }
        )
        if r is not None:  # remembered (its event_id too), except for an unknown retiree
            r.decisions.append(Decision(ev, reason))

    def apply(self, ev: Input, r: RetireeFile) -> Decision:
        decision = Decision(ev, None)
        r.decisions.append(decision)
        return decision

    # -- the clock ------------------------------------------------------------------------
    def fire_moments(self, up_to: dt.datetime) -> None:
        """Decide every moment not yet decided that is at or before ``up_to``."""
        for moment, name in MOMENTS:
            if moment <= up_to and name not in self.fired:
                self.fired.add(name)
                self.decide_moment(moment, name)

    def decide_moment(self, moment: dt.datetime, name: str) -> None:
        for r in list(self.retirees.values()):  # enrollment order
            if name == HOME_VISIT and due_for_home_visit(r):
                self.emit(r, "HomeVisitDue", moment, due_date=DEADLINE.isoformat())
            elif name == HOLD and due_for_hold(r):
                self.place_hold(r, moment, HOLD_EFFECTIVE_MONTH, "NOT_CERTIFIED")
        if name == HOLD:
            self.knowledge.deadline_decided = True

    def deadline_passed(self) -> bool:
        """The deadline moment has been decided (docs/rules.md, rule 12), not the date."""
        return HOLD in self.fired

    # -- inputs ---------------------------------------------------------------------------
    def decide(self, ev: Input) -> None:
        at = self.knowledge.judged_at(ev)
        self.judge(ev, at)
        self.knowledge.read(ev, enrolled=ev.retiree_id in self.retirees)

    def judge(self, ev: Input, at: dt.datetime) -> None:
        r = self.retirees.get(ev.retiree_id)
        if ev.type != "RetireeEnrolled" and r is None:
            self.reject(ev, None, UNKNOWN_RETIREE)
            return
        if r is not None and ev.event_id is not None and ev.event_id in seen_event_ids(r):
            self.reject(ev, r, DUPLICATE_EVENT)
            return
        if ev.type == "RetireeEnrolled":
            self.enrolled(ev, r)
            return
        assert r is not None
        if ev.type == "PensionAmountChanged":
            self.amount_changed(ev, r)
        elif ev.type == "CertificationRecorded":
            self.certification(ev, r, at)
        elif ev.type == "CertificationDocumentsReceived":
            self.documents(ev, r, at)
        elif ev.type == "DeathRecorded":
            self.death(ev, r, at)
        elif ev.type == "CertificationRevoked":
            self.revocation(ev, r, at)
        elif ev.type == "DeathReportRetracted":
            self.retraction(ev, r, at)
        elif ev.type == "ContactDetailsUpdated":
            # Applied for any enrolled retiree, deceased or not; no output, no status; the
            # phone and address are not kept (docs/rules.md).
            self.apply(ev, r)

    def enrolled(self, ev: Input, r: RetireeFile | None) -> None:
        if r is not None:
            self.reject(ev, r, ALREADY_ENROLLED)
            return
        r = RetireeFile(enrollment=ev)
        self.retirees[ev.retiree_id] = r
        self.apply(ev, r)

    def amount_changed(self, ev: Input, r: RetireeFile) -> None:
        if death_of(r) is not None:
            self.reject(ev, r, RETIREE_DECEASED)
            return
        self.apply(ev, r)

    def fraud(self, r: RetireeFile, cert: Decision, at: dt.datetime) -> None:
        """Rule 8, at most once per certification (its pair, rule 11), whatever later
        retractions and deaths (docs/rules.md, rule 13)."""
        if pair_of(cert) in r.alerted:
            return
        r.alerted.add(pair_of(cert))
        self.emit(
            r,
            "FraudSuspected",
            at,
            certification_id=cert.input.fields["certification_id"],
            reason="CERTIFIED_AFTER_DEATH",
        )

    def certification(self, ev: Input, r: RetireeFile, at: dt.datetime) -> None:
        pair = (str(ev.fields["agency_id"]), str(ev.fields["certification_id"]))
        if kept_pair(r, pair) is not None:
            self.reject(ev, r, DUPLICATE_CERTIFICATION)  # rule 11: the same pair again
            return
        death = death_of(r)
        performed_on = local_date(ev.instant("performed_at"))
        if death is not None:
            reason: str | None = RETIREE_DECEASED
        elif not channel_allowed(r, ev.fields["channel"]):
            reason = CHANNEL_NOT_ALLOWED
        elif performed_on < WINDOW_OPENS:
            reason = OUTSIDE_WINDOW
        else:
            reason = None
        if reason is None:
            self.apply(ev, r)
        else:
            self.reject(ev, r, reason)  # kept all the same, for rule 8
        cert = kept_pair(r, pair)
        assert cert is not None
        if death is not None and performed_on > death.date("date_of_death"):
            self.fraud(r, cert, at)
        if reason is None and is_complete(r, cert):
            self.completed(r, at)

    def documents(self, ev: Input, r: RetireeFile, at: dt.datetime) -> None:
        if death_of(r) is not None:
            self.reject(ev, r, RETIREE_DECEASED)
            return
        certification_id = str(ev.fields["certification_id"])
        named = form_agency(ev)
        if named is not None:
            cert = kept_pair(r, (named, certification_id))
        else:
            cert = earliest_with_id(r, certification_id)
        if cert is None:  # the form came before its certification: kept, once per key
            earlier_form = any(
                d.applied
                and d.input.type == "CertificationDocumentsReceived"
                and d.input.fields["certification_id"] == certification_id
                and form_agency(d.input) == named
                for d in r.decisions
            )
            if earlier_form:
                self.reject(ev, r, DUPLICATE_DOCUMENTS)
            else:
                self.apply(ev, r)
            return
        if is_revoked(r, pair_of(cert)):
            self.reject(ev, r, CERTIFICATION_REVOKED)
            return
        if cert.input.fields["channel"] not in FORM_CHANNELS:
            self.reject(ev, r, DOCUMENTS_NOT_REQUIRED)
            return
        if not counts(r, cert):
            self.reject(ev, r, CERTIFICATION_NOT_COUNTING)
            return
        if is_complete(r, cert):
            self.reject(ev, r, DUPLICATE_DOCUMENTS)
            return
        self.apply(ev, r)
        self.completed(r, at)

    def completed(self, r: RetireeFile, at: dt.datetime) -> None:
        """A counting certification of ``r`` became complete, judged as of ``at`` (rule 6;
        the release of a rule-12 or rule-13 hold is the same, from its own month, after
        the months it carries)."""
        hold = open_hold(r)
        if hold is None:
            return
        completed_in = month_of_instant(at)
        backpay = hold.backpay_through(completed_in)
        self.emit(
            r,
            "PaymentHoldReleased",
            at,
            effective_month=max(add_months(completed_in, 1), hold.effective_month),
            backpay_months=backpay,
            backpay_amount_fen=total(r, backpay),
        )

    def death(self, ev: Input, r: RetireeFile, at: dt.datetime) -> None:
        if death_of(r) is not None:
            self.reject(ev, r, DEATH_ALREADY_RECORDED)
            return
        died_on = ev.date("date_of_death")
        born_on = r.enrollment.date("birth_date")
        reported_on = local_date(ev.recorded_at)  # the report's own day: not moved
        if not born_on <= died_on <= reported_on:
            self.reject(ev, r, IMPOSSIBLE_DEATH_DATE)
            return
        death_month = month_of_date(died_on)
        known_in = month_of_instant(at)
        first = pension_first_month(r)
        hold = open_hold(r)  # as it is before the death ends it
        # Rule 7: paid months after the month of death, through the month it is known.
        overpaid = [
            m
            for m in months_from_to(add_months(death_month, 1), known_in)
            if m >= first and not (hold is not None and hold.holds(m))
        ]
        # Rule 14: what a release of the open hold would back-pay now, up to the month of
        # death, is owed to the estate.
        estate = (
            []
            if hold is None
            else [m for m in hold.backpay_through(known_in) if first <= m <= death_month]
        )
        decision = self.apply(ev, r)
        termination_month = add_months(death_month, 1)
        self.emit(r, "PaymentTerminated", at, effective_month=termination_month,
                  reason="DECEASED")
        overpaid_fen = total(r, overpaid)
        if overpaid:
            self.emit(r, "OverpaymentDetected", at, months=overpaid, amount_fen=overpaid_fen)
        if estate:
            self.emit(r, "PaymentEstateSettled", at, months=estate, amount_fen=total(r, estate))
        r.death_facts[decision.input.line] = DeathFacts(
            termination_month, hold, overpaid, overpaid_fen, estate
        )
        for cert in kept_certifications(r):  # recorded order
            if local_date(cert.input.instant("performed_at")) > died_on:
                self.fraud(r, cert, at)

    def revocation(self, ev: Input, r: RetireeFile, at: dt.datetime) -> None:
        """Rule 12."""
        pair = (str(ev.fields["agency_id"]), str(ev.fields["certification_id"]))
        cert = kept_pair(r, pair)
        if cert is None:
            self.reject(ev, r, UNKNOWN_CERTIFICATION)
            return
        if is_revoked(r, pair):
            self.reject(ev, r, ALREADY_REVOKED)
            return
        kept_them_paid = is_complete(r, cert)  # complete and counting when revoked
        self.apply(ev, r)
        if (
            kept_them_paid
            and death_of(r) is None
            and in_scope(r)
            and self.deadline_passed()
            and open_hold(r) is None
            and not has_complete_counting_certification(r)
        ):
            self.place_hold(
                r, at, add_months(month_of_instant(at), 1), "CERTIFICATION_REVOKED"
            )

    def retraction(self, ev: Input, r: RetireeFile, at: dt.datetime) -> None:
        """Rule 13: alive again, as if that death had never been recorded."""
        death = standing_death(r)
        if death is None:
            self.reject(ev, r, NO_DEATH_RECORDED)
            return
        facts = r.death_facts[death.input.line]
        self.apply(ev, r)
        m = month_of_instant(at)
        if facts.overpaid:
            self.emit(r, "OverpaymentCancelled", at, months=facts.overpaid,
                      amount_fen=facts.overpaid_fen)
        # U: the months the death left unpaid, through M. Reading: with a hold open at the
        # death, from the earlier of the hold's and the termination's effective months (a
        # hold placed by an earlier retraction, effective next month, was not in force yet
        # when a termination effective this month stopped the payments: docs/rules.md's
        # TWO_DEATHS_RETRACTED_AROUND_A_HOLD), with the months the hold carried.
        unpaid_from = facts.termination_month
        carried: tuple[str, ...] = ()
        if facts.hold is not None:
            unpaid_from = min(unpaid_from, facts.hold.effective_month)
            carried = facts.hold.carried
        paid_by_the_death = set(facts.estate) | set(facts.overpaid)
        first = pension_first_month(r)
        u = sorted(
            month
            for month in set(carried) | set(months_from_to(unpaid_from, m))
            if month >= first and month <= m and month not in paid_by_the_death
        )
        effective = add_months(m, 1)
        if (
            not in_scope(r)
            or has_complete_counting_certification(r)
            or not self.deadline_passed()
        ):
            self.emit(r, "PaymentReinstated", at, effective_month=effective,
                      backpay_months=u, backpay_amount_fen=total(r, u))
            return
        now = [month for month in u if month < HOLD_EFFECTIVE_MONTH]
        later = [month for month in u if month >= HOLD_EFFECTIVE_MONTH]
        self.emit(r, "PaymentReinstated", at, effective_month=effective,
                  backpay_months=now, backpay_amount_fen=total(r, now))
        self.place_hold(r, at, effective, "NOT_CERTIFIED", carried=later)

    def result(self) -> RefResult:
        return RefResult(
            instructions=list(self.instructions),
            statuses={rid: status_of(r) for rid, r in self.retirees.items()},
            rejections=list(self.rejections),
        )


def cutoff_of(until: dt.date) -> dt.datetime:
    """The first instant after the ``until`` day, in Asia/Shanghai."""
    return dt.datetime.combine(until + dt.timedelta(days=1), dt.time(0, 0), tzinfo=SHANGHAI)


def reference_replay(
    lines: Iterable[str],
    until: dt.date | None = None,
    *,
    judge_late_events_as_of_knowledge: bool = JUDGE_LATE_EVENTS_AS_OF_KNOWLEDGE,
) -> RefResult:
    """Decide the JSON lines of an event log with policy foshan-2017.

    Each event is decided in log order, after every clock moment at or before its
    ``recorded_at`` that is not yet decided, as of max(recorded_at, K) (see "Late-logged
    events" above; ``judge_late_events_as_of_knowledge=False``: as of its own
    recorded_at). With ``until``, events recorded at or after the end of that day
    (Asia/Shanghai) are skipped as if absent, and at the end every moment at or before
    that instant is decided.
    """
    replay = _Replay(judge_late_events_as_of_knowledge)
    cutoff = None if until is None else cutoff_of(until)
    for line_no, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        ev = parse_line(line_no, text)
        if cutoff is not None and ev.recorded_at >= cutoff:
            continue
        replay.fire_moments(ev.recorded_at)
        replay.decide(ev)
    if cutoff is not None:
        replay.fire_moments(cutoff)
    return replay.result()
