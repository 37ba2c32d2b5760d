"""A small payment system, written from DESIGN.md's "Payment semantics, for checking".

At the start of month X it pays X unless a hold or a termination is in force in X, judged
from the instructions decided before X began (an instruction is decided in the
Asia/Shanghai month of its ``recorded_at``; the stream is read in its order, so for a log
out of recorded_at order see ``read_before``). A hold effective E is in force from E until
a release (or a termination) takes effect; a termination from its effective month until a
reinstatement takes effect. Back-pay and estate settlement pay the listed months;
OverpaymentDetected recovers the listed months; OverpaymentCancelled gives them back.

``simulate`` returns, per retiree, the GROSS payments of each month (regular, back-pay,
estate) and, apart, the recoveries standing (detected less cancelled), by the end of the
horizon month H: months X <= H were due (the start of H has passed), and every
instruction decided up to the end of H has been applied; with the hold and the
termination still open at H. It knows nothing of the rules that produced the
instructions, and refuses an instruction stream a payment system could not apply: a
second hold while one is open, a release with no hold open, a termination while one is in
force, a reinstatement with no termination in force (an ``AssertionError`` naming it).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
FOREVER = "9999-12"


def decided_in(instruction: Mapping[str, Any]) -> str:
    at = dt.datetime.fromisoformat(instruction["recorded_at"]).astimezone(SHANGHAI)
    return f"{at.year:04d}-{at.month:02d}"


def next_month(month: str) -> str:
    year, mon = int(month[:4]), int(month[5:])
    return f"{year + mon // 12:04d}-{mon % 12 + 1:02d}"


def months(first: str, last: str) -> list[str]:
    out = []
    while first <= last:
        out.append(first)
        first = next_month(first)
    return out


@dataclass
class Stops:
    """The [from, until) intervals in which a hold or a termination is in force, and the
    start month of the hold / termination still open after the last instruction."""

    intervals: list[tuple[str, str]] = field(default_factory=list)
    open_hold: str | None = None
    open_termination: str | None = None
    # When the open hold was placed by a death's retraction (rule 13: PaymentReinstated
    # and PaymentHoldPlaced in one decision): the first month left unpaid by that death
    # (the effective month of the hold the termination ended, else the termination's).
    hold_after_death_from: str | None = None

    def in_force(self, month: str) -> bool:
        still = [(s, FOREVER) for s in (self.open_hold, self.open_termination) if s]
        spans = [*self.intervals, *still]
        return any(start <= month < until for start, until in spans)


def _bad(what: str, ins: Mapping[str, Any]) -> str:
    return f"instruction stream a payment system cannot apply: {what}: {json.dumps(ins)}"


def stops(instructions: Iterable[Mapping[str, Any]]) -> Stops:
    """Hold and termination spans as the given instructions (in decision order) set them."""
    out = Stops()
    unpaid_from: str | None = None  # of the termination in force
    reinstated: tuple[str, str] | None = None  # (recorded_at, unpaid_from) of the last one
    for ins in instructions:
        kind = ins["type"]
        if kind == "PaymentHoldPlaced":
            assert out.open_hold is None, _bad(
                f"a second hold while {out.open_hold}'s is open", ins
            )
            out.open_hold = ins["effective_month"]
            out.hold_after_death_from = (
                reinstated[1] if reinstated and reinstated[0] == ins["recorded_at"] else None
            )
        elif kind == "PaymentHoldReleased":
            assert out.open_hold is not None, _bad("a release with no hold open", ins)
            out.intervals.append((out.open_hold, ins["effective_month"]))
            out.open_hold = out.hold_after_death_from = None
        elif kind == "PaymentTerminated":
            assert out.open_termination is None, _bad(
                f"a termination while {out.open_termination}'s is in force", ins
            )
            unpaid_from = ins["effective_month"]
            if out.open_hold is not None:
                # a hold not yet in force (placed by a retraction, effective next month)
                # leaves unpaid from the termination's month, not from its own
                if out.open_hold < unpaid_from:
                    out.intervals.append((out.open_hold, unpaid_from))
                    unpaid_from = out.open_hold
                out.open_hold = out.hold_after_death_from = None
            out.open_termination = ins["effective_month"]
        elif kind == "PaymentReinstated":
            assert out.open_termination is not None and unpaid_from is not None, _bad(
                "a reinstatement with no termination in force", ins
            )
            out.intervals.append((out.open_termination, ins["effective_month"]))
            out.open_termination = None
            reinstated = (ins["recorded_at"], unpaid_from)
    return out


@dataclass
class Paid:
    """One retiree's account at the horizon."""

    gross: Counter[str]  # regular payments + back-pay + estate settlement, per month
    recovered: Counter[str]  # OverpaymentDetected less OverpaymentCancelled, per month
    at_horizon: Stops  # as the instructions decided up to the horizon leave them
    paid_by_a_death: set[str]  # months of its estate settlements and overpayments detected

    def net(self, month: str) -> int:
        return self.gross[month] - self.recovered[month]


def read_before(stream: list[Mapping[str, Any]], month: str) -> list[Mapping[str, Any]]:
    """What the payment system has read of the stream, in its order, when ``month``
    begins: the longest prefix decided before it. For a log in recorded_at order that is
    every instruction decided before the month; out of order, an instruction decided
    earlier than one before it in the stream waits for it (a release decided in April of
    a hold decided at the June deadline is not read before the hold)."""
    out = []
    for ins in stream:
        if decided_in(ins) >= month:
            break
        out.append(ins)
    return out


# What the payment system reads: the payment instructions (lifecert/pipeline/topics.toml,
# topic lifecert.payment-instructions, "what the payment system consumes"). HomeVisitDue is a
# task (lifecert.tasks) and FraudSuspected an alert (lifecert.alerts): another reader's
# topics, so they do not hold back what the payment system reads (``read_before``).
PAYMENT_INSTRUCTIONS = frozenset(
    {
        "PaymentHoldPlaced",
        "PaymentHoldReleased",
        "PaymentTerminated",
        "OverpaymentDetected",
        "PaymentReinstated",
        "OverpaymentCancelled",
        "PaymentEstateSettled",
    }
)


def simulate(
    instructions: Iterable[Mapping[str, Any]],
    pension_start_months: Mapping[str, str],
    horizon: str,
) -> dict[str, Paid]:
    """Each retiree's payments and recoveries by the end of ``horizon``."""
    by_retiree: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for ins in instructions:
        if ins["type"] in PAYMENT_INSTRUCTIONS:
            by_retiree[ins["retiree_id"]].append(ins)
    paid: dict[str, Paid] = {}
    for rid, first in pension_start_months.items():
        mine = by_retiree.get(rid, [])
        applied = [ins for ins in mine if decided_in(ins) <= horizon]
        gross: Counter[str] = Counter()
        recovered: Counter[str] = Counter()
        by_death: set[str] = set()
        for month in months(first, horizon):
            if not stops(read_before(mine, month)).in_force(month):
                gross[month] += 1
        for ins in applied:
            kind = ins["type"]
            if kind in ("PaymentHoldReleased", "PaymentReinstated"):
                gross.update(ins["backpay_months"])
            elif kind == "PaymentEstateSettled":
                gross.update(ins["months"])
                by_death.update(ins["months"])
            elif kind == "OverpaymentDetected":
                recovered.update(ins["months"])
                by_death.update(ins["months"])
            elif kind == "OverpaymentCancelled":
                recovered.subtract(ins["months"])
        paid[rid] = Paid(gross, recovered, stops(applied), by_death)
    return paid
