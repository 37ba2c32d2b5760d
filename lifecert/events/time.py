"""The calendar events are written and judged in: local dates and months in Asia/Shanghai
(the interchange form reads and writes times with it; the domain's rules count with it).

Months are handled as integers (``year * 12 + month - 1``) inside the fold and written as
``"YYYY-MM"`` at the edges.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
_EIGHT_HOURS = timedelta(hours=8)
# Asia/Shanghai has kept UTC+08:00 without daylight saving since September 1991, so from
# 1992 on a UTC instant's local wall time is a plain addition (a zoneinfo look-up costs ten
# times more, and replay does one per certification).
_FIXED_OFFSET_FROM_YEAR = 1992

Month = int


def to_utc(instant: datetime) -> datetime:
    """The same instant with ``tzinfo=timezone.utc``.

    Every timestamp entering the domain goes through here: aware datetimes that share one
    tzinfo object compare and convert an order of magnitude faster than mixed ones, and
    replay compares a timestamp for every event."""
    if instant.tzinfo is UTC:
        return instant
    if instant.utcoffset() is None:
        raise ValueError(f"naive datetime {instant.isoformat()}: a UTC offset is required")
    return instant.astimezone(UTC)


def local_wall_time(instant: datetime) -> datetime:
    """The Asia/Shanghai wall time of an aware instant (tzinfo as convenient)."""
    if instant.tzinfo is UTC and instant.year >= _FIXED_OFFSET_FROM_YEAR:
        return instant + _EIGHT_HOURS
    return instant.astimezone(SHANGHAI)


def local_date(instant: datetime) -> date:
    """The Asia/Shanghai calendar date of an aware instant."""
    return local_wall_time(instant).date()


def month_of_date(day: date) -> Month:
    return day.year * 12 + day.month - 1


def month_of(instant: datetime) -> Month:
    """The Asia/Shanghai month of an aware instant."""
    local = local_wall_time(instant)
    return local.year * 12 + local.month - 1


def parse_month(text: str) -> Month:
    """``"2017-07"`` -> month number; ``ValueError`` for anything else."""
    if len(text) != 7 or text[4] != "-" or not (text[:4].isdigit() and text[5:].isdigit()):
        raise ValueError(f"expected a month as YYYY-MM, got {text!r}")
    year, month = int(text[:4]), int(text[5:])
    if not 1 <= month <= 12:
        raise ValueError(f"month out of range in {text!r}")
    return year * 12 + month - 1


def format_month(month: Month) -> str:
    year, index = divmod(month, 12)
    return f"{year:04d}-{index + 1:02d}"


def start_of_day(day: date) -> datetime:
    """00:00 of ``day`` in Asia/Shanghai, as an aware instant."""
    return datetime.combine(day, time(0, 0), tzinfo=SHANGHAI)


def end_of_day(day: date) -> datetime:
    """The instant the Asia/Shanghai day ends: 00:00 of the next day. (Pass it through
    ``to_utc`` before comparing it with many event times.)"""
    return start_of_day(day + timedelta(days=1))


def age_on(birth_date: date, day: date) -> int:
    """Completed years of age on ``day``; a 29 February birthday falls on 28 February in
    common years (the person is a year older from 1 March at the latest)."""
    years = day.year - birth_date.year
    birthday_month_day = (birth_date.month, birth_date.day)
    if birthday_month_day == (2, 29) and not _is_leap(day.year):
        birthday_month_day = (2, 28)
    if (day.month, day.day) < birthday_month_day:
        years -= 1
    return years


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def isoformat_local(instant: datetime) -> str:
    """ISO 8601 in Asia/Shanghai with its offset, e.g. ``2017-06-21T00:00:00+08:00``."""
    return instant.astimezone(SHANGHAI).isoformat()
