"""A district team's results file (CSV, UTF-8) and its row checks: pure functions over
bytes, the one reading of the format of docs/partners/home-visits.md.

A file is refused **as a whole** (:class:`BatchRefused`) when it is not a table of the
format at all (not UTF-8, a wrong header, too many rows). Otherwise each row is checked on
its own (:func:`check_row` raises :class:`RowRefused` naming the row, the column and what
to do) and the good rows flow on. Phone and address are personal: no reason, and no raw
bytes kept for a dead letter, ever holds them (:func:`row_raw` masks them).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, timedelta

from lifecert.events import bounds

HEADER: tuple[str, ...] = ("visit_id", "retiree_id", "visited_on", "result", "date_of_death",
                           "phone", "address")
(VISIT_ID, RETIREE_ID, VISITED_ON, RESULT, DATE_OF_DEATH, PHONE, ADDRESS) = range(len(HEADER))
OUTCOMES = ("ALIVE", "NOT_FOUND", "DECEASED")
MAX_ROWS = 100_000
MAX_PHONE = 32
MAX_ADDRESS = 200
# How far back a visit may lie before the day the file arrived.
MAX_AGE = timedelta(days=366)
UTF8_BOM = b"\xef\xbb\xbf"
_PHONE_CHARS = frozenset("0123456789+- ()")


class BatchRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RowRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Row:
    number: int  # the line in the file; the header is line 1
    cells: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Report:
    visit_id: str
    retiree_id: str
    visited_on: date
    outcome: str
    date_of_death: date | None
    phone: str | None
    address: str | None


def read_batch(data: bytes) -> tuple[Row, ...]:
    """The rows of a results file; BatchRefused when it is not one."""
    if data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BatchRefused(f"the file is not UTF-8 (byte {exc.start}): save it as CSV "
                           f"UTF-8") from None
    if "\x00" in text:
        raise BatchRefused("the file holds NUL bytes: it is not a CSV text file")
    reader = csv.reader(io.StringIO(text, newline=""))
    # a long cell is a row's problem (its column's limit), not the file's: the csv module's
    # own limit (128 KiB) is lifted while reading (the file's size is bounded already)
    limit = csv.field_size_limit(max(len(data), 1 << 17))
    try:
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != HEADER:
            raise BatchRefused(f"line 1 must be the header {','.join(HEADER)}")
        rows: list[Row] = []
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            if len(rows) >= MAX_ROWS:
                raise BatchRefused(f"more than {MAX_ROWS} rows: split the file")
            rows.append(Row(reader.line_num, tuple(cells)))
    except csv.Error as exc:
        raise BatchRefused(f"line {reader.line_num}: not CSV ({exc})") from None
    finally:
        csv.field_size_limit(limit)
    return tuple(rows)


def row_raw(row: Row) -> bytes:
    """The row's bytes for a dead letter: phone and address replaced by ``***``."""
    cells = list(row.cells)
    for i in (PHONE, ADDRESS):
        if i < len(cells) and cells[i]:
            cells[i] = "***"
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(cells)
    return out.getvalue().encode("utf-8")


def _day(value: str, where: str, column: str) -> date:
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise RowRefused(f"{where}: {column} {bounds.show(value)} is not a date "
                         f"(write YYYY-MM-DD)") from None
    if len(value) != 10:
        raise RowRefused(f"{where}: {column} {bounds.show(value)} must be YYYY-MM-DD")
    return day


def _personal(value: str, where: str, column: str, limit: int) -> str | None:
    """A phone or address cell; its value is never put into a reason."""
    value = value.strip()
    if not value:
        return None
    if len(value) > limit:
        raise RowRefused(f"{where}: {column} has {len(value)} characters, at most {limit}")
    if bounds.text_problem(value) is not None or any(ord(c) < 32 for c in value):
        raise RowRefused(f"{where}: {column} holds control characters or invalid text")
    if column == "phone" and (not set(value) <= _PHONE_CHARS
                              or sum(c.isdigit() for c in value) < 5):
        raise RowRefused(f"{where}: phone must be digits (with + - ( ) and spaces), at least "
                         f"5 digits")
    return value


def check_row(row: Row, arrived: date, seen: dict[str, int]) -> Report:
    """The report of one row of a file received on ``arrived``; RowRefused with why.
    ``seen``: visit ids of earlier rows of the file -> their line (updated)."""
    where = f"line {row.number}"
    if len(row.cells) != len(HEADER):
        raise RowRefused(f"{where}: {len(row.cells)} columns, expected {len(HEADER)} "
                         f"({','.join(HEADER)})")
    cells = [c.strip() for c in row.cells]
    visit_id = cells[VISIT_ID]
    if not bounds.CERTIFICATION_ID.fullmatch(visit_id):
        raise RowRefused(f"{where}: visit_id {bounds.show(visit_id)} must be 1-64 characters "
                         f"of 0-9 A-Z a-z . _ -, starting with a letter or digit")
    if visit_id in seen:
        raise RowRefused(f"{where}: visit_id {visit_id} repeats line {seen[visit_id]}; give "
                         f"each visit its own id")
    retiree_id = cells[RETIREE_ID]
    problem = bounds.id_problem("retiree_id", retiree_id)
    if problem:
        raise RowRefused(f"{where}: {problem}")
    visited_on = _day(cells[VISITED_ON], where, "visited_on")
    if visited_on > arrived:
        raise RowRefused(f"{where}: visited_on {visited_on.isoformat()} is after the day the "
                         f"file arrived ({arrived.isoformat()})")
    if visited_on < arrived - MAX_AGE:
        raise RowRefused(f"{where}: visited_on {visited_on.isoformat()} is more than a year "
                         f"before the file arrived ({arrived.isoformat()})")
    outcome = cells[RESULT]
    if outcome not in OUTCOMES:
        raise RowRefused(f"{where}: result {bounds.show(outcome)} must be one of "
                         f"{', '.join(OUTCOMES)}")
    died: date | None = None
    if outcome == "DECEASED":
        if not cells[DATE_OF_DEATH]:
            raise RowRefused(f"{where}: date_of_death is required when result is DECEASED")
        died = _day(cells[DATE_OF_DEATH], where, "date_of_death")
        if died > visited_on:
            raise RowRefused(f"{where}: date_of_death {died.isoformat()} is after visited_on")
    elif cells[DATE_OF_DEATH]:
        raise RowRefused(f"{where}: date_of_death is only for result DECEASED")
    phone = _personal(row.cells[PHONE], where, "phone", MAX_PHONE)
    address = _personal(row.cells[ADDRESS], where, "address", MAX_ADDRESS)
    if outcome != "ALIVE" and (phone or address):
        raise RowRefused(f"{where}: phone and address are only for result ALIVE (the "
                         f"retiree gave them)")
    seen[visit_id] = row.number
    return Report(visit_id, retiree_id, visited_on, outcome, died, phone, address)


def check_district(report: Report, number: int, team: str, district: str,
                   roster: dict[str, str]) -> None:
    """RowRefused unless the retiree of ``report`` lives in ``district``, the district of
    ``team``, by the bureau's roster (retiree id -> district): a team reports only the
    retirees of its own district. The retiree's actual district is never named."""
    if roster.get(report.retiree_id) != district:
        raise RowRefused(f"line {number}: retiree_id {report.retiree_id} is not a retiree of "
                         f"district {district} (team {team}'s) by the roster: a team reports "
                         f"only the retirees of its own district; leave the row out, the "
                         f"district's own team visits them")
