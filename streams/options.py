"""The stream worker's options, shared by ``lifecert worker`` and ``python -m streams.worker``
(argparse only: the command line reads them before choosing a command)."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_APP_ID = "lifecert-worker"


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
