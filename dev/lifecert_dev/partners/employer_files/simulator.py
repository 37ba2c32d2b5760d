"""A managing unit's clerk, as the real process that writes certification batches.

::

    python -m lifecert_dev.partners.employer_files.simulator drop --drop DIR --unit UNIT \
        --name FILE [--format gbk-csv|utf8-csv|xlsx] [--mtime ISO] [--malform ROW:COLUMN]
        EVENTS.jsonl
    python -m lifecert_dev.partners.employer_files.simulator results DIR

``drop`` writes one batch from interchange JSON lines (``-`` = stdin), each a
CertificationRecorded with channel EMPLOYER_BATCH, into ``DIR/UNIT/FILE``, the way units
do it (docs/partners/employer-files.md, "What units really send"):

- ``gbk-csv`` (the default): what Excel on a Chinese Windows writes with "CSV (逗号分隔)":
  GBK (read as GB18030), CRLF, no byte-order mark, dates as ``2017/4/5``;
- ``utf8-csv``: Excel's "CSV UTF-8": a byte-order mark, CRLF, dates ``2017-04-05``;
- ``xlsx``: a workbook (openpyxl) with date cells and the ids as text cells.

Each row gets a made-up name and a made-up citizen id number with a valid check digit,
stable for the retiree id (the simulator has no real people). The file is written under a
hidden ``.FILE.part`` name and renamed when complete, as the share's upload page does; its
modification time is ``--mtime`` (the kit's ``recorded_at``) or now. ``--malform 3:认证日期``
damages that column of the 3rd data row (``fields`` drops a column).

``results`` prints one JSON line per result file found under DIR.

Exit codes: 0 done, 1 the drop folder is unavailable, 2 bad input.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import sys
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from connectors.employer_files import batch as eb
from lifecert.events.interchange import MalformedEvent, parse_event
from lifecert.events.time import SHANGHAI

FORMATS = ("gbk-csv", "utf8-csv", "xlsx")
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华建国志红玉梅德福"


class InputError(Exception):
    """The JSON lines or the options are not what ``drop`` takes (exit code 2)."""


def made_up_name(retiree_id: str) -> str:
    h = hashlib.sha256(retiree_id.encode()).digest()
    return _SURNAMES[h[0] % len(_SURNAMES)] + _GIVEN[h[1] % len(_GIVEN)] + \
        (_GIVEN[h[2] % len(_GIVEN)] if h[3] % 3 else "")


def made_up_citizen_id(retiree_id: str) -> str:
    """A citizen id number of Chancheng (440604) with a valid GB 11643 check character."""
    h = int.from_bytes(hashlib.sha256(b"cid" + retiree_id.encode()).digest()[:8], "big")
    born = date(1930 + h % 26, 1 + (h >> 8) % 12, 1 + (h >> 16) % 28)
    body = f"440604{born:%Y%m%d}{(h >> 24) % 1000:03d}"
    total = sum(int(d) * w for d, w in zip(body, (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5,
                                                  8, 4, 2), strict=True))
    return body + "10X98765432"[total % 11]


def rows_of(events: Sequence[dict[str, Any]], fmt: str) -> list[list[Any]]:
    rows = []
    for n, event in enumerate(events, start=1):
        try:
            parsed = parse_event(dict(event), allowed=("CertificationRecorded",))
        except MalformedEvent as exc:
            raise InputError(f"event {n}: {exc.describe()}") from None
        if parsed["channel"] != "EMPLOYER_BATCH":
            raise InputError(f"event {n}: channel {parsed['channel']}, not EMPLOYER_BATCH")
        day = parsed["performed_at"].astimezone(SHANGHAI).date()
        when: Any = day if fmt == "xlsx" else (
            f"{day.year}/{day.month}/{day.day}" if fmt == "gbk-csv" else day.isoformat())
        rows.append([n, parsed["certification_id"], parsed["retiree_id"],
                     made_up_name(parsed["retiree_id"]),
                     made_up_citizen_id(parsed["retiree_id"]), when])
    return rows


def malform(rows: list[list[Any]], spec: str) -> None:
    number, _, column = spec.partition(":")
    try:
        row = rows[int(number) - 1]
    except (ValueError, IndexError):
        raise InputError(f"--malform {spec}: no data row {number}") from None
    if column == "fields":
        row.pop()
    elif column in eb.HEADER:
        row[eb.HEADER.index(column)] = {"认证日期": "2017-02-30", "公民身份号码": "4.40604E+17"} \
            .get(column, "not valid!")
    else:
        raise InputError(f"--malform {spec}: column must be one of {', '.join(eb.HEADER)} "
                         "or fields")


def encode(rows: list[list[Any]], fmt: str) -> bytes:
    if fmt == "xlsx":
        import openpyxl  # type: ignore[import-untyped]

        book = openpyxl.Workbook()
        sheet = book.active
        sheet.title = "认证名单"
        sheet.append(list(eb.HEADER))
        for row in rows:
            sheet.append(row)
        for cells in sheet.iter_rows(min_row=2):
            for cell in cells[1:5]:
                cell.number_format = "@"  # text: ids keep every digit
            cells[5].number_format = "yyyy-mm-dd"
        out = io.BytesIO()
        book.save(out)
        return out.getvalue()
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(eb.HEADER)
    writer.writerows(rows)
    if fmt == "gbk-csv":
        return text.getvalue().encode("gbk")
    return eb.UTF8_BOM + text.getvalue().encode("utf-8")


def drop(folder: Path, name: str, data: bytes, mtime: datetime | None = None) -> Path:
    """Write ``data`` as ``folder/name`` under a hidden name, then rename it."""
    folder.mkdir(parents=True, exist_ok=True)
    temp = folder / f".{name}.part"
    target = folder / name
    with temp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    if mtime is not None:
        ns = int(mtime.timestamp()) * 1_000_000_000
        os.utime(temp, ns=(ns, ns))
    os.replace(temp, target)
    return target


def _read_events(source: str) -> list[dict[str, Any]]:
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    try:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: not JSON lines ({exc})") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="employer-files-simulator")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("drop", help="write one batch into a unit's folder")
    d.add_argument("--drop", type=Path, required=True)
    d.add_argument("--unit", required=True)
    d.add_argument("--name", required=True)
    d.add_argument("--format", choices=FORMATS, default="gbk-csv")
    d.add_argument("--mtime", type=datetime.fromisoformat)
    d.add_argument("--malform", action="append", default=[])
    d.add_argument("events")
    r = sub.add_parser("results", help="print the result files as JSON lines")
    r.add_argument("outbox", type=Path)
    args = parser.parse_args(argv)
    if args.command == "results":
        for path in sorted(args.outbox.rglob("*.result.csv")):
            lines = path.read_bytes().decode("utf-8-sig").splitlines()
            print(json.dumps({"file": str(path), "lines": lines}, ensure_ascii=False))
        return 0
    if not args.drop.is_dir():
        print(f"drop folder {args.drop} is not there (share not mounted?)", file=sys.stderr)
        return 1
    try:
        rows = rows_of(_read_events(args.events), args.format)
        for spec in args.malform:
            malform(rows, spec)
    except InputError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    drop(args.drop / args.unit, args.name, encode(rows, args.format), args.mtime)
    return 0


if __name__ == "__main__":
    sys.exit(main())
