"""Money conservation (DESIGN.md, "Payment semantics, for checking"), over random logs
with corrections.

``tests/payment_sim.py`` applies the instructions the way a payment system would. The
horizon is the month of the last event of the log (docs/rules.md, "Money conservation"):
every month up to it has begun, and every instruction decided by then has been applied.
Checked for each enrolled retiree:

- no month is paid twice (nor recovered more often than paid);
- CERTIFIED or EXEMPT at the end: every month from the pension's first month through the
  horizon paid exactly once;
- DECEASED: every month from the pension's first month through the month of death paid
  exactly once, and none after it.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from hypothesis import given, settings

from tests.helpers import ReplayImpl
from tests.payment_sim import SHANGHAI, months, simulate
from tests.property.test_properties import SETTINGS, describe, event_logs


def month_of(text: str) -> str:
    at = dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(SHANGHAI)
    return f"{at.year:04d}-{at.month:02d}"


def check_money(lines: list[str], result: Any) -> None:
    events = [json.loads(line) for line in lines]
    if not events:
        return
    horizon = max(month_of(e["recorded_at"]) for e in events)
    starts: dict[str, str] = {}
    for e in events:
        if e["type"] == "RetireeEnrolled" and e["retiree_id"] not in starts:
            starts[e["retiree_id"]] = e["pension_start"][:7]
    starts = {rid: m for rid, m in starts.items() if rid in result.statuses}
    # The standing death of each deceased retiree: the last applied DeathRecorded.
    rejected = {r["line"] for r in result.rejections}
    died: dict[str, str] = {}
    for n, e in enumerate(events, start=1):
        if e["type"] == "DeathRecorded" and n not in rejected:
            died[e["retiree_id"]] = e["date_of_death"][:7]
    paid = simulate(result.instructions, starts, horizon)
    for rid, count in paid.items():
        status = result.statuses[rid]
        recent = {m: n for m, n in sorted(count.items()) if m >= "2016-12"}
        where = f"retiree {rid} ({status}), horizon {horizon}, paid since 2016-12 {recent}"
        bad = {m: n for m, n in count.items() if n not in (0, 1)}
        assert not bad, f"months paid more than once or recovered unpaid: {bad}; {where}"
        due = months(starts[rid], horizon)
        if status in ("CERTIFIED", "EXEMPT"):
            missing = [m for m in due if count[m] != 1]
            assert not missing, f"months not paid: {missing}; {where}"
        elif status == "DECEASED":
            death_month = died[rid]
            missing = [m for m in due if m <= death_month and count[m] != 1]
            assert not missing, f"months up to the death not paid: {missing}; {where}"
            after = [m for m in due if m > death_month and count[m] != 0]
            assert not after, f"months after the death paid: {after}; {where}"


@settings(SETTINGS, max_examples=300)
@given(lines=event_logs(corrections=True, in_order=True))
def test_money_is_conserved(replay_impl: ReplayImpl, lines: list[str]) -> None:
    result = replay_impl(lines)
    try:
        check_money(lines, result)
    except AssertionError as exc:
        instructions = "\n".join(json.dumps(i) for i in result.instructions)
        raise AssertionError(
            f"{exc}\nlog:\n{describe(lines)}\ninstructions:\n{instructions}"
        ) from None


@settings(SETTINGS, max_examples=150)
@given(lines=event_logs(in_order=True))
def test_money_is_conserved_without_corrections(replay_impl: ReplayImpl, lines: list[str]) -> None:
    check_money(lines, replay_impl(lines))
