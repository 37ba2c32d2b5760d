"""The Hong Kong assisting bodies' batch file, and the receipt Foshan returns.

In Hong Kong the Federation of Trade Unions (工聯會) and the Home Affairs Department's
district offices (民政事務處) help Foshan retirees living there to certify (channel
HK_AGENCY). Each body collects the day's certifications in a spreadsheet and sends it as
a batch file to Foshan's exchange folder; Foshan answers each file with a receipt.

Batch file: specification (version 1)
=====================================

Name
    ``HKASSIST_<batch id>.csv``; the batch id is 1 to 40 characters from ``0-9 A-Z a-z -``
    and starts with the body's code, e.g. ``HKFTU-20170502-01`` or ``HAD-WCH-20170502``.
    Files are read in name order. A batch id is used once: a file delivered again under a
    name already received, byte for byte the same, is a **duplicate** (no effect; its
    receipt says DUPLICATE); a different file under a used name is refused as a whole.

Delivery
    Write the file under another name (e.g. ``.HKASSIST_<batch id>.csv.part``) and rename
    it when complete (SFTP clients do). A file must be a regular file of at most 32 MiB;
    a symbolic link, a FIFO or any other special file, or a larger file, is refused unread.

Encoding and lines
    **UTF-8 with a byte-order mark** (``EF BB BF``), which is what Excel's "CSV UTF-8"
    writes on a Hong Kong office's Windows PC. Why not Big5-HKSCS: Hong Kong's government
    moved its systems to ISO/IEC 10646 (the HKSCS characters are all in Unicode), Big5
    variants differ between vendors (Microsoft's cp950 lacks HKSCS; a name with 𠮷 or 綫
    may not survive), and a Big5 file is not recognisable as such; the BOM is, so a file
    saved in the wrong encoding is refused as a whole instead of being misread line by
    line. Lines end with CRLF (a bare LF is accepted too).

    line 1           the header (after the BOM)
    lines 2 .. n+1   one certification per line (n >= 0)
    line n+2         the trailer

Header (exactly, Traditional Chinese)::

    表格編號,養老金編號,姓名,認證時間,協助機構代碼,發送時間

Record lines: CSV as in RFC 4180, six fields in the header's order.

    ==============  ==================  ==================================================
    column          meaning             format
    ==============  ==================  ==================================================
    表格編號        form reference      the number printed on the certification form
                                        (1-64 of ``0-9 A-Z a-z . _ -``); it is the
                                        certification's id, and the paper form mailed to
                                        Foshan later is matched by it
    養老金編號      Foshan pension id   e.g. ``FS095160846``
    姓名            retiree's name      up to 50 characters, may be empty; only to help a
                                        person check a receipt, never published
    認證時間        when certified      ``YYYY-MM-DDTHH:MM:SS+08:00`` (Hong Kong time is
                                        +08:00; a time without offset is refused)
    協助機構代碼    assisting office    e.g. ``HKFTU-KWUNTONG`` or ``HAD-WANCHAI``
    發送時間        when sent           as 認證時間: when the body sent the record
    ==============  ==================  ==================================================

No identity card number (a mainland 身份證號碼 or a Hong Kong one such as ``A123456(7)``)
may be sent; a line whose 養老金編號 looks like one is rejected, and Foshan masks any such
number (``*``) in what it keeps of a rejected line or batch.

Trailer (ASCII)::

    #END,<batch id>,<n>,<checksum>

``<n>`` is the number of record lines, ``<checksum>`` the SHA-256 of the bytes of lines
2 .. n+1 exactly as in the file, with their line ends, in lower-case hexadecimal.

What Foshan does with a batch
    A bad header, trailer, count or checksum, a missing BOM, or a used name with other
    content: the batch is **refused as a whole** (none of its lines is used; the file is
    kept in Foshan's ``refused/`` folder; the receipt says why). Otherwise each line is
    taken on its own: a good line becomes one HK_AGENCY certification, a malformed one is
    rejected with its line number, field and reason, and the other lines still count.
    Send a correction of a rejected line in a new batch.

Receipt (Foshan -> body): specification (version 1)
===================================================

For every batch file Foshan writes ``<batch file stem>.receipt.csv`` into the receipts
folder (for a second delivery of a used name: ``<stem>.redrop-<k>.receipt.csv``), UTF-8
with BOM, CRLF, CSV as above. Header::

    行號,表格編號,結果,原因

then one line per record line: its line number, the form reference as read (empty when
unreadable), ``ACCEPTED`` or ``REJECTED`` and, for a rejected line, the reason. Last line::

    #END,<batch id>,<status>,<n>,<accepted>,<rejected>,<reason>

``<status>``: ``ACCEPTED`` (every line), ``PARTIAL`` (some rejected), ``REFUSED`` (the whole
file; ``<reason>`` says why) or ``DUPLICATE`` (the same file again: nothing done again,
``<reason>`` names the first delivery's receipt).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from lifecert.events import bounds, masking

ENCODING = "utf-8"
BOM = b"\xef\xbb\xbf"
EOL = b"\r\n"
# Names are matched whole (``fullmatch``): "$" would accept a name ending in a newline.
NAME_RE = re.compile(r"HKASSIST_([0-9A-Za-z-]{1,40})\.csv")
BATCH_ID_RE = re.compile(r"[0-9A-Za-z-]{1,40}")
TRAILER_TAG = "#END"

# (column as in the header, the name used in events and reasons)
COLUMNS: tuple[tuple[str, str], ...] = (
    ("表格編號", "certification_id"),
    ("養老金編號", "retiree_id"),
    ("姓名", "name"),
    ("認證時間", "performed_at"),
    ("協助機構代碼", "agency_id"),
    ("發送時間", "reported_at"),
)
HEADER = ",".join(column for column, _ in COLUMNS)
RECEIPT_HEADER = "行號,表格編號,結果,原因"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?([+-]\d{2}:\d{2}|Z)$")
# A mainland citizen id number (18 characters, or 15 digits for the first generation), or a
# Hong Kong identity card number (one or two letters, six digits, a check digit or A, the
# check often in brackets), standing alone.
_ID_CARD = r"(?:[0-9]{17}[0-9Xx]|[0-9]{15}|[A-Z]{1,2}[0-9]{6}(?:\([0-9A]\)|[0-9A]))"
_CITIZEN_ID_RE = re.compile(rf"(?<![0-9A-Za-z]){_ID_CARD}(?![0-9A-Za-z])")
_MAX_NAME = 50
FIX = "correct the line and send it again in a new batch"


def file_name(batch_id: str) -> str:
    """The file name of batch ``batch_id``; ``ValueError`` for an id the spec forbids."""
    if not BATCH_ID_RE.fullmatch(batch_id):
        raise ValueError(f"batch id {batch_id!r} must be 1-40 characters of 0-9 A-Z a-z -")
    return f"HKASSIST_{batch_id}.csv"


def batch_id_of(name: str) -> str | None:
    """The batch id of a batch file name, ``None`` for any other name."""
    match = NAME_RE.fullmatch(name)
    return match.group(1) if match else None


def checksum(record_bytes: bytes) -> str:
    return hashlib.sha256(record_bytes).hexdigest()


def csv_line(fields: Sequence[str]) -> str:
    """One CSV line (without its line end), quoting only where RFC 4180 requires it."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(fields)
    return out.getvalue()


# ------------------------------------------------------------------------------- writing


@dataclass(frozen=True, slots=True)
class Row:
    """A record line's six fields as text (times already in the file's format)."""

    certification_id: str
    retiree_id: str
    name: str
    performed_at: str
    agency_id: str
    reported_at: str

    def fields(self) -> tuple[str, ...]:
        return (self.certification_id, self.retiree_id, self.name, self.performed_at,
                self.agency_id, self.reported_at)


def encode_records(lines: Iterable[str]) -> bytes:
    """Record lines (text without line ends) as the bytes of lines 2 .. n+1."""
    return b"".join(line.encode(ENCODING) + EOL for line in lines)


def encode_batch(batch_id: str, records: bytes, *, count: int | None = None,
                 digest: str | None = None) -> bytes:
    """A whole batch file: header, ``records`` (from :func:`encode_records`, or bytes made
    by hand), trailer. ``count``/``digest`` override the trailer's values (for a corrupt
    batch); by default they are computed from ``records``."""
    if count is None:
        count = records.count(b"\n")
    if digest is None:
        digest = checksum(records)
    trailer = f"{TRAILER_TAG},{batch_id},{count},{digest}"
    return BOM + HEADER.encode(ENCODING) + EOL + records + trailer.encode("ascii") + EOL


# ------------------------------------------------------------------------------- reading


class BatchRefused(Exception):
    """The batch as a whole does not follow the spec; ``reason`` says what and where."""

    def __init__(self, reason: str, claimed_count: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.claimed_count = claimed_count


class LineRejected(Exception):
    """One record line is malformed. ``column`` is the header's column name (``None`` when
    the line as a whole is bad)."""

    def __init__(self, line: int, column: str | None, problem: str) -> None:
        self.line = line
        self.column = column
        self.problem = problem
        where = f"line {line}"
        if column is not None:
            where += f", field {column} ({dict(COLUMNS)[column]})"
        self.reason = f"{where}: {problem}; {FIX}"
        super().__init__(self.reason)


@dataclass(frozen=True, slots=True)
class Line:
    number: int  # 1-based line number in the file
    raw: bytes  # with its line end


@dataclass(frozen=True, slots=True)
class Batch:
    batch_id: str
    records: tuple[Line, ...]

    @property
    def last_line(self) -> int:
        """The line number of the last record line (1 when there is none)."""
        return self.records[-1].number if self.records else 1


def split_lines(data: bytes) -> list[bytes]:
    """The file's lines, each with its line end (the last may have none). Splitting the
    bytes is safe: no UTF-8 multi-byte sequence contains the byte 0x0A."""
    lines = data.split(b"\n")
    out = [line + b"\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def read_batch(name: str, data: bytes) -> Batch:
    """Check a batch file's name, header and trailer (count and checksum) and return its
    record lines, unparsed. Raises :class:`BatchRefused`."""
    batch_id = batch_id_of(name)
    if batch_id is None:
        raise BatchRefused(f"{name}: not a batch file name (expected HKASSIST_<batch id>"
                           f".csv)")
    if not data.startswith(BOM):
        raise BatchRefused(f"{name}: the file does not start with the UTF-8 byte-order mark "
                           f"(EF BB BF): saved as Big5 or without BOM? Save it as \"CSV "
                           f"UTF-8\" and send it again under a new batch id")
    lines = split_lines(data[len(BOM):])
    if not lines:
        raise BatchRefused(f"{name}: the file is empty (no header, no trailer)")
    header = _text(lines[0]).removesuffix("\r")
    if header != HEADER:
        # Name the first wrong column, never the line's text: a file sent without its
        # header has a retiree's record (a name) on line 1.
        got, want = header.split(","), [column for column, _ in COLUMNS]
        pairs = enumerate(zip(got, want, strict=False), start=1)
        column = next((n for n, (a, b) in pairs if a != b), min(len(got), len(want)) + 1)
        raise BatchRefused(f"{name} line 1: the header has {len(got)} columns and column "
                           f"{column} is not "
                           f"{want[column - 1] if column <= len(want) else '(nothing)'}; "
                           f"expected {HEADER!r} (UTF-8)")
    if len(lines) < 2:
        raise BatchRefused(f"{name}: no trailer line after the header (file cut short?)")
    trailer_no = len(lines)
    claimed, digest = _trailer(name, trailer_no, lines[-1], batch_id)
    records = lines[1:-1]
    if claimed != len(records):
        raise BatchRefused(
            f"{name} line {trailer_no}: the trailer says {claimed} records but the file has "
            f"{len(records)} record lines (lines 2-{len(records) + 1}); file cut short or "
            f"trailer wrong", claimed)
    actual = checksum(b"".join(records))
    if digest != actual:
        raise BatchRefused(
            f"{name} line {trailer_no}: the trailer's checksum {digest} does not match the "
            f"SHA-256 of record lines 2-{len(records) + 1}, {actual}; the file was changed "
            f"or damaged after the trailer was made", claimed)
    return Batch(batch_id, tuple(Line(i + 2, raw) for i, raw in enumerate(records)))


def _text(raw: bytes) -> str:
    return raw.removesuffix(b"\n").decode(ENCODING, errors="replace")


def _trailer(name: str, number: int, raw: bytes, batch_id: str) -> tuple[int, str]:
    text = _text(raw).removesuffix("\r")
    parts = text.split(",")
    where = f"{name} line {number}"
    if parts[0] != TRAILER_TAG:
        # not quoted: without its trailer, the last line is a record (a name)
        raise BatchRefused(f"{where}: the last line is not a trailer ({TRAILER_TAG},<batch id>"
                           f",<count>,<sha256>) but {len(parts)} fields starting "
                           f"{_show(parts[0], 24)}; file cut short?")
    if len(parts) != 4:
        raise BatchRefused(f"{where}: the trailer has {len(parts)} fields, expected 4 "
                           f"({TRAILER_TAG},<batch id>,<count>,<sha256>)")
    _, trailer_id, count, digest = parts
    if trailer_id != batch_id:
        raise BatchRefused(f"{where}: the trailer names batch {_show(trailer_id, 60)} but "
                           f"the file name says {batch_id!r}")
    if not count.isascii() or not count.isdigit():
        raise BatchRefused(f"{where}: the trailer's record count {_show(count, 40)} is not "
                           f"a number")
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise BatchRefused(f"{where}: the trailer's checksum {_show(digest, 80)} is not 64 "
                           f"lower-case hexadecimal digits (SHA-256); file cut short?",
                           int(count))
    return int(count), digest


def parse_line(line: Line) -> Row:
    """A record line's fields, checked against the spec. Raises :class:`LineRejected`."""
    n = line.number
    body = line.raw.removesuffix(b"\n").removesuffix(b"\r")
    try:
        text = body.decode(ENCODING)
    except UnicodeDecodeError as exc:
        # A comma is never part of a UTF-8 multi-byte sequence: counting them finds the
        # field (unless a quoted field before it holds one).
        index = body[:exc.start].count(b",")
        column = COLUMNS[index][0] if index < len(COLUMNS) else None
        raise LineRejected(n, column, f"bytes {body[exc.start:exc.end].hex(' ')} at byte "
                                      f"{exc.start + 1} of the line are not UTF-8") from None
    if not text.strip():
        raise LineRejected(n, None, "the line is empty")
    if "\r" in text:
        raise LineRejected(n, None, "the line contains a carriage return inside a field")
    try:
        fields = next(csv.reader([text], strict=True))
    except csv.Error as exc:
        raise LineRejected(n, None, f"not a CSV line ({exc})") from None
    if len(fields) != len(COLUMNS):
        raise LineRejected(n, None, f"{len(fields)} fields, expected {len(COLUMNS)} "
                                    f"({HEADER})")
    cert, pension, name, performed, office, reported = fields
    _match(n, "表格編號", cert, "certification_id")
    if _CITIZEN_ID_RE.fullmatch(pension):
        raise LineRejected(n, "養老金編號", "holds what looks like an identity card number "
                           "(身份證號碼), which must not be sent; send the Foshan pension id")
    _match(n, "養老金編號", pension, "retiree_id")
    if len(name) > _MAX_NAME:
        raise LineRejected(n, "姓名", f"{len(name)} characters, at most {_MAX_NAME}")
    _time(n, "認證時間", performed)
    _match(n, "協助機構代碼", office, "agency_id")
    _time(n, "發送時間", reported)
    return Row(cert, pension, name, performed, office, reported)


def _show(value: str, limit: int | None = None) -> str:
    """A value for a reason, with any citizen id number masked (before it is cut to its
    first ``limit`` characters, so that no part of a number is left)."""
    return repr(masking.mask_text(value, hong_kong=True)[:limit])


def show_name(name: str) -> str:
    """A file name for a log line or a reason: quoted, control characters escaped, any
    citizen id number masked."""
    return _show(name)


def _match(n: int, column: str, value: str, id_field: str) -> None:
    """``value`` must be an id of lifecert's kind ``id_field`` (lifecert.events.bounds)."""
    if not value:
        raise LineRejected(n, column, "empty; the field is required")
    pattern, expected = bounds.ID_FIELDS[id_field]
    if not pattern.fullmatch(value):
        raise LineRejected(n, column, f"{_show(value, 80)} is not valid (expected {expected})")


def _time(n: int, column: str, value: str) -> None:
    if not value:
        raise LineRejected(n, column, "empty; the field is required")
    problem = f"{_show(value, 60)} is not a time as YYYY-MM-DDTHH:MM:SS+08:00"
    if not _TIME_RE.match(value):
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?", value):
            problem = f"{value!r} has no UTC offset; write Beijing time with +08:00"
        raise LineRejected(n, column, problem)
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise LineRejected(n, column, f"{problem} (no such date or time)") from None
    try:
        out_of_range = bounds.year_problem(at) or bounds.year_problem(at.astimezone(UTC))
    except OverflowError:  # 0001-01-01T00:00:00+08:00 is before year 1 in UTC
        out_of_range = bounds.year_problem(at) or "out of range"
    if out_of_range:
        raise LineRejected(n, column, f"{_show(value, 60)}: {out_of_range}")


# ------------------------------------------------------------------------------- receipts

ACCEPTED, REJECTED, PARTIAL, REFUSED = "ACCEPTED", "REJECTED", "PARTIAL", "REFUSED"
DUPLICATE = "DUPLICATE"


@dataclass(frozen=True, slots=True)
class ReceiptLine:
    line: int
    certification_id: str
    result: str  # ACCEPTED or REJECTED
    reason: str = ""


def receipt_name(claim_name: str) -> str:
    """``HKASSIST_X.csv`` -> ``HKASSIST_X.receipt.csv`` (also for
    ``...X.redrop-1.csv``)."""
    return claim_name.removesuffix(".csv") + ".receipt.csv"


def encode_receipt(batch_id: str, lines: Sequence[ReceiptLine], *, refused: str | None = None,
                   claimed_count: int | None = None) -> bytes:
    """The receipt of a batch: its lines, or (``refused`` = the reason) a refusal."""
    accepted = sum(1 for r in lines if r.result == ACCEPTED)
    if refused is not None:
        status, count, reason = REFUSED, "" if claimed_count is None else str(claimed_count), \
            refused
        lines, accepted = (), 0
    else:
        status = ACCEPTED if accepted == len(lines) else PARTIAL
        count, reason = str(len(lines)), ""
    text = [RECEIPT_HEADER]
    text += [csv_line((str(r.line), r.certification_id, r.result, r.reason)) for r in lines]
    text.append(csv_line((TRAILER_TAG, batch_id, status, count, str(accepted),
                          str(len(lines) - accepted), reason)))
    return BOM + b"".join(t.encode(ENCODING) + EOL for t in text)


def encode_duplicate_receipt(batch_id: str, first_receipt: str) -> bytes:
    """The receipt of a second delivery of the same file: nothing was done again."""
    text = [RECEIPT_HEADER, csv_line((TRAILER_TAG, batch_id, DUPLICATE, "", "0", "0",
                                      f"the same file was already received; see "
                                      f"{first_receipt}"))]
    return BOM + b"".join(t.encode(ENCODING) + EOL for t in text)


@dataclass(frozen=True, slots=True)
class Receipt:
    batch_id: str
    status: str
    count: str
    accepted: int
    rejected: int
    reason: str
    lines: tuple[ReceiptLine, ...]


def read_receipt(data: bytes) -> Receipt:
    """Parse a receipt (for the body's side, the simulator and tests)."""
    rows = list(csv.reader(io.StringIO(data.removeprefix(BOM).decode(ENCODING), newline="")))
    if not rows or ",".join(rows[0]) != RECEIPT_HEADER:
        raise ValueError(f"not a receipt: first line {rows[:1]!r}")
    tag, batch_id, status, count, accepted, rejected, reason = rows[-1]
    if tag != TRAILER_TAG:
        raise ValueError(f"receipt without trailer: last line {rows[-1]!r}")
    lines = tuple(ReceiptLine(int(r[0]), r[1], r[2], r[3]) for r in rows[1:-1])
    return Receipt(batch_id, status, count, int(accepted), int(rejected), reason, lines)
