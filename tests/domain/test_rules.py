"""Example tests of policy foshan-2017 (DESIGN.md rules 1-10, as read by docs/rules.md).

Every test runs against both the reference fold and the production fold (``replay_impl``).
Expected instructions are written out by hand, from the rules.

Defaults of ``enroll``: in scope (pension since 2010), regular urban employee, living in
Foshan, born 1950 (not 80), not disabled, 3000.00 yuan (300000 fen) a month.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from lifecert.domain.fold import decide
from lifecert.domain.policy import load_policy
from lifecert.domain.state import RetireeState
from lifecert.events.interchange import parse_line
from tests.helpers import (
    DEADLINE_AT,
    HOME_VISIT_AT,
    ReplayImpl,
    amount,
    cert,
    death,
    docs,
    enroll,
    estate_settled,
    first_differences,
    fraud,
    gov_enroll,
    hold_placed,
    hold_released,
    home_visit,
    normalize,
    reasons,
    revoke,
    terminated,
    with_event_id,
    without_event_id,
)
from tests.helpers import overpayment as overpaid

END = dt.date(2017, 12, 31)  # replay the whole year: both moments are decided
BEFORE_SWEEP = dt.date(2017, 5, 20)  # neither moment decided
AFTER_SWEEP = dt.date(2017, 6, 10)  # home-visit sweep decided, deadline not
AMOUNT = 300_000

FORM_CHANNELS = ["ASSISTED_OFFICE", "ASSISTING_AGENCY", "CONSULATE", "HK_AGENCY"]
DIRECT_CHANNELS = [
    "FACE_APP",
    "FACE_COUNTER",
    "COUNTER",
    "PROVINCIAL_XREGION",
    "MINISTRY_OFFSITE",
    "MACAU_SSF",
    "HOME_VISIT",
]
NON_EMPLOYER_CHANNELS = DIRECT_CHANNELS + FORM_CHANNELS


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
# Rule 1: scope
# =======================================================================================
def test_scope_pension_started_before_2017_is_held_later_is_exempt(
    replay_impl: ReplayImpl,
) -> None:
    lines = [
        enroll("R1", pension_start="2016-12-31"),
        enroll("R2", pension_start="2017-01-01"),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[hold_placed("R1")],
        statuses={"R1": "SUSPENDED", "R2": "EXEMPT"},
    )


def test_exempt_retiree_never_held_nor_visited(replay_impl: ReplayImpl) -> None:
    lines = [
        enroll("R1", pension_start="2017-03-01", birth_date="1930-01-01", disabled=True),
        enroll("R2", pension_start="2010-01-01", recorded_at="2017-07-01T09:00:00+08:00"),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[],
        statuses={"R1": "EXEMPT", "R2": "NOT_CERTIFIED"},
    )


def test_certification_of_exempt_retiree_is_applied_and_changes_nothing(
    replay_impl: ReplayImpl,
) -> None:
    lines = [
        enroll("R1", pension_start="2017-02-01"),
        cert("C1", "R1", "FACE_APP", performed_at="2017-05-01T10:00:00+08:00"),
        cert("C2", "R1", "CONSULATE", performed_at="2017-07-01T10:00:00+08:00"),
        docs("C2", "R1", recorded_at="2017-08-01T10:00:00+08:00"),
    ]
    check(replay_impl(lines, until=END), instructions=[], statuses={"R1": "EXEMPT"})


def test_exempt_retiree_certification_still_checked_for_channel(
    replay_impl: ReplayImpl,
) -> None:
    """Choice (docs/rules.md leaves it open): the usual checks apply to an EXEMPT retiree's
    certification; one that passes them is applied and changes nothing."""
    lines = [
        gov_enroll("R1", pension_start="2017-02-01"),
        cert("C1", "R1", "FACE_APP", performed_at="2017-05-01T10:00:00+08:00"),
        cert("C2", "R1", "EMPLOYER_BATCH", performed_at="2017-03-01T10:00:00+08:00"),
        cert("C3", "R1", "EMPLOYER_BATCH", performed_at="2017-05-01T10:00:00+08:00"),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[],
        statuses={"R1": "EXEMPT"},
        rejections=[(2, "CHANNEL_NOT_ALLOWED"), (3, "OUTSIDE_WINDOW")],
    )


# =======================================================================================
# Rule 2: window, judged in Asia/Shanghai
# =======================================================================================
@pytest.mark.parametrize(
    "performed_at",
    [
        "2017-04-01T00:00:00+08:00",
        "2017-03-31T16:20:00Z",  # 2017-04-01 00:20 local
        "2017-03-31T11:20:00-05:00",  # the same instant
        "2017-04-01T01:20:00+09:00",  # the same instant
        "2017-06-20T23:59:59+08:00",
        "2017-06-20T15:59:00Z",  # 2017-06-20 23:59 local
    ],
)
def test_certification_inside_window_counts_on_time(
    replay_impl: ReplayImpl, performed_at: str
) -> None:
    lines = [enroll("R1"), cert("C1", "R1", "FACE_APP", performed_at=performed_at)]
    check(replay_impl(lines, until=END), instructions=[], statuses={"R1": "CERTIFIED"})


@pytest.mark.parametrize(
    ("performed_at", "recorded_at"),
    [
        ("2017-03-31T23:59:59+08:00", None),
        ("2017-03-31T15:59:00Z", None),  # 2017-03-31 23:59 local
        ("2017-04-01T00:30:00+09:00", None),  # 2017-03-31 23:30 local
        ("2017-03-20T10:00:00+08:00", "2017-04-05T10:00:00+08:00"),  # recorded in window
        ("2016-06-01T10:00:00+08:00", "2017-05-05T10:00:00+08:00"),
    ],
)
def test_certification_before_window_does_not_count(
    replay_impl: ReplayImpl, performed_at: str, recorded_at: str | None
) -> None:
    lines = [
        enroll("R1"),
        cert("C1", "R1", "FACE_APP", performed_at=performed_at, recorded_at=recorded_at),
    ]
    result = replay_impl(lines, until=END)
    check(
        result,
        instructions=[hold_placed("R1")],
        statuses={"R1": "SUSPENDED"},
        rejections=[(2, "OUTSIDE_WINDOW")],
    )


def test_rejected_before_window_changes_no_status(replay_impl: ReplayImpl) -> None:
    lines = [
        enroll("R1"),
        cert("C1", "R1", "FACE_APP", performed_at="2017-03-31T15:59:00Z"),
    ]
    check(
        replay_impl(lines, until=BEFORE_SWEEP),
        instructions=[],
        statuses={"R1": "NOT_CERTIFIED"},
        rejections=[(2, "OUTSIDE_WINDOW")],
    )


def test_certification_at_0020_local_after_deadline_written_in_utc_is_late(
    replay_impl: ReplayImpl,
) -> None:
    """2017-06-20T16:20:00Z is 2017-06-21 00:20 local: recorded after the deadline moment,
    so the hold comes first, then the release (completed in June: no back-pay)."""
    at = "2017-06-20T16:20:00Z"
    lines = [enroll("R1"), cert("C1", "R1", "FACE_APP", performed_at=at)]
    check(
        replay_impl(lines),
        instructions=[
            hold_placed("R1"),
            hold_released("R1", "2017-07", [], 0, recorded_at=at),
        ],
        statuses={"R1": "CERTIFIED"},
    )


def test_late_certification_counts_with_backpay(replay_impl: ReplayImpl) -> None:
    at = "2017-10-10T10:00:00+08:00"
    lines = [enroll("R1"), cert("C1", "R1", "COUNTER", performed_at=at)]
    check(
        replay_impl(lines, until=END),
        instructions=[
            hold_placed("R1"),
            hold_released(
                "R1",
                "2017-11",
                ["2017-07", "2017-08", "2017-09", "2017-10"],
                4 * AMOUNT,
                recorded_at=at,
            ),
        ],
        statuses={"R1": "CERTIFIED"},
    )


def test_certification_performed_on_time_recorded_after_deadline(
    replay_impl: ReplayImpl,
) -> None:
    """Completion is when recorded: performed 06-15, recorded 06-25 -> held, then released
    effective 2017-07 with no back-pay."""
    rec = "2017-06-25T10:00:00+08:00"
    lines = [
        enroll("R1"),
        cert("C1", "R1", "FACE_APP", performed_at="2017-06-15T10:00:00+08:00", recorded_at=rec),
    ]
    check(
        replay_impl(lines),
        instructions=[hold_placed("R1"), hold_released("R1", "2017-07", [], 0, recorded_at=rec)],
        statuses={"R1": "CERTIFIED"},
    )


# =======================================================================================
# Rule 3: channel eligibility
# =======================================================================================
def test_government_retiree_through_face_app_not_allowed_and_held(
    replay_impl: ReplayImpl,
) -> None:
    lines = [
        gov_enroll("R1"),
        cert("C1", "R1", "FACE_APP", performed_at="2017-05-01T10:00:00+08:00"),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[hold_placed("R1")],
        statuses={"R1": "SUSPENDED"},
        rejections=[(2, "CHANNEL_NOT_ALLOWED")],
    )


def test_government_retiree_certified_by_employer_batch(replay_impl: ReplayImpl) -> None:
    lines = [
        gov_enroll("R1"),
        cert("C1", "R1", "EMPLOYER_BATCH", performed_at="2017-05-01T10:00:00+08:00"),
    ]
    check(replay_impl(lines, until=END), instructions=[], statuses={"R1": "CERTIFIED"})


def test_regular_retiree_through_employer_batch_not_allowed_and_held(
    replay_impl: ReplayImpl,
) -> None:
    lines = [
        enroll("R1"),
        cert("C1", "R1", "EMPLOYER_BATCH", performed_at="2017-05-01T10:00:00+08:00"),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[hold_placed("R1")],
        statuses={"R1": "SUSPENDED"},
        rejections=[(2, "CHANNEL_NOT_ALLOWED")],
    )


@pytest.mark.parametrize("channel", NON_EMPLOYER_CHANNELS)
@pytest.mark.parametrize(
    "who",
    [
        {"scheme": "GOV_INSTITUTION", "category": "REGULAR"},
        {"scheme": "URBAN_EMPLOYEE", "category": "CADRE_RETIREE"},
        {"scheme": "GOV_INSTITUTION", "category": "CADRE_RETIREE"},
    ],
    ids=["gov", "cadre", "gov-cadre"],
)
def test_employer_only_retirees_reject_every_other_channel(
    replay_impl: ReplayImpl, channel: str, who: dict[str, str]
) -> None:
    lines = [
        enroll("R1", **who),
        cert("C1", "R1", channel, performed_at="2017-05-01T10:00:00+08:00"),
    ]
    check(
        replay_impl(lines, until=BEFORE_SWEEP),
        instructions=[],
        statuses={"R1": "NOT_CERTIFIED"},
        rejections=[(2, "CHANNEL_NOT_ALLOWED")],
    )


def test_cadre_retiree_certified_by_employer_batch(replay_impl: ReplayImpl) -> None:
    lines = [
        enroll("R1", category="CADRE_RETIREE", scheme="URBAN_RURAL_RESIDENT"),
        cert("C1", "R1", "EMPLOYER_BATCH", performed_at="2017-06-20T09:00:00+08:00"),
    ]
    check(replay_impl(lines, until=END), instructions=[], statuses={"R1": "CERTIFIED"})


@pytest.mark.parametrize("channel", DIRECT_CHANNELS)
def test_every_direct_channel_completes_for_a_regular_retiree(
    replay_impl: ReplayImpl, channel: str
) -> None:
    lines = [
        enroll("R1", scheme="URBAN_RURAL_RESIDENT"),
        cert("C1", "R1", channel, performed_at="2017-05-01T10:00:00+08:00"),
    ]
    check(replay_impl(lines, until=END), instructions=[], statuses={"R1": "CERTIFIED"})


# =======================================================================================
# Rule 4: documents
# =======================================================================================
@pytest.mark.parametrize("channel", FORM_CHANNELS)
def test_form_channel_pending_until_documents(replay_impl: ReplayImpl, channel: str) -> None:
    lines = [
        enroll("R1", residence="OTHER_PROVINCE", district=None),
        cert("C1", "R1", channel, performed_at="2017-05-01T10:00:00+08:00"),
    ]
    check(
        replay_impl(lines, until=BEFORE_SWEEP),
        instructions=[],
        statuses={"R1": "PENDING_DOCUMENTS"},
    )
    lines.append(docs("C1", "R1", recorded_at="2017-05-15T10:00:00+08:00"))
    check(replay_impl(lines, until=END), instructions=[], statuses={"R1": "CERTIFIED"})


def test_pending_documents_hold_then_release(replay_impl: ReplayImpl) -> None:
    rec = "2017-07-05T10:00:00+08:00"
    lines = [
        enroll("R1", residence="OTHER_PROVINCE", district=None),
        cert("C1", "R1", "ASSISTING_AGENCY", performed_at="2017-05-10T10:00:00+08:00"),
        docs("C1", "R1", recorded_at=rec, received_at="2017-07-03T10:00:00+08:00"),
    ]
    check(
        replay_impl(lines),
        instructions=[
            hold_placed("R1"),
            hold_released("R1", "2017-08", ["2017-07"], AMOUNT, recorded_at=rec),
        ],
        statuses={"R1": "CERTIFIED"},
    )
    check(
        replay_impl(lines, until=dt.date(2017, 7, 4)),
        instructions=[hold_placed("R1")],
        statuses={"R1": "SUSPENDED"},
    )


@pytest.mark.parametrize(
    "docs_recorded_at",
    ["2017-08-01T00:00:30+08:00", "2017-07-31T16:00:30Z", "2017-07-31T11:00:30-05:00"],
)
def test_documents_in_first_minute_of_month_count_in_that_month(
    replay_impl: ReplayImpl, docs_recorded_at: str
) -> None:
    lines = [
        enroll("R1", residence="ABROAD", district=None, country="CA"),
        cert("C1", "R1", "CONSULATE", performed_at="2017-06-10T10:00:00+08:00"),
        docs("C1", "R1", recorded_at=docs_recorded_at),
    ]
    check(
        replay_impl(lines),
        instructions=[
            hold_placed("R1"),
            hold_released(
                "R1",
                "2017-09",
                ["2017-07", "2017-08"],
                2 * AMOUNT,
                recorded_at="2017-08-01T00:00:30+08:00",
            ),
        ],
        statuses={"R1": "CERTIFIED"},
    )


def test_documents_in_last_minute_of_month(replay_impl: ReplayImpl) -> None:
    rec = "2017-07-31T15:59:30Z"  # 2017-07-31 23:59:30 local
    lines = [
        enroll("R1", residence="HONG_KONG", district=None, country="HK"),
        cert("C1", "R1", "HK_AGENCY", performed_at="2017-06-10T10:00:00+08:00"),
        docs("C1", "R1", recorded_at=rec),
    ]
    check(
        replay_impl(lines),
        instructions=[
            hold_placed("R1"),
            hold_released("R1", "2017-08", ["2017-07"], AMOUNT, recorded_at=rec),
        ],
        statuses={"R1": "CERTIFIED"},
    )


def test_documents_before_certification_complete_it_at_once(replay_impl: ReplayImpl) -> None:
    lines = [
        enroll("R1"),
        docs("C1", "R1", recorded_at="2017-06-22T10:00:00+08:00"),
        cert(
            "C1",
            "R1",
            "ASSISTED_OFFICE",
            performed_at="2017-06-10T10:00:00+08:00",
            recorded_at="2017-07-03T10:00:00+08:00",
        ),
    ]
    check(
        replay_impl(lines),
        instructions=[
            hold_placed("R1"),
            hold_released(
                "R1", "2017-08", ["2017-07"], AMOUNT, recorded_at="2017-07-03T10:00:00+08:00"
            ),
        ],
        statuses={"R1": "CERTIFIED"},
    )


def test_documents_before_certification_before_deadline_no_hold(
    replay_impl: ReplayImpl,
) -> None:
    lines = [
        enroll("R1"),
        docs("C1", "R1", recorded_at="2017-05-02T10:00:00+08:00"),
        cert("C1", "R1", "CONSULATE", performed_at="2017-05-05T10:00:00+08:00"),
    ]
    check(replay_impl(lines, until=END), instructions=[], statuses={"R1": "CERTIFIED"})


def test_documents_twice_before_certification_second_is_duplicate(
    replay_impl: ReplayImpl,
) -> None:
    """docs/rules.md: a form received before its certification is kept; a second form for
    the same certification, before or after it is recorded, is DUPLICATE_DOCUMENTS."""
    lines = [
        enroll("R1"),
        docs("C1", "R1", recorded_at="2017-05-01T10:00:00+08:00"),
        docs("C1", "R1", recorded_at="2017-05-02T10:00:00+08:00"),
        cert("C1", "R1", "CONSULATE", performed_at="2017-05-03T10:00:00+08:00"),
        docs("C1", "R1", recorded_at="2017-05-04T10:00:00+08:00"),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[],
        statuses={"R1": "CERTIFIED"},
        rejections=[(3, "DUPLICATE_DOCUMENTS"), (5, "DUPLICATE_DOCUMENTS")],
    )


def test_documents_before_a_certification_that_needs_none_stay_kept(
    replay_impl: ReplayImpl,
) -> None:
    """Choice: documents kept before their certification are not rejected afterwards when
    the certification turns out to need no form (or to be rejected); later ones are."""
    lines = [
        enroll("R1"),
        docs("C1", "R1", recorded_at="2017-05-01T10:00:00+08:00"),
        cert("C1", "R1", "FACE_APP", performed_at="2017-05-03T10:00:00+08:00"),
        docs("C2", "R1", recorded_at="2017-05-01T10:00:00+08:00"),
        cert("C2", "R1", "CONSULATE", performed_at="2017-03-03T10:00:00+08:00"),
        docs("C1", "R1", recorded_at="2017-05-04T10:00:00+08:00"),
        docs("C2", "R1", recorded_at="2017-05-04T10:00:00+08:00"),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[],
        statuses={"R1": "CERTIFIED"},
        rejections=[
            (5, "OUTSIDE_WINDOW"),
            (6, "DOCUMENTS_NOT_REQUIRED"),
            (7, "CERTIFICATION_NOT_COUNTING"),
        ],
    )


def test_documents_rejections(replay_impl: ReplayImpl) -> None:
    lines = [
        enroll("R1"),
        gov_enroll("R2"),
        cert("C1", "R1", "FACE_APP", performed_at="2017-05-01T10:00:00+08:00"),
        docs("C1", "R1", recorded_at="2017-05-02T10:00:00+08:00"),  # 4: no form needed
        cert("C2", "R2", "ASSISTING_AGENCY", performed_at="2017-05-01T10:00:00+08:00"),
        docs("C2", "R2", recorded_at="2017-05-02T10:00:00+08:00"),  # 6: cert rejected
        cert("C3", "R1", "COUNTER", performed_at="2017-03-01T10:00:00+08:00"),
        docs("C3", "R1", recorded_at="2017-05-02T10:00:00+08:00"),  # 8: no form needed
        cert("C4", "R1", "CONSULATE", performed_at="2017-03-01T10:00:00+08:00"),
        docs("C4", "R1", recorded_at="2017-05-02T10:00:00+08:00"),  # 10: cert rejected
        cert("C5", "R1", "HK_AGENCY", performed_at="2017-05-01T10:00:00+08:00"),
        docs("C5", "R1", recorded_at="2017-05-03T10:00:00+08:00"),
        docs("C5", "R1", recorded_at="2017-05-04T10:00:00+08:00"),  # 13: already complete
        cert("C6", "R2", "EMPLOYER_BATCH", performed_at="2017-05-01T10:00:00+08:00"),
        docs("C6", "R2", recorded_at="2017-05-04T10:00:00+08:00"),  # 15: no form needed
    ]
    check(
        replay_impl(lines, until=BEFORE_SWEEP),
        instructions=[],
        statuses={"R1": "CERTIFIED", "R2": "CERTIFIED"},
        rejections=[
            (4, "DOCUMENTS_NOT_REQUIRED"),
            (5, "CHANNEL_NOT_ALLOWED"),
            (6, "CERTIFICATION_NOT_COUNTING"),
            (7, "OUTSIDE_WINDOW"),
            (8, "DOCUMENTS_NOT_REQUIRED"),
            (9, "OUTSIDE_WINDOW"),
            (10, "CERTIFICATION_NOT_COUNTING"),
            (13, "DUPLICATE_DOCUMENTS"),
            (15, "DOCUMENTS_NOT_REQUIRED"),
        ],
    )


def test_documents_for_a_rejected_no_form_certification_not_required(
    replay_impl: ReplayImpl,
) -> None:
    """DOCUMENTS_NOT_REQUIRED is checked before CERTIFICATION_NOT_COUNTING."""
    lines = [
        gov_enroll("R1"),
        cert("C1", "R1", "FACE_APP", performed_at="2017-05-01T10:00:00+08:00"),
        docs("C1", "R1", recorded_at="2017-05-02T10:00:00+08:00"),
    ]
    check(
        replay_impl(lines, until=BEFORE_SWEEP),
        instructions=[],
        statuses={"R1": "NOT_CERTIFIED"},
        rejections=[(2, "CHANNEL_NOT_ALLOWED"), (3, "DOCUMENTS_NOT_REQUIRED")],
    )


# =======================================================================================
# Rule 5: hold at the end of the deadline day
# =======================================================================================
def test_holds_in_enrollment_order(replay_impl: ReplayImpl) -> None:
    lines = [
        enroll("R2", recorded_at="2017-01-02T09:00:00+08:00"),
        enroll("R1", recorded_at="2017-01-03T09:00:00+08:00"),
        enroll("R3", recorded_at="2017-01-04T09:00:00+08:00"),
        cert("C3", "R3", "FACE_APP", performed_at="2017-05-01T10:00:00+08:00"),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[hold_placed("R2"), hold_placed("R1")],
        statuses={"R1": "SUSPENDED", "R2": "SUSPENDED", "R3": "CERTIFIED"},
    )


def test_deadline_moment_is_the_end_of_the_deadline_day(replay_impl: ReplayImpl) -> None:
    """A certification recorded in the last second of 06-20 is in time; one recorded at
    06-21 00:00:00 exactly comes after the deadline moment."""
    lines = [
        enroll("R1"),
        enroll("R2"),
        cert("C1", "R1", "FACE_APP", performed_at="2017-06-20T23:59:59+08:00"),
        cert("C2", "R2", "FACE_APP", performed_at=DEADLINE_AT),
    ]
    check(
        replay_impl(lines),
        instructions=[
            hold_placed("R2"),
            hold_released("R2", "2017-07", [], 0, recorded_at=DEADLINE_AT),
        ],
        statuses={"R1": "CERTIFIED", "R2": "CERTIFIED"},
    )


def test_no_hold_for_the_dead_or_the_not_yet_enrolled(replay_impl: ReplayImpl) -> None:
    lines = [
        enroll("R1"),
        death("R1", date_of_death="2017-06-02", recorded_at="2017-06-10T10:00:00+08:00"),
        enroll("R2", recorded_at="2017-06-25T10:00:00+08:00"),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[
            terminated("R1", "2017-07", recorded_at="2017-06-10T10:00:00+08:00"),
        ],
        statuses={"R1": "DECEASED", "R2": "NOT_CERTIFIED"},
    )


# =======================================================================================
# Rule 6: release
# =======================================================================================
def test_release_in_june_after_deadline_has_no_backpay(replay_impl: ReplayImpl) -> None:
    rec = "2017-06-30T23:59:00+08:00"
    lines = [enroll("R1"), cert("C1", "R1", "FACE_COUNTER", performed_at=rec)]
    check(
        replay_impl(lines),
        instructions=[hold_placed("R1"), hold_released("R1", "2017-07", [], 0, recorded_at=rec)],
        statuses={"R1": "CERTIFIED"},
    )


def test_release_in_july_backpays_july(replay_impl: ReplayImpl) -> None:
    rec = "2017-07-01T00:00:00+08:00"
    lines = [enroll("R1"), cert("C1", "R1", "COUNTER", performed_at=rec)]
    check(
        replay_impl(lines),
        instructions=[
            hold_placed("R1"),
            hold_released("R1", "2017-08", ["2017-07"], AMOUNT, recorded_at=rec),
        ],
        statuses={"R1": "CERTIFIED"},
    )


def test_backpay_with_amount_change_in_the_middle(replay_impl: ReplayImpl) -> None:
    rec = "2017-09-05T10:00:00+08:00"
    lines = [
        enroll("R1"),
        amount("R1", 330_000, "2017-08", recorded_at="2017-07-15T10:00:00+08:00"),
        cert("C1", "R1", "FACE_APP", performed_at=rec),
    ]
    check(
        replay_impl(lines),
        instructions=[
            hold_placed("R1"),
            hold_released(
                "R1",
                "2017-10",
                ["2017-07", "2017-08", "2017-09"],
                300_000 + 330_000 + 330_000,
                recorded_at=rec,
            ),
        ],
        statuses={"R1": "CERTIFIED"},
    )


def test_amount_in_force_is_latest_effective_then_last_decided(
    replay_impl: ReplayImpl,
) -> None:
    rec = "2017-08-20T10:00:00+08:00"
    lines = [
        enroll("R1"),
        amount("R1", 305_000, "2017-06", recorded_at="2017-05-10T10:00:00+08:00"),
        amount("R1", 320_000, "2017-08", recorded_at="2017-05-11T10:00:00+08:00"),
        amount("R1", 325_000, "2017-08", recorded_at="2017-05-12T10:00:00+08:00"),
        amount("R1", 999_000, "2017-09", recorded_at="2017-05-13T10:00:00+08:00"),
        cert("C1", "R1", "FACE_APP", performed_at=rec),
    ]
    check(
        replay_impl(lines),
        instructions=[
            hold_placed("R1"),
            hold_released(
                "R1", "2017-09", ["2017-07", "2017-08"], 305_000 + 325_000, recorded_at=rec
            ),
        ],
        statuses={"R1": "CERTIFIED"},
    )


def test_retroactive_amount_change_after_release_revises_nothing(
    replay_impl: ReplayImpl,
) -> None:
    rec = "2017-08-20T10:00:00+08:00"
    lines = [
        enroll("R1"),
        cert("C1", "R1", "FACE_APP", performed_at=rec),
        amount("R1", 400_000, "2017-07", recorded_at="2017-09-01T10:00:00+08:00"),
    ]
    check(
        replay_impl(lines),
        instructions=[
            hold_placed("R1"),
            hold_released("R1", "2017-09", ["2017-07", "2017-08"], 2 * AMOUNT, recorded_at=rec),
        ],
        statuses={"R1": "CERTIFIED"},
    )


def test_second_certification_after_completion_changes_no_hold(
    replay_impl: ReplayImpl,
) -> None:
    rec = "2017-07-10T10:00:00+08:00"
    lines = [
        enroll("R1"),
        cert("C1", "R1", "FACE_APP", performed_at=rec),
        cert("C2", "R1", "COUNTER", performed_at="2017-08-10T10:00:00+08:00"),
        cert("C3", "R1", "ASSISTED_OFFICE", performed_at="2017-08-11T10:00:00+08:00"),
        docs("C3", "R1", recorded_at="2017-09-11T10:00:00+08:00"),
    ]
    check(
        replay_impl(lines),
        instructions=[
            hold_placed("R1"),
            hold_released("R1", "2017-08", ["2017-07"], AMOUNT, recorded_at=rec),
        ],
        statuses={"R1": "CERTIFIED"},
    )


def test_certified_before_deadline_second_certification_changes_nothing(
    replay_impl: ReplayImpl,
) -> None:
    lines = [
        enroll("R1"),
        cert("C1", "R1", "FACE_APP", performed_at="2017-04-10T10:00:00+08:00"),
        cert("C2", "R1", "FACE_APP", performed_at="2017-07-10T10:00:00+08:00"),
    ]
    check(replay_impl(lines, until=END), instructions=[], statuses={"R1": "CERTIFIED"})


def test_pending_form_then_direct_channel_releases_once(replay_impl: ReplayImpl) -> None:
    rec = "2017-08-02T10:00:00+08:00"
    lines = [
        enroll("R1"),
        cert("C1", "R1", "CONSULATE", performed_at="2017-06-10T10:00:00+08:00"),
        cert("C2", "R1", "FACE_APP", performed_at=rec),
        docs("C1", "R1", recorded_at="2017-09-02T10:00:00+08:00"),
    ]
    check(
        replay_impl(lines),
        instructions=[
            hold_placed("R1"),
            hold_released("R1", "2017-09", ["2017-07", "2017-08"], 2 * AMOUNT, recorded_at=rec),
        ],
        statuses={"R1": "CERTIFIED"},
    )


# =======================================================================================
# Rule 7: death
# =======================================================================================
def test_death_recorded_months_late_with_hold_in_between(replay_impl: ReplayImpl) -> None:
    """Died in May, death recorded in September: June was paid (overpaid); July to
    September were held (not overpaid); the hold ends without a release."""
    died_rec = "2017-09-10T10:00:00+08:00"
    lines = [
        enroll("R1"),
        death("R1", date_of_death="2017-05-15", recorded_at=died_rec),
        cert(
            "C1",
            "R1",
            "FACE_APP",
            performed_at="2017-05-10T10:00:00+08:00",
            recorded_at="2017-09-20T10:00:00+08:00",
        ),
    ]
    check(
        replay_impl(lines),
        instructions=[
            hold_placed("R1"),
            terminated("R1", "2017-06", recorded_at=died_rec),
            overpaid("R1", ["2017-06"], AMOUNT, recorded_at=died_rec),
        ],
        statuses={"R1": "DECEASED"},
        rejections=[(3, "RETIREE_DECEASED")],
    )


def test_death_after_release_counts_backpaid_months_as_paid(replay_impl: ReplayImpl) -> None:
    released = "2017-08-10T10:00:00+08:00"
    died_rec = "2017-10-05T10:00:00+08:00"
    lines = [
        enroll("R1"),
        cert("C1", "R1", "FACE_APP", performed_at=released),
        amount("R1", 310_000, "2017-09", recorded_at="2017-08-20T10:00:00+08:00"),
        death("R1", date_of_death="2017-06-10", recorded_at=died_rec),
    ]
    check(
        replay_impl(lines),
        instructions=[
            hold_placed("R1"),
            hold_released(
                "R1", "2017-09", ["2017-07", "2017-08"], 2 * AMOUNT, recorded_at=released
            ),
            terminated("R1", "2017-07", recorded_at=died_rec),
            overpaid(
                "R1",
                ["2017-07", "2017-08", "2017-09", "2017-10"],
                2 * AMOUNT + 2 * 310_000,
                recorded_at=died_rec,
            ),
            fraud("R1", "C1", recorded_at=died_rec),  # performed after the death
        ],
        statuses={"R1": "DECEASED"},
    )


def test_death_recorded_in_month_of_death_no_overpayment(replay_impl: ReplayImpl) -> None:
    died_rec = "2017-05-31T23:59:00+08:00"
    lines = [
        enroll("R1", birth_date="1930-01-01"),
        death("R1", date_of_death="2017-05-03", recorded_at=died_rec),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[terminated("R1", "2017-06", recorded_at=died_rec)],
        statuses={"R1": "DECEASED"},
    )


def test_death_date_judged_as_a_date_recorded_at_as_local_month(
    replay_impl: ReplayImpl,
) -> None:
    """Recorded 2017-06-30T16:30Z = 2017-07-01 00:30 local: July counts as overpaid."""
    died_rec = "2017-06-30T16:30:00Z"
    lines = [
        enroll("R1"),
        cert("C1", "R1", "FACE_APP", performed_at="2017-05-03T10:00:00+08:00"),
        death("R1", date_of_death="2017-05-31", recorded_at=died_rec),
    ]
    check(
        replay_impl(lines),
        instructions=[
            terminated("R1", "2017-06", recorded_at=died_rec),
            overpaid("R1", ["2017-06", "2017-07"], 2 * AMOUNT, recorded_at=died_rec),
        ],
        statuses={"R1": "DECEASED"},
    )


def test_death_overpayment_uses_amount_in_force_each_month(replay_impl: ReplayImpl) -> None:
    died_rec = "2017-05-20T10:00:00+08:00"
    lines = [
        enroll("R1"),
        amount("R1", 310_000, "2017-04", recorded_at="2017-03-01T10:00:00+08:00"),
        amount("R1", 320_000, "2017-05", recorded_at="2017-03-02T10:00:00+08:00"),
        death("R1", date_of_death="2017-02-14", recorded_at=died_rec),
    ]
    check(
        replay_impl(lines),
        instructions=[
            terminated("R1", "2017-03", recorded_at=died_rec),
            overpaid(
                "R1",
                ["2017-03", "2017-04", "2017-05"],
                300_000 + 310_000 + 320_000,
                recorded_at=died_rec,
            ),
        ],
        statuses={"R1": "DECEASED"},
    )


def test_death_of_exempt_retiree_terminates_and_overpays_from_pension_start(
    replay_impl: ReplayImpl,
) -> None:
    died_rec = "2017-05-05T10:00:00+08:00"
    lines = [
        enroll("R1", pension_start="2017-04-15"),
        death("R1", date_of_death="2017-02-10", recorded_at=died_rec),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[
            terminated("R1", "2017-03", recorded_at=died_rec),
            overpaid("R1", ["2017-04", "2017-05"], 2 * AMOUNT, recorded_at=died_rec),
        ],
        statuses={"R1": "DECEASED"},
    )


def test_death_after_its_own_report_is_impossible_and_terminates_nothing(
    replay_impl: ReplayImpl,
) -> None:
    """A report recorded on 10 May cannot know of a death on 2 June (IMPOSSIBLE_DEATH_DATE):
    the retiree stays alive, is held at the deadline like anyone not certified, and a later
    report with a possible date is decided as the first one."""
    later = "2017-07-05T10:00:00+08:00"
    lines = [
        enroll("R1"),
        death("R1", date_of_death="2017-06-02", recorded_at="2017-05-10T10:00:00+08:00"),
        death("R1", date_of_death="2017-07-01", recorded_at=later),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[
            hold_placed("R1"),
            terminated("R1", "2017-08", recorded_at=later),
            # Rule 14: July was held and the retiree was alive on its first day.
            estate_settled("R1", ["2017-07"], 300_000, recorded_at=later),
        ],
        statuses={"R1": "DECEASED"},
        rejections=[(2, "IMPOSSIBLE_DEATH_DATE")],
    )


def test_death_before_birth_is_impossible_and_the_retiree_stays_alive(
    replay_impl: ReplayImpl,
) -> None:
    lines = [
        enroll("R1", birth_date="1950-03-15"),
        death("R1", date_of_death="1950-03-14", recorded_at="2017-05-10T10:00:00+08:00"),
        cert("C1", "R1", "FACE_APP", performed_at="2017-05-11T10:00:00+08:00"),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[],
        statuses={"R1": "CERTIFIED"},
        rejections=[(2, "IMPOSSIBLE_DEATH_DATE")],
    )


def test_death_on_the_birth_day_or_the_report_day_is_possible(
    replay_impl: ReplayImpl,
) -> None:
    """The bounds are inclusive, and the report's day is its Asia/Shanghai date:
    2017-05-09T17:00Z is 10 May in Shanghai."""
    r1_at, r2_at = "2017-05-09T17:00:00Z", "2017-05-10T09:00:00+08:00"
    lines = [
        enroll("R1"),
        enroll("R2", birth_date="2017-04-30", pension_start="2017-05-01"),
        death("R1", date_of_death="2017-05-10", recorded_at=r1_at),
        death("R2", date_of_death="2017-04-30", recorded_at=r2_at),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[
            terminated("R1", "2017-06", recorded_at=r1_at),
            terminated("R2", "2017-05", recorded_at=r2_at),
            overpaid("R2", ["2017-05"], AMOUNT, recorded_at=r2_at),
        ],
        statuses={"R1": "DECEASED", "R2": "DECEASED"},
    )


def test_impossible_death_date_a_day_after_the_report_day(replay_impl: ReplayImpl) -> None:
    """2017-05-09T15:59:59Z is still 9 May in Shanghai: a death on 10 May is impossible."""
    lines = [
        enroll("R1"),
        death("R1", date_of_death="2017-05-10", recorded_at="2017-05-09T15:59:59Z"),
    ]
    check(
        replay_impl(lines, until=BEFORE_SWEEP),
        instructions=[],
        statuses={"R1": "NOT_CERTIFIED"},
        rejections=[(2, "IMPOSSIBLE_DEATH_DATE")],
    )


def test_states_keep_the_birth_date_and_older_snapshots_still_load() -> None:
    """The live worker's changelog and replay's snapshots hold RetireeState.to_dict(); the
    birth date was added for IMPOSSIBLE_DEATH_DATE, so a snapshot without it loads (and
    only the report-day bound is then checked)."""
    policy = load_policy("foshan-2017")
    state, _, _ = decide(None, parse_line(enroll("R1", birth_date="1950-03-15")), policy)
    assert state is not None
    saved = state.to_dict()
    assert saved["birth_date"] == "1950-03-15"
    assert RetireeState.from_dict(saved).birth_date == dt.date(1950, 3, 15)
    del saved["birth_date"]
    old = RetireeState.from_dict(saved)
    assert old.birth_date is None
    early = parse_line(death("R1", date_of_death="1900-01-01",
                             recorded_at="2017-05-10T10:00:00+08:00"))
    assert decide(old, early, policy)[2] is None
    late = parse_line(death("R1", date_of_death="2017-05-11",
                            recorded_at="2017-05-10T10:00:00+08:00"))
    assert decide(RetireeState.from_dict(saved), late, policy)[2] == "IMPOSSIBLE_DEATH_DATE"


def test_the_status_keeps_the_day_the_person_was_seen_besides_when_it_completed() -> None:
    """completed_at is when lifecert recorded the completing event (a form's documents
    weeks later); completed_performed_on is the Asia/Shanghai day the certification was
    performed, which GetStatus answers as completed_on (issue 18)."""
    policy = load_policy("foshan-2017")
    state = None
    for line in (
        enroll("R1", residence="OTHER_PROVINCE", district=None),
        # 23:30 UTC on 10 May is 11 May in Shanghai; recorded three days later
        cert("C1", "R1", "ASSISTING_AGENCY", performed_at="2017-05-10T23:30:00Z",
             recorded_at="2017-05-14T10:00:00+08:00"),
    ):
        state, _, rejected = decide(state, parse_line(line), policy)
        assert rejected is None
    assert state is not None and state.completed_performed_on is None  # pending documents
    documents = docs("C1", "R1", recorded_at="2017-07-05T10:00:00+08:00")
    state, _, _ = decide(state, parse_line(documents), policy)
    assert state is not None
    assert state.completed_at == dt.datetime(2017, 7, 5, 2, tzinfo=dt.UTC)
    assert state.completed_performed_on == dt.date(2017, 5, 11)
    # Kept in the worker's changelog and replay's snapshots; older ones load without it.
    saved = state.to_dict()
    assert RetireeState.from_dict(saved).completed_performed_on == dt.date(2017, 5, 11)
    del saved["completed_performed_on"]
    assert RetireeState.from_dict(saved).completed_performed_on is None
    # Revoked with no other counting certification left: cleared with completed_at.
    revoked = revoke("C1", "R1", recorded_at="2017-07-06T10:00:00+08:00")
    state, _, _ = decide(state, parse_line(revoked), policy)
    assert state is not None
    assert state.completed_at is None and state.completed_performed_on is None


def test_after_death_inputs_rejected(replay_impl: ReplayImpl) -> None:
    died_rec = "2017-05-10T10:00:00+08:00"
    lines = [
        enroll("R1"),
        cert("C1", "R1", "CONSULATE", performed_at="2017-05-01T10:00:00+08:00"),
        death("R1", date_of_death="2017-05-08", recorded_at=died_rec),
        docs("C1", "R1", recorded_at="2017-05-11T10:00:00+08:00"),
        amount("R1", 350_000, "2017-06", recorded_at="2017-05-12T10:00:00+08:00"),
        death("R1", date_of_death="2017-01-01", recorded_at="2017-05-13T10:00:00+08:00"),
        enroll("R1", recorded_at="2017-05-14T10:00:00+08:00"),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[terminated("R1", "2017-06", recorded_at=died_rec)],
        statuses={"R1": "DECEASED"},
        rejections=[
            (4, "RETIREE_DECEASED"),
            (5, "RETIREE_DECEASED"),
            (6, "DEATH_ALREADY_RECORDED"),
            (7, "ALREADY_ENROLLED"),
        ],
    )


# =======================================================================================
# Rule 8: fraud
# =======================================================================================
def test_fraud_certification_recorded_before_death(replay_impl: ReplayImpl) -> None:
    died_rec = "2017-05-20T10:00:00+08:00"
    lines = [
        enroll("R1"),
        cert("C1", "R1", "FACE_APP", performed_at="2017-05-10T09:00:00+08:00"),
        death("R1", date_of_death="2017-05-01", recorded_at=died_rec),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[
            terminated("R1", "2017-06", recorded_at=died_rec),
            fraud("R1", "C1", recorded_at=died_rec),
        ],
        statuses={"R1": "DECEASED"},
    )


def test_fraud_certification_recorded_after_death_raised_once(
    replay_impl: ReplayImpl,
) -> None:
    died_rec = "2017-05-05T10:00:00+08:00"
    cert_rec = "2017-05-10T10:00:00+08:00"
    c1 = cert("C1", "R1", "FACE_APP", performed_at=cert_rec)
    lines = [
        enroll("R1"),
        death("R1", date_of_death="2017-05-01", recorded_at=died_rec),
        c1,
        c1,  # the same delivery again
        cert("C1", "R1", "FACE_APP", performed_at=cert_rec),  # same certification, new id
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[
            terminated("R1", "2017-06", recorded_at=died_rec),
            fraud("R1", "C1", recorded_at=cert_rec),
        ],
        statuses={"R1": "DECEASED"},
        rejections=[
            (3, "RETIREE_DECEASED"),
            (4, "DUPLICATE_EVENT"),
            (5, "DUPLICATE_CERTIFICATION"),
        ],
    )


def test_fraud_raised_once_when_certification_redelivered_after_death(
    replay_impl: ReplayImpl,
) -> None:
    died_rec = "2017-05-20T10:00:00+08:00"
    c1 = cert("C1", "R1", "COUNTER", performed_at="2017-05-10T09:00:00+08:00")
    lines = [
        enroll("R1"),
        c1,
        death("R1", date_of_death="2017-05-01", recorded_at=died_rec),
        c1,
        without_event_id(c1),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[
            terminated("R1", "2017-06", recorded_at=died_rec),
            fraud("R1", "C1", recorded_at=died_rec),
        ],
        statuses={"R1": "DECEASED"},
        rejections=[(4, "DUPLICATE_EVENT"), (5, "DUPLICATE_CERTIFICATION")],
    )


@pytest.mark.parametrize(
    ("performed_at", "raised"),
    [
        ("2017-05-01T23:59:00+08:00", False),  # same day as the death
        ("2017-05-01T15:59:00Z", False),  # 2017-05-01 23:59 local
        ("2017-05-01T16:30:00Z", True),  # 2017-05-02 00:30 local
        ("2017-05-02T00:00:00+08:00", True),
        ("2017-04-20T10:00:00+08:00", False),
    ],
)
def test_fraud_only_for_a_later_local_day_than_death(
    replay_impl: ReplayImpl, performed_at: str, raised: bool
) -> None:
    died_rec = "2017-05-20T10:00:00+08:00"
    lines = [
        enroll("R1"),
        cert("C1", "R1", "FACE_APP", performed_at=performed_at),
        death("R1", date_of_death="2017-05-01", recorded_at=died_rec),
    ]
    expected = [terminated("R1", "2017-06", recorded_at=died_rec)]
    if raised:
        expected.append(fraud("R1", "C1", recorded_at=died_rec))
    check(replay_impl(lines, until=END), instructions=expected, statuses={"R1": "DECEASED"})


def test_fraud_for_channel_not_allowed_certification_either_order(
    replay_impl: ReplayImpl,
) -> None:
    died_rec = "2017-05-20T10:00:00+08:00"
    late_rec = "2017-05-25T10:00:00+08:00"
    lines = [
        gov_enroll("R1"),
        cert("C1", "R1", "FACE_APP", performed_at="2017-05-10T09:00:00+08:00"),
        death("R1", date_of_death="2017-05-01", recorded_at=died_rec),
        cert(
            "C2", "R1", "FACE_APP", performed_at="2017-05-11T09:00:00+08:00", recorded_at=late_rec
        ),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[
            terminated("R1", "2017-06", recorded_at=died_rec),
            fraud("R1", "C1", recorded_at=died_rec),
            fraud("R1", "C2", recorded_at=late_rec),
        ],
        statuses={"R1": "DECEASED"},
        rejections=[(2, "CHANNEL_NOT_ALLOWED"), (4, "RETIREE_DECEASED")],
    )


def test_fraud_for_certification_before_window(replay_impl: ReplayImpl) -> None:
    died_rec = "2017-04-10T10:00:00+08:00"
    lines = [
        enroll("R1"),
        cert("C1", "R1", "FACE_APP", performed_at="2017-03-20T10:00:00+08:00"),
        death("R1", date_of_death="2017-03-01", recorded_at=died_rec),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[
            terminated("R1", "2017-04", recorded_at=died_rec),
            overpaid("R1", ["2017-04"], AMOUNT, recorded_at=died_rec),
            fraud("R1", "C1", recorded_at=died_rec),
        ],
        statuses={"R1": "DECEASED"},
        rejections=[(2, "OUTSIDE_WINDOW")],
    )


def test_fraud_for_each_kept_certification_in_recorded_order(
    replay_impl: ReplayImpl,
) -> None:
    died_rec = "2017-05-20T10:00:00+08:00"
    lines = [
        enroll("R1"),
        cert("C9", "R1", "FACE_APP", performed_at="2017-04-20T10:00:00+08:00"),  # before death
        cert("C2", "R1", "CONSULATE", performed_at="2017-05-08T10:00:00+08:00"),  # pending
        cert("C1", "R1", "EMPLOYER_BATCH", performed_at="2017-05-09T10:00:00+08:00"),  # rejected
        cert("C3", "R1", "FACE_APP", performed_at="2017-05-12T10:00:00+08:00"),
        cert("C3", "R1", "FACE_APP", performed_at="2017-05-12T10:00:00+08:00"),  # duplicate
        death("R1", date_of_death="2017-05-01", recorded_at=died_rec),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[
            terminated("R1", "2017-06", recorded_at=died_rec),
            fraud("R1", "C2", recorded_at=died_rec),
            fraud("R1", "C1", recorded_at=died_rec),
            fraud("R1", "C3", recorded_at=died_rec),
        ],
        statuses={"R1": "DECEASED"},
        rejections=[(4, "CHANNEL_NOT_ALLOWED"), (6, "DUPLICATE_CERTIFICATION")],
    )


def test_no_fraud_for_a_certification_of_an_unknown_retiree(replay_impl: ReplayImpl) -> None:
    died_rec = "2017-05-20T10:00:00+08:00"
    lines = [
        cert("C1", "R1", "FACE_APP", performed_at="2017-05-10T09:00:00+08:00"),
        enroll("R1", recorded_at="2017-05-11T09:00:00+08:00"),
        death("R1", date_of_death="2017-05-01", recorded_at=died_rec),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[terminated("R1", "2017-06", recorded_at=died_rec)],
        statuses={"R1": "DECEASED"},
        rejections=[(1, "UNKNOWN_RETIREE")],
    )


def test_fraud_for_a_certified_retiree(replay_impl: ReplayImpl) -> None:
    """A certified retiree reported dead before a later certification: terminated, fraud."""
    died_rec = "2017-07-20T10:00:00+08:00"
    lines = [
        enroll("R1"),
        cert("C1", "R1", "FACE_APP", performed_at="2017-05-10T09:00:00+08:00"),
        cert("C2", "R1", "FACE_APP", performed_at="2017-07-10T09:00:00+08:00"),
        death("R1", date_of_death="2017-06-15", recorded_at=died_rec),
    ]
    check(
        replay_impl(lines),
        instructions=[
            terminated("R1", "2017-07", recorded_at=died_rec),
            overpaid("R1", ["2017-07"], AMOUNT, recorded_at=died_rec),
            fraud("R1", "C2", recorded_at=died_rec),
        ],
        statuses={"R1": "DECEASED"},
    )


# =======================================================================================
# Rule 9: home visits
# =======================================================================================
def test_80th_birthday_on_deadline_day_gets_home_visit_day_after_does_not(
    replay_impl: ReplayImpl,
) -> None:
    lines = [
        enroll("R1", birth_date="1937-06-20"),
        enroll("R2", birth_date="1937-06-21"),
        enroll("R3", birth_date="1936-02-29"),
    ]
    check(
        replay_impl(lines, until=AFTER_SWEEP),
        instructions=[home_visit("R1"), home_visit("R3")],
        statuses={"R1": "NOT_CERTIFIED", "R2": "NOT_CERTIFIED", "R3": "NOT_CERTIFIED"},
    )


def test_home_visit_conditions(replay_impl: ReplayImpl) -> None:
    old = "1930-05-05"
    lines = [
        enroll("R1", birth_date=old),  # visit
        enroll("R2", disabled=True),  # visit: disabled
        enroll("R3", birth_date=old, residence="GUANGDONG", district=None),  # not in Foshan
        enroll("R4", birth_date=old, pension_start="2017-02-01"),  # exempt
        enroll("R5", birth_date=old),  # dead
        enroll("R6", birth_date=old),  # certified
        enroll("R7", birth_date=old),  # pending documents: visit
        gov_enroll("R8", birth_date=old),  # rejected channel: visit
        enroll("R9", disabled=True, residence="MACAU", district=None),  # not in Foshan
        death("R5", date_of_death="2017-05-01", recorded_at="2017-05-02T10:00:00+08:00"),
        cert("C6", "R6", "COUNTER", performed_at="2017-05-31T23:59:59+08:00"),
        cert("C7", "R7", "ASSISTING_AGENCY", performed_at="2017-05-03T10:00:00+08:00"),
        cert("C8", "R8", "COUNTER", performed_at="2017-05-03T10:00:00+08:00"),
        enroll("R10", birth_date=old, recorded_at="2017-06-02T10:00:00+08:00"),  # too late
    ]
    check(
        replay_impl(lines, until=AFTER_SWEEP),
        instructions=[
            terminated("R5", "2017-06", recorded_at="2017-05-02T10:00:00+08:00"),
            home_visit("R1"),
            home_visit("R2"),
            home_visit("R7"),
            home_visit("R8"),
        ],
        statuses={
            "R1": "NOT_CERTIFIED",
            "R2": "NOT_CERTIFIED",
            "R3": "NOT_CERTIFIED",
            "R4": "EXEMPT",
            "R5": "DECEASED",
            "R6": "CERTIFIED",
            "R7": "PENDING_DOCUMENTS",
            "R8": "NOT_CERTIFIED",
            "R9": "NOT_CERTIFIED",
            "R10": "NOT_CERTIFIED",
        },
        rejections=[(13, "CHANNEL_NOT_ALLOWED")],
    )


def test_certification_recorded_at_sweep_moment_comes_after_it(
    replay_impl: ReplayImpl,
) -> None:
    lines = [
        enroll("R1", birth_date="1930-05-05"),
        cert("C1", "R1", "FACE_APP", performed_at=HOME_VISIT_AT),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[home_visit("R1")],
        statuses={"R1": "CERTIFIED"},
    )


def test_home_visits_then_holds_both_before_a_late_event(replay_impl: ReplayImpl) -> None:
    """One event recorded after both moments: the sweep, then the deadline, then it."""
    rec = "2017-07-02T10:00:00+08:00"
    lines = [
        enroll("R2", birth_date="1930-05-05"),
        enroll("R1", disabled=True),
        cert("C1", "R1", "FACE_APP", performed_at=rec),
    ]
    check(
        replay_impl(lines),
        instructions=[
            home_visit("R2"),
            home_visit("R1"),
            hold_placed("R2"),
            hold_placed("R1"),
            hold_released("R1", "2017-08", ["2017-07"], AMOUNT, recorded_at=rec),
        ],
        statuses={"R1": "CERTIFIED", "R2": "SUSPENDED"},
    )


# =======================================================================================
# Rule 10: idempotence and order
# =======================================================================================
def test_duplicate_delivery_same_event_id_has_one_effect(replay_impl: ReplayImpl) -> None:
    rec = "2017-07-10T10:00:00+08:00"
    e = enroll("R1")
    c1 = cert("C1", "R1", "FACE_APP", performed_at=rec)
    lines = [e, e, c1, c1, without_event_id(c1), with_event_id(c1, "other-id")]
    check(
        replay_impl(lines),
        instructions=[
            hold_placed("R1"),
            hold_released("R1", "2017-08", ["2017-07"], AMOUNT, recorded_at=rec),
        ],
        statuses={"R1": "CERTIFIED"},
        rejections=[
            (2, "DUPLICATE_EVENT"),
            (4, "DUPLICATE_EVENT"),
            (5, "DUPLICATE_CERTIFICATION"),
            (6, "DUPLICATE_CERTIFICATION"),
        ],
    )


def test_duplicate_documents_delivery(replay_impl: ReplayImpl) -> None:
    rec = "2017-07-10T10:00:00+08:00"
    d1 = docs("C1", "R1", recorded_at=rec)
    lines = [
        enroll("R1"),
        cert("C1", "R1", "ASSISTED_OFFICE", performed_at="2017-06-01T10:00:00+08:00"),
        d1,
        d1,
        without_event_id(d1),
    ]
    check(
        replay_impl(lines),
        instructions=[
            hold_placed("R1"),
            hold_released("R1", "2017-08", ["2017-07"], AMOUNT, recorded_at=rec),
        ],
        statuses={"R1": "CERTIFIED"},
        rejections=[(4, "DUPLICATE_EVENT"), (5, "DUPLICATE_DOCUMENTS")],
    )


def test_duplicate_death_and_amount_delivery(replay_impl: ReplayImpl) -> None:
    died_rec = "2017-08-10T10:00:00+08:00"
    a1 = amount("R1", 330_000, "2017-06", recorded_at="2017-05-10T10:00:00+08:00")
    a2 = amount("R1", 340_000, "2017-06", recorded_at="2017-05-11T10:00:00+08:00")
    d1 = death("R1", date_of_death="2017-05-20", recorded_at=died_rec)
    lines = [enroll("R1"), a1, a2, a1, d1, d1, without_event_id(d1)]
    check(
        replay_impl(lines),
        instructions=[
            hold_placed("R1"),
            terminated("R1", "2017-06", recorded_at=died_rec),
            overpaid("R1", ["2017-06"], 340_000, recorded_at=died_rec),
        ],
        statuses={"R1": "DECEASED"},
        rejections=[(4, "DUPLICATE_EVENT"), (6, "DUPLICATE_EVENT"), (7, "DEATH_ALREADY_RECORDED")],
    )


def test_event_id_is_checked_before_domain_keys(replay_impl: ReplayImpl) -> None:
    lines = [
        enroll("R1", event_id="E1"),
        cert("C1", "R1", "FACE_APP", performed_at="2017-05-01T10:00:00+08:00", event_id="E2"),
        amount("R1", 1, "2017-07", recorded_at="2017-05-02T10:00:00+08:00", event_id="E2"),
        enroll("R1", event_id="E1", recorded_at="2017-05-03T10:00:00+08:00"),
        enroll("R1", event_id="E3", recorded_at="2017-05-03T10:00:00+08:00"),
    ]
    check(
        replay_impl(lines, until=BEFORE_SWEEP),
        instructions=[],
        statuses={"R1": "CERTIFIED"},
        rejections=[(3, "DUPLICATE_EVENT"), (4, "DUPLICATE_EVENT"), (5, "ALREADY_ENROLLED")],
    )


def test_event_ids_are_per_retiree(replay_impl: ReplayImpl) -> None:
    """docs/rules.md: DUPLICATE_EVENT is an event_id already decided *for this retiree*."""
    lines = [
        enroll("R1", event_id="E1"),
        enroll("R2", event_id="E1"),
        cert("C1", "R1", "FACE_APP", performed_at="2017-05-01T10:00:00+08:00", event_id="E2"),
        cert("C1", "R2", "FACE_APP", performed_at="2017-05-01T10:00:00+08:00", event_id="E2"),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[],
        statuses={"R1": "CERTIFIED", "R2": "CERTIFIED"},
    )


def test_rejected_event_id_is_remembered(replay_impl: ReplayImpl) -> None:
    """A rejected event's id is remembered (except UNKNOWN_RETIREE): the same id later
    is DUPLICATE_EVENT even though the event would now be applied."""
    lines = [
        enroll("R1"),
        cert("C1", "R1", "FACE_APP", performed_at="2017-05-02T10:00:00+08:00", event_id="E7"),
        cert("C2", "R1", "EMPLOYER_BATCH", performed_at="2017-05-02T10:00:00+08:00", event_id="E8"),
        cert("C3", "R1", "FACE_APP", performed_at="2017-05-03T10:00:00+08:00", event_id="E8"),
        enroll("R1", pension_start="2017-03-01", event_id="E9"),
        enroll("R1", pension_start="2017-03-01", event_id="E9"),
        death("R1", date_of_death="2017-05-01", recorded_at="2017-05-05T10:00:00+08:00"),
        amount("R1", 1, "2017-06", recorded_at="2017-05-06T10:00:00+08:00", event_id="E10"),
        amount("R1", 1, "2017-06", recorded_at="2017-05-06T10:00:00+08:00", event_id="E10"),
    ]
    check(
        replay_impl(lines, until=BEFORE_SWEEP),
        instructions=[
            terminated("R1", "2017-06", recorded_at="2017-05-05T10:00:00+08:00"),
            fraud("R1", "C1", recorded_at="2017-05-05T10:00:00+08:00"),
            fraud("R1", "C2", recorded_at="2017-05-05T10:00:00+08:00"),
        ],
        statuses={"R1": "DECEASED"},
        rejections=[
            (3, "CHANNEL_NOT_ALLOWED"),
            (4, "DUPLICATE_EVENT"),
            (5, "ALREADY_ENROLLED"),
            (6, "DUPLICATE_EVENT"),
            (8, "RETIREE_DECEASED"),
            (9, "DUPLICATE_EVENT"),
        ],
    )


def test_unknown_retiree_rejected_and_its_event_id_not_remembered(
    replay_impl: ReplayImpl,
) -> None:
    c1 = cert("C1", "R1", "FACE_APP", performed_at="2017-05-01T10:00:00+08:00")
    lines = [
        c1,
        docs("C9", "R1", recorded_at="2017-05-01T11:00:00+08:00"),
        amount("R1", 1, "2017-05", recorded_at="2017-05-01T11:00:00+08:00"),
        death("R1", date_of_death="2017-04-01", recorded_at="2017-05-01T11:00:00+08:00"),
        enroll("R1", recorded_at="2017-05-02T10:00:00+08:00"),
        c1,  # the same delivery again, now that R1 is known: applied
        cert("C2", "R9", "FACE_APP", performed_at="2017-05-01T10:00:00+08:00"),
    ]
    check(
        replay_impl(lines, until=END),
        instructions=[],
        statuses={"R1": "CERTIFIED"},
        rejections=[
            (1, "UNKNOWN_RETIREE"),
            (2, "UNKNOWN_RETIREE"),
            (3, "UNKNOWN_RETIREE"),
            (4, "UNKNOWN_RETIREE"),
            (7, "UNKNOWN_RETIREE"),
        ],
    )


def test_log_order_wins_over_recorded_at(replay_impl: ReplayImpl) -> None:
    """An event recorded before the deadline but logged after one recorded after it is
    decided after the deadline moment (held, then released), and judged as of the deadline
    moment, its retiree's knowledge moment (docs/rules.md "Late-logged events"): the
    release is stamped with it (June either way: effective July, no back-pay)."""
    early = "2017-06-19T10:00:00+08:00"
    lines = [
        enroll("R1"),
        enroll("R2"),
        amount("R2", 310_000, "2017-08", recorded_at="2017-06-25T10:00:00+08:00"),
        cert("C1", "R1", "FACE_APP", performed_at=early),
    ]
    check(
        replay_impl(lines),
        instructions=[
            hold_placed("R1"),
            hold_placed("R2"),
            hold_released("R1", "2017-07", [], 0, recorded_at=DEADLINE_AT),
        ],
        statuses={"R1": "CERTIFIED", "R2": "SUSPENDED"},
    )


def test_rejected_event_still_moves_the_clock(replay_impl: ReplayImpl) -> None:
    """The release of the certification logged after the deadline moment is judged as of
    that moment (docs/rules.md "Late-logged events")."""
    lines = [
        enroll("R1"),
        cert("C1", "R9", "FACE_APP", performed_at="2017-06-22T10:00:00+08:00"),
        cert("C2", "R1", "FACE_APP", performed_at="2017-06-20T10:00:00+08:00"),
    ]
    check(
        replay_impl(lines),
        instructions=[
            hold_placed("R1"),
            hold_released("R1", "2017-07", [], 0, recorded_at=DEADLINE_AT),
        ],
        statuses={"R1": "CERTIFIED"},
        rejections=[(2, "UNKNOWN_RETIREE")],
    )


def test_moments_after_the_last_event_are_not_decided_without_until(
    replay_impl: ReplayImpl,
) -> None:
    lines = [enroll("R1", birth_date="1930-01-01")]
    check(replay_impl(lines), instructions=[], statuses={"R1": "NOT_CERTIFIED"})


def test_events_after_until_are_not_decided(replay_impl: ReplayImpl) -> None:
    lines = [
        enroll("R1"),
        cert("C1", "R1", "FACE_APP", performed_at="2017-06-21T10:00:00+08:00"),
        cert("C2", "R9", "FACE_APP", performed_at="2017-06-21T10:00:00+08:00"),
        enroll("R2", recorded_at="2017-06-21T00:00:00+08:00"),
    ]
    check(
        replay_impl(lines, until=dt.date(2017, 6, 20)),
        instructions=[hold_placed("R1")],
        statuses={"R1": "SUSPENDED"},
    )
    check(
        replay_impl(lines, until=dt.date(2017, 6, 19)),
        instructions=[],
        statuses={"R1": "NOT_CERTIFIED"},
    )
    check(
        replay_impl(lines, until=dt.date(2017, 6, 21)),
        instructions=[
            hold_placed("R1"),
            hold_released("R1", "2017-07", [], 0, recorded_at="2017-06-21T10:00:00+08:00"),
        ],
        statuses={"R1": "CERTIFIED", "R2": "NOT_CERTIFIED"},
        rejections=[(3, "UNKNOWN_RETIREE")],
    )


def test_until_day_end_decides_the_moment_at_its_end(replay_impl: ReplayImpl) -> None:
    """docs/rules.md: at the end of a replay every moment at or before the end of the
    --until day is decided, inclusive of that instant: until 05-31 decides the sweep of
    06-01 00:00, until 06-20 decides the deadline of 06-21 00:00."""
    lines = [enroll("R1", birth_date="1930-01-01")]
    check(
        replay_impl(lines, until=dt.date(2017, 5, 30)),
        instructions=[],
        statuses={"R1": "NOT_CERTIFIED"},
    )
    check(
        replay_impl(lines, until=dt.date(2017, 5, 31)),
        instructions=[home_visit("R1")],
        statuses={"R1": "NOT_CERTIFIED"},
    )
    check(
        replay_impl(lines, until=dt.date(2017, 6, 19)),
        instructions=[home_visit("R1")],
        statuses={"R1": "NOT_CERTIFIED"},
    )
    check(
        replay_impl(lines, until=dt.date(2017, 6, 20)),
        instructions=[home_visit("R1"), hold_placed("R1")],
        statuses={"R1": "SUSPENDED"},
    )


def test_skipped_event_does_not_move_the_clock(replay_impl: ReplayImpl) -> None:
    """Choice: with --until, an event recorded after the cutoff is skipped as if absent, so
    it does not decide a moment before the next (kept) events of the log."""
    lines = [
        enroll("R1"),
        enroll("R2", recorded_at="2017-07-05T10:00:00+08:00"),  # skipped
        cert("C1", "R1", "FACE_APP", performed_at="2017-06-20T10:00:00+08:00"),
    ]
    check(
        replay_impl(lines, until=dt.date(2017, 6, 30)),
        instructions=[],
        statuses={"R1": "CERTIFIED"},
    )


# =======================================================================================
# Statuses
# =======================================================================================
def test_every_status_value(replay_impl: ReplayImpl) -> None:
    died = "2017-07-02T10:00:00+08:00"
    lines = [
        enroll("DEAD"),
        enroll("EXEMPT", pension_start="2017-01-01"),
        enroll("HELD"),
        enroll("CERT"),
        enroll("PENDING"),
        enroll("DEAD_EXEMPT", pension_start="2017-05-01"),
        enroll("HELD_PENDING"),
        enroll("CERT_AND_PENDING"),
        cert("C1", "CERT", "FACE_APP", performed_at="2017-05-01T10:00:00+08:00"),
        cert("C2", "PENDING", "CONSULATE", performed_at="2017-05-01T10:00:00+08:00"),
        cert("C4", "CERT_AND_PENDING", "CONSULATE", performed_at="2017-05-01T10:00:00+08:00"),
        cert("C5", "CERT_AND_PENDING", "COUNTER", performed_at="2017-05-02T10:00:00+08:00"),
        enroll("NONE", recorded_at="2017-06-22T09:00:00+08:00"),
        cert("C3", "HELD_PENDING", "CONSULATE", performed_at="2017-06-30T10:00:00+08:00"),
        death("DEAD", date_of_death="2017-06-30", recorded_at=died),
        death("DEAD_EXEMPT", date_of_death="2017-06-30", recorded_at=died),
    ]
    result = replay_impl(lines, until=dt.date(2017, 7, 31))
    check(
        result,
        instructions=[
            hold_placed("DEAD"),
            hold_placed("HELD"),
            hold_placed("PENDING"),
            hold_placed("HELD_PENDING"),
            terminated("DEAD", "2017-07", recorded_at=died),
            terminated("DEAD_EXEMPT", "2017-07", recorded_at=died),
            overpaid("DEAD_EXEMPT", ["2017-07"], AMOUNT, recorded_at=died),
        ],
        statuses={
            "DEAD": "DECEASED",
            "EXEMPT": "EXEMPT",
            "HELD": "SUSPENDED",
            "CERT": "CERTIFIED",
            "PENDING": "SUSPENDED",
            "NONE": "NOT_CERTIFIED",
            "DEAD_EXEMPT": "DECEASED",
            "HELD_PENDING": "SUSPENDED",
            "CERT_AND_PENDING": "CERTIFIED",
        },
    )
    before = replay_impl(lines, until=BEFORE_SWEEP)
    assert before.statuses["PENDING"] == "PENDING_DOCUMENTS"
    assert before.statuses["CERT_AND_PENDING"] == "CERTIFIED"
    assert before.statuses["HELD"] == "NOT_CERTIFIED"
    assert set(before.statuses) == {
        "DEAD",
        "EXEMPT",
        "HELD",
        "CERT",
        "PENDING",
        "DEAD_EXEMPT",
        "HELD_PENDING",
        "CERT_AND_PENDING",
    }
