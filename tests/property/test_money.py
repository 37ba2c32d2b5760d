"""Money conservation (DESIGN.md, "Payment semantics, for checking"), over random logs
with corrections.

``tests/payment_sim.py`` applies the instructions the way a payment system would (and
refuses a stream it could not apply). The horizon is the month of the latest
``recorded_at`` of the log (docs/rules.md, "Money conservation"): every month up to it has
begun, and every instruction decided by then has been applied.

Who ends alive, the month of death and who is exempt are read from the LOG here, not from
the implementation under test (so a wrong status cannot switch a check off): see
``LogFacts``. Checked for each enrolled retiree, month by month (gross payments counted
apart from the recoveries standing):

- a recovery stands at most once, only for a month paid; a month is paid (gross) at most
  once, twice only if a recovery of it stands: net paid is 0 or 1;
- nothing is paid before the pension's first month;
- alive at the end: no termination left open; exempt: no hold left open; every month from
  the pension's first month through the horizon is paid exactly once net, except the
  months from the effective month of the hold still open at the horizon on, which are
  paid zero times (with no hold open: every month paid once, whatever the status); a hold
  placed by a death's retraction (rule 13) leaves unpaid from the first month that death
  left unpaid, not before the policy's hold month (the rest of U, owed by the release);
- deceased at the end: every month through the month of death paid once net, none after.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import example, given, settings

from tests.helpers import ReplayImpl, examples
from tests.payment_sim import SHANGHAI, months, simulate, stops
from tests.property.test_properties import SETTINGS, describe, event_logs

FIRST_CYCLE_DAY = "2017-01-01"  # rule 1: pension_start before it is in scope
HOLD_MONTH = "2017-07"  # rule 5: the policy's hold month


def month_of(text: str) -> str:
    at = dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(SHANGHAI)
    return f"{at.year:04d}-{at.month:02d}"


def local_day(text: str) -> str:
    at = dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(SHANGHAI)
    return at.date().isoformat()


@dataclass
class LogFacts:
    """One retiree as DESIGN.md's rules 1, 7, 10 and 13 leave it at the end of the log,
    read in log order: enrolled by its first RetireeEnrolled (events before it are
    UNKNOWN_RETIREE and not remembered), an event_id decided once, a death standing from a
    DeathRecorded with a possible date (not before birth, not after the day of its own
    recorded_at) when none stands, until a DeathReportRetracted."""

    pension_start: str
    birth_date: str
    seen: set[str] = field(default_factory=set)
    died_on: str | None = None

    @property
    def exempt(self) -> bool:
        return self.pension_start >= FIRST_CYCLE_DAY


def log_facts(events: list[dict[str, Any]]) -> dict[str, LogFacts]:
    facts: dict[str, LogFacts] = {}
    for e in events:
        rid = e["retiree_id"]
        me = facts.get(rid)
        if me is None:
            if e["type"] == "RetireeEnrolled":
                seen = {e["event_id"]} if e.get("event_id") else set()
                facts[rid] = LogFacts(e["pension_start"], e["birth_date"], seen)
            continue
        event_id = e.get("event_id")
        if event_id is not None:
            if event_id in me.seen:
                continue
            me.seen.add(event_id)
        if e["type"] == "DeathRecorded" and me.died_on is None:
            died_on = e["date_of_death"]
            if me.birth_date <= died_on <= local_day(e["recorded_at"]):
                me.died_on = died_on
        elif e["type"] == "DeathReportRetracted":
            me.died_on = None
    return facts


def check_money(lines: list[str], result: Any) -> None:
    events = [json.loads(line) for line in lines]
    if not events:
        return
    horizon = max(month_of(e["recorded_at"]) for e in events)
    facts = log_facts(events)
    starts = {rid: f.pension_start[:7] for rid, f in facts.items()}
    paid = simulate(result.instructions, starts, horizon)
    for rid, account in paid.items():
        me = facts[rid]
        due = months(starts[rid], horizon)
        state = "exempt, " if me.exempt else ""
        state += f"died {me.died_on}" if me.died_on else "alive"
        recent = {m: (account.gross[m], account.recovered[m]) for m in due if m >= "2016-12"}
        where = (
            f"retiree {rid} ({state} by the log; {result.statuses.get(rid)} by the fold), "
            f"horizon {horizon}, open at the horizon {account.at_horizon}, "
            f"(gross, recovered) since 2016-12 {recent}"
        )
        bad = {m: n for m, n in account.recovered.items() if n not in (0, 1)}
        assert not bad, f"months recovered other than once or never: {bad}; {where}"
        unpaid = [m for m, n in account.recovered.items() if n and not account.gross[m]]
        assert not unpaid, f"months recovered and never paid: {unpaid}; {where}"
        twice = {m: n for m, n in account.gross.items() if n > 1 + account.recovered[m]}
        assert not twice, f"months paid twice (gross): {twice}; {where}"
        early = [m for m, n in account.gross.items() if n and m < starts[rid]]
        assert not early, f"months paid before the pension started: {early}; {where}"
        if me.died_on is None:
            assert account.at_horizon.open_termination is None, f"alive but terminated; {where}"
            hold = account.at_horizon.open_hold
            assert not (me.exempt and hold), f"exempt but held; {where}"
            # Unpaid: the months from the open hold's effective month on; when a death's
            # retraction placed it, also the months that death left unpaid (not settled to
            # the estate nor paid and detected), not before the policy's hold month (rule
            # 13: "the rest of U" awaits the release).
            held = [m for m in due if hold is not None and m >= hold]
            owed_from = account.at_horizon.hold_after_death_from
            if hold is not None and owed_from is not None:
                left = max(owed_from, HOLD_MONTH)
                held = [
                    m for m in due if m >= hold or (m >= left and m not in account.paid_by_a_death)
                ]
            missing = [m for m in due if m not in held and account.net(m) != 1]
            assert not missing, f"months not paid once: {missing}; {where}"
            paid_held = [m for m in held if account.net(m) != 0]
            assert not paid_held, f"months under the open hold paid: {paid_held}; {where}"
        else:
            death_month = me.died_on[:7]
            missing = [m for m in due if m <= death_month and account.net(m) != 1]
            assert not missing, f"months up to the death not paid once: {missing}; {where}"
            after = [m for m in due if m > death_month and account.net(m) != 0]
            assert not after, f"months after the death paid: {after}; {where}"


def run(replay_impl: ReplayImpl, lines: list[str]) -> None:
    result = replay_impl(lines)
    try:
        check_money(lines, result)
    except AssertionError as exc:
        instructions = "\n".join(json.dumps(i) for i in result.instructions)
        raise AssertionError(
            f"{exc}\nlog:\n{describe(lines)}\ninstructions:\n{instructions}"
        ) from None


# Found by the property (2026-12-07): the checker, not the folds, was wrong. A death dated
# 31 July, reported in August while the hold placed by an earlier death's retraction was
# not yet in force (effective September), leaves August unpaid; the second retraction's
# hold owes August (the release back-pays it). payment_sim.stops took the hold's month as
# the first one left unpaid and asked for August to be paid.
TWO_DEATHS_RETRACTED_AROUND_A_HOLD = [
    json.dumps(e)
    for e in [
        {
            "type": "RetireeEnrolled",
            "recorded_at": "2016-12-01T09:00:00+08:00",
            "retiree_id": "R1",
            "name": "Retiree R1",
            "birth_date": "1937-06-20",
            "scheme": "URBAN_EMPLOYEE",
            "category": "REGULAR",
            "residence": "FOSHAN",
            "district": "NANHAI",
            "country": None,
            "pension_start": "2005-03-01",
            "monthly_amount_fen": 250000,
            "disabled": True,
            "managing_unit": None,
        },
        {
            "type": "DeathRecorded",
            "recorded_at": "2017-03-31T23:50:00+08:00",
            "retiree_id": "R1",
            "date_of_death": "2017-02-14",
            "source": "CIVIL_AFFAIRS",
        },
        {
            "type": "ContactDetailsUpdated",
            "recorded_at": "2017-03-31T23:50:00.000001+08:00",
            "retiree_id": "R1",
            "phone": None,
            "address": None,
            "channel": "COUNTER",
            "agency_id": "AG-1",
        },
        {
            "type": "DeathReportRetracted",
            "recorded_at": "2017-08-01T00:00:30+08:00",
            "retiree_id": "R1",
            "source": "FS-SIB-STAFF",
            "reason": "reported in error",
        },
        {
            "type": "DeathRecorded",
            "recorded_at": "2017-08-03T10:00:00+08:00",
            "retiree_id": "R1",
            "date_of_death": "2017-07-31",
            "source": "CIVIL_AFFAIRS",
        },
        {
            "type": "DeathReportRetracted",
            "recorded_at": "2017-08-03T10:00:00.000001+08:00",
            "retiree_id": "R1",
            "source": "FS-SIB-STAFF",
            "reason": "reported in error",
        },
    ]
]


@settings(SETTINGS, max_examples=examples(300))
@given(lines=event_logs(corrections=True, in_order=True))
@example(lines=TWO_DEATHS_RETRACTED_AROUND_A_HOLD)
def test_money_is_conserved(replay_impl: ReplayImpl, lines: list[str]) -> None:
    run(replay_impl, lines)


@settings(SETTINGS, max_examples=examples(150))
@given(lines=event_logs(in_order=True))
def test_money_is_conserved_without_corrections(replay_impl: ReplayImpl, lines: list[str]) -> None:
    run(replay_impl, lines)


# Counterexamples on logs out of recorded_at order, found by the property below and
# minimised by deleting lines; both folds give the same instructions for them.
#
# A revocation recorded (May) before the deadline but logged after a late completion that
# released the deadline's hold: rule 12 places the new hold effective M+1 = 2017-06, after
# 2017-06 was paid and 2017-07 back-paid by the release (effective 2017-08). The hold is
# open at the horizon 2017-07 with its months paid.
REVOKED_IN_THE_PAST = [
    json.dumps(e)
    for e in (
        [
            {
                "type": "RetireeEnrolled",
                "event_id": "E1",
                "recorded_at": "2016-11-30T20:00:00-05:00",
                "retiree_id": "R1",
                "name": "Retiree R1",
                "birth_date": "1930-05-05",
                "scheme": "URBAN_EMPLOYEE",
                "category": "CADRE_RETIREE",
                "residence": "MACAU",
                "district": None,
                "country": None,
                "pension_start": "2005-03-01",
                "monthly_amount_fen": 412345,
                "disabled": False,
                "managing_unit": "UNIT-1",
            },
            {
                "type": "CertificationRecorded",
                "event_id": "E5",
                "recorded_at": "2017-07-10T04:59:30+08:00",
                "certification_id": "C-R1-0",
                "retiree_id": "R1",
                "channel": "EMPLOYER_BATCH",
                "agency_id": "AG-2",
                "performed_at": "2017-06-30T20:59:30+00:00",
            },
            {
                "type": "CertificationRevoked",
                "event_id": "E6",
                "recorded_at": "2017-05-30T11:00:00.000001-05:00",
                "retiree_id": "R1",
                "certification_id": "C-R1-0",
                "agency_id": "AG-2",
                "reason": "FRAUD",
            },
        ]
    )
]

# A death recorded in May but logged after the deadline moment (the clock fires before
# the first line recorded after it: here an unknown retiree's, rejected): the deadline's
# hold (effective 2017-07, decided June) comes first in the stream; then the death
# (termination effective 2017-06, decided May) and its retraction (recorded 2017-05-31
# 23:59:59 Shanghai: PaymentReinstated + PaymentHoldPlaced effective 2017-06, decided
# May); the late completion (October) releases with back-pay 2017-06..10. Reading the
# stream in order, the payment system has not read the May-decided instructions when June
# begins (they come after the June-decided hold), so it pays June, and the release pays
# it again: 2017-06 gross 2, no recovery. (Judged instead from every instruction decided
# before the month, whatever its place in the stream, REVOKED_IN_THE_PAST's kind of log
# has a release read before the hold it releases.)
DEATH_BEHIND_THE_DEADLINE_HOLD = [
    json.dumps(e)
    for e in (
        [
            {
                "type": "RetireeEnrolled",
                "event_id": "E15",
                "recorded_at": "2016-11-30T20:02:00-05:00",
                "retiree_id": "R3",
                "name": "Retiree R3",
                "birth_date": "1937-06-20",
                "scheme": "URBAN_EMPLOYEE",
                "category": "REGULAR",
                "residence": "MACAU",
                "district": None,
                "country": None,
                "pension_start": "2005-03-01",
                "monthly_amount_fen": 300000,
                "disabled": False,
                "managing_unit": None,
            },
            {
                "type": "DeathRecorded",
                "event_id": "E5",
                "recorded_at": "2017-07-30T21:00:00-05:00",
                "retiree_id": "R1",
                "date_of_death": "2017-07-31",
                "source": "CIVIL_AFFAIRS",
            },
            {
                "type": "DeathRecorded",
                "event_id": "E18",
                "recorded_at": "2017-05-15T10:00:00+08:00",
                "retiree_id": "R3",
                "date_of_death": "2017-05-15",
                "source": "CIVIL_AFFAIRS",
            },
            {
                "type": "DeathReportRetracted",
                "recorded_at": "2017-05-31T10:59:59-05:00",
                "retiree_id": "R3",
                "source": "FS-SIB-STAFF",
                "reason": "reported in error",
            },
            {
                "type": "CertificationDocumentsReceived",
                "event_id": "E16",
                "recorded_at": "2017-06-20T21:47:00+05:30",
                "certification_id": "C-R3-0",
                "retiree_id": "R3",
                "received_at": "2017-06-20T14:17:00+00:00",
            },
            {
                "type": "CertificationRecorded",
                "event_id": "E17",
                "recorded_at": "2017-10-02T10:59:30-05:00",
                "certification_id": "C-R3-0",
                "retiree_id": "R3",
                "channel": "ASSISTED_OFFICE",
                "agency_id": "AG-2",
                "performed_at": "2017-10-03T00:59:30+09:00",
            },
        ]
    )
]

# Found by the property below (2026-12-07, 5000 examples), the checker's error again: a
# death recorded 3 April, logged after an event of 1 June (which decided the home-visit
# sweep: HomeVisitDue for R2, stamped 1 June). Judged as of R2's knowledge moment (its
# revocation of 20 April; the sweep is not in K), the termination is stamped 20 April, after
# the HomeVisitDue in the stream; payment_sim read every instruction of the retiree in
# stream order, so the task held the termination back and May and June were paid after the
# death. The payment system reads only lifecert.payment-instructions (tasks and alerts are
# other topics): payment_sim.PAYMENT_INSTRUCTIONS.
HOME_VISIT_BEFORE_A_LATE_DEATH = [
    json.dumps(e)
    for e in [
        {
            "type": "RetireeEnrolled",
            "recorded_at": "2016-12-01T09:01:00+08:00",
            "retiree_id": "R2",
            "name": "Retiree R2",
            "birth_date": "1937-06-20",
            "scheme": "URBAN_EMPLOYEE",
            "category": "REGULAR",
            "residence": "FOSHAN",
            "district": "NANHAI",
            "country": None,
            "pension_start": "2005-03-01",
            "monthly_amount_fen": 250000,
            "disabled": True,
            "managing_unit": None,
        },
        {
            "type": "CertificationRecorded",
            "recorded_at": "2017-03-31T23:50:00+08:00",
            "certification_id": "C-R2-0",
            "retiree_id": "R2",
            "channel": "FACE_APP",
            "agency_id": "AG-1",
            "performed_at": "2017-03-31T23:50:00+08:00",
        },
        {
            "type": "CertificationRevoked",
            "recorded_at": "2017-04-20T10:00:00+08:00",
            "retiree_id": "R2",
            "certification_id": "C-R2-0",
            "agency_id": "AG-1",
            "reason": "FRAUD",
        },
        {
            "type": "PensionAmountChanged",
            "recorded_at": "2017-06-01T00:00:00+08:00",
            "retiree_id": "R1",
            "monthly_amount_fen": 260000,
            "effective_month": "2017-03",
        },
        {
            "type": "DeathRecorded",
            "recorded_at": "2017-04-03T10:00:00+08:00",
            "retiree_id": "R2",
            "date_of_death": "2017-03-31",
            "source": "CIVIL_AFFAIRS",
        },
    ]
]


# Judged from the late-logged event's own recorded_at (rule 12's M+1, rule 7's
# overpayment and rule 13's reinstatement and hold), both logs above lose money; judged as
# of the retiree's knowledge moment (docs/rules.md "Late-logged events", issue 16), as
# both folds judge them, they do not.
@pytest.mark.parametrize(
    "lines", [REVOKED_IN_THE_PAST, DEATH_BEHIND_THE_DEADLINE_HOLD], ids=["revoked", "death"]
)
def test_money_out_of_order_counterexample(
    replay_impl: ReplayImpl, lines: list[str]
) -> None:
    run(replay_impl, lines)


@settings(SETTINGS, max_examples=examples(200))
@given(lines=event_logs(corrections=True, in_order=False))
@example(lines=REVOKED_IN_THE_PAST)
@example(lines=HOME_VISIT_BEFORE_A_LATE_DEATH)
def test_money_is_conserved_out_of_order(replay_impl: ReplayImpl, lines: list[str]) -> None:
    """Events moved out of recorded_at order and lines redelivered: with late-logged events
    judged as of the knowledge moment, the statements hold for these logs too."""
    run(replay_impl, lines)


def _ins(kind: str, month: str) -> dict[str, Any]:
    return {
        "type": kind,
        "retiree_id": "R1",
        "recorded_at": "2017-06-21T00:00:00+08:00",
        "effective_month": month,
    }


@pytest.mark.parametrize(
    ("stream", "named"),
    [
        (
            [_ins("PaymentHoldPlaced", "2017-07"), _ins("PaymentHoldPlaced", "2017-08")],
            "second hold",
        ),
        ([_ins("PaymentHoldReleased", "2017-07")], "release with no hold open"),
        ([_ins("PaymentReinstated", "2017-07")], "reinstatement with no termination"),
        (
            [_ins("PaymentTerminated", "2017-07"), _ins("PaymentTerminated", "2017-08")],
            "termination while",
        ),
    ],
)
def test_the_simulator_refuses_a_stream_it_cannot_apply(
    stream: list[dict[str, Any]], named: str
) -> None:
    with pytest.raises(AssertionError, match=named) as caught:
        stops(stream)
    assert json.dumps(stream[-1]) in str(caught.value)  # the instruction is named
