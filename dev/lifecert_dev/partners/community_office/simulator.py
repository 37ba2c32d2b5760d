"""The community offices' system, simulated: a process appending certifications to the
log file, as the offices' desk application does.

    python -m lifecert_dev.partners.community_office.simulator append LOG EVENTS.jsonl
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path


def append(log_file: Path, events: list[dict[str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for e in events:
        writer.writerow([e["certification_id"], e["retiree_id"], e["performed_at"],
                         e["recorded_at"], e["agency_id"]])
    with log_file.open("a", encoding="utf-8") as fh:
        fh.write(buffer.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="community-office-simulator")
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("append", help="append the certifications of a JSON-lines file")
    add.add_argument("log_file", type=Path)
    add.add_argument("events", type=Path)
    add.add_argument("--raw", action="store_true", help="append the file's lines verbatim")
    args = parser.parse_args(argv)
    if args.raw:
        with args.log_file.open("ab") as fh:
            fh.write(args.events.read_bytes())
        return 0
    lines = args.events.read_text(encoding="utf-8").splitlines()
    append(args.log_file, [json.loads(line) for line in lines if line.strip()])
    return 0


if __name__ == "__main__":
    sys.exit(main())
