"""The policy's working-day calendar (holidays and make-up working days)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecert.domain.policy import PolicyError, load_policy
from lifecert.domain.working_days import WorkingCalendar, WorkingCalendarError

CAL = load_policy("foshan-2017").working_days
POLICY_FILE = Path(__file__).parents[2] / "lifecert/policies/foshan-2017.toml"


def test_holidays_fall_on_weekdays_and_make_up_days_on_weekends() -> None:
    # Listing a weekend holiday would be harmless, but a weekday make-up day is a typo.
    assert all(d.weekday() < 5 for d in CAL.holidays)
    assert all(d.weekday() >= 5 for d in CAL.make_up_workdays)


def test_national_day_week_2017() -> None:
    # Off 1-8 October; Saturday 30 September was worked instead.
    assert CAL.is_working_day(date(2017, 9, 30))
    assert not any(CAL.is_working_day(date(2017, 10, d)) for d in range(1, 9))
    assert CAL.is_working_day(date(2017, 10, 9))
    # A case opened on Friday 29 September: 1 working day later is the make-up Saturday,
    # 2 later is Monday 9 October.
    assert CAL.add_working_days(date(2017, 9, 29), 1) == date(2017, 9, 30)
    assert CAL.add_working_days(date(2017, 9, 29), 2) == date(2017, 10, 9)


def test_ten_working_days_across_the_dragon_boat_festival() -> None:
    # Opened Thursday 25 May 2017: Fri 26, Sat 27 (worked), 28-30 off, then 31 May,
    # 1-2 and 5-9 June.
    assert CAL.add_working_days(date(2017, 5, 25), 10) == date(2017, 6, 9)
    assert CAL.working_days_between(date(2017, 5, 25), date(2017, 6, 9)) == 10
    assert CAL.working_days_between(date(2017, 6, 9), date(2017, 5, 25)) == 0


def test_a_date_outside_the_calendar_is_an_error_that_says_what_to_add() -> None:
    with pytest.raises(WorkingCalendarError, match=r"2019-01-02 .*\[working_days\]"):
        CAL.is_working_day(date(2019, 1, 2))
    with pytest.raises(WorkingCalendarError):
        CAL.add_working_days(date(2018, 12, 20), 30)


@given(st.dates(date(2017, 1, 1), date(2018, 10, 1)), st.integers(0, 40))
def test_add_and_count_agree(start: date, count: int) -> None:
    due = CAL.add_working_days(start, count)
    assert CAL.working_days_between(start, due) == count
    assert count == 0 or CAL.is_working_day(due)
    assert CAL.working_days_between(start, due - timedelta(days=1)) == max(count - 1, 0)


def test_plain_weeks_without_holidays() -> None:
    cal = WorkingCalendar(date(2020, 1, 1), date(2020, 12, 31), frozenset(), frozenset())
    assert cal.add_working_days(date(2020, 3, 6), 1) == date(2020, 3, 9)  # Fri -> Mon
    assert cal.working_days_between(date(2020, 3, 1), date(2020, 3, 31)) == 22


@pytest.mark.parametrize("edit, message", [
    (("make_up_workdays = [", "make_up_workdays = [\n  2017-01-02,"),
     "2017-01-02 is both a holiday and a make-up working day"),
    (("holidays = [", "holidays = [\n  2019-02-05,"), "outside first_day..last_day"),
    (("holidays = [", "holidays = [\n  \"2017-05-01\","), "must list dates"),
    (("last_day = 2018-12-31", "last_day = 2016-12-31"), "first_day is after"),
])
def test_bad_working_days_are_refused_with_the_key(
    tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    path = tmp_path / "draft.toml"
    path.write_text(POLICY_FILE.read_text(encoding="utf-8").replace(*edit, 1), encoding="utf-8")
    with pytest.raises(PolicyError, match=message):
        load_policy(str(path))
