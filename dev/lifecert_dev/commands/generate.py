"""``lifecert generate``: write a synthetic 2017 campaign as interchange JSON lines.

    lifecert generate --retirees 100000 --seed 2017 --out data/campaign-100k.jsonl
    lifecert generate --retirees 1000 --out - | head

The output is deterministic: the same ``--retirees`` and ``--seed`` give a byte-identical
file. See :mod:`lifecert_dev.generate` for what the campaign contains.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from lifecert.progress import Progress
from lifecert_dev.generate import CampaignStats, write_campaign, write_campaign_file

# From this many retirees on, progress is shown on stderr while generating.
PROGRESS_THRESHOLD = 50_000


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def register(subparsers: Any) -> None:
    """Add the ``generate`` sub-command to ``subparsers``."""
    parser = subparsers.add_parser(
        "generate",
        help="write a synthetic 2017 certification campaign (JSON lines)",
        description=(
            "Write a realistic synthetic 2017 campaign (enrollments, certifications, paper "
            "forms, deaths, amount changes, with redeliveries and late arrivals) as "
            "interchange JSON lines in log order. Deterministic for a given seed."
        ),
    )
    parser.add_argument("--retirees", type=_count, required=True, metavar="N",
                        help="number of enrolled retirees")
    parser.add_argument("--seed", type=int, default=2017, metavar="S",
                        help="random seed (default 2017)")
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="output file, or - for standard output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate the campaign described by ``args``; return the exit code."""
    retirees: int = args.retirees
    progress = (
        Progress(retirees, "generate", unit="retirees")
        if retirees >= PROGRESS_THRESHOLD
        else None
    )
    advance = progress.advance if progress is not None else None
    try:
        if args.out == "-":
            stats: CampaignStats = write_campaign(sys.stdout.buffer, retirees, args.seed,
                                                  progress=advance)
            sys.stdout.buffer.flush()
        else:
            stats = write_campaign_file(args.out, retirees, args.seed, progress=advance)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python's exit-time flush
        # of stdout from failing again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        if progress is not None:
            progress.close("output closed by the reader")
        return 0
    except OSError as exc:
        if progress is not None:
            progress.close("failed")
        print(f"lifecert generate: cannot write {args.out}: {exc}", file=sys.stderr)
        return 1
    summary = f"{stats.summary()}, {stats.bytes / 1e6:.1f} MB"
    if progress is not None:
        progress.close(summary)
    else:
        print(f"generate: {retirees:,} retirees; {summary}", file=sys.stderr)
    return 0
