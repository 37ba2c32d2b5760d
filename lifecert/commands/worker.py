"""``lifecert worker``: decide the events topic live, until SIGTERM/SIGINT.

The worker itself is the faust app in ``streams/`` (streams/app.py); this module defines
the command's options and runs ``streams.worker`` only when the command is chosen, so that
the rest of ``lifecert`` neither imports faust nor needs ``streams`` to be importable.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DEFAULT_APP_ID = "lifecert-worker"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="run the stream worker: decide the events topic live (faust)",
        description=(
            "Consume the events topic partition by partition, decide each input with the "
            "campaign rules (as `lifecert replay` does), and write payment instructions, "
            "alerts, tasks, statuses and dead letters to their topics. The state lives in a "
            "faust table with a changelog topic. Runs until SIGTERM or SIGINT."
        ),
    )
    add_arguments(parser)
    parser.set_defaults(func=func)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bootstrap", metavar="HOST:PORT",
        help="Kafka broker (default: $LIFECERT_KAFKA_BOOTSTRAP, else the local stack's)",
    )
    parser.add_argument("--policy", default="foshan-2017", help="policy name or .toml path")
    parser.add_argument(
        "--app-id",
        help=f"faust app id = consumer group and prefix of the table's changelog topic "
        f"(default: {DEFAULT_APP_ID}, after the topic prefix when one is set; must begin "
        "with that default: the worker's Kafka ACLs cover those names)",
    )
    parser.add_argument(
        "--data-dir", type=Path,
        help="folder of the table's local store (default: data/worker/APP_ID)",
    )
    parser.add_argument(
        "--prefix", "--topic-prefix", dest="topic_prefix", metavar="P",
        help="prefix of every topic name (default: $LIFECERT_TOPIC_PREFIX, else none)",
    )
    parser.add_argument(
        "--store", choices=("auto", "rocksdb", "memory"), default="auto",
        help="table store: RocksDB (via rocksdict) or memory rebuilt from the changelog "
        "(default: RocksDB when rocksdict is installed)",
    )
    parser.add_argument(
        "--commit-interval", type=float, default=2.8, metavar="SECONDS",
        help="seconds between offset commits (default 2.8)",
    )
    parser.add_argument(
        "--session-timeout", type=float, default=30.0, metavar="SECONDS",
        help="how long a worker that stopped heart-beating keeps its partitions (default 30; "
        "at least the broker's group.min.session.timeout.ms, 6 s by default)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=("debug", "info", "warning", "error"),
    )


def func(args: argparse.Namespace) -> int:
    from streams.worker import run

    return run(args)
