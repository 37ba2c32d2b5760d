"""The campaign summary a bureau analyst reads: certification by district and channel,
and the payment instructions with their sums. Money is summed in fen and shown in yuan."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from lifecert.domain.state import DECEASED, EXEMPT, STATUSES, RetireeState
from lifecert.events.time import local_date


@dataclass
class InstructionTotals:
    """Counts every instruction by type and sums back-pay, overpayment and the corrections'
    amounts (fen)."""

    counts: Counter[str] = field(default_factory=Counter)
    backpay_fen: int = 0
    backpay_months: int = 0
    overpaid_fen: int = 0
    revocation_holds: int = 0  # PaymentHoldPlaced with reason CERTIFICATION_REVOKED
    reinstated_fen: int = 0  # back-pay of PaymentReinstated
    reinstated_months: int = 0
    cancelled_fen: int = 0  # OverpaymentCancelled
    estate_fen: int = 0  # PaymentEstateSettled
    estate_months: int = 0

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        self.counts[kind] += 1
        if kind == "PaymentHoldReleased":
            self.backpay_fen += event["backpay_amount_fen"]
            self.backpay_months += len(event["backpay_months"])
        elif kind == "OverpaymentDetected":
            self.overpaid_fen += event["amount_fen"]
        elif kind == "PaymentHoldPlaced":
            if event["reason"] == "CERTIFICATION_REVOKED":
                self.revocation_holds += 1
        elif kind == "PaymentReinstated":
            self.reinstated_fen += event["backpay_amount_fen"]
            self.reinstated_months += len(event["backpay_months"])
        elif kind == "OverpaymentCancelled":
            self.cancelled_fen += event["amount_fen"]
        elif kind == "PaymentEstateSettled":
            self.estate_fen += event["amount_fen"]
            self.estate_months += len(event["months"])


def yuan(fen: int) -> str:
    """``123456`` fen -> ``"1,234.56"`` yuan, with integer arithmetic only."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole:,}.{cents:02d}"


# Statuses left out of the certification rate (the "in scope" column): exempt retirees
# need not certify, and a dead retiree's pension stops instead. Decided from the status
# alone, which is all the read models keep (the status record has no in-scope flag).
OUTSIDE_RATE = frozenset({DECEASED, EXEMPT})


def area(district: str | None, residence: str) -> str:
    """Where a retiree is counted: the Foshan district, else the residence in brackets."""
    return district if district is not None else f"({residence})"


@dataclass
class CampaignCounters:
    """What the summary shows, counted from replay's states or from the PostgreSQL read
    models (``projections.queries.campaign_counters``)."""

    policy: str
    statuses: Counter[str] = field(default_factory=Counter)
    channels: Counter[str] = field(default_factory=Counter)  # completed certifications
    completed_by_day: Counter[date] = field(default_factory=Counter)  # Asia/Shanghai days
    in_scope: Counter[str] = field(default_factory=Counter)  # by area
    certified: Counter[str] = field(default_factory=Counter)  # by area
    instructions: InstructionTotals = field(default_factory=InstructionTotals)
    revocations: int = 0  # certifications revoked (rule 12)
    retractions: int = 0  # death reports retracted (rule 13)

    @property
    def retirees(self) -> int:
        return sum(self.statuses.values())

    def add(
        self, status: str, district: str | None, residence: str, channel: str | None,
        completed_day: date | None, n: int = 1,
    ) -> None:
        """Count ``n`` retirees with these values (a state of replay's, or a group of
        rows of the read models: both sides count through here, so they agree)."""
        self.statuses[status] += n
        if channel is not None:
            self.channels[channel] += n
            if completed_day is not None:
                self.completed_by_day[completed_day] += n
        if status not in OUTSIDE_RATE:
            where = area(district, residence)
            self.in_scope[where] += n
            if channel is not None:
                self.certified[where] += n

    @classmethod
    def from_states(
        cls, policy: str, retirees: Iterable[RetireeState], totals: InstructionTotals
    ) -> CampaignCounters:
        counters = cls(policy, instructions=totals)
        for state in retirees:
            completed_at = state.completed_at
            counters.add(
                state.status(), state.district, state.residence, state.completed_by,
                None if completed_at is None else local_date(completed_at),
            )
            counters.revocations += state.revocations
            counters.retractions += state.retractions
        return counters


def render(counters: CampaignCounters) -> str:
    """The summary as fixed-width text tables."""
    in_scope, certified = counters.in_scope, counters.certified
    channels, statuses, totals = counters.channels, counters.statuses, counters.instructions
    lines = ["Certification by district (living retirees who must certify; other residences "
             "in brackets)"]
    lines.append(f"  {'area':<18}{'in scope':>10}{'certified':>11}{'rate':>8}")
    for where in sorted(in_scope, key=lambda a: (a.startswith("("), a)):
        n, c = in_scope[where], certified[where]
        lines.append(f"  {where:<18}{n:>10,}{c:>11,}{_pct(c, n):>8}")
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
    counts = totals.counts
    lines.append(f"  {'holds placed':<28}{counts['PaymentHoldPlaced']:>10,}")
    lines.append(
        f"  {'holds released':<28}{counts['PaymentHoldReleased']:>10,}   back-pay "
        f"{yuan(totals.backpay_fen)} yuan over {totals.backpay_months:,} months"
    )
    lines.append(f"  {'pensions terminated':<28}{counts['PaymentTerminated']:>10,}")
    lines.append(
        f"  {'overpayments detected':<28}{counts['OverpaymentDetected']:>10,}   "
        f"{yuan(totals.overpaid_fen)} yuan"
    )
    lines.append(f"  {'fraud suspected':<28}{counts['FraudSuspected']:>10,}")
    lines.append(f"  {'home visits due':<28}{counts['HomeVisitDue']:>10,}")
    lines.append("")
    lines.append("Corrections (rules 11-14)")
    lines.append(f"  {'certifications revoked':<28}{counters.revocations:>10,}   "
                 f"holds placed for them {totals.revocation_holds:,}")
    lines.append(f"  {'death reports retracted':<28}{counters.retractions:>10,}")
    lines.append(
        f"  {'payments reinstated':<28}{counts['PaymentReinstated']:>10,}   back-pay "
        f"{yuan(totals.reinstated_fen)} yuan over {totals.reinstated_months:,} months"
    )
    lines.append(
        f"  {'overpayments cancelled':<28}{counts['OverpaymentCancelled']:>10,}   "
        f"{yuan(totals.cancelled_fen)} yuan"
    )
    lines.append(
        f"  {'settled to the estate':<28}{counts['PaymentEstateSettled']:>10,}   "
        f"{yuan(totals.estate_fen)} yuan over {totals.estate_months:,} months"
    )
    return "\n".join(lines)


def _pct(part: int, whole: int) -> str:
    if whole == 0:
        return "-"
    tenths = (part * 1000 + whole // 2) // whole
    return f"{tenths // 10}.{tenths % 10}%"
