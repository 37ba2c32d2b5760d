"""The death registers, simulated: each office writes its extract file as it would, and the
bureau's master system writes the roster of enrolled retirees (digests).

    python -m lifecert_dev.partners.death_registers.simulator \
        extract MZ|GA|WJ INBOX NAME DEATHS.jsonl | raw INBOX NAME FILE |
        roster KEY_FILE ROSTER PEOPLE.jsonl

A death line: {"citizen_id", "name", "birth_date", "date_of_death", "reported_at"} (ISO;
``citizen_id`` may be empty). A person line: {"retiree_id", "citizen_id", "name",
"birth_date"}. Files appear whole: written under a dot-name, then renamed.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

from connectors.death_registers.formats import GA_COLUMNS, MZ_FIELDS
from connectors.death_registers.roster import HEADER, load_key, roster_line
from lifecert.events.time import SHANGHAI


def _fixed(text: str, width: int) -> bytes:
    data = text.encode("gbk")
    if len(data) > width:
        raise ValueError(f"{width} bytes are too few for this value")
    return data + b" " * (width - len(data))


def mz_line(d: dict[str, Any]) -> bytes:
    """One civil affairs line: fixed width, GBK, CRLF."""
    at = datetime.fromisoformat(d["reported_at"]).astimezone(SHANGHAI)
    values = {"身份证号": d["citizen_id"], "姓名": d["name"],
              "出生日期": date.fromisoformat(d["birth_date"]).strftime("%Y%m%d"),
              "死亡日期": date.fromisoformat(d["date_of_death"]).strftime("%Y%m%d"),
              "火化登记时间": at.strftime("%Y%m%d%H%M%S"), "殡仪馆代码": d.get("home", "FS0001")}
    return b"".join(_fixed(values[f], b - a) for f, (a, b) in MZ_FIELDS.items()) + b"\r\n"


def ga_lines(deaths: list[dict[str, Any]]) -> bytes:
    """A public security extract: CSV, UTF-8, a header line."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(GA_COLUMNS)
    for n, d in enumerate(deaths, start=1):
        at = datetime.fromisoformat(d["reported_at"]).astimezone(SHANGHAI)
        writer.writerow([f"ZX{n:08d}", d["citizen_id"], d["name"], d["birth_date"],
                         d["date_of_death"], at.strftime("%Y-%m-%d %H:%M:%S"), "440604001"])
    return out.getvalue().encode("utf-8")


def wj_line(n: int, d: dict[str, Any]) -> bytes:
    """A hospital's death certificate: one JSON object per line."""
    obj = {"cert_no": f"Q{n:09d}", "id_no": d["citizen_id"], "name": d["name"],
           "birth_date": d["birth_date"], "death_time": f"{d['date_of_death']}T06:30:00+08:00",
           "issued_at": d["reported_at"], "hospital": "FS-PEOPLES-1"}
    return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")


def extract(register: str, deaths: list[dict[str, Any]]) -> bytes:
    if register == "MZ":
        return b"".join(mz_line(d) for d in deaths)
    if register == "GA":
        return ga_lines(deaths)
    return b"".join(wj_line(n, d) for n, d in enumerate(deaths, start=1))


def drop(inbox: Path, name: str, content: bytes) -> None:
    tmp = inbox / f".{name}.part"
    tmp.write_bytes(content)
    os.replace(tmp, inbox / name)


def write_roster(key_file: Path, roster: Path, people: list[dict[str, Any]]) -> None:
    digester = load_key(key_file)
    lines = [HEADER + "\n"] + [
        roster_line(digester, p["retiree_id"], p["citizen_id"], p["name"],
                    date.fromisoformat(p["birth_date"])) for p in people]
    tmp = roster.with_name(f".{roster.name}.part")
    tmp.write_text("".join(lines), encoding="utf-8")
    os.replace(tmp, roster)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="death-registers-simulator")
    sub = parser.add_subparsers(dest="action", required=True)
    ex = sub.add_parser("extract", help="an office writes an extract of these deaths")
    ex.add_argument("register", choices=("MZ", "GA", "WJ"))
    ex.add_argument("inbox", type=Path)
    ex.add_argument("name")
    ex.add_argument("deaths", type=Path)
    raw = sub.add_parser("raw", help="drop a file's bytes as they are")
    raw.add_argument("inbox", type=Path)
    raw.add_argument("name")
    raw.add_argument("file", type=Path)
    ro = sub.add_parser("roster", help="the master system writes the roster")
    ro.add_argument("key_file", type=Path)
    ro.add_argument("roster", type=Path)
    ro.add_argument("people", type=Path)
    args = parser.parse_args(argv)
    if args.action == "extract":
        drop(args.inbox, args.name, extract(args.register, _jsonl(args.deaths)))
    elif args.action == "raw":
        drop(args.inbox, args.name, args.file.read_bytes())
    else:
        write_roster(args.key_file, args.roster, _jsonl(args.people))
    return 0


if __name__ == "__main__":
    sys.exit(main())
