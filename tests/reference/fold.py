"""The reference fold: policy foshan-2017 decided the obvious, slow, readable way.

Written only from ``DESIGN.md`` (rules 1-10) and ``docs/rules.md``. It keeps every decided
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
class RetireeFile:
    """All the hub knows about one enrolled retiree: every decision, every instruction."""

    enrollment: Input
    decisions: list[Decision] = field(default_factory=list)
    instructions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def retiree_id(self) -> str:
        return self.enrollment.retiree_id


# ---------------------------------------------------------------------------------------
# Questions about one retiree, each answered by scanning the history
# ---------------------------------------------------------------------------------------
def in_scope(r: RetireeFile) -> bool:
    return r.enrollment.date("pension_start") < CYCLE_START


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


def death_of(r: RetireeFile) -> Input | None:
    for d in r.decisions:
        if d.input.type == "DeathRecorded" and d.applied:
            return d.input
    return None


def kept_certifications(r: RetireeFile) -> list[Decision]:
    return [
        d
        for d in r.decisions
        if d.input.type == "CertificationRecorded" and d.reason in KEPT_CERTIFICATION_REASONS
    ]


def kept_certification(r: RetireeFile, certification_id: str) -> Decision | None:
    for d in kept_certifications(r):
        if d.input.fields["certification_id"] == certification_id:
            return d
    return None


def counting_certifications(r: RetireeFile) -> list[Decision]:
    return [d for d in kept_certifications(r) if d.applied]


def documents_received(r: RetireeFile, certification_id: str) -> bool:
    return any(
        d.input.type == "CertificationDocumentsReceived"
        and d.applied
        and d.input.fields["certification_id"] == certification_id
        for d in r.decisions
    )


def is_complete(r: RetireeFile, cert: Decision) -> bool:
    if not cert.applied:
        return False
    if cert.input.fields["channel"] not in FORM_CHANNELS:
        return True
    return documents_received(r, cert.input.fields["certification_id"])


def has_complete_counting_certification(r: RetireeFile) -> bool:
    return any(is_complete(r, c) for c in counting_certifications(r))


def has_pending_counting_certification(r: RetireeFile) -> bool:
    return any(not is_complete(r, c) for c in counting_certifications(r))


def open_hold(r: RetireeFile) -> dict[str, Any] | None:
    """The hold instruction still in force, if any (placed, then neither released nor
    ended by a termination)."""
    hold = None
    for instruction in r.instructions:
        if instruction["type"] == "PaymentHoldPlaced":
            hold = instruction
        elif instruction["type"] in ("PaymentHoldReleased", "PaymentTerminated"):
            hold = None
    return hold


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
# The replay
# ---------------------------------------------------------------------------------------
@dataclass
class RefResult:
    instructions: list[dict[str, Any]]
    statuses: dict[str, str]
    rejections: list[dict[str, Any]]


class _Replay:
    def __init__(self) -> None:
        self.retirees: dict[str, RetireeFile] = {}  # insertion order = enrollment order
        self.instructions: list[dict[str, Any]] = []
        self.rejections: list[dict[str, Any]] = []
        self.fired: set[str] = set()

    # -- output ---------------------------------------------------------------------------
    def emit(self, r: RetireeFile, kind: str, at: dt.datetime, **fields: Any) -> None:
        instruction = {"type": kind, "recorded_at": iso(at), "retiree_id": r.retiree_id}
        instruction.update(fields)
        self.instructions.append(instruction)
        r.instructions.append(instruction)

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

    def apply(self, ev: Input, r: RetireeFile) -> None:
        r.decisions.append(Decision(ev, None))

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
                self.emit(
                    r,
                    "PaymentHoldPlaced",
                    moment,
                    effective_month=HOLD_EFFECTIVE_MONTH,
                    reason="NOT_CERTIFIED",
                )

    # -- inputs ---------------------------------------------------------------------------
    def decide(self, ev: Input) -> None:
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
            self.certification(ev, r)
        elif ev.type == "CertificationDocumentsReceived":
            self.documents(ev, r)
        elif ev.type == "DeathRecorded":
            self.death(ev, r)

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

    def certification(self, ev: Input, r: RetireeFile) -> None:
        certification_id = ev.fields["certification_id"]
        if kept_certification(r, certification_id) is not None:
            self.reject(ev, r, DUPLICATE_CERTIFICATION)
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
        if death is not None and performed_on > death.date("date_of_death"):
            self.emit(
                r,
                "FraudSuspected",
                ev.recorded_at,
                certification_id=certification_id,
                reason="CERTIFIED_AFTER_DEATH",
            )
        if reason is None:
            cert = kept_certification(r, certification_id)
            assert cert is not None
            if is_complete(r, cert):
                self.completed(ev, r)

    def documents(self, ev: Input, r: RetireeFile) -> None:
        if death_of(r) is not None:
            self.reject(ev, r, RETIREE_DECEASED)
            return
        certification_id = ev.fields["certification_id"]
        cert = kept_certification(r, certification_id)
        if cert is None:  # the form came before its certification: kept, once
            earlier_form = any(
                d.reason is None
                and d.input.type == "CertificationDocumentsReceived"
                and d.input.fields["certification_id"] == certification_id
                for d in r.decisions
            )
            if earlier_form:
                self.reject(ev, r, DUPLICATE_DOCUMENTS)
            else:
                self.apply(ev, r)
            return
        if cert.input.fields["channel"] not in FORM_CHANNELS:
            self.reject(ev, r, DOCUMENTS_NOT_REQUIRED)
            return
        if not cert.applied:
            self.reject(ev, r, CERTIFICATION_NOT_COUNTING)
            return
        if is_complete(r, cert):
            self.reject(ev, r, DUPLICATE_DOCUMENTS)
            return
        self.apply(ev, r)
        self.completed(ev, r)

    def completed(self, ev: Input, r: RetireeFile) -> None:
        """A counting certification of ``r`` became complete with ``ev`` (rule 6)."""
        hold = open_hold(r)
        if hold is None:
            return
        hold_month = hold["effective_month"]
        completed_in = month_of_instant(ev.recorded_at)
        backpay = months_from_to(hold_month, completed_in)
        self.emit(
            r,
            "PaymentHoldReleased",
            ev.recorded_at,
            effective_month=max(add_months(completed_in, 1), hold_month),
            backpay_months=backpay,
            backpay_amount_fen=sum(amount_in_force(r, m) for m in backpay),
        )

    def death(self, ev: Input, r: RetireeFile) -> None:
        if death_of(r) is not None:
            self.reject(ev, r, DEATH_ALREADY_RECORDED)
            return
        died_on = ev.date("date_of_death")
        born_on = r.enrollment.date("birth_date")
        reported_on = local_date(ev.recorded_at)
        if not born_on <= died_on <= reported_on:
            self.reject(ev, r, IMPOSSIBLE_DEATH_DATE)
            return
        death_month = month_of_date(died_on)
        hold = open_hold(r)  # as it is before the death ends it
        overpaid = [
            m
            for m in months_from_to(add_months(death_month, 1), month_of_instant(ev.recorded_at))
            if m >= month_of_date(r.enrollment.date("pension_start"))
            and not (hold is not None and m >= hold["effective_month"])
        ]
        self.apply(ev, r)
        self.emit(
            r,
            "PaymentTerminated",
            ev.recorded_at,
            effective_month=add_months(death_month, 1),
            reason="DECEASED",
        )
        if overpaid:
            self.emit(
                r,
                "OverpaymentDetected",
                ev.recorded_at,
                months=overpaid,
                amount_fen=sum(amount_in_force(r, m) for m in overpaid),
            )
        for cert in kept_certifications(r):
            if local_date(cert.input.instant("performed_at")) > died_on:
                self.emit(
                    r,
                    "FraudSuspected",
                    ev.recorded_at,
                    certification_id=cert.input.fields["certification_id"],
                    reason="CERTIFIED_AFTER_DEATH",
                )

    def result(self) -> RefResult:
        return RefResult(
            instructions=list(self.instructions),
            statuses={rid: status_of(r) for rid, r in self.retirees.items()},
            rejections=list(self.rejections),
        )


def cutoff_of(until: dt.date) -> dt.datetime:
    """The first instant after the ``until`` day, in Asia/Shanghai."""
    return dt.datetime.combine(until + dt.timedelta(days=1), dt.time(0, 0), tzinfo=SHANGHAI)


def reference_replay(lines: Iterable[str], until: dt.date | None = None) -> RefResult:
    """Decide the JSON lines of an event log with policy foshan-2017.

    Each event is decided in log order, after every clock moment at or before its
    ``recorded_at`` that is not yet decided. With ``until``, events recorded at or after
    the end of that day (Asia/Shanghai) are skipped as if absent, and at the end every
    moment at or before that instant is decided.
    """
    replay = _Replay()
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
