"""``lifecert clock advance --to DAY``: publish the clock moments due by the end of DAY.

    lifecert clock advance --to 2017-06-20      # the home-visit sweep and the deadline

Reads the clock topic to its end to learn which moments of the policy were published
already, and publishes the others that fall at or before the end of DAY (Asia/Shanghai):
a ClockTick into every partition of the events topic, then a record on the clock topic.
Running it twice publishes nothing new. Exit codes: 0 success; 1 the broker is unreachable
or refused, or a topic is missing; 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from lifecert.commands.args import EXIT_FAILED, EXIT_USAGE, iso_date
from lifecert.commands.topics import add_broker_arguments
from lifecert.domain.policy import Policy, PolicyError, load_policy
from lifecert.endpoints import kafka_bootstrap
from lifecert.events.time import isoformat_local
from lifecert.pipeline import broker_errors
from lifecert.pipeline.campaign_clock import ClockFileError, clock_of
from lifecert.pipeline.scheduler import advance
from lifecert.pipeline.topics import layout


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "clock",
        help="publish the campaign clock's moments (advance, run)",
        description="The campaign clock of the live pipeline: time is an event.",
    )
    actions = parser.add_subparsers(dest="clock_action", required=True, metavar="ACTION")
    adv = actions.add_parser(
        "advance",
        help="publish the moments due by the end of a day that are not published yet",
        description=(
            "Publish every clock moment of the policy at or before the end of --to "
            "(Asia/Shanghai) that the clock topic does not show as published: a ClockTick "
            "into every partition of the events topic, and a record on the clock topic. "
            "Idempotent."
        ),
    )
    adv.add_argument("--to", type=iso_date, required=True, metavar="YYYY-MM-DD",
                     help="last day whose moments are due")
    adv.add_argument("--policy", default="foshan-2017", help="policy name or .toml path")
    add_broker_arguments(adv)
    adv.add_argument("--json", action="store_true", help="print the result as JSON")
    adv.set_defaults(func=run_advance)

    follow = actions.add_parser(
        "run",
        help="the scheduler: publish each moment when the wall clock reaches it",
        description=(
            "Follow the wall clock: every --interval seconds, publish the policy's moments "
            "whose instant has passed and that the clock topic does not show as published "
            "(as `advance` does). Runs until SIGTERM or SIGINT."
        ),
    )
    follow.add_argument("--policy", default="foshan-2017", help="policy name or .toml path")
    follow.add_argument("--interval", type=float, default=30.0, metavar="SECONDS",
                        help="seconds between looks at the clock (default 30)")
    follow.add_argument("--now", type=_instant, metavar="ISO-TIME",
                        help="pretend the wall clock shows this instant (tests, drills)")
    follow.add_argument("--clock-file", type=Path, metavar="PATH",
                        help="follow a campaign clock instead of the wall clock (the file "
                        "`lifecert sandbox create` writes; lifecert/pipeline/campaign_clock.py)")
    add_broker_arguments(follow)
    follow.set_defaults(func=run_follow)


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 time with offset, e.g. 2017-06-21T00:00:00+08:00, got {text!r}"
        )
    return value


def _policy(name: str) -> Policy | None:
    """The policy, or ``None`` after saying why it cannot be loaded."""
    try:
        return load_policy(name)
    except PolicyError as exc:
        print(f"lifecert clock: {exc}", file=sys.stderr)
        return None


def run_follow(args: argparse.Namespace) -> int:
    policy = _policy(args.policy)
    if policy is None:
        return EXIT_USAGE
    try:
        clock = clock_of(args.clock_file)
    except ClockFileError as exc:
        print(f"lifecert clock: {exc}", file=sys.stderr)
        return EXIT_USAGE
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    bootstrap, topics = kafka_bootstrap(args.bootstrap), layout(args.prefix)
    which = (f"the campaign clock of {args.clock_file}" if args.clock_file else "the wall clock")
    print(f"lifecert clock: following {which} for {policy.name}", file=sys.stderr)
    while not stop.is_set():
        now = args.now or clock()
        try:
            result = advance(bootstrap, topics, policy, now)
        except (broker_errors.KafkaUnavailable, broker_errors.TopicProblem) as exc:
            print(f"lifecert clock: {exc}; trying again", file=sys.stderr)
        else:
            for moment in result.published:
                print(f"lifecert clock: published {moment.kind} of {isoformat_local(moment.at)}",
                      file=sys.stderr, flush=True)
        stop.wait(args.interval)
    return 0


def run_advance(args: argparse.Namespace) -> int:
    policy = _policy(args.policy)
    if policy is None:
        return EXIT_USAGE
    try:
        result = advance(kafka_bootstrap(args.bootstrap), layout(args.prefix),
                         policy, args.to)
    except (broker_errors.KafkaUnavailable, broker_errors.TopicProblem) as exc:
        print(f"lifecert clock: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        def moments(ms: tuple[Any, ...]) -> list[dict[str, str]]:
            return [{"moment": m.kind, "at": isoformat_local(m.at)} for m in ms]

        print(json.dumps({
            "policy": result.policy,
            "until": isoformat_local(result.until),
            "published": moments(result.published),
            "already_published": moments(result.already),
            "not_due": moments(result.not_due),
            "partitions": result.partitions,
        }, indent=2))
    else:
        print(result.describe())
    return 0
