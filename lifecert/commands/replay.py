"""``lifecert replay``: recompute every decision from an event log."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from lifecert.commands.args import iso_date
from lifecert.domain.policy import PolicyError, load_policy
from lifecert.events.time import SHANGHAI
from lifecert.progress import Progress
from lifecert.replay import (
    AssistanceTotals,
    ReplayError,
    ReplayStats,
    jsonl_writer,
    replay_assistance,
    replay_file,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="decide a JSON-lines event log offline",
        description=(
            "Read events (JSON lines, in log order), decide those recorded up to the end of "
            "the --until day (Asia/Shanghai) with every clock moment due, and write "
            "instructions.jsonl, status.csv, rejections.jsonl, verdicts.jsonl and retirees.csv "
            "(what `lifecert report --replay` reads) into --out. With --assistance, also fold "
            "the assistance topic's dump (`lifecert log dump --topic assistance_results`) "
            "into assistance.csv, the same cases the read model projects, overdue judged on "
            "--until (default: today, Asia/Shanghai)."
        ),
    )
    parser.add_argument("events", type=Path, help="event log, one JSON object per line")
    parser.add_argument("--policy", default="foshan-2017", help="policy name or .toml path")
    parser.add_argument("--until", type=iso_date, help="last day decided, YYYY-MM-DD")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--dead-letters", type=Path, metavar="FILE",
        help="write malformed lines here with their reason and go on (default: stop)",
    )
    parser.add_argument(
        "--assistance", type=Path, metavar="FILE",
        help="the assistance topic as JSON lines: fold its cases into assistance.csv",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress or summary")
    parser.set_defaults(func=run)



def run(args: argparse.Namespace) -> int:
    try:
        policy = load_policy(args.policy)
    except PolicyError as exc:
        print(f"lifecert replay: {exc}", file=sys.stderr)
        return 2
    for path in (args.events, args.assistance):
        if path is not None and not path.is_file():
            print(f"lifecert replay: no such file: {path}", file=sys.stderr)
            return 2
    progress = None if args.quiet else Progress(args.events.stat().st_size, "replay", unit="bytes")
    try:
        _, stats = replay_file(
            args.events, policy, args.out,
            until=args.until, dead_letters=args.dead_letters,
            on_line=progress.advance if progress is not None else None,
        )
    except ReplayError as exc:
        if progress is not None:
            progress.close()
        print(f"lifecert replay: {exc}", file=sys.stderr)
        return 1
    if progress is not None:
        progress.close()
    totals = None
    if args.assistance is not None:
        try:
            totals = _assistance(args)
        except ReplayError as exc:
            print(f"lifecert replay: {exc}", file=sys.stderr)
            return 1
    if not args.quiet:
        print(summary(stats, args.out, totals), file=sys.stderr)
    return 0


def _assistance(args: argparse.Namespace) -> AssistanceTotals:
    as_of = args.until or datetime.now(SHANGHAI).date()
    if args.dead_letters is None:
        return replay_assistance(args.assistance, args.out, as_of)[1]
    with args.dead_letters.open("a", encoding="utf-8") as dead:
        return replay_assistance(args.assistance, args.out, as_of,
                                 on_dead_letter=jsonl_writer(dead))[1]


def summary(stats: ReplayStats, out: Path, totals: AssistanceTotals | None = None) -> str:
    parts = [
        f"decided {stats.decided} of {stats.lines} lines "
        f"({stats.rejected} rejected, {stats.verdicts} verdicts, "
        f"{stats.dead_lettered} dead-lettered, "
        f"{stats.skipped_after_until} after --until)",
        f"{stats.instructions} instructions: "
        + (", ".join(f"{k} {v}" for k, v in sorted(stats.by_instruction.items())) or "none"),
    ]
    if totals is not None:
        parts.append(f"assistance cases: in {totals.inbound}, out {totals.outbound}, "
                     f"answered {totals.answered}, overdue {totals.overdue} "
                     f"(on {totals.as_of.isoformat()})")
    parts.append(f"written to {out}/")
    return "\n".join(parts)
