"""``lifecert publish EVENTS.jsonl``: put an event log on the events topic, with the clock.

    lifecert publish data/campaign.jsonl                     # events + clock ticks
    lifecert publish data/campaign.jsonl --until 2017-06-20  # + the moments due by then
    lifecert publish day.jsonl --no-ticks                    # events only

Malformed lines go to the dead-letters topic (and, with ``--dead-letters FILE``, to a local
file too) and the run goes on. Exit codes: 0 every record acknowledged by the broker (dead
letters included); 1 the broker is unreachable, refused a record, or a topic is missing;
2 bad arguments (no such file, unknown policy).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import psycopg2

from lifecert.commands.args import EXIT_FAILED, EXIT_USAGE, iso_date
from lifecert.commands.topics import add_broker_arguments
from lifecert.datakeys import KeyStoreError
from lifecert.domain.policy import PolicyError, load_policy
from lifecert.endpoints import kafka_bootstrap
from lifecert.keystore.master import MasterKeyError
from lifecert.keystore.postgres import open_keystore
from lifecert.pipeline import broker_errors
from lifecert.pipeline.publish import publish_file
from lifecert.pipeline.topics import layout
from lifecert.progress import Progress


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "publish",
        help="publish a JSON-lines event log to the events topic, with clock ticks",
        description=(
            "Read events (JSON lines, in log order), give each an event_id and recorded_at "
            "where missing, and produce them to the events topic keyed by retiree id. Each "
            "clock moment of the policy is written as a ClockTick into every partition "
            "where replay decides it (before the first event recorded at or after it), and "
            "recorded on the clock topic. Malformed lines go to the dead-letters topic."
        ),
    )
    parser.add_argument("events", type=Path, help="event log, one JSON object per line")
    parser.add_argument("--policy", default="foshan-2017", help="policy name or .toml path")
    add_broker_arguments(parser)
    ticks = parser.add_mutually_exclusive_group()
    ticks.add_argument(
        "--no-ticks", action="store_true",
        help="publish the events only, no clock ticks (see `lifecert clock advance`)",
    )
    ticks.add_argument(
        "--until", type=iso_date, metavar="YYYY-MM-DD",
        help="at the end, also write the moments due by the end of this day (Asia/Shanghai)",
    )
    parser.add_argument(
        "--dead-letters", type=Path, metavar="FILE",
        help="also write malformed lines to FILE (JSON lines: line, field, reason, raw)",
    )
    parser.add_argument(
        "--dead-letters-only-file", action="store_true",
        help="with --dead-letters: write malformed lines to FILE only, not to the topic",
    )
    parser.add_argument(
        "--keys-dsn", metavar="DSN",
        help="PostgreSQL DSN of the key store that seals personal fields (default: "
             "$LIFECERT_KEYS_DSN, else $LIFECERT_POSTGRES_DSN, else the local stack); the "
             "master key is $LIFECERT_PERSONAL_KEY, else data/keys/personal-data.key",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.dead_letters_only_file and args.dead_letters is None:
        print("lifecert publish: --dead-letters-only-file needs --dead-letters FILE",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        policy = load_policy(args.policy)
    except PolicyError as exc:
        print(f"lifecert publish: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not args.events.is_file():
        print(f"lifecert publish: no such file: {args.events}", file=sys.stderr)
        return EXIT_USAGE
    bootstrap = kafka_bootstrap(args.bootstrap)
    try:
        keys = open_keystore(args.keys_dsn)
    except (KeyStoreError, MasterKeyError, psycopg2.Error) as exc:
        print(f"lifecert publish: the key store of personal data: {exc}", file=sys.stderr)
        return EXIT_FAILED
    progress = (
        None if args.quiet else Progress(args.events.stat().st_size, "publish", unit="bytes")
    )
    try:
        stats = publish_file(
            args.events,
            policy,
            bootstrap=bootstrap,
            layout=layout(args.prefix),
            ticks=not args.no_ticks,
            until=args.until,
            dead_letter_topic=not args.dead_letters_only_file,
            dead_letters_file=args.dead_letters,
            on_bytes=progress.advance if progress is not None else None,
            keys=keys,
        )
    except (broker_errors.KafkaUnavailable, broker_errors.TopicProblem, KeyStoreError) as exc:
        if progress is not None:
            progress.close("failed")
        print(f"lifecert publish: {exc}", file=sys.stderr)
        print("lifecert publish: the log may be published in part. Publishing the file again "
              "re-sends it: lines with an event_id are duplicates the pipeline applies once; "
              "lines without one get new ids", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:
        if progress is not None:
            progress.close("failed")
        print(f"lifecert publish: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        keys.close()
    if progress is not None:
        progress.close(f"{stats.events:,} events")
    if args.json:
        print(json.dumps(stats.as_dict(), indent=2))
    else:
        print(stats.describe())
    return 0
