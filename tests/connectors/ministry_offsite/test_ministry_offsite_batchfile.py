"""The ministry batch-file format (connectors/ministry_offsite/batchfile.py): writing and
reading a batch, every reason a batch is refused as a whole, every reason a line is
rejected, and receipts."""

from __future__ import annotations

import hashlib

import pytest

from connectors.ministry_offsite import batchfile as bf
from lifecert.events import masking

NAME = "MOHRSS_440600_20170402-001.csv"
BATCH = "20170402-001"


def row(**overrides: str) -> bf.Row:
    values = {"certification_id": "MOHRSS-17-00000044", "retiree_id": "FS596288201",
              "name": "马强", "performed_at": "2017-03-31T14:00:57+08:00",
              "agency_id": "HN-HENGYANG-SIB", "reported_at": "2017-04-04T01:55:05+08:00"}
    values.update(overrides)
    return bf.Row(**values)


def batch_of(*rows: bf.Row, batch_id: str = BATCH) -> bytes:
    return bf.encode_batch(batch_id, bf.encode_records(bf.csv_line(r.fields()) for r in rows))


def test_a_batch_reads_back_line_by_line_with_names_that_need_quoting_and_4_byte_gb18030() -> None:
    rows = [row(), row(certification_id="C2", name='𠮷田, "Jr"'), row(certification_id="C3",
                                                                     name="")]
    data = batch_of(*rows)
    assert "𠮷".encode(bf.ENCODING) == b"\x95\x34\xb2\x35"  # four bytes: GB18030, not GBK
    batch = bf.read_batch(NAME, data)
    assert batch.batch_id == BATCH
    assert [line.number for line in batch.records] == [2, 3, 4]
    assert batch.last_line == 4
    assert [bf.parse_line(line) for line in batch.records] == rows
    text = data.decode(bf.ENCODING)
    assert text.startswith(bf.HEADER + "\r\n")
    records = b"".join(line.raw for line in batch.records)
    assert text.endswith(f"#END,{BATCH},3,{hashlib.sha256(records).hexdigest()}\r\n")


def test_an_empty_batch_has_the_checksum_of_nothing_and_lf_line_ends_are_accepted() -> None:
    empty = bf.read_batch(NAME, batch_of())
    assert empty.records == () and empty.last_line == 1
    assert bf.EMPTY_SHA256.startswith("e3b0c442")
    records = bf.csv_line(row().fields()).encode(bf.ENCODING) + b"\n"
    lf = (bf.HEADER.encode(bf.ENCODING) + b"\n" + records
          + f"#END,{BATCH},1,{bf.checksum(records)}".encode())  # no line end after trailer
    assert bf.parse_line(bf.read_batch(NAME, lf).records[0]) == row()


def test_file_names() -> None:
    assert bf.file_name(BATCH) == NAME
    assert bf.batch_id_of(NAME) == BATCH
    for other in (".MOHRSS_440600_1.csv.part", "MOHRSS_440600_1.csv.tmp", "MOHRSS_440600_.csv",
                  "MOHRSS_440601_1.csv", "MOHRSS_440600_a_b.csv", "readme.txt"):
        assert bf.batch_id_of(other) is None, other
    with pytest.raises(ValueError, match="batch id"):
        bf.file_name("2017/04")
    assert bf.receipt_name(NAME) == "MOHRSS_440600_20170402-001.receipt.csv"


def _records(n: int = 2) -> bytes:
    return bf.encode_records(bf.csv_line(row(certification_id=f"C{i}").fields())
                             for i in range(n))


@pytest.mark.parametrize(("name", "data", "words"), [
    ("other.csv", batch_of(row()), "not a batch file name"),
    (NAME, b"", "empty"),
    (NAME, b"id,name\r\n" + _records() + b"#END", "header is"),
    (NAME, bf.HEADER.encode(bf.ENCODING) + b"\r\n", "no trailer"),
    (NAME, bf.HEADER.encode(bf.ENCODING) + b"\r\n" + _records(), "not a trailer"),
    (NAME, bf.encode_batch(BATCH, _records(), count=3),
     "trailer says 3 records but the file has 2"),
    (NAME, bf.encode_batch(BATCH, _records(), digest=bf.checksum(b"x")), "does not match"),
    (NAME, bf.encode_batch("20170402-002", _records()), "names batch '20170402-002'"),
    (NAME, bf.encode_batch(BATCH, _records(), digest="ABC"), "64 lower-case"),
    (NAME, bf.HEADER.encode(bf.ENCODING) + b"\r\n" + _records() + b"#END,20170402-001,2\r\n",
     "3 fields, expected 4"),
    (NAME, bf.HEADER.encode(bf.ENCODING) + b"\r\n" + _records()
     + f"#END,{BATCH},two,{bf.checksum(_records())}".encode(), "'two' is not a number"),
])
def test_a_batch_is_refused_as_a_whole_with_the_reason(name: str, data: bytes,
                                                       words: str) -> None:
    with pytest.raises(bf.BatchRefused) as caught:
        bf.read_batch(name, data)
    assert words in caught.value.reason


def test_a_trailer_count_short_of_the_lines_is_refused_too() -> None:
    with pytest.raises(bf.BatchRefused, match="says 1 records but the file has 2") as caught:
        bf.read_batch(NAME, bf.encode_batch(BATCH, _records(), count=1))
    assert caught.value.claimed_count == 1


def line(raw: bytes, number: int = 7) -> bf.Line:
    return bf.Line(number, raw + b"\r\n")


def fields_line(**overrides: str) -> bytes:
    return bf.csv_line(row(**overrides).fields()).encode(bf.ENCODING)


@pytest.mark.parametrize(("raw", "column", "words"), [
    (fields_line(certification_id=""), "认证编号", "empty; the field is required"),
    (fields_line(certification_id="MOHRSS 17"), "认证编号", "is not valid"),
    (fields_line(retiree_id=""), "养老金编号", "empty"),
    (fields_line(retiree_id="FS 12"), "养老金编号", "is not valid"),
    (fields_line(retiree_id="44010219500101123X"), "养老金编号", "citizen id number"),
    (fields_line(retiree_id="440102500101123"), "养老金编号", "citizen id number"),
    (fields_line(certification_id="C 44010219500101123X"), "认证编号", "'C ******************'"),
    (fields_line(name="名" * 51), "姓名", "51 characters, at most 50"),
    (fields_line(performed_at=""), "认证时间", "empty"),
    (fields_line(performed_at="2017-02-30T09:00:00+08:00"), "认证时间", "no such date"),
    (fields_line(performed_at="2017-04-01 09:00:00"), "认证时间", "has no UTC offset"),
    (fields_line(performed_at="2017年4月1日"), "认证时间", "is not a time"),
    (fields_line(agency_id=""), "经办机构代码", "empty"),
    (fields_line(agency_id="武汉社保"), "经办机构代码", "is not valid"),
    (fields_line(reported_at="2017-06-31T10:00:00+08:00"), "上报时间", "no such date"),
    (fields_line(reported_at="2017-04-01T25:00:00+08:00"), "上报时间", "no such date"),
    (b"C1,FS1,\xff\xfe,2017-04-01T09:00:00+08:00,AG,2017-04-01T10:00:00+08:00", "姓名",
     "ff at byte 8 of the line are not GB18030"),
    (b"", None, "the line is empty"),
    (b"   ", None, "the line is empty"),
    (b"C1,FS1,a\rb,2017-04-01T09:00:00+08:00,AG,2017-04-01T10:00:00+08:00", None,
     "carriage return"),
    (b'C1,FS1,"ab"c,2017-04-01T09:00:00+08:00,AG,2017-04-01T10:00:00+08:00', None,
     "not a CSV line"),
    (b"C1,FS1,2017-04-01T09:00:00+08:00,AG,2017-04-01T10:00:00+08:00", None,
     "5 fields, expected 6"),
    (fields_line() + b",extra", None, "7 fields, expected 6"),
])
def test_every_line_rejection_names_line_and_field(raw: bytes, column: str | None,
                                                   words: str) -> None:
    with pytest.raises(bf.LineRejected) as caught:
        bf.parse_line(line(raw))
    exc = caught.value
    assert (exc.line, exc.column) == (7, column)
    assert exc.reason.startswith("line 7")
    if column is not None:
        english = dict(bf.COLUMNS)[column]
        assert f"field {column} ({english})" in exc.reason
    assert words in exc.reason
    assert "new batch" in exc.reason  # what to do


def test_citizen_id_numbers_are_masked_in_kept_bytes_and_nothing_else_is() -> None:
    raw = "C1,44010219500101123X,𠮷田,2017-04-01T09:00:00+08:00,AG,x 440102500101123\r\n"
    masked = masking.mask_bytes(raw.encode(bf.ENCODING), bf.ENCODING).decode(bf.ENCODING)
    assert masked == "C1,******************,𠮷田,2017-04-01T09:00:00+08:00,AG,x " + "*" * 15 \
        + "\r\n"
    keep = fields_line(certification_id="MOHRSS-17-00000044", retiree_id="FS095160846")
    assert masking.mask_bytes(keep, bf.ENCODING) == keep


def test_a_time_in_another_offset_or_with_fractions_is_accepted() -> None:
    parsed = bf.parse_line(line(fields_line(performed_at="2017-04-01T01:00:00.250000Z",
                                            reported_at="2017-04-01T03:00:00+00:00")))
    assert parsed.performed_at == "2017-04-01T01:00:00.250000Z"


def test_receipts_round_trip() -> None:
    lines = [bf.ReceiptLine(2, "C1", bf.ACCEPTED),
             bf.ReceiptLine(3, "", bf.REJECTED, "line 3, field 认证时间 (performed_at): bad, ok")]
    receipt = bf.read_receipt(bf.encode_receipt(BATCH, lines))
    assert (receipt.batch_id, receipt.status, receipt.count) == (BATCH, bf.PARTIAL, "2")
    assert (receipt.accepted, receipt.rejected) == (1, 1)
    assert receipt.lines == tuple(lines)
    whole = bf.read_receipt(bf.encode_receipt(BATCH, lines[:1]))
    assert whole.status == bf.ACCEPTED and whole.reason == ""
    refused = bf.encode_receipt(BATCH, [], refused="trailer says 3", claimed_count=3)
    assert refused.decode(bf.ENCODING).splitlines()[0] == bf.RECEIPT_HEADER
    got = bf.read_receipt(refused)
    assert (got.status, got.count, got.accepted, got.rejected, got.reason, got.lines) == \
        (bf.REFUSED, "3", 0, 0, "trailer says 3", ())
    with pytest.raises(ValueError, match="not a receipt"):
        bf.read_receipt(batch_of(row()))


@pytest.mark.parametrize("text", [
    "𠮷44010219500101123X",  # 95 34 b2 35: a four-byte character ends in an ASCII digit
    "丄44010219500101123X",  # 81 41: a two-byte character ends in an ASCII letter
    "姓名４４０１０２１９５００１０１１２３Ｘ",  # typed in full-width digits
])
def test_citizen_id_numbers_are_masked_in_the_decoded_text(text: str) -> None:
    raw = f"C1,{text},x\r\n".encode(bf.ENCODING)
    masked = masking.mask_bytes(raw, bf.ENCODING).decode(bf.ENCODING)
    assert masked == f"C1,{text[:-18]}{'*' * 18},x\r\n"


def test_masking_keeps_bytes_that_are_not_gb18030_and_masks_beside_them() -> None:
    # 81 30 81 34 decodes as one character, hiding the number's first digit from the
    # text: the pass over the bytes masks it all the same.
    raw = b"\xff\x8144010219500101123X,\x81\x30\x81" + b"440102195001011234"
    assert masking.mask_bytes(raw, bf.ENCODING) == b"\xff\x81" + b"*" * 18 + b",\x81\x30\x81" + \
        b"*" * 18
