"""The Hong Kong assisting bodies (FTU, district offices), as the real process that sends
batch files.

::

    python -m lifecert_dev.partners.hk_assist.simulator drop --inbox DIR --batch-id ID \
        FILE.jsonl [--corrupt count|checksum|batch-id|no-trailer|no-bom]
        [--malform RECORD:FIELD ...]
    python -m lifecert_dev.partners.hk_assist.simulator serve --inbox DIR --spool DIR
        [--every SECONDS] [--receipts DIR]
    python -m lifecert_dev.partners.hk_assist.simulator receipts DIR

``drop`` writes one batch (format: :mod:`connectors.hk_assist.batchfile`) from interchange
JSON lines (``-`` = stdin): each a CertificationRecorded with channel HK_AGENCY and
``recorded_at`` (when the body sent it); its ``certification_id`` is the form reference; an
optional ``name`` fills 姓名 (else a made-up Traditional Chinese name). It writes
``.<name>.part`` in the inbox and renames it when complete, as an SFTP upload would.
``--corrupt`` damages the file as a whole (``no-bom``: saved without the byte-order mark);
``--malform 3:認證時間`` damages one field of the 3rd record (the column's Chinese or
English name, ``fields`` for a missing field, ``encoding`` for bytes that are not UTF-8).
Dropping the same JSON lines under the same batch id again delivers the same file twice.

``serve`` is the daily job the demo starts with a generated population: every ``--every``
seconds it drops the next ``<batch id>.jsonl`` of the spool folder (name order) and moves
it to ``spool/sent/``; with ``--receipts`` it reports each receipt that appears. It stops
on SIGTERM or Ctrl-C. ``receipts`` prints one JSON line per receipt in DIR.

Exit codes: 0 done, 1 the inbox is unavailable or the batch is already there, 2 bad input.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sys
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from connectors.hk_assist import batchfile as bf
from lifecert.events.interchange import MalformedEvent, parse_event
from lifecert.events.time import isoformat_local

CORRUPTIONS = ("count", "checksum", "batch-id", "no-trailer", "no-bom")
_COLUMN = {**{zh: zh for zh, _ in bf.COLUMNS}, **{en: zh for zh, en in bf.COLUMNS}}
_SURNAMES = "陳李張黃何梁林劉吳鄭王楊麥郭葉謝羅曾蕭馮鄧蔡盧周朱余"
_GIVEN = "偉芳娜秀英敏靜麗強嘉俊詠欣家豪志明淑儀國華美玲綫𠮷"


class InputError(Exception):
    """The JSON lines or the options are not what ``drop`` takes (exit code 2)."""


def made_up_name(retiree_id: str) -> str:
    """A stable pseudonymous name for a retiree id (the simulator has no real names)."""
    h = hashlib.sha256(retiree_id.encode()).digest()
    given = _GIVEN[h[1] % len(_GIVEN)] + (_GIVEN[h[2] % len(_GIVEN)] if h[3] % 3 else "")
    return _SURNAMES[h[0] % len(_SURNAMES)] + given


def rows_of(lines: Iterable[str], source: str) -> list[bf.Row]:
    """Batch rows from interchange JSON lines; InputError naming the line and field."""
    rows = []
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{source} line {number}: not JSON ({exc.msg})") from None
        name = obj.pop("name", None) if isinstance(obj, dict) else None
        try:
            event = parse_event(obj)
        except MalformedEvent as exc:
            raise InputError(f"{source} {exc.at_line(number).describe()}") from None
        if event["type"] != "CertificationRecorded" or event["channel"] != "HK_AGENCY":
            raise InputError(f"{source} line {number}: the bodies report only "
                             f"CertificationRecorded with channel HK_AGENCY, got "
                             f"{event['type']} {event.get('channel', '')}".rstrip())
        rows.append(bf.Row(
            certification_id=event["certification_id"],
            retiree_id=event["retiree_id"],
            name=name if isinstance(name, str) else made_up_name(event["retiree_id"]),
            performed_at=isoformat_local(event["performed_at"]),
            agency_id=event["agency_id"],
            reported_at=isoformat_local(event["recorded_at"]),
        ))
    return rows


def _malformed(row: bf.Row, field: str) -> bytes:
    """The bytes of a record line whose ``field`` breaks the spec."""
    fields = list(row.fields())
    if field == "fields":
        return bf.csv_line(fields[:-1]).encode(bf.ENCODING)
    if field == "encoding":
        before = bf.csv_line(fields[:2]).encode(bf.ENCODING)
        after = bf.csv_line(fields[3:]).encode(bf.ENCODING)
        return before + b",\xff\xfe," + after
    column = _COLUMN[field]
    index = [zh for zh, _ in bf.COLUMNS].index(column)
    fields[index] = {
        "表格編號": "",
        "養老金編號": "A123456(7)",
        "姓名": "名" * 60,
        "認證時間": "2017-02-30T09:00:00+08:00",
        "協助機構代碼": "",
        "發送時間": "2017-06-31T10:00:00+08:00",
    }[column]
    return bf.csv_line(fields).encode(bf.ENCODING)


def parse_malform(spec: str) -> tuple[int, str]:
    record, sep, field = spec.partition(":")
    if not sep or not record.isdigit() or int(record) < 1 or \
            field not in {*_COLUMN, "fields", "encoding"}:
        raise InputError(f"--malform {spec!r}: expected RECORD:FIELD with RECORD a record "
                         f"number from 1 and FIELD one of {', '.join(_COLUMN)}, fields, "
                         f"encoding")
    return int(record), field


def batch_bytes(batch_id: str, rows: Sequence[bf.Row], *, corrupt: str | None = None,
                malform: dict[int, str] | None = None) -> bytes:
    """The whole batch file, possibly damaged as asked."""
    malform = malform or {}
    for record in malform:
        if record > len(rows):
            raise InputError(f"--malform {record}: the batch has only {len(rows)} records")
    lines = [
        _malformed(row, malform[i]) if i in malform
        else bf.csv_line(row.fields()).encode(bf.ENCODING)
        for i, row in enumerate(rows, 1)
    ]
    records = b"".join(line + bf.EOL for line in lines)
    if corrupt is None:
        return bf.encode_batch(batch_id, records)
    if corrupt == "count":
        return bf.encode_batch(batch_id, records, count=len(rows) + 1)
    if corrupt == "checksum":
        return bf.encode_batch(batch_id, records, digest=bf.checksum(records + b"x"))
    if corrupt == "batch-id":
        return bf.encode_batch(batch_id + "-X", records)
    if corrupt == "no-trailer":
        return bf.BOM + bf.HEADER.encode(bf.ENCODING) + bf.EOL + records
    if corrupt == "no-bom":
        return bf.encode_batch(batch_id, records).removeprefix(bf.BOM)
    raise InputError(f"--corrupt {corrupt!r}: expected one of {', '.join(CORRUPTIONS)}")


def drop(inbox: Path, batch_id: str, data: bytes) -> Path:
    """Write the batch into the inbox under a temporary name, then rename it."""
    if not inbox.is_dir():
        raise FileNotFoundError(f"inbox {inbox} is not a folder (share not mounted?)")
    target = inbox / bf.file_name(batch_id)
    if target.exists():
        raise FileExistsError(f"{target} is already in the inbox (not collected yet); "
                              f"use a new batch id")
    temp = inbox / f".{target.name}.part"
    with temp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(temp, target)
    return target


def _cmd_drop(args: argparse.Namespace) -> int:
    try:
        bf.file_name(args.batch_id)
        malform = dict(parse_malform(spec) for spec in args.malform)
        if args.file == "-":
            rows = rows_of(sys.stdin, "stdin")
        else:
            with open(args.file, encoding="utf-8") as f:
                rows = rows_of(f, args.file)
        data = batch_bytes(args.batch_id, rows, corrupt=args.corrupt, malform=malform)
    except (InputError, ValueError, OSError) as exc:
        print(f"simulator drop: {exc}", file=sys.stderr)
        return 2
    try:
        path = drop(Path(args.inbox), args.batch_id, data)
    except OSError as exc:
        print(f"simulator drop: {exc}", file=sys.stderr)
        return 1
    print(f"dropped {path.name}: {len(rows)} records, {len(data):,} bytes"
          + (f", trailer corrupted ({args.corrupt})" if args.corrupt else "")
          + (f", malformed records {sorted(malform)}" if malform else ""))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    spool, inbox = Path(args.spool), Path(args.inbox)
    sent = spool / "sent"
    sent.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    print(f"hk-assist simulator: dropping {spool}/*.jsonl into {inbox} every {args.every} s",
          file=sys.stderr, flush=True)
    while not stop.is_set():
        pending = sorted(spool.glob("*.jsonl"))
        if pending:
            item = pending[0]
            try:
                with item.open(encoding="utf-8") as f:
                    rows = rows_of(f, str(item))
                path = drop(inbox, item.stem, batch_bytes(item.stem, rows))
                item.rename(sent / item.name)
                print(f"dropped {path.name}: {len(rows)} records", file=sys.stderr, flush=True)
            except (InputError, ValueError) as exc:
                print(f"skipping {item.name}: {exc}", file=sys.stderr, flush=True)
                item.rename(sent / (item.name + ".bad"))
            except OSError as exc:  # inbox away: try again next day
                print(f"cannot drop {item.name}: {exc}", file=sys.stderr, flush=True)
        if args.receipts:
            for line in _receipt_summaries(Path(args.receipts), seen):
                print(line, file=sys.stderr, flush=True)
        stop.wait(args.every)
    return 0


def _receipt_summaries(folder: Path, seen: set[str]) -> list[str]:
    out: list[str] = []
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.receipt.csv")):
        if path.name in seen:
            continue
        seen.add(path.name)
        out.append(json.dumps(_summary(path), ensure_ascii=False))
    return out


def _summary(path: Path) -> dict[str, Any]:
    receipt = bf.read_receipt(path.read_bytes())
    return {
        "receipt": path.name, "batch_id": receipt.batch_id, "status": receipt.status,
        "records": receipt.count, "accepted": receipt.accepted, "rejected": receipt.rejected,
        "reason": receipt.reason,
        "rejected_lines": [{"line": r.line, "certification_id": r.certification_id,
                            "reason": r.reason} for r in receipt.lines if r.result != bf.ACCEPTED],
    }


def _cmd_receipts(args: argparse.Namespace) -> int:
    for line in _receipt_summaries(Path(args.folder), set()):
        print(line)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m "
                                     "lifecert_dev.partners.hk_assist.simulator",
                                     description="The Hong Kong assisting bodies: drop "
                                                 "batch files into Foshan's inbox.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("drop", help="drop one batch file built from interchange JSON lines")
    p.add_argument("--inbox", required=True, help="the inbox folder (drop target)")
    p.add_argument("--batch-id", required=True,
                   help="batch id (name-ordered), e.g. HKFTU-20170502-01")
    p.add_argument("--corrupt", choices=CORRUPTIONS,
                   help="damage the file as a whole (trailer, BOM)")
    p.add_argument("--malform", action="append", default=[], metavar="RECORD:FIELD",
                   help="damage FIELD of the RECORD-th record (repeatable)")
    p.add_argument("file", help="interchange JSON lines, or - for stdin")
    p.set_defaults(run=_cmd_drop)
    p = sub.add_parser("serve", help="drop one spooled batch every day (every N seconds)")
    p.add_argument("--inbox", required=True)
    p.add_argument("--spool", required=True, help="folder of <batch id>.jsonl files to send")
    p.add_argument("--every", type=float, default=10.0, help="seconds per day (default 10)")
    p.add_argument("--receipts", help="receipts folder to report on")
    p.set_defaults(run=_cmd_serve)
    p = sub.add_parser("receipts", help="print the receipts of a folder as JSON lines")
    p.add_argument("folder")
    p.set_defaults(run=_cmd_receipts)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
