"""The Hong Kong batch file and receipt: UTF-8 with BOM, refusals of the whole file, one
line's rejection, identity card numbers masked."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.hk_assist import batchfile as bf
from lifecert.events import masking

ROW = ("HKF2-17-000123", "FS000000001", "陳大文", "2017-04-28T09:30:00+08:00",
       "HKFTU-KWUNTONG", "2017-05-02T10:00:00+08:00")


def _batch(*rows: tuple[str, ...], batch_id: str = "HKFTU-20170502-01") -> bytes:
    return bf.encode_batch(batch_id, bf.encode_records(bf.csv_line(r) for r in rows))


def test_a_batch_starts_with_the_bom_and_reads_back() -> None:
    data = _batch(ROW, (*ROW[:2], "綫𠮷", *ROW[3:]))
    assert data.startswith(b"\xef\xbb\xbf" + "表格編號".encode())
    batch = bf.read_batch(bf.file_name("HKFTU-20170502-01"), data)
    rows = [bf.parse_line(line) for line in batch.records]
    assert [r.certification_id for r in rows] == ["HKF2-17-000123"] * 2
    assert rows[1].name == "綫𠮷"


def test_a_file_without_bom_is_refused_whole_saying_how_to_save_it() -> None:
    data = _batch(ROW).removeprefix(bf.BOM)
    with pytest.raises(bf.BatchRefused, match=r"byte-order mark.*CSV UTF-8"):
        bf.read_batch(bf.file_name("HKFTU-20170502-01"), data)


def test_a_big5_file_is_refused_whole() -> None:
    data = _batch(ROW).removeprefix(bf.BOM).decode("utf-8").encode("big5hkscs")
    with pytest.raises(bf.BatchRefused, match="byte-order mark"):
        bf.read_batch(bf.file_name("HKFTU-20170502-01"), data)


@pytest.mark.parametrize("value", ["A123456(7)", "K654321A", "AB9876543",
                                   "44010219500101123X"])
def test_an_identity_card_number_as_pension_id_is_rejected(value: str) -> None:
    data = _batch((*ROW[:1], value, *ROW[2:]))
    line = bf.read_batch(bf.file_name("HKFTU-20170502-01"), data).records[0]
    with pytest.raises(bf.LineRejected, match=r"line 2, field 養老金編號.*identity card"):
        bf.parse_line(line)
    assert value.encode() not in masking.mask_bytes(line.raw, hong_kong=True)


def test_a_pension_id_is_not_taken_for_an_identity_card() -> None:
    assert masking.mask_bytes(b"FS000000001,A1234567X", hong_kong=True) == b"FS000000001,A1234567X"
    assert masking.mask_bytes("陳A123456（7）".encode(), hong_kong=True) == "陳**********".encode()


def test_bytes_that_are_not_utf8_name_their_field() -> None:
    raw = bf.csv_line(ROW[:2]).encode() + b",\xa6\xbf," + bf.csv_line(ROW[3:]).encode()
    with pytest.raises(bf.LineRejected, match=r"field 姓名.*not UTF-8"):
        bf.parse_line(bf.Line(2, raw + bf.EOL))


def test_receipts_round_trip_with_a_duplicate() -> None:
    receipt = bf.encode_receipt("B1", [bf.ReceiptLine(2, "HKF2-1", bf.ACCEPTED),
                                       bf.ReceiptLine(3, "", bf.REJECTED, "line 3: bad")])
    assert receipt.startswith(bf.BOM)
    read = bf.read_receipt(receipt)
    assert (read.status, read.accepted, read.rejected) == (bf.PARTIAL, 1, 1)
    dup = bf.read_receipt(bf.encode_duplicate_receipt("B1", "HKASSIST_B1.receipt.csv"))
    assert (dup.status, dup.lines) == (bf.DUPLICATE, ())
    assert "HKASSIST_B1.receipt.csv" in dup.reason


def test_a_file_without_header_or_trailer_is_refused_without_quoting_a_record() -> None:
    # Without its header, line 1 is a record; without its trailer, the last line is: the
    # reason (a dead letter's, a receipt's, a log line's) names columns, never the name.
    record = bf.encode_records([bf.csv_line(ROW)])
    headless = bf.BOM + record + _batch(ROW).splitlines(keepends=True)[-1]
    with pytest.raises(bf.BatchRefused) as caught:
        bf.read_batch(bf.file_name("HKFTU-20170502-01"), headless)
    assert "column 1 is not 表格編號" in caught.value.reason
    assert "陳大文" not in caught.value.reason
    cut = b"".join(_batch(ROW, ROW).splitlines(keepends=True)[:-1])
    with pytest.raises(bf.BatchRefused) as caught:
        bf.read_batch(bf.file_name("HKFTU-20170502-01"), cut)
    assert "is not a trailer" in caught.value.reason and "陳大文" not in caught.value.reason


def test_the_agency_is_the_connectors_body_and_a_line_naming_another_is_rejected(
        tmp_path: Path) -> None:
    from connectors.hk_assist.connector import HkAssistSource
    from connectors.sdk.errors import ConfigError, RecordRejected

    settings = {"inbox": str(tmp_path / "inbox")}
    with pytest.raises(ConfigError, match="agency"):
        HkAssistSource("hk", settings)  # required: whose inbox it is
    with pytest.raises(ConfigError, match=r"agency 'HK FTU' is not an agency id"):
        HkAssistSource("hk", {**settings, "agency": "HK FTU"})
    source = HkAssistSource("hk", {**settings, "agency": "HKFTU-KWUNTONG"})
    batch = bf.read_batch(bf.file_name("HKFTU-20170502-01"),
                          _batch(ROW, (*ROW[:4], "HAD-WCH", ROW[5])))
    own, other = batch.records
    assert source.map_line(own)["agency_id"] == "HKFTU-KWUNTONG"
    with pytest.raises(RecordRejected, match=r"line 3, field 協助機構代碼 \(agency_id\): names "
                                             r"agency 'HAD-WCH' but this inbox is "
                                             r"HKFTU-KWUNTONG's"):
        source.map_line(other)
