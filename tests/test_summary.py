"""The campaign summary counts retirees the same way from replay's states and from the
read models' rows (CampaignCounters.add is the one place)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from lifecert.domain.state import RetireeState
from lifecert.summary import CampaignCounters, InstructionTotals, render, yuan


def state(retiree_id: str, *, in_scope: bool = True, district: str | None = "CHANCHENG",
          residence: str = "FOSHAN") -> RetireeState:
    return RetireeState(retiree_id, in_scope, False, False, (2010, 1), 300_000, residence,
                        district)


def test_the_dead_and_the_exempt_are_outside_the_rate_whatever_their_scope() -> None:
    exempt_dead = state("A", in_scope=False)
    exempt_dead.date_of_death = date(2017, 5, 2)
    dead = state("B")
    dead.date_of_death = date(2017, 5, 3)
    exempt = state("C", in_scope=False)
    certified = state("D", district=None, residence="MACAU")
    certified.complete = True
    certified.completed_by = "MACAU_SSF"
    certified.completed_at = datetime(2017, 5, 31, 16, 30, tzinfo=UTC)  # June 1st local
    waiting = state("E")
    counters = CampaignCounters.from_states(
        "foshan-2017", [exempt_dead, dead, exempt, certified, waiting], InstructionTotals()
    )
    assert counters.statuses == {"DECEASED": 2, "EXEMPT": 1, "CERTIFIED": 1,
                                 "NOT_CERTIFIED": 1}
    assert counters.in_scope == {"(MACAU)": 1, "CHANCHENG": 1}
    assert counters.certified == {"(MACAU)": 1}
    assert counters.channels == {"MACAU_SSF": 1}
    assert counters.completed_by_day == {date(2017, 6, 1): 1}
    assert "living retirees who must certify" in render(counters)


def test_rows_counted_in_groups_equal_states_counted_one_by_one() -> None:
    one_by_one = CampaignCounters("p")
    for _ in range(3):
        one_by_one.add("SUSPENDED", "NANHAI", "FOSHAN", None, None)
    one_by_one.add("CERTIFIED", "NANHAI", "FOSHAN", "FACE_APP", date(2017, 5, 9))
    grouped = CampaignCounters("p")
    grouped.add("SUSPENDED", "NANHAI", "FOSHAN", None, None, 3)
    grouped.add("CERTIFIED", "NANHAI", "FOSHAN", "FACE_APP", date(2017, 5, 9), 1)
    assert grouped == one_by_one
    assert grouped.in_scope == {"NANHAI": 4} and grouped.certified == {"NANHAI": 1}


def test_yuan_is_integer_arithmetic() -> None:
    assert yuan(123456) == "1,234.56" and yuan(-5) == "-0.05" and yuan(0) == "0.00"
