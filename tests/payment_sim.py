"""A small payment system, written from DESIGN.md's "Payment semantics, for checking".

At the start of month X it pays X unless a hold or a termination is in force in X, judged
from the instructions decided before X began (an instruction is decided in the
Asia/Shanghai month of its ``recorded_at``). A hold effective E is in force from E until
a release (or a termination) takes effect; a termination from its effective month until a
reinstatement takes effect. Back-pay and estate settlement pay the listed months;
OverpaymentDetected recovers the listed months; OverpaymentCancelled gives them back.

``simulate`` returns, per retiree, how many times each month was paid (net of recoveries)
by the end of the horizon month H: months X <= H were due (the start of H has passed),
and every instruction decided up to the end of H has been applied. It knows nothing of
the rules that produced the instructions.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
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


def stops(instructions: list[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """The [from, until) intervals in which a hold or a termination is in force, as the
    given instructions (in decision order) set them."""
    intervals: list[tuple[str, str]] = []
    hold: str | None = None
    termination: str | None = None
    for ins in instructions:
        kind = ins["type"]
        if kind == "PaymentHoldPlaced":
            if hold is not None:  # a second hold while one is open: the first stays
                continue
            hold = ins["effective_month"]
        elif kind == "PaymentHoldReleased" and hold is not None:
            intervals.append((hold, ins["effective_month"]))
            hold = None
        elif kind == "PaymentTerminated":
            if hold is not None:
                intervals.append((hold, ins["effective_month"]))
                hold = None
            if termination is None:
                termination = ins["effective_month"]
        elif kind == "PaymentReinstated" and termination is not None:
            intervals.append((termination, ins["effective_month"]))
            termination = None
    for start in (hold, termination):
        if start is not None:
            intervals.append((start, FOREVER))
    return intervals


def simulate(
    instructions: Iterable[Mapping[str, Any]],
    pension_start_months: Mapping[str, str],
    horizon: str,
) -> dict[str, Counter[str]]:
    """Months paid per retiree (net count) by the end of ``horizon``."""
    by_retiree: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for ins in instructions:
        by_retiree[ins["retiree_id"]].append(ins)
    paid: dict[str, Counter[str]] = {}
    for rid, first in pension_start_months.items():
        mine = by_retiree.get(rid, [])
        count: Counter[str] = Counter()
        for month in months(first, horizon):
            before = [ins for ins in mine if decided_in(ins) < month]
            if not any(start <= month < until for start, until in stops(before)):
                count[month] += 1
        for ins in mine:
            if decided_in(ins) > horizon:
                continue
            kind = ins["type"]
            if kind in ("PaymentHoldReleased", "PaymentReinstated"):
                count.update(ins["backpay_months"])
            elif kind in ("PaymentEstateSettled", "OverpaymentCancelled"):
                count.update(ins["months"])
            elif kind == "OverpaymentDetected":
                count.subtract(ins["months"])
        paid[rid] = count
    return paid
