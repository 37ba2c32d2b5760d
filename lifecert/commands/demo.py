"""``lifecert demo``: the main job of the README, for now offline.

Generates a campaign, replays it with progress and prints the summary. (The live-pipeline
work turns this into Kafka -> faust -> PostgreSQL.)
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from lifecert.domain.policy import load_policy
from lifecert.generate import write_campaign_file
from lifecert.progress import Progress
from lifecert.replay import replay_file
from lifecert.summary import CampaignCounters, InstructionTotals, render


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="generate a campaign, replay it and print the summary"
    )
    parser.add_argument("--retirees", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=2017)
    parser.add_argument("--work-dir", type=Path, default=Path("data/demo"))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    work: Path = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    events = work / "events.jsonl"
    print(f"[1/2] generating a campaign of {args.retirees:,} retirees -> {events}", file=sys.stderr)
    with Progress(args.retirees, "generate", unit="retirees") as progress:
        write_campaign_file(events, args.retirees, args.seed, progress=progress.advance)
    print("[2/2] replaying it under policy foshan-2017 until 2017-12-31", file=sys.stderr)
    progress = Progress(events.stat().st_size, "replay", unit="bytes")
    totals = InstructionTotals()
    campaign, stats = replay_file(
        events, load_policy("foshan-2017"), work / "out",
        until=date(2017, 12, 31), dead_letters=work / "dead-letters.jsonl",
        on_line=progress.advance, on_instruction=totals,
    )
    progress.close()
    print()
    print(f"lifecert demo: campaign 2017 of {args.retirees:,} retirees, "
          f"{stats.decided:,} events decided, {stats.rejected:,} rejected")
    print()
    print(render(CampaignCounters.from_states("foshan-2017", campaign.retirees.values(), totals)))
    print()
    print(f"Files: {work / 'out'}/instructions.jsonl, status.csv, rejections.jsonl")
    return 0
