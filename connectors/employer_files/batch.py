"""A managing unit's certification batch (CSV or XLSX), its row checks and the result file.

The format is specified for the units in docs/partners/employer-files.md; this module is
the one reading of it. Pure functions over bytes (no folders, no broker), so every refusal
is unit-tested on its own (tests/connectors/employer_files/test_batch.py).

A batch is refused **as a whole** (:class:`BatchRefused`) when it cannot be read as a table
at all: a type other than CSV or XLSX, a CSV in neither UTF-8 nor GB18030, an XLSX that is
not a workbook, a wrong header. Otherwise every row is checked on its own
(:func:`check_row` raises :class:`RowRefused` with the column and what to do) and the good
rows flow on.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from lifecert.events import bounds, masking

HEADER: tuple[str, ...] = ("序号", "认证编号", "养老金编号", "姓名", "公民身份号码", "认证日期")
# Issue 14: two optional columns after those: the retiree's phone and address, as the unit
# has them (a ContactDetailsUpdated beside the certification; personal data: sealed on the
# topic, never quoted in a reason or a log line).
CONTACT_HEADER: tuple[str, ...] = ("联系电话", "联系地址")
PHONE, ADDRESS = len(HEADER), len(HEADER) + 1
MAX_PHONE, MAX_ADDRESS = 32, 200
_PHONE_CHARS = frozenset("0123456789+- ()")
(ROW_NO, CERT_ID, RETIREE_ID, NAME, CITIZEN_ID, CERTIFIED_ON) = range(len(HEADER))
MAX_NAME = 50
MAX_ROWS = 100_000
# An XLSX is a zip: its parts, inflated, may hold at most this much (a zip bomb is refused
# before openpyxl inflates anything).
MAX_XLSX_INFLATED = 256 * 1024 * 1024
# How far back a certification date may lie before the day the batch arrived.
MAX_AGE = timedelta(days=366)
UTF8_BOM = b"\xef\xbb\xbf"
RESULT_HEADER = ("行号", "认证编号", "养老金编号", "结果", "原因")
ACCEPTED, REFUSED = "ACCEPTED", "REFUSED"

# GB 11643-1999: the check character of a citizen id number (ISO 7064 MOD 11-2).
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_CITIZEN_RE = re.compile(r"[0-9]{17}[0-9X]")
_DATE_RES = (re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})"),
             re.compile(r"([0-9]{4})/([0-9]{1,2})/([0-9]{1,2})"),
             re.compile(r"([0-9]{4})年([0-9]{1,2})月([0-9]{1,2})日"))
_NUMBERISH = re.compile(r"[0-9.]+[Ee]\+?[0-9]+")

Cell = str | int | float | date | datetime | None


class BatchRefused(Exception):
    """The file cannot be read as a batch; ``reason`` says why and what to do."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RowRefused(Exception):
    """One row is refused; ``reason`` names the row, the column and what to do."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Row:
    """One data row: its row number in the file (the header is row 1), its cells (``None``
    when the line could not be decoded: ``problem`` says why) and its bytes, citizen ids
    masked."""

    number: int
    cells: tuple[Cell, ...] | None
    raw: bytes
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    kind: str  # "csv (utf-8)", "csv (gb18030)", "xlsx"
    rows: tuple[Row, ...]
    contact: bool = False  # the header has the contact columns (联系电话, 联系地址)

    @property
    def last_row(self) -> int:
        return self.rows[-1].number if self.rows else 1


@dataclass(frozen=True, slots=True)
class Accepted:
    certification_id: str
    retiree_id: str
    certified_on: date
    phone: str | None = None
    address: str | None = None


def citizen_id_problem(value: str, latest_birth: date) -> str | None:
    """What is wrong with a citizen id number (GB 11643: 17 digits, a birth date in digits
    7-14, and the MOD 11-2 check character), or None."""
    if _NUMBERISH.fullmatch(value):
        return ("is a number Excel shortened (like 4.40604E+17), not the 18 characters of "
                "the id: format the column as text and type the ids again")
    if len(value) != 18:
        return f"has {len(value)} characters, a citizen id number has 18"
    if not _CITIZEN_RE.fullmatch(value):
        return "must be 17 digits and a last digit or X"
    total = sum(int(d) * w for d, w in zip(value[:17], _WEIGHTS, strict=True))
    if _CHECK[total % 11] != value[17]:
        return "fails its check digit (GB 11643): a digit was mistyped"
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return "holds no valid birth date (digits 7-14)"
    if born.year < 1900 or born > latest_birth:
        return f"holds the birth date {born.isoformat()}, which cannot be a retiree's"
    return None


def parse_date(cell: Cell) -> date:
    """A certification date: an XLSX date cell, or text ``2017-04-05``, ``2017/4/5`` (as
    Excel writes dates into a CSV) or ``2017年4月5日``. Raises ValueError with why."""
    if isinstance(cell, datetime):
        return cell.date()
    if isinstance(cell, date):
        return cell
    if isinstance(cell, int | float):
        raise ValueError("is a number, not a date: format the cell as a date (YYYY-MM-DD)")
    text = (cell or "").strip()
    if not text:
        raise ValueError("is empty")
    for pattern in _DATE_RES:
        m = pattern.fullmatch(text)
        if m:
            try:
                return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            except ValueError:
                raise ValueError(f"{bounds.show(text)} is not a day of the calendar") from None
    raise ValueError(f"{bounds.show(text)} is not a date (write YYYY-MM-DD)")


def _text(cell: Cell) -> str:
    if cell is None:
        return ""
    if isinstance(cell, datetime | date):
        return cell.isoformat()
    if isinstance(cell, float) and cell.is_integer() and abs(cell) < 1e15:
        return str(int(cell))
    return str(cell).strip()


def _contact_cell(cell: Cell, where: str, column: str, limit: int) -> str | None:
    """A phone or address cell, or None when empty; the reason never quotes it."""
    value = _text(cell)
    if not value:
        return None
    if len(value) > limit:
        raise RowRefused(f"{where}: {column} has {len(value)} characters, at most {limit}")
    if bounds.text_problem(value) is not None or any(ord(c) < 32 for c in value):
        raise RowRefused(f"{where}: {column} holds control characters or invalid text")
    if limit == MAX_PHONE and (not set(value) <= _PHONE_CHARS
                               or sum(c.isdigit() for c in value) < 5):
        raise RowRefused(f"{where}: {column} must be digits (with + - ( ) and spaces), at "
                         f"least 5 digits")
    return value


def check_row(
    row: Row, unit: str, arrived: date, roster: Mapping[str, str] | None,
    seen: dict[str, int], contact: bool = False,
) -> Accepted:
    """The certification of one row of ``unit``'s batch received on ``arrived``; raises
    :class:`RowRefused`. ``roster``: retiree id -> managing unit where known; ``seen``:
    certification ids of earlier rows of this batch -> their row (updated)."""
    where = f"row {row.number}"
    if row.cells is None:
        raise RowRefused(f"{where}: {row.problem}")
    columns = HEADER + CONTACT_HEADER if contact else HEADER
    # an XLSX row's empty trailing cells are dropped when read: the contact ones may be
    if not (len(HEADER) if contact else len(columns)) <= len(row.cells) <= len(columns):
        raise RowRefused(f"{where}: {len(row.cells)} columns, expected {len(columns)} "
                         f"({','.join(columns)})")
    cells = row.cells + (None,) * (len(columns) - len(row.cells))
    cert_id = _text(cells[CERT_ID])
    if not bounds.CERTIFICATION_ID.fullmatch(cert_id):
        raise RowRefused(f"{where}: 认证编号 (certification_id) {bounds.show(cert_id)} must be "
                         f"1-64 characters of 0-9 A-Z a-z . _ -, starting with a letter or digit")
    if cert_id in seen:
        raise RowRefused(f"{where}: 认证编号 (certification_id) {cert_id} repeats row "
                         f"{seen[cert_id]}; give each certification its own number")
    retiree_id = _text(cells[RETIREE_ID])
    if not bounds.RETIREE_ID.fullmatch(retiree_id):
        raise RowRefused(f"{where}: 养老金编号 (retiree_id) {bounds.show(retiree_id)} must be "
                         f"1-32 characters of 0-9 A-Z a-z _ -, starting with a letter or digit")
    if len(retiree_id) == 18 or (len(retiree_id) == 15 and retiree_id.isdigit()):
        raise RowRefused(f"{where}: 养老金编号 (retiree_id) looks like a citizen id number; "
                         f"write the pension number (养老金编号) there")
    name = _text(cells[NAME])
    if len(name) > MAX_NAME:
        raise RowRefused(f"{where}: 姓名 (name) has {len(name)} characters, at most {MAX_NAME}")
    if (name and bounds.text_problem(name) is not None) or any(ord(c) < 32 for c in name):
        raise RowRefused(f"{where}: 姓名 (name) holds control characters or invalid text")
    try:
        certified_on = parse_date(cells[CERTIFIED_ON])
    except ValueError as exc:
        raise RowRefused(f"{where}: 认证日期 (certified_on) {exc}") from None
    if certified_on > arrived:
        raise RowRefused(f"{where}: 认证日期 (certified_on) {certified_on.isoformat()} is after "
                         f"the day the batch arrived ({arrived.isoformat()})")
    if certified_on < arrived - MAX_AGE:
        raise RowRefused(f"{where}: 认证日期 (certified_on) {certified_on.isoformat()} is more "
                         f"than a year before the batch arrived ({arrived.isoformat()})")
    problem = citizen_id_problem(_text(cells[CITIZEN_ID]).upper(), certified_on)
    if problem is not None:
        raise RowRefused(f"{where}: 公民身份号码 (citizen id) {problem}")
    managed_by = roster.get(retiree_id) if roster is not None else None
    if managed_by is not None and managed_by != unit:
        raise RowRefused(f"{where}: 养老金编号 (retiree_id) {retiree_id} is not a retiree of unit "
                         f"{unit} in the bureau's roster; a unit certifies only its own "
                         f"retirees (ask the bureau if the roster is wrong)")
    phone = address = None
    if contact:
        phone = _contact_cell(cells[PHONE], where, "联系电话 (phone)", MAX_PHONE)
        address = _contact_cell(cells[ADDRESS], where, "联系地址 (address)", MAX_ADDRESS)
    seen[cert_id] = row.number
    return Accepted(cert_id, retiree_id, certified_on, phone, address)


# -- reading ------------------------------------------------------------------------------
def read_batch(name: str, data: bytes) -> Batch:
    """The rows of the batch file ``name``; raises :class:`BatchRefused`."""
    lower = name.lower()
    if lower.endswith(".csv"):
        return _read_csv(data)
    if lower.endswith(".xlsx"):
        return _read_xlsx(data)
    suffix = name.rsplit(".", 1)[-1] if "." in name else ""
    raise BatchRefused(f"file type {bounds.show('.' + suffix) if suffix else '(none)'} is "
                       f"neither CSV nor XLSX: save the sheet as .xlsx (Excel workbook) or "
                       f".csv and send it again")


def _check_header(cells: Sequence[Cell]) -> bool:
    """Whether the header is the template's with the contact columns; BatchRefused when
    it is neither the template's nor that."""
    got = tuple(_text(c) for c in cells)
    while got and got[-1] == "":
        got = got[:-1]
    if got == HEADER + CONTACT_HEADER:
        return True
    if got != HEADER:
        # Name the first wrong column by its place and the label expected there, never the
        # cell's text: a file sent without its header has a retiree's row in row 1.
        expected = HEADER + CONTACT_HEADER
        pairs = enumerate(zip(got, expected, strict=False), start=1)
        column = next((n for n, (cell, want) in pairs if cell != want),
                      min(len(got), len(expected)) + 1)
        want = expected[column - 1] if column <= len(expected) else "(nothing)"
        raise BatchRefused(f"the header (row 1) has {len(got)} columns and column {column} "
                           f"is not {want}; it must be exactly {','.join(HEADER)} "
                           f"(optionally followed by {','.join(CONTACT_HEADER)}): use the "
                           f"bureau's template")
    return False


def _read_csv(data: bytes) -> Batch:
    if data.startswith(UTF8_BOM):
        encoding, data = "utf-8", data[len(UTF8_BOM):]
    else:
        try:
            data.decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError:
            encoding = "gb18030"  # Excel's "CSV (逗号分隔)" on a Chinese Windows: GBK
    # 0x0A is never inside a multi-byte character of UTF-8 or GB18030.
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        raise BatchRefused("the file is empty: it needs the header row")
    try:
        header = _csv_cells(lines[0].rstrip(b"\r").decode(encoding))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise BatchRefused(f"the header (row 1) cannot be read as {encoding} CSV ({exc}); save "
                           f"as CSV UTF-8 or CSV (逗号分隔)") from None
    contact = _check_header(header)
    if len(lines) - 1 > MAX_ROWS:
        raise BatchRefused(f"{len(lines) - 1:,} rows, at most {MAX_ROWS:,}: split the batch")
    rows = []
    for index, line in enumerate(lines[1:], start=2):
        raw = masking.mask_bytes(line.rstrip(b"\r"))
        try:
            cells: tuple[Cell, ...] = tuple(_csv_cells(line.rstrip(b"\r").decode(encoding)))
        except UnicodeDecodeError:
            rows.append(Row(index, None, raw, f"bytes that are not {encoding} (the file's "
                                              f"encoding): retype the row"))
            continue
        except csv.Error as exc:
            rows.append(Row(index, None, raw, f"not a CSV row ({exc})"))
            continue
        if all(_text(c) == "" for c in cells):
            continue  # a blank line, or Excel's trailing ",,,,,"
        rows.append(Row(index, cells, raw))
    return Batch(f"csv ({encoding})", tuple(rows), contact)


def _csv_cells(text: str) -> list[str]:
    rows = list(csv.reader([text], strict=True))
    return rows[0] if rows else []


def _read_xlsx(data: bytes) -> Batch:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            inflated = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError):
        raise BatchRefused("the file is named .xlsx but is not an Excel workbook (not a zip "
                           "archive; an old .xls renamed?): save it as .xlsx") from None
    if inflated > MAX_XLSX_INFLATED:
        raise BatchRefused(f"the workbook inflates to {inflated:,} bytes, more than "
                           f"{MAX_XLSX_INFLATED:,}: split the batch")
    # the `files` extra; the connector checks that it is there when configured
    import openpyxl  # type: ignore[import-untyped]

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            sheet = book.worksheets[0]
            values = [tuple(r) for _, r in zip(range(MAX_ROWS + 2),
                                               sheet.iter_rows(values_only=True), strict=False)]
        finally:
            book.close()
    except Exception as exc:  # any failure reading a hostile workbook is a refusal
        raise BatchRefused(f"the workbook cannot be read ({type(exc).__name__}: "
                           f"{bounds.show(str(exc), 120)}): save it again from Excel") from None
    if not values:
        raise BatchRefused("the first sheet is empty: it needs the header row")
    contact = _check_header(values[0])
    if len(values) - 1 > MAX_ROWS:
        raise BatchRefused(f"more than {MAX_ROWS:,} rows: split the batch")
    rows = []
    for index, cells in enumerate(values[1:], start=2):
        trimmed: tuple[Any, ...] = cells
        while len(trimmed) > len(HEADER) and trimmed[-1] in (None, ""):
            trimmed = trimmed[:-1]
        if all(_text(c) == "" for c in trimmed):
            continue
        shown = io.StringIO()
        csv.writer(shown).writerow([_text(c) for c in trimmed])
        raw = masking.mask_bytes(shown.getvalue().rstrip("\r\n").encode("utf-8"))
        rows.append(Row(index, tuple(_cell(c) for c in trimmed), raw))
    return Batch("xlsx", tuple(rows), contact)


def _cell(value: Any) -> Cell:
    if value is None or isinstance(value, str | int | float | date):
        return value
    return str(value)  # a time, a formula error, anything else: text, checked as text


# -- the result file ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ResultLine:
    row: int
    certification_id: str
    retiree_id: str
    outcome: str
    reason: str = ""


def encode_result(file_name: str, lines: Sequence[ResultLine], *,
                  refused: str | None = None) -> bytes:
    """The result file: UTF-8 with a byte-order mark (Excel opens it right), CRLF."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(RESULT_HEADER)
    for line in lines:
        writer.writerow([line.row, line.certification_id, line.retiree_id, line.outcome,
                         line.reason])
    accepted = sum(line.outcome == ACCEPTED for line in lines)
    if refused is not None:
        status = REFUSED
    elif accepted == len(lines):
        status = ACCEPTED
    else:
        status = "PARTIAL"
    writer.writerow(["#END", file_name, status, len(lines), accepted, len(lines) - accepted,
                     refused or ""])
    return UTF8_BOM + out.getvalue().encode("utf-8")


def result_line(row: Row, outcome: Accepted | RowRefused) -> ResultLine:
    if isinstance(outcome, Accepted):
        return ResultLine(row.number, outcome.certification_id, outcome.retiree_id, ACCEPTED)
    cells = row.cells or ()
    cert = _text(cells[CERT_ID]) if len(cells) > CERT_ID else ""
    retiree = _text(cells[RETIREE_ID]) if len(cells) > RETIREE_ID else ""
    return ResultLine(row.number,
                      cert if bounds.CERTIFICATION_ID.fullmatch(cert) else "",
                      retiree if bounds.RETIREE_ID.fullmatch(retiree) and len(retiree) < 15
                      else "", REFUSED, outcome.reason)
