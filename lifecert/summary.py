"""The campaign summary a bureau analyst reads: certification by district and channel,
and the payment instructions with their sums. Money is summed in fen and shown in yuan."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from lifecert.domain.state import STATUSES, RetireeState


@dataclass
class InstructionTotals:
    """Counts every instruction by type and sums back-pay and overpayment (fen)."""

    counts: Counter[str] = field(default_factory=Counter)
    backpay_fen: int = 0
    backpay_months: int = 0
    overpaid_fen: int = 0

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        self.counts[kind] += 1
        if kind == "PaymentHoldReleased":
            self.backpay_fen += event["backpay_amount_fen"]
            self.backpay_months += len(event["backpay_months"])
        elif kind == "OverpaymentDetected":
            self.overpaid_fen += event["amount_fen"]


def yuan(fen: int) -> str:
    """``123456`` fen -> ``"1,234.56"`` yuan, with integer arithmetic only."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole:,}.{cents:02d}"


def _area(state: RetireeState) -> str:
    return state.district if state.district is not None else f"({state.residence})"


def render(retirees: Iterable[RetireeState], totals: InstructionTotals) -> str:
    """The summary as fixed-width text tables."""
    in_scope: Counter[str] = Counter()
    certified: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    channels: Counter[str] = Counter()
    for state in retirees:
        statuses[state.status()] += 1
        if state.completed_by is not None:
            channels[state.completed_by] += 1
        if state.in_scope:
            area = _area(state)
            in_scope[area] += 1
            if state.complete:
                certified[area] += 1
    lines = ["Certification by district (in-scope retirees; other residences in brackets)"]
    lines.append(f"  {'area':<18}{'in scope':>10}{'certified':>11}{'rate':>8}")
    for area in sorted(in_scope, key=lambda a: (a.startswith("("), a)):
        n, c = in_scope[area], certified[area]
        lines.append(f"  {area:<18}{n:>10,}{c:>11,}{_pct(c, n):>8}")
    n, c = sum(in_scope.values()), sum(certified.values())
    lines.append(f"  {'all':<18}{n:>10,}{c:>11,}{_pct(c, n):>8}")
    lines.append("")
    lines.append("Completed certifications by channel")
    total = sum(channels.values())
    for channel, count in channels.most_common():
        lines.append(f"  {channel:<20}{count:>10,}{_pct(count, total):>8}")
    lines.append("")
    lines.append("Statuses")
    for status in STATUSES:
        lines.append(f"  {status:<20}{statuses[status]:>10,}")
    lines.append("")
    lines.append("Payment instructions and tasks")
    c = totals.counts
    lines.append(f"  {'holds placed':<28}{c['PaymentHoldPlaced']:>10,}")
    lines.append(
        f"  {'holds released':<28}{c['PaymentHoldReleased']:>10,}   back-pay "
        f"{yuan(totals.backpay_fen)} yuan over {totals.backpay_months:,} months"
    )
    lines.append(f"  {'pensions terminated':<28}{c['PaymentTerminated']:>10,}")
    lines.append(
        f"  {'overpayments detected':<28}{c['OverpaymentDetected']:>10,}   "
        f"{yuan(totals.overpaid_fen)} yuan"
    )
    lines.append(f"  {'fraud suspected':<28}{c['FraudSuspected']:>10,}")
    lines.append(f"  {'home visits due':<28}{c['HomeVisitDue']:>10,}")
    return "\n".join(lines)


def _pct(part: int, whole: int) -> str:
    if whole == 0:
        return "-"
    tenths = (part * 1000 + whole // 2) // whole
    return f"{tenths // 10}.{tenths % 10}%"
