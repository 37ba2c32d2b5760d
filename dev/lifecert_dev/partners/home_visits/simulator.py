"""A district home-visit team, as a real process: writes its results file into its folder of
the teams' share (the format of docs/partners/home-visits.md), as the team's office does.

::

    python -m lifecert_dev.partners.home_visits.simulator report --drop DIR --team TEAM \
        [--name NAME] [--malform LINE:COLUMN] REPORTS.jsonl
    python -m lifecert_dev.partners.home_visits.simulator visit --drop DIR \
        --tasks TASKS.jsonl [--seed N]

``report`` writes one file from HomeVisitReported events (interchange JSON lines, with
optional ``phone``, ``address`` and ``date_of_death`` keys the team adds), its
modification time set to the first event's ``recorded_at``. ``visit`` is the demo's team:
for each HomeVisitDue task (JSON lines with ``retiree_id``, ``due_date`` and ``district``)
it visits the retiree and finds them alive (most), not at home, or deceased, decided by a
hash of the retiree id and the seed, one file per district team
(:func:`visit_tasks`). The demo may call :func:`visit_tasks` directly.

Exit codes: 0 done, 1 the file cannot be written, 2 bad input.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from connectors.home_visits.batch import HEADER


def team_of(district: str) -> str:
    """The home-visit team of a Foshan district (the read model's default assignment,
    projections migration 0011)."""
    return f"HV-{district}"


def encode(rows: Iterable[Mapping[str, Any]], malform: tuple[int, str] | None = None) -> bytes:
    """A results file: the header and one line per report. ``malform`` (line, column) puts
    a value no check accepts into that cell (the header is line 1)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    for line, row in enumerate(rows, start=2):
        cells = [str(row.get(column) or "") for column in HEADER]
        if malform is not None and malform[0] == line:
            cells[HEADER.index(malform[1])] = "not-a-value"
        writer.writerow(cells)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def write_file(drop: Path, team: str, name: str, data: bytes, at: datetime) -> Path:
    """Write as the team's office does: a hidden part file, then renamed into place."""
    folder = drop / team
    folder.mkdir(parents=True, exist_ok=True)
    temp = folder / f".{name}.part"
    temp.write_bytes(data)
    stamp = at.timestamp()
    os.utime(temp, (stamp, stamp))
    target = folder / name
    os.replace(temp, target)
    return target


def report(drop: Path, team: str, events: Sequence[Mapping[str, Any]], name: str | None = None,
           malform: tuple[int, str] | None = None) -> Path:
    rows = []
    for n, event in enumerate(events, start=1):
        if event.get("type") != "HomeVisitReported" or event.get("team_id") != team:
            raise ValueError(f"event {n}: not a HomeVisitReported of team {team}")
        died = event.get("date_of_death") or (event["visited_on"]
                                              if event["outcome"] == "DECEASED" else None)
        rows.append({**event, "result": event["outcome"], "date_of_death": died})
    at = datetime.fromisoformat(events[0]["recorded_at"]) if events else datetime.now().astimezone()
    digest = hashlib.sha256(json.dumps(list(events), sort_keys=True, default=str).encode())
    return write_file(drop, team, name or f"visits-{digest.hexdigest()[:12]}.csv",
                      encode(rows, malform), at)


def visit_tasks(drop: Path, tasks: Iterable[Mapping[str, Any]], at: datetime,
                seed: int = 0) -> list[Path]:
    """The demo's district teams: visit each HomeVisitDue task (``retiree_id``,
    ``district``, ``due_date``) and write one results file per team into ``drop``.
    About 90% are found alive (some give a new phone number), 6% not at home, 4%
    deceased (found by the team; the hub sends them to staff review). Visits fall a few
    days before ``at`` (the files' time). Returns the files written."""
    by_team: dict[str, list[dict[str, Any]]] = {}
    for task in tasks:
        h = int(hashlib.sha256(f"{seed}|{task['retiree_id']}".encode()).hexdigest()[:8], 16)
        visited = at.date() - timedelta(days=1 + h % 5)
        outcome = "ALIVE" if h % 50 >= 5 else ("NOT_FOUND" if h % 50 >= 2 else "DECEASED")
        team = team_of(str(task.get("district") or "CHANCHENG"))
        row: dict[str, Any] = {"visit_id": f"V{seed}-{task['retiree_id']}",
                               "retiree_id": task["retiree_id"],
                               "visited_on": visited.isoformat(), "result": outcome}
        if outcome == "DECEASED":
            row["date_of_death"] = (visited - timedelta(days=3 + h % 20)).isoformat()
        if outcome == "ALIVE" and h % 7 == 0:
            row["phone"] = f"0757-8{h % 10_000_000:07d}"
        by_team.setdefault(team, []).append(row)
    return [write_file(drop, team, f"visits-{at.astimezone():%Y%m%d}-{seed}.csv",
                       encode(rows), at) for team, rows in sorted(by_team.items())]


def _lines(source: str) -> list[dict[str, Any]]:
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="home-visits-simulator")
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("report", help="write a results file from HomeVisitReported lines")
    r.add_argument("--drop", type=Path, required=True)
    r.add_argument("--team", required=True)
    r.add_argument("--name")
    r.add_argument("--malform", help="LINE:COLUMN, a cell no check accepts")
    r.add_argument("events")
    v = sub.add_parser("visit", help="visit HomeVisitDue tasks, one file per team")
    v.add_argument("--drop", type=Path, required=True)
    v.add_argument("--tasks", required=True)
    v.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.command == "report":
            malform = None
            if args.malform:
                line, _, column = args.malform.partition(":")
                malform = (int(line), column)
            report(args.drop, args.team, _lines(args.events), args.name, malform)
        else:
            for path in visit_tasks(args.drop, _lines(args.tasks),
                                    datetime.now().astimezone(), args.seed):
                print(path)
    except (ValueError, KeyError) as exc:
        print(f"bad input: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"cannot write the results file: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["encode", "report", "team_of", "visit_tasks", "write_file"]
