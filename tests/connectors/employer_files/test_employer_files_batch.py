"""The units' batch format: reading CSV (UTF-8, GB18030) and XLSX, the refusals of a whole
file, and each refusal of a row (connectors/employer_files/batch.py)."""

from __future__ import annotations

import io
import zipfile
from datetime import date, datetime

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.employer_files import batch as eb
from lifecert.events import bounds
from lifecert_dev.partners.employer_files.simulator import made_up_citizen_id

ARRIVED = date(2017, 5, 2)
CID = made_up_citizen_id("FS000000001")
GOOD = ["1", "EB-1", "FS000000001", "李秀英", CID, "2017/4/28"]
HEADER = ",".join(eb.HEADER)


def with_check(body: str) -> str:
    """``body`` (17 digits) and its GB 11643 check character, computed here on its own."""
    weights = [2 ** (17 - i) % 11 for i in range(17)]
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]


def check(cells: list[object], *, roster: dict[str, str] | None = None,
          seen: dict[str, int] | None = None) -> eb.Accepted:
    row = eb.Row(2, tuple(cells), b"")  # type: ignore[arg-type]
    return eb.check_row(row, "UNIT-A", ARRIVED, roster, {} if seen is None else seen)


def refused(cells: list[object], **kwargs: object) -> str:
    with pytest.raises(eb.RowRefused) as caught:
        check(cells, **kwargs)  # type: ignore[arg-type]
    return caught.value.reason


def with_(column: int, value: object) -> list[object]:
    cells: list[object] = list(GOOD)
    cells[column] = value
    return cells


def test_a_good_row_is_accepted() -> None:
    assert check(list(GOOD)) == eb.Accepted("EB-1", "FS000000001", date(2017, 4, 28))


@pytest.mark.parametrize("text", ["2017-04-28", "2017/4/28", "2017年4月28日", " 2017-4-28 "])
def test_dates_as_units_write_them(text: str) -> None:
    assert check(with_(eb.CERTIFIED_ON, text)).certified_on == date(2017, 4, 28)


def test_an_xlsx_date_cell() -> None:
    assert check(with_(eb.CERTIFIED_ON, datetime(2017, 4, 28))).certified_on == date(2017, 4, 28)


@pytest.mark.parametrize(("column", "value", "words"), [
    (eb.CERT_ID, "", "认证编号 (certification_id) '' must be"),
    (eb.CERT_ID, "EB 1", "认证编号 (certification_id) 'EB 1' must be"),
    (eb.RETIREE_ID, "", "养老金编号 (retiree_id) '' must be"),
    (eb.RETIREE_ID, "FS\x1b1", "养老金编号 (retiree_id) 'FS\\x1b1' must be"),
    (eb.RETIREE_ID, CID, "looks like a citizen id number"),
    (eb.NAME, "张" * 51, "姓名 (name) has 51 characters"),
    (eb.NAME, "张\x07三", "姓名 (name) holds control characters"),
    (eb.CERTIFIED_ON, "", "认证日期 (certified_on) is empty"),
    (eb.CERTIFIED_ON, "yesterday", "认证日期 (certified_on) 'yesterday' is not a date"),
    (eb.CERTIFIED_ON, "2017-02-30", "'2017-02-30' is not a day of the calendar"),
    (eb.CERTIFIED_ON, 42853, "is a number, not a date"),
    (eb.CERTIFIED_ON, "2017-05-03", "is after the day the batch arrived (2017-05-02)"),
    (eb.CERTIFIED_ON, "2016-04-01", "more than a year before the batch arrived"),
    (eb.CERTIFIED_ON, "0001-01-01", "more than a year before"),
    (eb.CERTIFIED_ON, "9999-12-31", "is after the day the batch arrived"),
    (eb.CITIZEN_ID, "", "公民身份号码 (citizen id) has 0 characters"),
    (eb.CITIZEN_ID, CID[:17], "has 17 characters, a citizen id number has 18"),
    (eb.CITIZEN_ID, "A" + CID[1:], "must be 17 digits and a last digit or X"),
    (eb.CITIZEN_ID, CID[:16] + str((int(CID[16]) + 1) % 10) + CID[17],
     "fails its check digit (GB 11643)"),
    (eb.CITIZEN_ID, "4.40604E+17", "is a number Excel shortened"),
    (eb.CITIZEN_ID, with_check("44060420171301000"), "holds no valid birth date"),
    (eb.CITIZEN_ID, with_check("44060418991231000"), "cannot be a retiree's"),
    (eb.CITIZEN_ID, with_check("44060420170429000"), "cannot be a retiree's"),
])
def test_each_refusal_of_a_row_names_its_column(column: int, value: object, words: str) -> None:
    reason = refused(with_(column, value))
    assert reason.startswith("row 2: ")
    assert words in reason, reason


def test_check_digit_x_and_a_known_valid_number() -> None:
    assert eb.citizen_id_problem("11010519491231002X", ARRIVED) is None  # GB 11643's example
    assert "check digit" in (eb.citizen_id_problem("110105194912310021", ARRIVED) or "")
    assert with_check("11010519491231002") == "11010519491231002X"


def test_wrong_column_count() -> None:
    assert "5 columns, expected 6" in refused(GOOD[:5])


def test_undecodable_row() -> None:
    with pytest.raises(eb.RowRefused, match="row 7: bytes that are not gb18030"):
        eb.check_row(eb.Row(7, None, b"", "bytes that are not gb18030 (the file's encoding)"),
                     "UNIT-A", ARRIVED, None, {})


def test_a_repeated_certification_id_is_refused() -> None:
    seen: dict[str, int] = {}
    check(list(GOOD), seen=seen)
    assert "repeats row 2" in refused(list(GOOD), seen=seen)


def test_a_unit_certifies_only_its_own_retirees_where_the_roster_knows() -> None:
    assert "is not a retiree of unit UNIT-A" in refused(list(GOOD),
                                                        roster={"FS000000001": "UNIT-B"})
    assert check(list(GOOD), roster={"FS000000001": "UNIT-A"}).retiree_id == "FS000000001"
    assert check(list(GOOD), roster={}).retiree_id == "FS000000001"  # unknown: the hub decides


# -- whole files --------------------------------------------------------------------------
def csv_bytes(rows: list[list[str]], encoding: str = "gbk", bom: bool = False) -> bytes:
    text = "\r\n".join([HEADER, *(",".join(r) for r in rows)]) + "\r\n"
    return (eb.UTF8_BOM if bom else b"") + text.encode(encoding)


@pytest.mark.parametrize(("encoding", "bom", "kind"), [
    ("gbk", False, "csv (gb18030)"), ("utf-8", True, "csv (utf-8)"),
    ("utf-8", False, "csv (utf-8)")])
def test_csv_in_each_encoding(encoding: str, bom: bool, kind: str) -> None:
    batch = eb.read_batch("a.csv", csv_bytes([GOOD, GOOD], encoding, bom) + b",,,,,\r\n")
    assert batch.kind == kind
    assert [r.number for r in batch.rows] == [2, 3]
    assert batch.rows[0].cells == tuple(GOOD)
    assert CID.encode() not in batch.rows[0].raw and b"*" * 18 in batch.rows[0].raw


def test_a_row_with_bytes_of_no_encoding_is_refused_alone() -> None:
    data = csv_bytes([GOOD]) + b"1,EB-2,\x80\xff\r\n"
    batch = eb.read_batch("a.CSV", data)
    assert batch.rows[1].cells is None and "gb18030" in (batch.rows[1].problem or "")


def xlsx_bytes(rows: list[list[object]], header: tuple[str, ...] = eb.HEADER) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(list(header))
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_xlsx_with_date_cells() -> None:
    batch = eb.read_batch("名单.xlsx", xlsx_bytes([[1, "EB-1", "FS000000001", "李秀英", CID,
                                                   datetime(2017, 4, 28)], []]))
    assert batch.kind == "xlsx" and len(batch.rows) == 1
    accepted = eb.check_row(batch.rows[0], "UNIT-A", ARRIVED, None, {})
    assert accepted.certified_on == date(2017, 4, 28)


@pytest.mark.parametrize(("name", "data", "words"), [
    ("a.xls", b"\xd0\xcf\x11\xe0", "file type '.xls' is neither CSV nor XLSX"),
    ("a.txt", b"x", "neither CSV nor XLSX"),
    ("noext", b"x", "file type (none)"),
    ("a.csv", b"", "the file is empty"),
    ("a.csv", "序号,编号\r\n".encode("gbk"), "the header (row 1) has 2 columns and column 2 "
     "is not 认证编号"),
    ("a.csv", b"\x80\xff,\x81\r\n", "the header (row 1)"),
    ("a.xlsx", b"PK not a zip", "not an Excel workbook"),
    ("a.xlsx", xlsx_bytes([], ("认证编号",)), "column 1 is not 序号"),
])
def test_files_refused_whole(name: str, data: bytes, words: str) -> None:
    with pytest.raises(eb.BatchRefused) as caught:
        eb.read_batch(name, data)
    assert words in caught.value.reason, caught.value.reason


def test_a_file_without_its_header_is_refused_without_quoting_row_1() -> None:
    # Row 1 is then a retiree's row: the reason (a dead letter's, a log line's) names the
    # column, never the cells.
    row = "1,EB-1,FS000000001,张三,440602195001010016,2017-04-28\r\n"
    with pytest.raises(eb.BatchRefused) as caught:
        eb.read_batch("a.csv", row.encode("utf-8"))
    reason = caught.value.reason
    assert "column 1 is not 序号" in reason
    assert "张三" not in reason and "440602195001010016" not in reason and "FS0" not in reason


def test_a_zip_bomb_is_refused_before_it_is_inflated() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"\0" * (eb.MAX_XLSX_INFLATED + 1))
    with pytest.raises(eb.BatchRefused, match="inflates to"):
        eb.read_batch("bomb.xlsx", out.getvalue())


def test_the_result_file() -> None:
    lines = [eb.ResultLine(2, "EB-1", "FS1", eb.ACCEPTED),
             eb.ResultLine(3, "", "", eb.REFUSED, "row 3: 认证日期, with a comma")]
    text = eb.encode_result("名单.csv", lines).decode("utf-8-sig")
    assert text.splitlines() == ["行号,认证编号,养老金编号,结果,原因", "2,EB-1,FS1,ACCEPTED,",
                                 '3,,,REFUSED,"row 3: 认证日期, with a comma"',
                                 "#END,名单.csv,PARTIAL,2,1,1,"]
    assert text.endswith("\r\n")
    whole = eb.encode_result("a.xls", [], refused="neither CSV nor XLSX").decode("utf-8-sig")
    assert whole.splitlines()[-1] == "#END,a.xls,REFUSED,0,0,0,neither CSV nor XLSX"


_HOSTILE = st.one_of(
    st.text(max_size=60), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
    st.none(), st.dates(), st.datetimes(),
    st.sampled_from(["\x00", "FS 1", "4.40604E+17", "9999-12-31", "0001-01-01", "\u202eX",
                     "张" * 100]))


@settings(max_examples=300, deadline=None)
@given(column=st.integers(0, len(eb.HEADER) - 1), value=_HOSTILE)
def test_hostile_cells_are_refused_naming_the_row_or_accepted_valid(column: int,
                                                                    value: object) -> None:
    try:
        accepted = check(with_(column, value))
    except eb.RowRefused as exc:
        assert exc.reason.startswith("row 2: "), exc.reason
        return
    assert bounds.CERTIFICATION_ID.fullmatch(accepted.certification_id)
    assert bounds.RETIREE_ID.fullmatch(accepted.retiree_id)
    assert ARRIVED - eb.MAX_AGE <= accepted.certified_on <= ARRIVED


# Issue 14: the optional contact columns (联系电话, 联系地址).
PHONE, ADDRESS = "13912345678", "佛山市禅城区秘密街 1 号"
CONTACT_HEADER = ",".join(eb.HEADER + eb.CONTACT_HEADER)


def test_contact_columns_are_optional_and_make_a_contact_update() -> None:
    from connectors.employer_files.connector import Claimed, events_of

    data = "\r\n".join([CONTACT_HEADER, ",".join([*GOOD, PHONE, ADDRESS]),
                        ",".join([*GOOD[:1], "EB-2", *GOOD[2:], "", ""])]).encode("gbk")
    batch = eb.read_batch("名单.csv", data)
    assert batch.contact
    seen: dict[str, int] = {}
    first = eb.check_row(batch.rows[0], "UNIT-A", ARRIVED, None, seen, batch.contact)
    second = eb.check_row(batch.rows[1], "UNIT-A", ARRIVED, None, seen, batch.contact)
    assert (first.phone, first.address) == (PHONE, ADDRESS)
    assert (second.phone, second.address) == (None, None)
    claimed = Claimed("UNIT-A~" + "0" * 64 + "~名单.csv", "UNIT-A", "名单.csv",
                      datetime(2017, 5, 2, 1, 0).astimezone(), batch)
    assert [e["type"] for e in events_of(claimed, first)] == \
        ["CertificationRecorded", "ContactDetailsUpdated"]
    update = events_of(claimed, first)[1]
    assert (update["phone"], update["address"], update["channel"], update["agency_id"]) == \
        (PHONE, ADDRESS, "EMPLOYER_BATCH", "UNIT-A")
    assert [e["type"] for e in events_of(claimed, second)] == ["CertificationRecorded"]
    assert not eb.read_batch("a.csv", csv_bytes([GOOD])).contact


def test_contact_columns_in_xlsx_trailing_empty_cells_dropped() -> None:
    batch = eb.read_batch("名单.xlsx", xlsx_bytes(
        [[1, "EB-1", "FS000000001", "李秀英", CID, datetime(2017, 4, 28), PHONE],
         [2, "EB-2", "FS000000002", "陈伟", made_up_citizen_id("FS000000002"),
          datetime(2017, 4, 28), None, None]], eb.HEADER + eb.CONTACT_HEADER))
    seen: dict[str, int] = {}
    accepted = [eb.check_row(r, "UNIT-A", ARRIVED, None, seen, True) for r in batch.rows]
    assert [(a.phone, a.address) for a in accepted] == [(PHONE, None), (None, None)]


@pytest.mark.parametrize(("phone", "address", "words"), [
    ("call me", "", "联系电话 (phone) must be digits"),
    ("1" * 40, "", "联系电话 (phone) has 40 characters"),
    ("", "秘密" * 101, "联系地址 (address) has 202 characters"),
    ("", "秘密\x1b[2J", "联系地址 (address) holds control characters"),
])
def test_contact_refusals_name_the_column_never_the_value(phone: str, address: str,
                                                          words: str) -> None:
    row = eb.Row(2, (*GOOD, phone, address), b"")
    with pytest.raises(eb.RowRefused) as caught:
        eb.check_row(row, "UNIT-A", ARRIVED, None, {}, True)
    assert words in caught.value.reason
    assert "call me" not in caught.value.reason and "秘密" not in caught.value.reason


def test_without_the_contact_header_contact_cells_are_too_many_columns() -> None:
    reason = refused([*GOOD, PHONE, ADDRESS])
    assert "8 columns, expected 6" in reason and PHONE not in reason
