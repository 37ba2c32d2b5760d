"""What a value of an event may hold beyond its Avro type: the pattern of each kind of id,
the years a date or time may fall in, the length of text and the range of an Avro long.

The one place these are defined: the interchange parser, the codec's decoder, the partner
API and the connectors' mappings all use it, so a value refused at one door is refused at
every door, with the same words.

- An id is ASCII letters and digits with a few separators, starting with a letter or a
  digit: no space, no control character, nothing a log line or a file name could misread.
  ``event_id`` also allows ``:`` and is longer (uuids, and the ``kind:key`` ids of tests).
- Dates and times lie in the years 1800-2999. Every birth, pension and campaign of the
  hub does, and Python's and Avro's limits (years 1-9999, where converting a time to
  Asia/Shanghai or adding a month overflows) stay far away.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any, Final

RETIREE_ID: Final = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,31}")
CERTIFICATION_ID: Final = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,63}")
AGENCY_ID: Final = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,63}")
EVENT_ID: Final = re.compile(r"[0-9A-Za-z][0-9A-Za-z._:-]{0,127}")

_RETIREE_TEXT = "1-32 characters of 0-9 A-Z a-z _ -, starting with a letter or digit"
_CERT_TEXT = "1-64 characters of 0-9 A-Z a-z . _ -, starting with a letter or digit"
_EVENT_TEXT = "1-128 characters of 0-9 A-Z a-z . _ : -, starting with a letter or digit"

# Field name -> (pattern, what it must be). The same field name is the same kind of id in
# every event type.
ID_FIELDS: Final[Mapping[str, tuple[re.Pattern[str], str]]] = {
    "retiree_id": (RETIREE_ID, _RETIREE_TEXT),
    "certification_id": (CERTIFICATION_ID, _CERT_TEXT),
    "agency_id": (AGENCY_ID, _CERT_TEXT),
    "source_agency": (AGENCY_ID, _CERT_TEXT),
    "event_id": (EVENT_ID, _EVENT_TEXT),
    "case_id": (CERTIFICATION_ID, _CERT_TEXT),
    "mission_id": (AGENCY_ID, _CERT_TEXT),
    "reviewer": (AGENCY_ID, _CERT_TEXT),
}

EARLIEST_YEAR: Final = 1800
LATEST_YEAR: Final = 2999
# A free-text field (a name, a unit, a source) holds at most this many characters.
MAX_TEXT: Final = 1000
LONG_MIN: Final = -(2**63)
LONG_MAX: Final = 2**63 - 1


def id_problem(field: str, value: str) -> str | None:
    """What is wrong with ``value`` as the id ``field`` (None when it is fine, or when
    ``field`` is not an id)."""
    rule = ID_FIELDS.get(field)
    if rule is None or rule[0].fullmatch(value):
        return None
    return f"{show(value)} is not a valid {field}: expected {rule[1]}"


def year_problem(value: date | int) -> str | None:
    """What is wrong with a year, or a date's or time's year (None when it is in range)."""
    year = value if isinstance(value, int) else value.year
    if EARLIEST_YEAR <= year <= LATEST_YEAR:
        return None
    return f"year {year} is out of range ({EARLIEST_YEAR}-{LATEST_YEAR})"


def text_problem(value: str) -> str | None:
    """What is wrong with free text: too long, or not encodable as UTF-8 (a lone
    surrogate such as ``\\ud800``, which JSON's ``\\u`` escapes can carry)."""
    if len(value) > MAX_TEXT:
        return f"{len(value)} characters, at most {MAX_TEXT}"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return f"holds {value[exc.start:exc.end]!r}, which is not a character (a lone " \
                   f"surrogate): send valid Unicode"
    return None


def value_problem(field: str, value: Any) -> str | None:
    """The first problem of one decoded value of ``field`` (see the module's rules)."""
    if type(value) is str:
        return id_problem(field, value) if field in ID_FIELDS else None
    if isinstance(value, date):  # datetime included
        return year_problem(value)
    return None


def event_problem(event: Mapping[str, Any]) -> tuple[str, str] | None:
    """(field, problem) for the first value of a flat event outside these bounds."""
    for field, value in event.items():
        problem = value_problem(field, value)
        if problem is not None:
            return field, problem
    return None


def show(value: Any, limit: int = 60) -> str:
    """A value for a message: ``repr`` (control characters escaped), cut at ``limit``."""
    if type(value) is str and len(value) > limit:
        value = value[:limit]
    try:
        text = repr(value)
    except RecursionError:
        text = f"a deeply nested {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


__all__ = [
    "AGENCY_ID",
    "CERTIFICATION_ID",
    "EARLIEST_YEAR",
    "EVENT_ID",
    "ID_FIELDS",
    "LATEST_YEAR",
    "LONG_MAX",
    "LONG_MIN",
    "MAX_TEXT",
    "RETIREE_ID",
    "event_problem",
    "id_problem",
    "show",
    "text_problem",
    "value_problem",
    "year_problem",
]
