"""``lifecert wait-idle``: wait until the pipeline has caught up with its input.

Idle means (a) the worker's consumer group has committed offsets at the end of every
partition of the events topic, and (b) the projections' stored offsets are at the end of
every topic they read (measured after (a), so every output of a decided input counts).
Exits 0 when idle, 1 on timeout (printing what is behind, per topic and partition).
"""

from __future__ import annotations

import argparse
import sys

from lifecert.pipeline.topics import layout


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "wait-idle",
        help="wait until the worker and the projections have read everything published",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    parser.add_argument(
        "--timeout", type=float, required=True, metavar="SECONDS", help="give up after this"
    )
    parser.add_argument(
        "--worker-group",
        help="the worker's consumer group (default: the topic prefix + lifecert-worker, "
        "as `lifecert worker` names it)",
    )
    parser.add_argument(
        "--interval", type=float, default=0.5, metavar="SECONDS",
        help="time between two measurements (default 0.5)",
    )
    parser.add_argument(
        "--dsn", help="PostgreSQL DSN (default: $LIFECERT_POSTGRES_DSN, else the local stack)"
    )
    parser.add_argument(
        "--bootstrap",
        help="Kafka bootstrap servers (default: $LIFECERT_KAFKA_BOOTSTRAP, else 127.0.0.1:19092)",
    )
    parser.add_argument(
        "--topic-prefix", help="prefix of every topic name (default: $LIFECERT_TOPIC_PREFIX)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lifecert.endpoints import kafka_bootstrap, postgres_dsn
    from projections.lag import wait_idle

    topics = layout(args.topic_prefix)
    prefix = topics.prefix
    group = args.worker_group or f"{prefix}lifecert-worker"
    result = wait_idle(
        kafka_bootstrap(args.bootstrap), postgres_dsn(args.dsn, "reader"), topics,
        group, timeout=args.timeout, interval=args.interval,
    )
    if result.idle:
        print("lifecert wait-idle: idle", file=sys.stderr)
        return 0
    print(f"lifecert wait-idle: not idle after {args.timeout:g}s", file=sys.stderr)
    if result.error:
        print(f"  last error: {result.error}", file=sys.stderr)
    for lag in result.lags:
        print(f"  {lag.describe()}", file=sys.stderr)
    return 1
