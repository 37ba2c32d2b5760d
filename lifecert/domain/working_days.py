"""Working days: the policy's calendar of public holidays and make-up working days.

Partners answer within a number of *working* days (a consular case is reviewed within 10,
an assistance request is due within so many). China moves working days around its public
holidays: a holiday on a weekday is off, and a weekend day may be a make-up working day
(调休). Saturdays and Sundays are off unless listed as make-up days. The calendar knows
only the years its policy lists; asking about another date is an error, never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

_SATURDAY = 5


class WorkingCalendarError(ValueError):
    """A date outside the years the policy's calendar covers."""


@dataclass(frozen=True, slots=True)
class WorkingCalendar:
    first_day: date  # the calendar covers first_day..last_day inclusive
    last_day: date
    holidays: frozenset[date]
    make_up_workdays: frozenset[date]

    def is_working_day(self, day: date) -> bool:
        self._check(day)
        if day in self.make_up_workdays:
            return True
        return day.weekday() < _SATURDAY and day not in self.holidays

    def add_working_days(self, start: date, count: int) -> date:
        """The ``count``-th working day after ``start`` (``start`` itself not counted):
        a case opened on ``start`` with ``count`` working days is due by the end of it."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        day = start
        while count:
            day += timedelta(days=1)
            if self.is_working_day(day):
                count -= 1
        return day

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in (start, end]: how many working days after ``start`` ``end`` is
        (0 when ``end`` <= ``start``)."""
        days, day = 0, start
        while day < end:
            day += timedelta(days=1)
            if self.is_working_day(day):
                days += 1
        return days

    def _check(self, day: date) -> None:
        if not self.first_day <= day <= self.last_day:
            raise WorkingCalendarError(
                f"{day.isoformat()} is outside the policy's working-day calendar "
                f"({self.first_day.isoformat()} to {self.last_day.isoformat()}): add that "
                f"year's holidays and make-up working days to [working_days] of the policy file"
            )
