"""The three registers' extract formats, parsed row by row: pure functions, no I/O.

==========  ===========================  =====================  =====================
file name   register                     format                 DeathRecorded source
==========  ===========================  =====================  =====================
MZ-*.dat    civil affairs (funeral and   fixed width, GBK, CRLF CIVIL_AFFAIRS
            cremation, 民政殡葬)
GA-*.csv    public security (户籍注销)   CSV, UTF-8, header     HUKOU_CANCELLATION
WJ-*.jsonl  hospitals (死亡医学证明)     JSON lines, UTF-8      DEATH_CERTIFICATE
==========  ===========================  =====================  =====================

The layouts are in docs/partners/death-registers.md. Every function raises
:class:`RowRejected` naming the register's field and what is wrong; a value is shown with
its citizen id masked, never in the clear.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from connectors.death_registers.identity import Digester, IdentityError
from connectors.death_registers.matching import Death
from lifecert.events import bounds, interchange, masking
from lifecert.events.time import SHANGHAI, local_date

# (prefix, extension, source)
REGISTERS = {
    "MZ": (".dat", "CIVIL_AFFAIRS"),
    "GA": (".csv", "HUKOU_CANCELLATION"),
    "WJ": (".jsonl", "DEATH_CERTIFICATE"),
}
FILE_NAME = re.compile(r"(MZ|GA|WJ)-(\d{8})-(\d{3})\.(dat|csv|jsonl)")
# Civil affairs' fixed-width layout: field -> (start, end) in bytes of GBK.
MZ_FIELDS = {"身份证号": (0, 18), "姓名": (18, 48), "出生日期": (48, 56), "死亡日期": (56, 64),
             "火化登记时间": (64, 78), "殡仪馆代码": (78, 84)}
MZ_WIDTH = 84
GA_COLUMNS = ("注销编号", "公民身份号码", "姓名", "出生日期", "死亡日期", "注销时间", "派出所代码")
WJ_FIELDS = ("cert_no", "id_no", "name", "birth_date", "death_time", "issued_at", "hospital")


class RowRejected(ValueError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


@dataclass(frozen=True)
class Register:
    prefix: str
    source: str


def register_of(file_name: str) -> Register | None:
    """The register a file comes from, by its name (None: not an extract)."""
    m = FILE_NAME.fullmatch(file_name)
    if m is None or REGISTERS[m.group(1)][0] != "." + m.group(4):
        return None
    return Register(m.group(1), REGISTERS[m.group(1)][1])


def _date8(field: str, text: str) -> date:
    # by hand: strptime costs ten times as much, and a register sends 100,000 rows
    try:
        if len(text) != 8 or not text.isascii() or not text.isdigit():
            raise ValueError
        value = date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise RowRejected(field, f"{masking.show(text)} is not a date YYYYMMDD") from None
    return _in_years(field, value)


def _iso_date(field: str, text: Any) -> date:
    try:
        value = date.fromisoformat(text) if isinstance(text, str) and len(text) == 10 else None
    except ValueError:
        value = None
    if value is None:
        raise RowRejected(field, f"{masking.show(text)} is not a date YYYY-MM-DD")
    return _in_years(field, value)


def _in_years(field: str, value: date) -> date:
    if not bounds.EARLIEST_YEAR <= value.year <= bounds.LATEST_YEAR:
        raise RowRejected(field, f"year {value.year} is outside {bounds.EARLIEST_YEAR}-"
                                 f"{bounds.LATEST_YEAR}")
    return value


def _beijing(field: str, text: str, fmt: str) -> datetime:
    """A Beijing time written ``YYYYMMDDHHMMSS`` (fmt ``%Y%m%d%H%M%S``) or
    ``YYYY-MM-DD HH:MM:SS``."""
    dashed = fmt != "%Y%m%d%H%M%S"
    digits = text[:4] + text[5:7] + text[8:10] + text[11:13] + text[14:16] + text[17:] \
        if dashed else text
    try:
        if len(digits) != 14 or not digits.isascii() or not digits.isdigit() or (dashed and (
                len(text) != 19 or text[4] + text[7] + text[10] + text[13] + text[16] != "-- ::")):
            raise ValueError
        value = datetime(int(digits[:4]), int(digits[4:6]), int(digits[6:8]),
                         int(digits[8:10]), int(digits[10:12]), int(digits[12:]),
                         tzinfo=SHANGHAI)
    except ValueError:
        raise RowRejected(field, f"{masking.show(text)} is not a Beijing time {fmt}") from None
    _in_years(field, value.date())
    return value


def _iso_time(field: str, text: Any) -> datetime:
    try:
        value = datetime.fromisoformat(text) if isinstance(text, str) and len(text) < 40 \
            else None
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise RowRejected(field, f"{masking.show(text)} is not an ISO 8601 time with its offset")
    _in_years(field, value.date())
    return value


def _death(reg: Register, row_ref: str, digester: Digester, fields: dict[str, str],
           values: dict[str, Any]) -> Death:
    """``fields`` maps the roles id/name to the register's field names."""
    id_text, name_text = values["id"], values["name"]
    try:
        id_digest = digester.citizen_id(id_text) if id_text.strip() else None
    except IdentityError as exc:
        raise RowRejected(fields["id"], str(exc)) from None
    try:
        name_digest = digester.name(name_text)
    except IdentityError as exc:
        raise RowRejected(fields["name"], str(exc)) from None
    died, reported = values["died"], values["reported"]
    if died > local_date(reported):
        raise RowRejected(fields["died"], f"{died} is after the row was registered "
                                          f"({reported.isoformat()})")
    return Death(reg.source, row_ref, id_digest, name_digest, values.get("born"), died,
                 reported)


def parse_mz(line: bytes, row_ref: str, digester: Digester) -> Death:
    """One line of a civil affairs extract (fixed width, GBK)."""
    body = line.removesuffix(b"\r\n")
    if len(body) != MZ_WIDTH:
        raise RowRejected("line", f"{len(body)} bytes, expected {MZ_WIDTH} and CRLF")
    raw = {}
    for field, (a, b) in MZ_FIELDS.items():
        try:
            raw[field] = body[a:b].decode("gbk")
        except UnicodeDecodeError:
            raise RowRejected(field, "is not GBK text (or a character straddles the field's "
                                     f"bytes {a + 1}-{b})") from None
    values: dict[str, Any] = {
        "id": raw["身份证号"], "name": raw["姓名"].strip(" "),
        "born": _date8("出生日期", raw["出生日期"]), "died": _date8("死亡日期", raw["死亡日期"]),
        "reported": _beijing("火化登记时间", raw["火化登记时间"], "%Y%m%d%H%M%S")}
    return _death(Register("MZ", "CIVIL_AFFAIRS"), row_ref, digester,
                  {"id": "身份证号", "name": "姓名", "died": "死亡日期"}, values)


def parse_ga(line: bytes, row_ref: str, digester: Digester) -> Death:
    """One line of a public security extract (CSV, UTF-8; the header is not a row)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise RowRejected("line", "is not UTF-8 text") from None
    try:
        row = next(csv.reader([text]))
    except (csv.Error, StopIteration) as exc:
        raise RowRejected("line", f"is not a CSV line ({exc})") from None
    if len(row) != len(GA_COLUMNS):
        raise RowRejected("line", f"{len(row)} columns, expected {len(GA_COLUMNS)}: "
                                  f"{','.join(GA_COLUMNS)}")
    raw = dict(zip(GA_COLUMNS, row, strict=True))
    values: dict[str, Any] = {
        "id": raw["公民身份号码"], "name": raw["姓名"],
        "born": _iso_date("出生日期", raw["出生日期"]),
        "died": _iso_date("死亡日期", raw["死亡日期"]),
        "reported": _beijing("注销时间", raw["注销时间"], "%Y-%m-%d %H:%M:%S")}
    return _death(Register("GA", "HUKOU_CANCELLATION"), row_ref, digester,
                  {"id": "公民身份号码", "name": "姓名", "died": "死亡日期"}, values)


def parse_wj(line: bytes, row_ref: str, digester: Digester) -> Death:
    """One line of a hospitals' extract (a JSON object per line, UTF-8)."""
    try:
        obj = interchange.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RowRejected("line", f"is not a JSON object in UTF-8 ({masking.show(exc)})") from None
    if not isinstance(obj, dict):
        raise RowRejected("line", "is not a JSON object")
    for key in WJ_FIELDS:
        if key not in obj:
            raise RowRejected(key, "is missing")
    for key in ("id_no", "name"):
        if not isinstance(obj[key], str):
            raise RowRejected(key, f"{masking.show(obj[key])} is not a string")
    died_at = _iso_time("death_time", obj["death_time"])
    values: dict[str, Any] = {
        "id": obj["id_no"], "name": obj["name"], "born": _iso_date("birth_date", obj["birth_date"]),
        "died": _in_years("death_time", local_date(died_at)),
        "reported": _iso_time("issued_at", obj["issued_at"])}
    return _death(Register("WJ", "DEATH_CERTIFICATE"), row_ref, digester,
                  {"id": "id_no", "name": "name", "died": "death_time"}, values)


PARSERS = {"MZ": parse_mz, "GA": parse_ga, "WJ": parse_wj}
HEADER_LINES = {"MZ": 0, "GA": 1, "WJ": 0}
