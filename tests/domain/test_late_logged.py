"""Late-logged events (docs/rules.md, "Late-logged events"; issue 16).

An event logged after events of the same retiree recorded later than it (or after the
deadline moment was decided) is judged as of the retiree's knowledge moment K: the month
of max(recorded_at, K) places its effective months and ends its back-pay, and its
instructions are stamped with that moment. Expected instructions are written out by hand.
Production fold only: the reference fold does not apply the decision yet (its money
property stays a strict xfail in tests/property/test_money.py). Each log is also fed to
the payment simulator (``tests/property/test_money.run``): no month paid twice or lost.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from lifecert.domain.policy import load_policy
from lifecert.domain.state import RetireeState
from lifecert.replay import run_replay
from tests.helpers import (
    DEADLINE_AT,
    ReplayImpl,
    cert,
    contact,
    death,
    docs,
    enroll,
    first_differences,
    hold_placed,
    hold_released,
    normalize,
    overpayment,
    reasons,
    reinstated,
    retract,
    revoke,
    terminated,
)
from tests.property.test_money import run

A = 300_000


def at(day: str, time: str = "10:00") -> str:
    return f"{day}T{time}:00+08:00"


def check(
    impl: ReplayImpl,
    lines: list[str],
    *,
    instructions: list[dict[str, Any]],
    statuses: dict[str, str],
    rejections: list[tuple[int, str]] | None = None,
) -> None:
    result = impl(lines)
    got, want = normalize(result.instructions), normalize(instructions)
    assert got == want, "instructions differ\n" + first_differences(want, got)
    assert dict(result.statuses) == statuses
    assert reasons(result) == sorted(rejections or [])
    # Stamped in non-decreasing decision order, as a payment system reads them.
    stamps = [i["recorded_at"] for i in normalize(result.instructions)]
    assert stamps == sorted(stamps)
    run(impl, lines)  # money conserved


def test_late_revocation_after_a_release_holds_from_the_month_after_k(
    production_impl: ReplayImpl,
) -> None:
    """Revoked in August (recorded), logged after the completion of 5 September that
    released the deadline's hold with back-pay through September: judged as of 5
    September, the new hold takes effect in October (not September, already back-paid)."""
    lines = [
        enroll("R1"),
        cert("C1", "R1", "FACE_APP", performed_at=at("2017-09-05")),
        revoke("C1", "R1", recorded_at=at("2017-08-20")),
        cert("C2", "R1", "FACE_APP", performed_at=at("2017-11-10")),
    ]
    check(
        production_impl,
        lines,
        instructions=[
            hold_placed("R1"),
            hold_released("R1", "2017-10", ["2017-07", "2017-08", "2017-09"], 3 * A,
                          recorded_at=at("2017-09-05")),
            hold_placed("R1", recorded_at=at("2017-09-05"), effective_month="2017-10",
                        reason="CERTIFICATION_REVOKED"),
            hold_released("R1", "2017-12", ["2017-10", "2017-11"], 2 * A,
                          recorded_at=at("2017-11-10")),
        ],
        statuses={"R1": "CERTIFIED"},
    )


def test_late_death_behind_the_deadline_hold_recovers_the_month_paid_since(
    production_impl: ReplayImpl,
) -> None:
    """A death of 15 May recorded 20 May, logged after the deadline moment (fired by an
    unknown retiree's line of 25 June): judged as of the deadline, June had been paid, so
    it is an overpayment; the termination stays effective June (the date of death is the
    world's, not moved)."""
    lines = [
        enroll("R1"),
        cert("C9", "R9", "FACE_APP", performed_at=at("2017-06-25")),
        death("R1", date_of_death="2017-05-15", recorded_at=at("2017-05-20")),
    ]
    check(
        production_impl,
        lines,
        instructions=[
            hold_placed("R1"),
            terminated("R1", "2017-06", recorded_at=DEADLINE_AT),
            overpayment("R1", ["2017-06"], A, recorded_at=DEADLINE_AT),
        ],
        statuses={"R1": "DECEASED"},
        rejections=[(2, "UNKNOWN_RETIREE")],
    )


def test_on_time_completion_logged_after_the_deadline_releases_at_the_deadline(
    production_impl: ReplayImpl,
) -> None:
    lines = [
        enroll("R1"),
        cert("C9", "R9", "FACE_APP", performed_at=at("2017-06-22")),
        cert("C1", "R1", "FACE_APP", performed_at=at("2017-06-15")),
    ]
    check(
        production_impl,
        lines,
        instructions=[
            hold_placed("R1"),
            hold_released("R1", "2017-07", [], 0, recorded_at=DEADLINE_AT),
        ],
        statuses={"R1": "CERTIFIED"},
        rejections=[(2, "UNKNOWN_RETIREE")],
    )


def test_late_completion_after_the_hold_back_pays_through_the_month_of_k(
    production_impl: ReplayImpl,
) -> None:
    """The form came back on 5 August but was logged after the retiree's contact update of
    10 September: judged as of 10 September, the release back-pays July to September and
    takes effect in October."""
    lines = [
        enroll("R1"),
        cert("C1", "R1", "CONSULATE", performed_at=at("2017-05-10")),
        contact("R1", recorded_at=at("2017-09-10")),
        docs("C1", "R1", recorded_at=at("2017-08-05")),
    ]
    check(
        production_impl,
        lines,
        instructions=[
            hold_placed("R1"),
            hold_released("R1", "2017-10", ["2017-07", "2017-08", "2017-09"], 3 * A,
                          recorded_at=at("2017-09-10")),
        ],
        statuses={"R1": "CERTIFIED"},
    )


def test_late_retraction_reinstates_from_the_month_after_k_with_back_pay_through_it(
    production_impl: ReplayImpl,
) -> None:
    """Retracted on 5 September, logged after the contact update of 12 October: by then
    October went unpaid (the termination was in force), so the reinstatement takes effect
    in November and back-pays September and October."""
    lines = [
        enroll("R1"),
        cert("C1", "R1", "FACE_APP", performed_at=at("2017-05-10")),
        death("R1", date_of_death="2017-08-01", recorded_at=at("2017-08-10")),
        contact("R1", recorded_at=at("2017-10-12")),
        retract("R1", recorded_at=at("2017-09-05")),
    ]
    check(
        production_impl,
        lines,
        instructions=[
            terminated("R1", "2017-09", recorded_at=at("2017-08-10")),
            reinstated("R1", "2017-11", ["2017-09", "2017-10"], 2 * A,
                       recorded_at=at("2017-10-12")),
        ],
        statuses={"R1": "CERTIFIED"},
    )


def test_redelivered_old_event_moves_k_and_decides_nothing_again(
    production_impl: ReplayImpl,
) -> None:
    """The same event_id received again on 20 September (a partner's resent batch): a
    DUPLICATE_EVENT, but lifecert read it then, so the revocation recorded in August and
    logged after it is judged as of 20 September: hold effective October."""
    first = cert("C1", "R1", "FACE_APP", performed_at=at("2017-05-10"), event_id="EV-C1")
    again = json.loads(first)
    again["recorded_at"] = at("2017-09-20")
    lines = [
        enroll("R1"),
        first,
        json.dumps(again),
        revoke("C1", "R1", recorded_at=at("2017-08-01")),
    ]
    check(
        production_impl,
        lines,
        instructions=[
            hold_placed("R1", recorded_at=at("2017-09-20"), effective_month="2017-10",
                        reason="CERTIFICATION_REVOKED"),
        ],
        statuses={"R1": "SUSPENDED"},
        rejections=[(3, "DUPLICATE_EVENT")],
    )
    # An exact redelivery (the same line, the same recorded_at) moves K nowhere.
    exact = [lines[0], first, revoke("C1", "R1", recorded_at=at("2017-08-01"), event_id="RV")]
    twice = [*exact[:2], first, exact[2]]
    assert normalize(production_impl(twice).instructions) == normalize(
        production_impl(exact).instructions
    )
    assert normalize(production_impl(exact).instructions) == normalize(
        [hold_placed("R1", recorded_at=at("2017-08-01"), effective_month="2017-09",
                     reason="CERTIFICATION_REVOKED")]
    )


def test_state_saved_before_k_was_kept_derives_it_from_the_recorded_ats_it_holds() -> None:
    policy = load_policy("foshan-2017")
    lines = [
        enroll("R1"),
        cert("C1", "R1", "CONSULATE", performed_at=at("2017-05-10")),
        docs("C1", "R1", recorded_at=at("2017-05-20")),
        contact("R1", recorded_at=at("2017-06-02")),
    ]
    campaign, _ = run_replay(
        lines, policy, until=None, on_instruction=lambda e: None,
        on_rejection=lambda r: None, on_dead_letter=None,
    )
    state = campaign.retirees["R1"]
    saved = state.to_dict()
    assert dt.datetime.fromisoformat(saved["known_at"]) == dt.datetime.fromisoformat(
        at("2017-06-02")
    )
    del saved["known_at"]  # as written before issue 16
    old = RetireeState.from_dict(saved)
    # The latest recorded_at the state holds: the completing form's (the contact update's
    # is not kept), never later than the true K.
    assert old.known_at == dt.datetime.fromisoformat(at("2017-05-20"))
    fresh = RetireeState.from_dict(RetireeState("R2", True, False, False, 0, A, "FOSHAN",
                                                None).to_dict() | {"known_at": None})
    assert fresh.known_at is None
