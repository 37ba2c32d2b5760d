"""Example tests of rules 11-14 (DESIGN.md, "Corrections and fairness"; docs/rules.md).

Every test runs against both the reference fold and the production fold (``replay_impl``).
Expected instructions are written out by hand from the rules. Defaults of ``enroll``: in
scope, regular, Foshan, born 1950, 300000 fen a month since 2010.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.helpers import (
    DEADLINE_AT,
    ReplayImpl,
    amount,
    cert,
    contact,
    death,
    docs,
    enroll,
    estate_settled,
    first_differences,
    fraud,
    hold_placed,
    hold_released,
    normalize,
    overpayment,
    overpayment_cancelled,
    reasons,
    reinstated,
    retract,
    revoke,
    terminated,
)

END = dt.date(2017, 12, 31)
A = 300_000


def at(day: str, time: str = "10:00") -> str:
    return f"{day}T{time}:00+08:00"


def check(
    result: Any,
    *,
    instructions: list[dict[str, Any]],
    statuses: dict[str, str],
    rejections: list[tuple[int, str]] | None = None,
) -> None:
    got, want = normalize(result.instructions), normalize(instructions)
    assert got == want, "instructions differ\n" + first_differences(want, got)
    assert dict(result.statuses) == statuses
    assert reasons(result) == sorted(rejections or [])


# =======================================================================================
# Rule 12: revocation
# =======================================================================================
def test_revocation_before_the_deadline_only_changes_the_status(replay_impl: ReplayImpl) -> None:
    lines = [
        enroll("R1"),
        cert("C1", "R1", "FACE_APP", performed_at=at("2017-05-10")),
        revoke("C1", "R1", recorded_at=at("2017-05-20")),
    ]
    before = replay_impl(lines, until=dt.date(2017, 5, 31))
    check(before, instructions=[], statuses={"R1": "NOT_CERTIFIED"})
    # The deadline then holds the retiree as anyone uncertified (rule 5).
    check(replay_impl(lines, until=END), instructions=[hold_placed("R1")],
          statuses={"R1": "SUSPENDED"})


def test_revocation_after_the_deadline_holds_from_the_next_month(
    replay_impl: ReplayImpl,
) -> None:
    lines = [
        enroll("R1"),
        cert("C1", "R1", "FACE_APP", performed_at=at("2017-05-10")),
        revoke("C1", "R1", recorded_at=at("2017-08-10"), reason="MISATTRIBUTED"),
        cert("C2", "R1", "FACE_APP", performed_at=at("2017-10-05")),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[
            hold_placed("R1", recorded_at=at("2017-08-10"), effective_month="2017-09",
                        reason="CERTIFICATION_REVOKED"),
            # Rule 12: back-pay from the hold's month through the completion month.
            hold_released("R1", "2017-11", ["2017-09", "2017-10"], 2 * A,
                          recorded_at=at("2017-10-05")),
        ],
        statuses={"R1": "CERTIFIED"},
    )


def test_revocation_after_a_release_of_the_only_certification_holds_again(
    replay_impl: ReplayImpl,
) -> None:
    lines = [
        enroll("R1"),
        cert("C1", "R1", "FACE_APP", performed_at=at("2017-07-05")),  # late: released
        revoke("C1", "R1", recorded_at=at("2017-08-03"), reason="FRAUD"),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[
            hold_placed("R1"),
            hold_released("R1", "2017-08", ["2017-07"], A, recorded_at=at("2017-07-05")),
            hold_placed("R1", recorded_at=at("2017-08-03"), effective_month="2017-09",
                        reason="CERTIFICATION_REVOKED"),
        ],
        statuses={"R1": "SUSPENDED"},
    )


def test_the_second_hold_of_a_retiree_has_an_id_of_its_own(production_impl: ReplayImpl) -> None:
    lines = [
        enroll("R1"),
        cert("C1", "R1", "FACE_APP", performed_at=at("2017-06-25")),  # release effective 07
        revoke("C1", "R1", recorded_at=at("2017-06-28")),  # hold effective 07 again
    ]
    result = production_impl(lines, until=END)
    holds = [i for i in result.instructions if i["type"] == "PaymentHoldPlaced"]
    assert [h["effective_month"] for h in holds] == ["2017-07", "2017-07"]
    assert holds[0]["event_id"] != holds[1]["event_id"]


def test_revocation_while_another_complete_certification_remains_changes_nothing(
    replay_impl: ReplayImpl,
) -> None:
    lines = [
        enroll("R1"),
        cert("C1", "R1", "FACE_APP", performed_at=at("2017-05-10")),
        cert("C2", "R1", "COUNTER", performed_at=at("2017-05-11")),
        revoke("C1", "R1", recorded_at=at("2017-08-10")),
    ]
    check(replay_impl(lines, until=END), instructions=[], statuses={"R1": "CERTIFIED"})


def test_revocation_rejections(replay_impl: ReplayImpl) -> None:
    lines = [
        enroll("R1"),
        cert("C1", "R1", "ASSISTING_AGENCY", performed_at=at("2017-05-10")),
        revoke("C1", "R1", recorded_at=at("2017-05-12"), agency_id="AG-9"),  # 3: unknown pair
        revoke("C9", "R1", recorded_at=at("2017-05-13")),  # 4: unknown id
        revoke("C1", "R1", recorded_at=at("2017-05-14")),  # 5: applied (never complete)
        revoke("C1", "R1", recorded_at=at("2017-05-15")),  # 6: again: no effect
        docs("C1", "R1", recorded_at=at("2017-05-20")),  # 7: form of a revoked one
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[hold_placed("R1")],
        statuses={"R1": "SUSPENDED"},
        rejections=[
            (3, "UNKNOWN_CERTIFICATION"),
            (4, "UNKNOWN_CERTIFICATION"),
            (6, "ALREADY_REVOKED"),
            (7, "CERTIFICATION_REVOKED"),
        ],
    )


# =======================================================================================
# Rule 11: two agencies, one certification id
# =======================================================================================
def test_two_agencies_with_the_same_certification_id(replay_impl: ReplayImpl) -> None:
    lines = [
        enroll("R1"),
        cert("C1", "R1", "ASSISTING_AGENCY", performed_at=at("2017-05-10"), agency_id="AG-1"),
        cert("C1", "R1", "FACE_APP", performed_at=at("2017-05-12"), agency_id="AG-2"),
        cert("C1", "R1", "FACE_APP", performed_at=at("2017-05-12"), agency_id="AG-2"),  # 4
        revoke("C1", "R1", recorded_at=at("2017-05-20"), agency_id="AG-2"),
        docs("C1", "R1", recorded_at=at("2017-05-25"), agency_id="AG-2"),  # 6: revoked
        docs("C1", "R1", recorded_at=at("2017-05-26"), agency_id="AG-1"),
    ]
    check(
        replay_impl(lines, until=dt.date(2017, 5, 24)),
        instructions=[],
        statuses={"R1": "PENDING_DOCUMENTS"},  # AG-2's no longer counts; AG-1's awaits its form
        rejections=[(4, "DUPLICATE_CERTIFICATION")],
    )
    check(
        replay_impl(lines, until=END),
        instructions=[],
        statuses={"R1": "CERTIFIED"},
        rejections=[(4, "DUPLICATE_CERTIFICATION"), (6, "CERTIFICATION_REVOKED")],
    )


def test_a_form_without_agency_completes_the_earliest_recorded_certification(
    replay_impl: ReplayImpl,
) -> None:
    lines = [
        enroll("R1"),
        cert("C1", "R1", "ASSISTING_AGENCY", performed_at=at("2017-05-10"), agency_id="AG-1"),
        cert("C1", "R1", "CONSULATE", performed_at=at("2017-05-11"), agency_id="AG-2"),
        docs("C1", "R1", recorded_at=at("2017-05-20")),  # AG-1's
        revoke("C1", "R1", recorded_at=at("2017-05-25"), agency_id="AG-1"),
        docs("C1", "R1", recorded_at=at("2017-06-25")),  # 6: AG-1's again, revoked
        docs("C1", "R1", recorded_at=at("2017-07-05"), agency_id="AG-2"),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[
            hold_placed("R1"),
            hold_released("R1", "2017-08", ["2017-07"], A, recorded_at=at("2017-07-05")),
        ],
        statuses={"R1": "CERTIFIED"},
        rejections=[(6, "CERTIFICATION_REVOKED")],
    )


def test_an_agency_cannot_block_another_by_reporting_its_id_first(
    replay_impl: ReplayImpl,
) -> None:
    """The security finding of issue 16: AG-9 reports C1 first, through a channel that does
    not count; the genuine C1 of AG-1 still counts."""
    lines = [
        enroll("R1"),
        cert("C1", "R1", "EMPLOYER_BATCH", performed_at=at("2017-05-01"), agency_id="AG-9"),
        cert("C1", "R1", "COUNTER", performed_at=at("2017-05-10"), agency_id="AG-1"),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[],
        statuses={"R1": "CERTIFIED"},
        rejections=[(2, "CHANNEL_NOT_ALLOWED")],
    )


# =======================================================================================
# Rule 13: retracted deaths
# =======================================================================================
def test_death_retracted_before_the_deadline_after_an_overpayment(
    replay_impl: ReplayImpl,
) -> None:
    lines = [
        enroll("R1"),
        death("R1", date_of_death="2017-03-10", recorded_at=at("2017-04-20")),
        retract("R1", recorded_at=at("2017-05-15")),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[
            terminated("R1", "2017-04", recorded_at=at("2017-04-20")),
            overpayment("R1", ["2017-04"], A, recorded_at=at("2017-04-20")),
            overpayment_cancelled("R1", ["2017-04"], A, recorded_at=at("2017-05-15")),
            # U: from the termination's month (04) through May, less the overpaid April.
            reinstated("R1", "2017-06", ["2017-05"], A, recorded_at=at("2017-05-15")),
            hold_placed("R1"),  # alive again and not certified at the deadline
        ],
        statuses={"R1": "SUSPENDED"},
    )


def test_death_retracted_after_the_deadline_without_a_certification(
    replay_impl: ReplayImpl,
) -> None:
    lines = [
        enroll("R1"),
        death("R1", date_of_death="2017-04-10", recorded_at=at("2017-04-20")),
        retract("R1", recorded_at=at("2017-08-10")),
        cert("C1", "R1", "FACE_APP", performed_at=at("2017-10-03")),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[
            terminated("R1", "2017-05", recorded_at=at("2017-04-20")),
            # U = 05..08: the months before the policy's hold month now, the rest held.
            reinstated("R1", "2017-09", ["2017-05", "2017-06"], 2 * A,
                       recorded_at=at("2017-08-10")),
            hold_placed("R1", recorded_at=at("2017-08-10"), effective_month="2017-09"),
            hold_released("R1", "2017-11", ["2017-07", "2017-08", "2017-09", "2017-10"], 4 * A,
                          recorded_at=at("2017-10-03")),
        ],
        statuses={"R1": "CERTIFIED"},
    )


def test_death_retracted_after_the_deadline_with_a_certification_recorded_while_it_stood(
    replay_impl: ReplayImpl,
) -> None:
    lines = [
        enroll("R1"),
        death("R1", date_of_death="2017-04-10", recorded_at=at("2017-04-20")),
        cert("C1", "R1", "FACE_APP", performed_at=at("2017-05-10")),  # 3: rejected, kept
        retract("R1", recorded_at=at("2017-08-10")),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[
            terminated("R1", "2017-05", recorded_at=at("2017-04-20")),
            fraud("R1", "C1", recorded_at=at("2017-05-10")),  # stands (rule 12's last line)
            reinstated("R1", "2017-09", ["2017-05", "2017-06", "2017-07", "2017-08"], 4 * A,
                       recorded_at=at("2017-08-10")),
        ],
        statuses={"R1": "CERTIFIED"},
        rejections=[(3, "RETIREE_DECEASED")],
    )


def test_death_ending_a_hold_settles_the_estate_and_its_retraction_pays_the_rest(
    replay_impl: ReplayImpl,
) -> None:
    lines = [
        enroll("R1"),
        death("R1", date_of_death="2017-08-15", recorded_at=at("2017-09-05")),
        retract("R1", recorded_at=at("2017-10-10")),
        cert("C1", "R1", "FACE_APP", performed_at=at("2017-11-20")),
    ]
    check(
        replay_impl(lines, until=dt.date(2017, 9, 30)),
        instructions=[
            hold_placed("R1"),
            terminated("R1", "2017-09", recorded_at=at("2017-09-05")),
            # Rule 14: the held months up to the month of death are owed.
            estate_settled("R1", ["2017-07", "2017-08"], 2 * A, recorded_at=at("2017-09-05")),
        ],
        statuses={"R1": "DECEASED"},
    )
    check(
        replay_impl(lines, until=END),
        instructions=[
            hold_placed("R1"),
            terminated("R1", "2017-09", recorded_at=at("2017-09-05")),
            estate_settled("R1", ["2017-07", "2017-08"], 2 * A, recorded_at=at("2017-09-05")),
            # U: 07..10 from the hold's month, less the estate's 07-08; none before 07.
            reinstated("R1", "2017-11", [], 0, recorded_at=at("2017-10-10")),
            hold_placed("R1", recorded_at=at("2017-10-10"), effective_month="2017-11"),
            hold_released("R1", "2017-12", ["2017-09", "2017-10", "2017-11"], 3 * A,
                          recorded_at=at("2017-11-20")),
        ],
        statuses={"R1": "CERTIFIED"},
    )


def test_death_before_the_hold_month_settles_nothing(replay_impl: ReplayImpl) -> None:
    lines = [
        enroll("R1"),
        death("R1", date_of_death="2017-06-25", recorded_at=at("2017-06-28")),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[
            hold_placed("R1"),
            terminated("R1", "2017-07", recorded_at=at("2017-06-28")),
        ],
        statuses={"R1": "DECEASED"},
    )


def test_a_real_death_after_a_retraction_is_a_new_death(replay_impl: ReplayImpl) -> None:
    lines = [
        enroll("R1"),
        death("R1", date_of_death="2017-04-10", recorded_at=at("2017-04-20")),
        retract("R1", recorded_at=at("2017-05-10")),
        cert("C1", "R1", "FACE_APP", performed_at=at("2017-05-12")),
        death("R1", date_of_death="2017-09-03", recorded_at=at("2017-10-10")),
        death("R1", date_of_death="2017-09-03", recorded_at=at("2017-10-11")),  # 6
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[
            terminated("R1", "2017-05", recorded_at=at("2017-04-20")),
            reinstated("R1", "2017-06", ["2017-05"], A, recorded_at=at("2017-05-10")),
            terminated("R1", "2017-10", recorded_at=at("2017-10-10")),
            overpayment("R1", ["2017-10"], A, recorded_at=at("2017-10-10")),
        ],
        statuses={"R1": "DECEASED"},
        rejections=[(6, "DEATH_ALREADY_RECORDED")],
    )


def test_retraction_without_a_standing_death_is_rejected(replay_impl: ReplayImpl) -> None:
    lines = [
        enroll("R1"),
        retract("R1", recorded_at=at("2017-03-01")),  # 2
        death("R1", date_of_death="2017-03-10", recorded_at=at("2017-03-20")),
        retract("R1", recorded_at=at("2017-03-25")),
        retract("R1", recorded_at=at("2017-03-26")),  # 5: retracted twice
    ]
    check(
        replay_impl(lines, until=dt.date(2017, 3, 31)),
        instructions=[
            terminated("R1", "2017-04", recorded_at=at("2017-03-20")),
            reinstated("R1", "2017-04", [], 0, recorded_at=at("2017-03-25")),
        ],
        statuses={"R1": "NOT_CERTIFIED"},
        rejections=[(2, "NO_DEATH_RECORDED"), (5, "NO_DEATH_RECORDED")],
    )


def test_revocation_while_the_death_stands_then_retraction_holds(
    replay_impl: ReplayImpl,
) -> None:
    lines = [
        enroll("R1"),
        cert("C1", "R1", "FACE_APP", performed_at=at("2017-05-10")),
        death("R1", date_of_death="2017-07-10", recorded_at=at("2017-07-20")),
        revoke("C1", "R1", recorded_at=at("2017-08-01")),
        retract("R1", recorded_at=at("2017-08-10")),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[
            terminated("R1", "2017-08", recorded_at=at("2017-07-20")),
            reinstated("R1", "2017-09", [], 0, recorded_at=at("2017-08-10")),
            hold_placed("R1", recorded_at=at("2017-08-10"), effective_month="2017-09"),
        ],
        statuses={"R1": "SUSPENDED"},
    )


# =======================================================================================
# Contact details
# =======================================================================================
def test_contact_details_change_no_status_or_payment(replay_impl: ReplayImpl) -> None:
    lines = [
        enroll("R1"),
        contact("R1", recorded_at=at("2017-05-01")),
        contact("R9", recorded_at=at("2017-05-02")),  # 3: never enrolled
        death("R1", date_of_death="2017-05-03", recorded_at=at("2017-05-04")),
        contact("R1", recorded_at=at("2017-05-05"), phone=None, address="Foshan"),
    ]
    check(
        replay_impl(lines, until=dt.date(2017, 5, 31)),
        instructions=[terminated("R1", "2017-06", recorded_at=at("2017-05-04"))],
        statuses={"R1": "DECEASED"},
        rejections=[(3, "UNKNOWN_RETIREE")],
    )




# =======================================================================================
# Late-logged events (docs/rules.md): judged as of the retiree's knowledge moment K
# =======================================================================================
def test_a_revocation_logged_after_the_release_it_undoes_holds_from_the_next_month(
    replay_impl: ReplayImpl,
) -> None:
    """Recorded 30 May, logged after the late completion of 5 July that released the
    deadline's hold: judged as of 5 July (K), so the new hold is effective August, not
    June (June was paid, July back-paid)."""
    lines = [
        enroll("R1"),
        cert("C1", "R1", "FACE_APP", performed_at=at("2017-07-05")),
        revoke("C1", "R1", recorded_at=at("2017-05-30"), reason="FRAUD"),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[
            hold_placed("R1"),
            hold_released("R1", "2017-08", ["2017-07"], A, recorded_at=at("2017-07-05")),
            hold_placed("R1", recorded_at=at("2017-07-05"), effective_month="2017-08",
                        reason="CERTIFICATION_REVOKED"),
        ],
        statuses={"R1": "SUSPENDED"},
    )


def test_a_death_logged_after_the_deadline_recovers_june(replay_impl: ReplayImpl) -> None:
    """A death of 15 May recorded 20 May but logged after the deadline moment (decided by
    R2's enrollment of 25 June): judged as of the deadline moment, in June, so June (paid:
    nothing stopped it before June began) is overpaid. The date of death is not moved:
    terminated from June."""
    lines = [
        enroll("R1"),
        enroll("R2", recorded_at=at("2017-06-25")),
        death("R1", date_of_death="2017-05-15", recorded_at=at("2017-05-20")),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[
            hold_placed("R1"),
            terminated("R1", "2017-06", recorded_at=DEADLINE_AT),
            overpayment("R1", ["2017-06"], A, recorded_at=DEADLINE_AT),
        ],
        statuses={"R1": "DECEASED", "R2": "NOT_CERTIFIED"},
    )


def test_a_retraction_logged_after_a_later_event_of_its_retiree_is_judged_as_of_it(
    replay_impl: ReplayImpl,
) -> None:
    """K is the latest recorded_at of the retiree's events read before (a rejected one
    too: the amount change of 2 June, rejected while the death stood): the retraction
    recorded 15 May is judged as of 2 June, M = June, so U runs through June."""
    lines = [
        enroll("R1"),
        death("R1", date_of_death="2017-03-10", recorded_at=at("2017-04-20")),
        amount("R1", 310_000, "2017-09", recorded_at=at("2017-06-02")),  # 3
        retract("R1", recorded_at=at("2017-05-15")),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[
            terminated("R1", "2017-04", recorded_at=at("2017-04-20")),
            overpayment("R1", ["2017-04"], A, recorded_at=at("2017-04-20")),
            overpayment_cancelled("R1", ["2017-04"], A, recorded_at=at("2017-06-02")),
            reinstated("R1", "2017-07", ["2017-05", "2017-06"], 2 * A,
                       recorded_at=at("2017-06-02")),
            hold_placed("R1"),
        ],
        statuses={"R1": "SUSPENDED"},
        rejections=[(3, "RETIREE_DECEASED")],
    )


def test_a_line_of_a_retiree_not_enrolled_yet_does_not_move_its_knowledge_moment(
    replay_impl: ReplayImpl,
) -> None:
    """A certification of 20 May read before R1's enrollment (UNKNOWN_RETIREE, not
    remembered) does not make the death of 20 April, logged after both, late: April is
    its overpayment's last month, not May. (A fold judging every event from its own
    recorded_at decides the same, so this runs on both folds as they are.)"""
    lines = [
        cert("C0", "R1", "FACE_APP", performed_at=at("2017-05-20")),  # 1
        enroll("R1"),
        death("R1", date_of_death="2017-03-10", recorded_at=at("2017-04-20")),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[
            terminated("R1", "2017-04", recorded_at=at("2017-04-20")),
            overpayment("R1", ["2017-04"], A, recorded_at=at("2017-04-20")),
        ],
        statuses={"R1": "DECEASED"},
        rejections=[(1, "UNKNOWN_RETIREE")],
    )


def test_a_redelivery_read_later_moves_the_knowledge_moment(
    replay_impl: ReplayImpl,
) -> None:
    """The certification re-sent on 5 July with its event id (DUPLICATE_EVENT) was read
    then: the revocation recorded 25 June and logged after it is judged as of 5 July, its
    hold effective August."""
    lines = [
        enroll("R1"),
        cert("C1", "R1", "COUNTER", performed_at=at("2017-05-10"), event_id="X"),
        cert("C1", "R1", "COUNTER", performed_at=at("2017-05-10"),
             recorded_at=at("2017-07-05"), event_id="X"),  # 3
        revoke("C1", "R1", recorded_at=at("2017-06-25")),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[
            hold_placed("R1", recorded_at=at("2017-07-05"), effective_month="2017-08",
                        reason="CERTIFICATION_REVOKED"),
        ],
        statuses={"R1": "SUSPENDED"},
        rejections=[(3, "DUPLICATE_EVENT")],
    )


def test_a_state_written_before_the_deadline_knows_it_passed_once_restored() -> None:
    """The live worker writes a retiree's state only when it changes: a certified
    retiree's state in the table predates the deadline. Restored after the deadline, a
    revocation still holds (the deadline is a fact of the campaign, not of the state)."""
    from lifecert.domain.campaign import Campaign
    from lifecert.domain.policy import load_policy
    from lifecert.events.interchange import parse_line

    policy = load_policy("foshan-2017")
    campaign = Campaign(policy)
    for line in (enroll("R1"), cert("C1", "R1", "FACE_APP", performed_at=at("2017-05-10"))):
        campaign.decide(parse_line(line))
    written_before = campaign.snapshot()["retirees"]
    campaign.advance_to(parse_line(enroll("R2", recorded_at=at("2017-07-01")))["recorded_at"])
    snapshot = {**campaign.snapshot(), "retirees": written_before}
    restored = Campaign.restore(policy, snapshot)
    outputs, rejection = restored.decide(
        parse_line(revoke("C1", "R1", recorded_at=at("2017-08-10")))
    )
    assert rejection is None
    assert [(o["type"], o["effective_month"], o["reason"]) for o in outputs] == [
        ("PaymentHoldPlaced", "2017-09", "CERTIFICATION_REVOKED")
    ]
